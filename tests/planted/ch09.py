"""Planted-bug variants of the chapter 09 pieces: realistic mistakes the checks must catch.

`BUGS[check_name]` lists (description, buggy function) for each check of autograder.checks.ch09. Each
function has the exercise's signature and differs from a correct solution by one mistake. The
gradient estimator check takes two functions: its variants are (log-probability, loss) pairs.
`LOOP_BUGS` are training loops (built by `make_loop`) with one mistake each; they fail the curve check.
"""

from __future__ import annotations

import torch

from rlcore.nets import mlp
from rlcore.reinforce import finished_steps

# ------------------------------------------------------------------------------------------
# rollout_reward_to_go(rewards, dones, gamma) -> G [T, N]
# ------------------------------------------------------------------------------------------


def rtg_correct(rewards, dones, gamma):
    G = torch.zeros_like(rewards)
    future = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        future = rewards[t] + gamma * (~dones[t]) * future
        G[t] = future
    return G


def rtg_forward(rewards, dones, gamma):
    G = torch.zeros_like(rewards)
    past = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0]):  # a forward cumulative sum: G_t collects r_0 .. r_t
        past = rewards[t] + gamma * past
        G[t] = past
        past = past * (~dones[t])
    return G


def rtg_discount_reversed(rewards, dones, gamma):
    G = torch.zeros_like(rewards)
    future = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        future = gamma**t * rewards[t] + (~dones[t]) * future  # gamma^k from the rollout's start, not gamma^(k - t)
        G[t] = future
    return G


def rtg_ignores_dones(rewards, dones, gamma):
    G = torch.zeros_like(rewards)
    future = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        future = rewards[t] + gamma * future  # the sum runs on into the previous episode
        G[t] = future
    return G


def rtg_done_one_step_late(rewards, dones, gamma):
    G = torch.zeros_like(rewards)
    future = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        cut = ~dones[t + 1] if t + 1 < rewards.shape[0] else torch.ones_like(dones[0])
        future = rewards[t] + gamma * cut * future  # done_{t+1} where done_t belongs
        G[t] = future
    return G


def rtg_in_place(rewards, dones, gamma):
    for t in reversed(range(rewards.shape[0] - 1)):
        rewards[t] += gamma * (~dones[t]) * rewards[t + 1]  # right values, but the caller's rewards change
    return rewards


# ------------------------------------------------------------------------------------------
# action_log_probs(logits, actions) -> [B]
# ------------------------------------------------------------------------------------------


def logp_softmax_without_log(logits, actions):
    return logits.softmax(-1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)  # a probability


def logp_wrong_axis(logits, actions):
    return logits.log_softmax(0).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)  # over the batch


def logp_wrong_action(logits, actions):
    return logits.log_softmax(-1).max(-1).values  # the most likely action, not the one taken


def logp_log_of_softmax(logits, actions):
    return torch.log(logits.softmax(-1)).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)  # -inf at 1000


