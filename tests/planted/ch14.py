"""Planted-bug variants of the chapter 14 pieces: realistic mistakes the checks must catch.

`BUGS[check_name]` lists (description, buggy function) for the unit checks of autograder.checks.ch14. Each
step variant is the correct step (`step_correct`) with one thing changed. The training-loop variants are one
correct on-device loop (`large_batch_loop`, written like the solution's) with one step changed.
"""

from __future__ import annotations

import math

import torch

from autograder.checks import ch14
from rlcore.nets import ActorCritic
from rlcore.returns import gae

# ------------------------------------------------------------------------------------------
# cartpole_step(state, lengths, actions, reset_states, max_episode_steps)
# ------------------------------------------------------------------------------------------

THETA_LIMIT = 12 * 2 * math.pi / 360


def step_correct(state, lengths, actions, reset_states, max_episode_steps, *, bug: str | None = None):
    x, x_dot, theta, theta_dot = state.unbind(1)
    force = torch.where(actions == 1, 10.0, -10.0).to(state.dtype)
    if bug == "force_sign":
        force = -force
    cos, sin = torch.cos(theta), torch.sin(theta)
    temp = (force + 0.05 * theta_dot**2 * sin) / 1.1
    thetaacc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos**2 / 1.1))
    xacc = temp - 0.05 * thetaacc * cos / 1.1
    if bug == "semi_implicit":  # velocities first, then positions from the new velocities
        x_dot = x_dot + 0.02 * xacc
        x = x + 0.02 * x_dot
        theta_dot = theta_dot + 0.02 * thetaacc
        theta = theta + 0.02 * theta_dot
        final = torch.stack([x, x_dot, theta, theta_dot], 1)
    else:
        final = torch.stack([x + 0.02 * x_dot, x_dot + 0.02 * xacc, theta + 0.02 * theta_dot,
                             theta_dot + 0.02 * thetaacc], 1)
    limit = 12.0 if bug == "degrees" else THETA_LIMIT
    terminated = (final[:, 0].abs() > 2.4) | (final[:, 2].abs() > limit)
    lengths = lengths + 1
    truncated = lengths > max_episode_steps if bug == "off_by_one" else lengths >= max_episode_steps
    if bug == "truncation_as_termination":
        terminated, truncated = terminated | truncated, torch.zeros_like(truncated)
    done = terminated | truncated
    if bug == "host_sync":  # correct numbers, but reads `done` back to the host and indexes by a boolean mask
        next_state = final.clone()
        if done.any():
            next_state[done] = reset_states[done]
    elif bug == "reset_all":
        next_state = reset_states.clone()
    else:
        next_state = torch.where(done.unsqueeze(1), reset_states, final)
    if bug == "final_after_reset":
        final = next_state
    next_lengths = lengths if bug == "lengths_kept" else torch.where(done, torch.zeros_like(lengths), lengths)
    rewards = torch.ones(state.shape[0], dtype=torch.float32, device=state.device)
    return next_state, next_lengths, rewards, terminated, truncated, final


def _step_variant(bug: str):
    def cartpole_step(state, lengths, actions, reset_states, max_episode_steps):
        return step_correct(state, lengths, actions, reset_states, max_episode_steps, bug=bug)
    return cartpole_step


STEP_BUGS = [
    ("semi-implicit Euler (positions from the new velocities)", _step_variant("semi_implicit")),
    ("the pole angle threshold in degrees", _step_variant("degrees")),
    ("autoreset of every environment", _step_variant("reset_all")),
    ("truncation flagged as termination", _step_variant("truncation_as_termination")),
    ("final state taken after the reset", _step_variant("final_after_reset")),
    ("the step counter not reset", _step_variant("lengths_kept")),
    ("truncation one step late", _step_variant("off_by_one")),
    ("the force pushes the wrong way", _step_variant("force_sign")),
    ("an `if done.any()` and a mask index: a host round trip", _step_variant("host_sync")),
]


# ------------------------------------------------------------------------------------------
# scaled_learning_rate(base_lr, base_batch, batch_size, rule)
# ------------------------------------------------------------------------------------------


def lr_inverse(base_lr, base_batch, batch_size, rule):
    k = base_batch / batch_size  # upside down: a larger batch gets a smaller step
    return {"constant": base_lr, "sqrt": base_lr * math.sqrt(k), "linear": base_lr * k}[rule]


def lr_always_linear(base_lr, base_batch, batch_size, rule):
    return base_lr if rule == "constant" else base_lr * batch_size / base_batch


def lr_sqrt_of_lr(base_lr, base_batch, batch_size, rule):
    k = batch_size / base_batch
    return {"constant": base_lr, "sqrt": math.sqrt(base_lr * k), "linear": base_lr * k}[rule]


def lr_integer_ratio(base_lr, base_batch, batch_size, rule):
    k = batch_size // base_batch  # floor division: 128 / 512 becomes 0
    return {"constant": base_lr, "sqrt": base_lr * math.sqrt(k), "linear": base_lr * k}[rule]


