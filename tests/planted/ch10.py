"""Planted-bug variants of the chapter 10 pieces: realistic mistakes the checks must catch.

`BUGS[check_name]` lists (description, buggy function) for each exact check of autograder.checks.ch10;
`LOOP_BUGS` lists broken training loops for the curve check. Each differs from a correct solution by
one mistake.
"""

from __future__ import annotations

import math

import torch

# ------------------------------------------------------------------------------------------
# categorical_entropy(logits) -> [B]
# ------------------------------------------------------------------------------------------


def entropy_naive_softmax(logits):
    p = logits.exp() / logits.exp().sum(-1, keepdim=True)  # exp(1000) overflows: inf / inf = NaN
    return -(p * p.log()).sum(-1)


def entropy_log2(logits):
    log_p = torch.log_softmax(logits, -1)
    return -(log_p.exp() * log_p).sum(-1) / math.log(2)  # bits, not nats


def entropy_sign(logits):
    log_p = torch.log_softmax(logits, -1)
    return (log_p.exp() * log_p).sum(-1)  # the minus sign is missing


def entropy_logits_as_logp(logits):
    p = torch.softmax(logits, -1)
    return -(p * logits).sum(-1)  # logits are log-probabilities only up to a constant


def entropy_batch_axis(logits):
    log_p = torch.log_softmax(logits, -1)
    return -(log_p.exp() * log_p).sum(0)  # sums over the batch instead of the actions


# ------------------------------------------------------------------------------------------
# nstep_returns(rewards, next_values, terminated, truncated, gamma) -> [T, N]
# ------------------------------------------------------------------------------------------


def nstep_through_terminated(rewards, next_values, terminated, truncated, gamma):
    returns = torch.zeros_like(rewards)
    ahead = next_values[-1]
    for t in reversed(range(rewards.shape[0])):
        done = terminated[t] | truncated[t]
        returns[t] = rewards[t] + gamma * torch.where(done, next_values[t], ahead)  # V(terminal obs) bootstrapped
        ahead = returns[t]
    return returns


def nstep_truncation_as_termination(rewards, next_values, terminated, truncated, gamma):
    returns = torch.zeros_like(rewards)
    ahead = next_values[-1]
    for t in reversed(range(rewards.shape[0])):
        done = terminated[t] | truncated[t]
        returns[t] = rewards[t] + gamma * (~done) * ahead  # a time-limit cut treated as a terminal state
        ahead = returns[t]
    return returns


def nstep_from_reset_obs(rewards, next_values, terminated, truncated, gamma):
    returns = torch.zeros_like(rewards)
    ahead = next_values[-1]
    for t in reversed(range(rewards.shape[0])):
        # at a truncation this continues with G_(t+1), the next episode's return from its reset observation
        returns[t] = rewards[t] + gamma * (~terminated[t]) * ahead
        ahead = returns[t]
    return returns


def nstep_no_final_bootstrap(rewards, next_values, terminated, truncated, gamma):
    returns = torch.zeros_like(rewards)
    ahead = torch.zeros_like(rewards[0])  # the rollout's tail is treated as the end of every episode
    for t in reversed(range(rewards.shape[0])):
        following = torch.where(truncated[t], next_values[t], ahead)
        returns[t] = rewards[t] + gamma * (~terminated[t]) * following
        ahead = returns[t]
    return returns


# ------------------------------------------------------------------------------------------
# compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam) -> [T, N]
# ------------------------------------------------------------------------------------------


def gae_lambda_gamma_swapped(rewards, values, next_values, terminated, truncated, gamma, lam):
    deltas = rewards + lam * (~terminated) * next_values - values  # lambda where gamma belongs
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * lam * ~(terminated[t] | truncated[t]) * running
        advantages[t] = running
    return advantages


def gae_no_done_cut(rewards, values, next_values, terminated, truncated, gamma, lam):
    deltas = rewards + gamma * (~terminated) * next_values - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * lam * running  # the sum runs on into the next episode
        advantages[t] = running
    return advantages


def gae_forward(rewards, values, next_values, terminated, truncated, gamma, lam):
    deltas = rewards + gamma * (~terminated) * next_values - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0]):  # accumulates the past TD errors instead of the future ones
        running = deltas[t] + gamma * lam * ~(terminated[t] | truncated[t]) * running
        advantages[t] = running
    return advantages


def gae_cut_only_terminated(rewards, values, next_values, terminated, truncated, gamma, lam):
    deltas = rewards + gamma * (~terminated) * next_values - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * lam * (~terminated[t]) * running  # truncation does not stop the sum
        advantages[t] = running
    return advantages


# ------------------------------------------------------------------------------------------
# a2c_loss(logprobs, entropy, values, returns, vf_coef, ent_coef) -> scalar
# ------------------------------------------------------------------------------------------


def loss_advantage_not_detached(logprobs, entropy, values, returns, vf_coef, ent_coef):
    advantages = returns - values  # the policy term's gradient now also moves the critic
    return -(logprobs * advantages).mean() + vf_coef * 0.5 * ((returns - values) ** 2).mean() - ent_coef * entropy.mean()


def loss_entropy_sign(logprobs, entropy, values, returns, vf_coef, ent_coef):
    advantages = (returns - values).detach()
    return -(logprobs * advantages).mean() + vf_coef * 0.5 * ((returns - values) ** 2).mean() + ent_coef * entropy.mean()


def loss_value_on_advantages(logprobs, entropy, values, returns, vf_coef, ent_coef):
    advantages = (returns - values).detach()
    value_loss = 0.5 * ((advantages - values) ** 2).mean()  # regresses V onto A instead of the returns
    return -(logprobs * advantages).mean() + vf_coef * value_loss - ent_coef * entropy.mean()