def logp_detached(logits, actions):
    return logits.detach().log_softmax(-1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def logp_unsqueezed(logits, actions):
    return logits.log_softmax(-1).gather(-1, actions.long().unsqueeze(-1))  # [B, 1]


# ------------------------------------------------------------------------------------------
# policy_gradient_loss(log_probs, returns, baseline=None) -> scalar
# ------------------------------------------------------------------------------------------


def loss_correct(log_probs, returns, baseline=None):
    weights = returns if baseline is None else returns - baseline.detach()
    return -(log_probs * weights).mean()


def loss_wrong_sign(log_probs, returns, baseline=None):
    weights = returns if baseline is None else returns - baseline.detach()
    return (log_probs * weights).mean()  # gradient descent on the objective: unlearns good actions


def loss_baseline_not_detached(log_probs, returns, baseline=None):
    weights = returns if baseline is None else returns - baseline  # the value net gets the policy's gradient
    return -(log_probs * weights).mean()


def loss_sum(log_probs, returns, baseline=None):
    weights = returns if baseline is None else returns - baseline.detach()
    return -(log_probs * weights).sum()  # the step size grows with the batch


def loss_baseline_added(log_probs, returns, baseline=None):
    weights = returns if baseline is None else returns + baseline.detach()
    return -(log_probs * weights).mean()


def loss_no_gradient(log_probs, returns, baseline=None):
    weights = returns if baseline is None else returns - baseline.detach()
    return -(log_probs.detach() * weights).mean()  # nothing reaches the policy


# ------------------------------------------------------------------------------------------
# normalize_advantages(advantages) -> [B]
# ------------------------------------------------------------------------------------------


def norm_no_centering(advantages):
    return advantages / (advantages.std() + 1e-8)


def norm_no_epsilon(advantages):
    return (advantages - advantages.mean()) / advantages.std()  # NaN on a constant batch


def norm_by_variance(advantages):
    return (advantages - advantages.mean()) / (advantages.var() + 1e-8)


def norm_by_max(advantages):
    centred = advantages - advantages.mean()
    return centred / (centred.abs().max() + 1e-8)  # in [-1, 1], not standard deviation 1


# ------------------------------------------------------------------------------------------
# The estimator pairs for gradient_estimator(action_log_probs, policy_gradient_loss)
# ------------------------------------------------------------------------------------------


def logp_correct(logits, actions):
    return logits.log_softmax(-1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


# ------------------------------------------------------------------------------------------
# train_reinforce(envs, seed, total_timesteps, log): loops with one mistake each
# ------------------------------------------------------------------------------------------


def make_loop(*, rtg=rtg_correct, logp=logp_correct, loss=loss_correct, keep_unfinished=False,
              detach_log_probs=False, lr=1e-2, episodes_per_update=16, zero_grad=True, normalize=True):
    """A REINFORCE loop like the solution's, with one knob turned to plant a bug."""

    def train_reinforce(envs, seed, total_timesteps, log):
        torch.manual_seed(seed)
        obs_dim, n_actions, N = envs.single_observation_space.shape[0], envs.single_action_space.n, envs.num_envs
        policy = mlp(obs_dim, (64, 64), n_actions, out_std=0.01)
        value = mlp(obs_dim, (64, 64), 1)
        optimizer = torch.optim.Adam([*policy.parameters(), *value.parameters()], lr=lr)
        obs, _ = envs.reset(seed=seed)
        global_step = 0
        while global_step < total_timesteps:
            obs_buf, act_buf, rew_buf, done_buf, ended = [], [], [], [], 0
            while ended < episodes_per_update and global_step < total_timesteps:
                obs_t = torch.as_tensor(obs)
                with torch.no_grad():
                    logits = policy(obs_t)
                    actions = (logits - torch.empty_like(logits).exponential_().log()).argmax(-1)
                obs, rewards, terminated, truncated, _ = envs.step(actions.numpy())
                done = terminated | truncated
                obs_buf.append(obs_t), act_buf.append(actions)
                rew_buf.append(torch.as_tensor(rewards)), done_buf.append(torch.as_tensor(done))
                global_step += N
                ended += int(done.sum())
            rewards, dones = torch.stack(rew_buf), torch.stack(done_buf)
            returns = rtg(rewards, dones, 0.99)
            keep = torch.ones_like(dones) if keep_unfinished else finished_steps(dones)
            if not keep.any():
                break
            b_obs, b_actions, b_returns = torch.stack(obs_buf)[keep], torch.stack(act_buf)[keep], returns[keep]
            logits = policy(b_obs)
            log_probs = logp(logits, b_actions)
            if detach_log_probs:
                log_probs = log_probs.detach().requires_grad_()
            values = value(b_obs).squeeze(-1)
            advantages = b_returns - values.detach()
            if normalize:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            policy_loss = loss(log_probs, advantages)
            value_loss = 0.5 * ((values - b_returns) ** 2).mean()
            if zero_grad:
                optimizer.zero_grad()
            (policy_loss + value_loss).backward()
            optimizer.step()
            with torch.no_grad():
                lp = logits.log_softmax(-1)
                entropy = -(lp.exp() * lp).sum(-1).mean()
            log(global_step, {"losses/policy_loss": policy_loss.item(), "losses/value_loss": value_loss.item(),
                              "losses/entropy": entropy.item()})
        return policy

    return train_reinforce


BUGS = {
    "rollout_reward_to_go": [
        ("a forward cumulative sum", rtg_forward),
        ("discounts counted from the start of the rollout (gamma^k, not gamma^(k - t))", rtg_discount_reversed),
        ("episode ends ignored", rtg_ignores_dones),
        ("the episode end applied one step late", rtg_done_one_step_late),
        ("computed in place, overwriting the caller's rewards", rtg_in_place),
    ],
    "action_log_probs": [
        ("softmax without the log", logp_softmax_without_log),
        ("log_softmax over the batch axis", logp_wrong_axis),
        ("the log-probability of the most likely action, not the one taken", logp_wrong_action),
        ("log(softmax(...)), which underflows", logp_log_of_softmax),
        ("the logits detached", logp_detached),
        ("shape [B, 1] instead of [B]", logp_unsqueezed),
    ],
    "policy_gradient_loss": [
        ("the sign flipped", loss_wrong_sign),
        ("the baseline not detached", loss_baseline_not_detached),
        ("a sum over steps instead of the mean", loss_sum),
        ("the baseline added instead of subtracted", loss_baseline_added),
        ("log_probs detached", loss_no_gradient),
    ],
    "normalize_advantages": [
        ("the mean not subtracted", norm_no_centering),
        ("no epsilon: NaN on a constant batch", norm_no_epsilon),
        ("divided by the variance", norm_by_variance),
        ("divided by the largest magnitude", norm_by_max),
    ],
    "gradient_estimator": [
        ("the loss sign flipped", (logp_correct, loss_wrong_sign)),
        ("softmax without the log", (logp_softmax_without_log, loss_correct)),
        ("a sum over samples instead of the mean", (logp_correct, loss_sum)),
        ("the baseline added instead of subtracted", (logp_correct, loss_baseline_added)),
        ("the log-probability of the most likely action", (logp_wrong_action, loss_correct)),
    ],
}

LOOP_BUGS = [
    ("the policy-gradient loss with the wrong sign", make_loop(loss=loss_wrong_sign)),
    ("log-probabilities detached: the policy never changes", make_loop(detach_log_probs=True)),
    ("episode ends ignored by the reward-to-go", make_loop(rtg=rtg_ignores_dones)),
    ("the log-probability of the most likely action", make_loop(logp=logp_wrong_action)),
    ("gradients never zeroed: they accumulate over updates", make_loop(zero_grad=False)),
]
