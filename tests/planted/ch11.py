"""Planted-bug variants of the chapter 11 pieces: realistic mistakes the checks must catch.

`BUGS[check_name]` lists (description, buggy function) for each check of autograder.checks.ch11.
Each function has the exercise's signature and differs from a correct solution by one mistake. The
training-loop variants are one correct loop (`ppo_loop`, written like the solution's) with one step changed.
"""

from __future__ import annotations

import numpy as np
import torch

from autograder.checks import ch11
from rlcore.nets import ActorCritic
from rlcore.returns import gae

# ------------------------------------------------------------------------------------------
# probability_ratio(new_logprob, old_logprob)
# ------------------------------------------------------------------------------------------


def ratio_new_both_sides(new_logprob, old_logprob):
    return torch.exp(new_logprob - new_logprob)  # always 1: the policy gradient through it is zero


def ratio_swapped(new_logprob, old_logprob):
    return torch.exp(old_logprob - new_logprob)


def ratio_without_exp(new_logprob, old_logprob):
    return new_logprob - old_logprob  # log r, not r


def ratio_of_logs(new_logprob, old_logprob):
    return new_logprob / old_logprob


def ratio_detached(new_logprob, old_logprob):
    return torch.exp(new_logprob.detach() - old_logprob)  # right values, no gradient to the policy


# ------------------------------------------------------------------------------------------
# clipped_policy_loss(ratio, advantages, clip_coef)
# ------------------------------------------------------------------------------------------


def policy_loss_min(ratio, advantages, clip_coef):
    clipped = torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    return torch.min(-advantages * ratio, -advantages * clipped).mean()  # the optimistic bound


def policy_loss_no_sign(ratio, advantages, clip_coef):
    clipped = torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    return torch.min(advantages * ratio, advantages * clipped).mean()  # the objective, maximized by descent


def policy_loss_clip_advantage(ratio, advantages, clip_coef):
    clipped_adv = torch.clamp(advantages, 1 - clip_coef, 1 + clip_coef)  # the clip on the wrong term
    return torch.max(-advantages * ratio, -clipped_adv * ratio).mean()


def policy_loss_clipped_only(ratio, advantages, clip_coef):
    return (-advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)).mean()


def policy_loss_sum(ratio, advantages, clip_coef):
    clipped = torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    return torch.max(-advantages * ratio, -advantages * clipped).sum()


# ------------------------------------------------------------------------------------------
# value_loss(new_values, old_values, returns, clip_coef, clip_vloss)
# ------------------------------------------------------------------------------------------


def value_loss_min(new_values, old_values, returns, clip_coef, clip_vloss):
    unclipped = (new_values - returns) ** 2
    if not clip_vloss:
        return 0.5 * unclipped.mean()
    clipped = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)
    return 0.5 * torch.min(unclipped, (clipped - returns) ** 2).mean()


def value_loss_clip_around_returns(new_values, old_values, returns, clip_coef, clip_vloss):
    unclipped = (new_values - returns) ** 2
    if not clip_vloss:
        return 0.5 * unclipped.mean()
    clipped = returns + torch.clamp(new_values - returns, -clip_coef, clip_coef)
    return 0.5 * torch.max(unclipped, (clipped - returns) ** 2).mean()


def value_loss_ignores_flag(new_values, old_values, returns, clip_coef, clip_vloss):
    clipped = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)  # clips even when told not to
    return 0.5 * torch.max((new_values - returns) ** 2, (clipped - returns) ** 2).mean()


def value_loss_no_half(new_values, old_values, returns, clip_coef, clip_vloss):
    unclipped = (new_values - returns) ** 2
    if not clip_vloss:
        return unclipped.mean()
    clipped = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)
    return torch.max(unclipped, (clipped - returns) ** 2).mean()


def value_loss_detached(new_values, old_values, returns, clip_coef, clip_vloss):
    return ch11.reference_value_loss(new_values.detach(), old_values, returns, clip_coef, clip_vloss)


# ------------------------------------------------------------------------------------------
# normalize_advantages(advantages)
# ------------------------------------------------------------------------------------------


def normalize_no_epsilon(advantages):
    return (advantages - advantages.mean()) / advantages.std()  # NaN for a constant minibatch


def normalize_no_centering(advantages):
    return advantages / (advantages.std() + 1e-8)


def normalize_by_variance(advantages):
    return (advantages - advantages.mean()) / (advantages.var() + 1e-8)


def normalize_in_place(advantages):
    advantages -= advantages.mean()  # right values, but the caller's batch is overwritten
    advantages /= advantages.std() + 1e-8
    return advantages


# ------------------------------------------------------------------------------------------
# approx_kl_and_clipfrac(logratio, clip_coef)
# ------------------------------------------------------------------------------------------


def kl_k1(logratio, clip_coef):
    ratio = logratio.exp()
    return (-logratio).mean().item(), ((ratio - 1).abs() > clip_coef).float().mean().item()