def loss_policy_sign(logprobs, entropy, values, returns, vf_coef, ent_coef):
    advantages = (returns - values).detach()
    return (logprobs * advantages).mean() + vf_coef * 0.5 * ((returns - values) ** 2).mean() - ent_coef * entropy.mean()


BUGS = {
    "categorical_entropy": [
        ("softmax by hand without subtracting the max: NaN for large logits", entropy_naive_softmax),
        ("entropy in bits (log base 2)", entropy_log2),
        ("minus sign missing", entropy_sign),
        ("logits used as log-probabilities", entropy_logits_as_logp),
        ("summed over the batch axis", entropy_batch_axis),
    ],
    "nstep_returns": [
        ("bootstraps through terminated steps", nstep_through_terminated),
        ("treats truncation as termination", nstep_truncation_as_termination),
        ("bootstraps from the reset observation's return at a truncation", nstep_from_reset_obs),
        ("no bootstrap at the end of the rollout", nstep_no_final_bootstrap),
    ],
    "compute_gae": [
        ("lambda and gamma swapped", gae_lambda_gamma_swapped),
        ("missing the (1 - done) cut", gae_no_done_cut),
        ("advantages computed forward in time", gae_forward),
        ("cut only at terminated steps", gae_cut_only_terminated),
    ],
    "a2c_loss": [
        ("advantage not detached", loss_advantage_not_detached),
        ("entropy bonus with the wrong sign", loss_entropy_sign),
        ("value loss on the wrong target (the advantages)", loss_value_on_advantages),
        ("policy term with the wrong sign", loss_policy_sign),
    ],
}


# ------------------------------------------------------------------------------------------
# train_a2c(envs, seed, total_timesteps, log): a correct loop with one switch per planted bug
# ------------------------------------------------------------------------------------------


def _loop(bug: str | None):
    """The solution's A2C loop (rlcore.returns.gae for the targets) with one bug switched on."""
    from torch import nn

    from rlcore.nets import mlp
    from rlcore.returns import gae

    def train_a2c(envs, seed, total_timesteps, log):
        torch.manual_seed(seed)
        N, T = envs.num_envs, 5
        obs_dim, n_actions = envs.single_observation_space.shape[0], envs.single_action_space.n
        actor, critic = mlp(obs_dim, (64, 64), n_actions, out_std=0.01), mlp(obs_dim, (64, 64), 1)
        params = list(actor.parameters()) + list(critic.parameters())
        optimizer = torch.optim.RMSprop(params, lr=1.5e-3, alpha=0.99, eps=1e-5)
        obs_buf, act_buf = torch.zeros((T, N, obs_dim)), torch.zeros((T, N), dtype=torch.long)
        rew_buf, nv_buf = torch.zeros((T, N)), torch.zeros((T, N))
        term_buf, trunc_buf = torch.zeros((T, N), dtype=torch.bool), torch.zeros((T, N), dtype=torch.bool)
        obs = torch.as_tensor(envs.reset(seed=seed)[0])
        global_step = 0
        for update in range(total_timesteps // (N * T)):
            for t in range(T):
                with torch.no_grad():
                    actions = torch.multinomial(torch.softmax(actor(obs), -1), 1).squeeze(-1)
                next_obs, rewards, terminated, truncated, info = envs.step(actions.numpy())
                global_step += N
                next_obs = torch.as_tensor(next_obs)
                obs_buf[t] = next_obs if bug == "obs_off_by_one" else obs  # the observation AFTER the action
                act_buf[t] = actions
                rew_buf[t] = torch.as_tensor(rewards)
                term_buf[t] = torch.as_tensor(terminated) & (bug != "ignore_terminated")  # pole falls bootstrapped
                trunc_buf[t] = torch.as_tensor(truncated)
                with torch.no_grad():
                    nv_buf[t] = critic(torch.as_tensor(info["final_obs"])).squeeze(-1)
                obs = next_obs
            b_obs = obs_buf.reshape(T * N, obs_dim)
            values = critic(b_obs).squeeze(-1)
            with torch.no_grad():
                old = values.reshape(T, N)
                returns = (gae(rew_buf, old, nv_buf, term_buf, trunc_buf, 0.98, 1.0) + old).reshape(-1)
            logits = actor(b_obs)
            logprobs = torch.log_softmax(logits, -1).gather(-1, act_buf.reshape(-1, 1)).squeeze(-1)
            if bug == "logprob_detached":
                logprobs = logprobs.detach()  # the policy term no longer reaches the actor
            advantages = (returns - values).detach()
            sign = -1.0 if bug == "policy_sign" else 1.0  # gradient ascent on the loss
            loss = -sign * (logprobs * advantages).mean() + 0.5 * 0.5 * ((returns - values) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 0.5)
            optimizer.step()
            if update % 20 == 0:
                log(global_step, {"losses/entropy": entropy_of(logits).item(),
                                  "losses/explained_variance": (1 - (returns - values).var() / returns.var()).item()})

    train_a2c.__name__ = "train_a2c"
    return train_a2c


def entropy_of(logits):
    log_p = torch.log_softmax(logits, -1)
    return -(log_p.exp() * log_p).sum(-1).mean()


LOOP_BUGS = [
    ("the log-probabilities detached: the actor never learns", _loop("logprob_detached")),
    ("the observation after the action stored as the one it was taken from", _loop("obs_off_by_one")),
    ("the policy term with the wrong sign", _loop("policy_sign")),
    ("terminated ignored: the pole's fall is bootstrapped through", _loop("ignore_terminated")),
]
CORRECT_LOOP = _loop(None)