# ------------------------------------------------------------------------------------------
# train_large_batch_ppo(envs, seed, total_timesteps, log): one correct on-device loop, and variants
# ------------------------------------------------------------------------------------------


def large_batch_loop(envs, seed, total_timesteps, log, *, bug: str | None = None):
    """The solution's loop; `bug` names one planted change."""
    s = ch14.SETTINGS
    device = envs.device
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    N, T = envs.num_envs, s["num_steps"]
    batch, minibatch = N * T, N * T // s["num_minibatches"]
    agent = ActorCritic(envs.single_observation_space, envs.single_action_space).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=s["learning_rate"], eps=1e-5, fused=True)
    num_iterations = total_timesteps // batch
    obs_buf = torch.zeros((T, N, 4), device=device)
    actions_buf = torch.zeros((T, N), dtype=torch.long, device=device)
    logprobs, values, rewards, next_values = (torch.zeros((T, N), device=device) for _ in range(4))
    terminated, truncated = (torch.zeros((T, N), dtype=torch.bool, device=device) for _ in range(2))
    next_obs, _ = envs.reset(seed=seed)
    global_step = 0
    for iteration in range(num_iterations):
        optimizer.param_groups[0]["lr"] = s["learning_rate"] * (1 - iteration / num_iterations)
        for t in range(T):
            obs_buf[t] = next_obs
            action, logprob, value = agent.act(next_obs)
            next_obs, reward, term, trunc, info = envs.step(action.numpy() if bug == "numpy_actions" else action)
            global_step += N
            actions_buf[t], logprobs[t], values[t] = action, logprob, value
            rewards[t], terminated[t], truncated[t] = reward, term, trunc
            with torch.no_grad():
                next_values[t] = agent.value(info["final_obs"])
        if bug == "gamma_lambda_swapped":
            advantages = gae(rewards, values, next_values, terminated, truncated, s["gae_lambda"], s["gamma"])
        else:
            advantages = gae(rewards, values, next_values, terminated, truncated, s["gamma"], s["gae_lambda"])
        returns = advantages + values
        b_obs, b_actions = obs_buf.reshape(batch, 4), actions_buf.reshape(batch)
        b_logprobs, b_advantages = logprobs.reshape(batch), advantages.reshape(batch)
        b_returns = returns.reshape(batch)
        for epoch in range(s["update_epochs"]):
            order = torch.randperm(batch, generator=gen, device=device)
            for start in range(0, batch, minibatch):
                mb = order[start:start + minibatch]
                new_logprob, entropy = agent.log_prob_entropy(b_obs[mb], b_actions[mb])
                new_value = agent.value(b_obs[mb])
                old = new_logprob if bug == "ratio_new_both_sides" else b_logprobs[mb]
                logratio = new_logprob - old
                ratio = logratio.exp()
                mb_adv = b_advantages[mb]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * torch.clamp(ratio, 1 - s["clip_coef"],
                                                                           1 + s["clip_coef"])).mean()
                if bug == "policy_loss_sign":
                    pg_loss = -pg_loss
                v_loss = 0.5 * ((new_value - b_returns[mb]) ** 2).mean()
                loss = pg_loss - s["ent_coef"] * entropy.mean() + s["vf_coef"] * v_loss
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(agent.parameters(), s["max_grad_norm"])
                optimizer.step()
        with torch.no_grad():
            approx_kl = ((ratio - 1) - logratio).mean()
            clipfrac = ((ratio - 1).abs() > s["clip_coef"]).float().mean()
            explained_var = 1 - (b_returns - values.reshape(batch)).var() / b_returns.var()
        log(global_step, {"losses/policy_loss": pg_loss.item(), "losses/value_loss": v_loss.item(),
                          "losses/entropy": entropy.mean().item(), "losses/approx_kl": approx_kl.item(),
                          "losses/clipfrac": clipfrac.item(), "losses/explained_variance": explained_var.item()})
    return agent


def _loop_variant(bug: str):
    def train_large_batch_ppo(envs, seed, total_timesteps, log):
        return large_batch_loop(envs, seed, total_timesteps, log, bug=bug)
    return train_large_batch_ppo


def loop_correct(envs, seed, total_timesteps, log):
    return large_batch_loop(envs, seed, total_timesteps, log)


LOOP_BUGS = [
    ("actions converted to NumPy before envs.step", _loop_variant("numpy_actions")),
    ("the ratio taken against the new log-probability on both sides", _loop_variant("ratio_new_both_sides")),
    ("the policy loss with the wrong sign", _loop_variant("policy_loss_sign")),
    ("GAE with gamma and lambda swapped", _loop_variant("gamma_lambda_swapped")),
]

BUGS = {
    "cartpole_step": STEP_BUGS,
    "scaled_learning_rate": [
        ("the inverse batch ratio", lr_inverse),
        ("the linear rule where the square root was asked for", lr_always_linear),
        ("the square root of the learning rate times the ratio", lr_sqrt_of_lr),
        ("an integer (floor) batch ratio", lr_integer_ratio),
    ],
}