def kl_sign_flipped(logratio, clip_coef):
    ratio = logratio.exp()
    return (logratio - (ratio - 1)).mean().item(), ((ratio - 1).abs() > clip_coef).float().mean().item()


def clipfrac_one_sided(logratio, clip_coef):
    ratio = logratio.exp()
    return ((ratio - 1) - logratio).mean().item(), (ratio > 1 + clip_coef).float().mean().item()


def clipfrac_of_logratio(logratio, clip_coef):
    ratio = logratio.exp()
    return ((ratio - 1) - logratio).mean().item(), (logratio.abs() > clip_coef).float().mean().item()


def clipfrac_count(logratio, clip_coef):
    ratio = logratio.exp()
    return ((ratio - 1) - logratio).mean().item(), ((ratio - 1).abs() > clip_coef).float().sum().item()


# ------------------------------------------------------------------------------------------
# minibatch_indices(batch_size, num_minibatches, rng)
# ------------------------------------------------------------------------------------------


def indices_unshuffled(batch_size, num_minibatches, rng):
    size = batch_size // num_minibatches
    order = np.arange(batch_size)
    return [order[k * size:(k + 1) * size] for k in range(num_minibatches)]


def indices_reseeded(batch_size, num_minibatches, rng):
    order = np.random.default_rng(0).permutation(batch_size)  # the same order every epoch
    size = batch_size // num_minibatches
    return [order[k * size:(k + 1) * size] for k in range(num_minibatches)]


def indices_with_replacement(batch_size, num_minibatches, rng):
    size = batch_size // num_minibatches
    return [rng.integers(0, batch_size, size) for _ in range(num_minibatches)]


def indices_global_rng(batch_size, num_minibatches, rng):
    order = np.random.permutation(batch_size)  # ignores rng: runs cannot be reproduced from their seed
    size = batch_size // num_minibatches
    return [order[k * size:(k + 1) * size] for k in range(num_minibatches)]


def indices_within_minibatches(batch_size, num_minibatches, rng):
    size = batch_size // num_minibatches
    # Shuffles inside each block of consecutive samples only: every epoch the same samples share a minibatch.
    blocks = rng.permuted(np.arange(batch_size).reshape(num_minibatches, size), axis=1)
    return [blocks[k] for k in range(num_minibatches)]


# ------------------------------------------------------------------------------------------
# train_ppo(envs, seed, total_timesteps, log): one correct loop, and variants with one step changed
# ------------------------------------------------------------------------------------------


def ppo_loop(envs, seed, total_timesteps, log, *, bug: str | None = None):
    """The solution's loop with the reference pieces; `bug` names one planted change."""
    s = ch11.SETTINGS
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    N, T = envs.num_envs, s["num_steps"]
    obs_shape = envs.single_observation_space.shape
    agent = ActorCritic(envs.single_observation_space, envs.single_action_space)
    params = list(agent.critic.parameters()) if bug == "optimizer_on_critic_only" else agent.parameters()
    optimizer = torch.optim.Adam(params, lr=s["learning_rate"], eps=1e-5)
    num_iterations = total_timesteps // (N * T)
    obs_buf = torch.zeros((T, N, *obs_shape))
    actions_buf = torch.zeros((T, N), dtype=torch.long)
    logprobs, values = torch.zeros((T, N)), torch.zeros((T, N))
    rewards, next_values = torch.zeros((T, N)), torch.zeros((T, N))
    terminated, truncated = torch.zeros((T, N), dtype=torch.bool), torch.zeros((T, N), dtype=torch.bool)
    obs, _ = envs.reset(seed=seed)
    next_obs = torch.as_tensor(obs, dtype=torch.float32)
    global_step = 0
    for iteration in range(num_iterations):
        optimizer.param_groups[0]["lr"] = s["learning_rate"] * (1 - iteration / num_iterations)
        for t in range(T):
            obs_buf[t] = next_obs
            with torch.no_grad():
                action, logprob, value = agent.act(next_obs)
            obs, reward, term, trunc, info = envs.step(action.numpy())
            global_step += N
            actions_buf[t], logprobs[t], values[t] = action, logprob, value
            rewards[t] = torch.as_tensor(reward, dtype=torch.float32)
            terminated[t], truncated[t] = torch.as_tensor(term), torch.as_tensor(trunc)
            with torch.no_grad():
                next_values[t] = agent.value(torch.as_tensor(info["final_obs"], dtype=torch.float32))
            next_obs = torch.as_tensor(obs, dtype=torch.float32)
            if bug == "obs_after_step":  # the stored observation is the one the action led to
                obs_buf[t] = next_obs
        if bug == "gamma_lambda_swapped":
            advantages = gae(rewards, values, next_values, terminated, truncated, s["gae_lambda"], s["gamma"])
        else:
            advantages = gae(rewards, values, next_values, terminated, truncated, s["gamma"], s["gae_lambda"])
        returns = advantages + values
        b_obs = obs_buf.reshape(T * N, *obs_shape)
        b_actions, b_logprobs = actions_buf.reshape(-1), logprobs.reshape(-1)
        b_advantages, b_returns, b_values = advantages.reshape(-1), returns.reshape(-1), values.reshape(-1)
        kls, clipfracs = [], []
        for epoch in range(s["update_epochs"]):
            for mb in ch11_minibatches(T * N, s["num_minibatches"], rng):
                mb = torch.as_tensor(mb)
                new_logprob, entropy = agent.log_prob_entropy(b_obs[mb], b_actions[mb])
                new_value = agent.value(b_obs[mb])
                old = new_logprob if bug == "ratio_new_both_sides" else b_logprobs[mb]
                ratio = ch11.reference_ratio(new_logprob, old)
                mb_adv = ch11.reference_normalize(b_advantages[mb])
                pg_loss = ch11.reference_policy_loss(ratio, mb_adv, s["clip_coef"])
                if bug == "policy_loss_sign":
                    pg_loss = -pg_loss
                v_loss = ch11.reference_value_loss(new_value, b_values[mb], b_returns[mb], s["clip_coef"], s["clip_vloss"])
                loss = pg_loss - s["ent_coef"] * entropy.mean() + s["vf_coef"] * v_loss
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(agent.parameters(), s["max_grad_norm"])
                optimizer.step()
                kl, clipfrac = ch11.reference_kl_clipfrac(new_logprob.detach() - old.detach(), s["clip_coef"])
                kls.append(kl)
                clipfracs.append(clipfrac)
        explained_var = 1 - ((b_returns - b_values).var() / b_returns.var()).item()
        log(global_step, {"losses/policy_loss": pg_loss.item(), "losses/value_loss": v_loss.item(),
                          "losses/entropy": entropy.mean().item(), "losses/approx_kl": float(np.mean(kls)),
                          "losses/clipfrac": float(np.mean(clipfracs)), "losses/explained_variance": explained_var})
    return agent


