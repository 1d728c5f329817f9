"""Planted-bug variants of the chapter 00 pieces: realistic mistakes the checks must catch.

`BUGS[check_name]` lists (description, buggy function) for each check of autograder.checks.ch00.
Each function has the exercise's signature and differs from a correct solution by one mistake.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlcore.evaluate import Episode, random_policy, run_episode

# ------------------------------------------------------------------------------------------
# discounted_return(rewards, gamma) -> float
# ------------------------------------------------------------------------------------------


def return_first_reward_discounted(rewards, gamma):
    return float(np.sum(gamma ** np.arange(1, len(rewards) + 1) * rewards))  # gamma^(t+1): off by one


def return_discounts_reversed(rewards, gamma):
    G = 0.0
    for r in rewards:  # Horner's rule run forwards: the last reward ends up undiscounted
        G = r + gamma * G
    return G


def return_no_discount(rewards, gamma):
    return float(np.sum(rewards))


def return_gamma_times_t(rewards, gamma):
    return float(np.sum(gamma * np.arange(len(rewards)) * rewards))  # gamma * t for gamma ** t


def return_recursion_without_base_case(rewards, gamma):
    if len(rewards) == 1:  # the empty episode is never handled: rewards[0] raises IndexError
        return float(rewards[0])
    return float(rewards[0] + gamma * return_recursion_without_base_case(rewards[1:], gamma))


# ------------------------------------------------------------------------------------------
# returns_to_go(rewards, gamma) -> G [T]
# ------------------------------------------------------------------------------------------


def rtg_forward(rewards, gamma):
    G = np.zeros(len(rewards))
    acc = 0.0
    for t in range(len(rewards)):  # accumulates the past instead of the future
        acc = rewards[t] + gamma * acc
        G[t] = acc
    return G


def rtg_store_before_add(rewards, gamma):
    G = np.zeros(len(rewards))
    future = 0.0
    for t in reversed(range(len(rewards))):
        G[t] = future  # stored before r_t is added: G[t] holds G_{t+1}
        future = rewards[t] + gamma * future
    return G


def rtg_in_place(rewards, gamma):
    for t in reversed(range(len(rewards) - 1)):
        rewards[t] += gamma * rewards[t + 1]  # right values, but the caller's rewards are overwritten
    return rewards


def rtg_range_off_by_one(rewards, gamma):
    G = np.zeros(len(rewards))
    future = 0.0
    for t in range(len(rewards) - 1, 0, -1):  # stops before t = 0, so G[0] stays 0
        future = rewards[t] + gamma * future
        G[t] = future
    return G


def rtg_no_discount(rewards, gamma):
    return np.cumsum(np.asarray(rewards)[::-1])[::-1].astype(float)


# ------------------------------------------------------------------------------------------
# run_episode(env, policy, seed=None) -> Episode
# ------------------------------------------------------------------------------------------


def _episode(observations, actions, rewards, terminated, truncated):
    return Episode(np.array(observations), np.array(actions), np.array(rewards, dtype=float),
                   terminated, truncated)


def episode_ignores_truncated(env, policy, seed=None):
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [obs], [], []
    terminated = truncated = False
    while not terminated:  # the time limit is ignored
        action = policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
    return _episode(observations, actions, rewards, terminated, truncated)


def episode_reset_without_seed(env, policy, seed=None):
    obs, _ = env.reset()  # the seed is never used
    observations, actions, rewards = [obs], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        action = policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
    return _episode(observations, actions, rewards, terminated, truncated)


def episode_reset_counted_as_step(env, policy, seed=None):
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [obs], [], [0.0]  # a reward recorded for the reset
    terminated = truncated = False
    while not (terminated or truncated):
        action = policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
    return _episode(observations, actions, rewards, terminated, truncated)


def episode_one_step_too_many(env, policy, seed=None):
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [obs], [], []
    done = False
    while True:
        action = policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        if done:  # tests the previous step's flags: one step after the end
            break
        done = terminated or truncated
    return _episode(observations, actions, rewards, terminated, truncated)


def episode_stale_observation(env, policy, seed=None):
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [obs], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        action = policy(obs)  # obs is never updated: every action is chosen from the first observation
        next_obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(next_obs)
        actions.append(action)
        rewards.append(reward)
    return _episode(observations, actions, rewards, terminated, truncated)


def episode_missing_final_observation(env, policy, seed=None):
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        observations.append(obs)  # recorded before each step: the final observation is lost
        action = policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        actions.append(action)
        rewards.append(reward)
    return _episode(observations, actions, rewards, terminated, truncated)


def episode_flags_swapped(env, policy, seed=None):
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [obs], [], []
    terminated = truncated = False
    while not (terminated or truncated):
        action = policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
    return _episode(observations, actions, rewards, truncated, terminated)  # positional order swapped


# ------------------------------------------------------------------------------------------
# random_baseline(env_id, n_episodes, seed) -> returns [n_episodes]
# ------------------------------------------------------------------------------------------


def _returns(env_id, n_episodes, episode):
    """Apply `episode(env, i) -> return` for i in range(n_episodes) in one environment."""
    env = gym.make(env_id)
    returns = np.array([episode(env, i) for i in range(n_episodes)], dtype=float)
    env.close()
    return returns


def baseline_one_episode(env_id, n_episodes, seed):
    env = gym.make(env_id)
    episode = run_episode(env, random_policy(env.action_space, seed), seed=seed)
    return np.array([episode.total_reward])  # one episode, whatever n_episodes says


def baseline_same_seed_every_episode(env_id, n_episodes, seed):
    return _returns(env_id, n_episodes, lambda env, i: run_episode(
        env, random_policy(env.action_space, seed), seed=seed).total_reward)  # seed, not seed + i


def baseline_first_return_repeated(env_id, n_episodes, seed):
    returns = _returns(env_id, n_episodes, lambda env, i: run_episode(
        env, random_policy(env.action_space, seed + i), seed=seed + i).total_reward)
    return np.full(n_episodes, returns[0])  # reports the first episode for all


def baseline_constant_action(env_id, n_episodes, seed):
    return _returns(env_id, n_episodes, lambda env, i: run_episode(
        env, lambda obs: 0, seed=seed + i).total_reward)  # always action 0: never samples


def baseline_discounted(env_id, n_episodes, seed):
    def discounted(env, i):
        rewards = run_episode(env, random_policy(env.action_space, seed + i), seed=seed + i).rewards
        return float(np.sum(0.99 ** np.arange(len(rewards)) * rewards))  # gamma = 0.99: not the baseline

    return _returns(env_id, n_episodes, discounted)


def baseline_unseeded_actions(env_id, n_episodes, seed):
    return _returns(env_id, n_episodes, lambda env, i: run_episode(
        env, lambda obs: env.action_space.sample(), seed=seed + i).total_reward)  # action space never seeded


BUGS = {
    "discounted_return": [
        ("the first reward discounted too (gamma^(t+1))", return_first_reward_discounted),
        ("discounts in reverse order (forward Horner)", return_discounts_reversed),
        ("no discount at all", return_no_discount),
        ("gamma * t instead of gamma ** t", return_gamma_times_t),
        ("recursion without a base case for the empty episode", return_recursion_without_base_case),
    ],
    "returns_to_go": [
        ("accumulated forwards from the start", rtg_forward),
        ("G_t stored before adding r_t", rtg_store_before_add),
        ("computed in place, overwriting the caller's rewards", rtg_in_place),
        ("reversed range stops before t = 0", rtg_range_off_by_one),
        ("no discount at all", rtg_no_discount),
    ],
    "run_episode": [
        ("stops on terminated only, ignoring the time limit", episode_ignores_truncated),
        ("reset without the seed", episode_reset_without_seed),
        ("the reset counted as a step", episode_reset_counted_as_step),
        ("one step after the episode ended", episode_one_step_too_many),
        ("the policy always sees the first observation", episode_stale_observation),
        ("the final observation is not recorded", episode_missing_final_observation),
        ("terminated and truncated swapped", episode_flags_swapped),
    ],
    "random_baseline": [
        ("one episode only", baseline_one_episode),
        ("the same seed for every episode", baseline_same_seed_every_episode),
        ("the first episode's return reported for all", baseline_first_return_repeated),
        ("a constant action instead of random ones", baseline_constant_action),
        ("returns discounted with gamma = 0.99", baseline_discounted),
        ("the action space is never seeded", baseline_unseeded_actions),
    ],
}