def ch11_minibatches(batch_size, num_minibatches, rng):
    order = rng.permutation(batch_size)
    size = batch_size // num_minibatches
    return [order[k * size:(k + 1) * size] for k in range(num_minibatches)]


def _variant(bug: str):
    def train_ppo(envs, seed, total_timesteps, log):
        return ppo_loop(envs, seed, total_timesteps, log, bug=bug)
    train_ppo.__name__ = "train_ppo"
    return train_ppo


def loop_correct(envs, seed, total_timesteps, log):
    return ppo_loop(envs, seed, total_timesteps, log)


LOOP_BUGS = [
    ("the ratio taken against the new log-probability on both sides (always 1, no policy gradient)",
     _variant("ratio_new_both_sides")),
    ("the policy loss with its sign flipped (the policy learns to fail)", _variant("policy_loss_sign")),
    ("the optimizer built on the critic's parameters only (the policy never changes)",
     _variant("optimizer_on_critic_only")),
    ("the observation stored after the step (actions paired with the states they led to)", _variant("obs_after_step")),
]

BUGS = {
    "probability_ratio": [
        ("the new log-probability on both sides", ratio_new_both_sides),
        ("old and new swapped", ratio_swapped),
        ("the ratio without exp", ratio_without_exp),
        ("a quotient of log-probabilities", ratio_of_logs),
        ("new_logprob detached", ratio_detached),
    ],
    "clipped_policy_loss": [
        ("min instead of max of the negated terms", policy_loss_min),
        ("the missing minus sign", policy_loss_no_sign),
        ("the clip applied to the advantage", policy_loss_clip_advantage),
        ("the clipped term alone", policy_loss_clipped_only),
        ("a sum instead of a mean", policy_loss_sum),
    ],
    "value_loss": [
        ("min instead of max", value_loss_min),
        ("clipped around the returns", value_loss_clip_around_returns),
        ("clip_vloss ignored", value_loss_ignores_flag),
        ("no factor 0.5", value_loss_no_half),
        ("new_values detached", value_loss_detached),
    ],
    "normalize_advantages": [
        ("no epsilon", normalize_no_epsilon),
        ("no centering", normalize_no_centering),
        ("divided by the variance", normalize_by_variance),
        ("in place", normalize_in_place),
    ],
    "approx_kl_and_clipfrac": [
        ("k1 estimator", kl_k1),
        ("sign flipped", kl_sign_flipped),
        ("one-sided clip fraction", clipfrac_one_sided),
        ("clip fraction of log r", clipfrac_of_logratio),
        ("clip count", clipfrac_count),
    ],
    "minibatch_indices": [
        ("no shuffle", indices_unshuffled),
        ("reseeded every epoch", indices_reseeded),
        ("drawn with replacement", indices_with_replacement),
        ("the global RNG", indices_global_rng),
        ("shuffled within fixed minibatches", indices_within_minibatches),
    ],
}
