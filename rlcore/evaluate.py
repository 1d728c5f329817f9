"""The one evaluation routine: run a policy in a Gymnasium environment, episode by episode.

Lessons, tests and the autograder all measure a policy with these functions, so "the return of a
policy" means the same thing everywhere in the course.

    policy(obs) -> action                         a Policy: any callable from observation to action
    make_policy(action_space, seed) -> Policy     a policy factory, called once per episode
    Episode                                       what one episode produced (below)

Seeding rule (no global RNG anywhere): episode i of an evaluation with seed s starts with
`env.reset(seed=s + i)`, and a policy factory is called as `make_policy(env.action_space, s + i)`.
So episode i is reproducible on its own: evaluate(..., seed=s)[i] == evaluate(..., seed=s + i)[0].

How an episode ends (the step API returns two flags, and they mean different things):

- terminated: the environment reached a terminal state of the task itself (CartPole's pole fell,
  MountainCar's car reached the flag). Nothing follows; the value of that state is 0 by definition.
- truncated: the episode was cut off from outside, almost always by a time limit (gymnasium's
  TimeLimit wrapper: 500 steps for CartPole-v1, 200 for MountainCar-v0 and Pendulum-v1). The
  state is not terminal; the world would have gone on.

The trap comes with bootstrapping (chapter 04 onwards): a one-step target is r + gamma * V(s').
On termination it must be r alone; on truncation it must still be r + gamma * V(s'). Treating a
time-limit cut as terminal teaches the agent that the state reached at step 500 is worthless,
though nothing in the observation tells it the clock is about to run out.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

Policy = Callable[[Any], Any]
PolicyFactory = Callable[[gym.Space, int], Policy]


@dataclass
class Episode:
    """One episode: T steps from a reset to the end.

    observations: [T+1, *obs_shape] array (a list when observations cannot be stacked, e.g. dicts);
        observations[0] is what reset returned, observations[t+1] what step t returned, so the
        last one is the final observation (terminal, or where the time limit cut in).
    actions: [T, *action_shape] array, actions[t] was taken in observations[t].
    rewards: [T] float array, rewards[t] was received for actions[t].
    terminated: the last step reached a terminal state of the task.
    truncated: the episode was cut off (time limit) without reaching a terminal state.
        Both can be True when the terminal state arrives exactly at the time limit; an episode
        stopped by `run_episode(max_steps=...)` before either flag is marked truncated.
    """

    observations: Any
    actions: Any
    rewards: np.ndarray
    terminated: bool
    truncated: bool

    @property
    def length(self) -> int:
        """T, the number of steps (the reset is not a step)."""
        return len(self.rewards)

    @property
    def total_reward(self) -> float:
        """The undiscounted return, sum of all rewards (0.0 for an empty episode)."""
        return float(np.sum(self.rewards))


def _stack(items: list) -> Any:
    """Stack equally shaped arrays or numbers into one array; leave anything else a list."""
    try:
        stacked = np.asarray(items)
    except ValueError:  # ragged shapes
        return items
    return items if stacked.dtype == object else stacked


def run_episode(env: gym.Env, policy: Policy, *, seed: int | None = None,
                max_steps: int | None = None) -> Episode:
    """Run one episode of `policy` in `env` and return everything it produced.

    env: a Gymnasium environment (made with gym.make, so it has its default time limit).
    policy: policy(obs) -> action, called once per step with the current observation.
    seed: passed to env.reset(seed=seed); None continues the environment's own random stream.
    max_steps: stop after this many steps even if the environment has not ended (marked truncated);
        None runs until the environment terminates or truncates.
    """
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [obs], [], []
    terminated = truncated = False
    # Stop on either flag: continuing after `truncated` would step past the time limit, and after
    # `terminated` the environment's state is no longer meaningful.
    while not (terminated or truncated):
        if max_steps is not None and len(rewards) >= max_steps:
            truncated = True  # our own cut-off is a truncation: the task itself did not end
            break
        action = policy(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(float(reward))
    return Episode(
        observations=_stack(observations),  # [T+1, ...]
        actions=_stack(actions),  # [T, ...]
        rewards=np.asarray(rewards, dtype=float),  # [T]
        terminated=bool(terminated),
        truncated=bool(truncated),
    )


def random_policy(action_space: gym.Space, seed: int) -> Policy:
    """A policy that ignores the observation and samples uniformly from `action_space`.

    Samples come from a private copy of the space, so the environment's own action space is not
    reseeded. The copy's seed is *derived* from `seed` rather than equal to it: env.reset(seed=s)
    and action_space.seed(s) would start the very same random stream, and in Pendulum-v1 the first
    torque would then be an exact function of the initial angle (correlation 1.0).
    """
    space = copy.deepcopy(action_space)
    derived = np.random.SeedSequence(seed).spawn(1)[0]
    space.seed(int(derived.generate_state(1)[0]))  # gymnasium wants a Python int
    return lambda obs: space.sample()


def run_episodes(env_id: str, policy: Policy | None = None, *, n_episodes: int, seed: int,
                 make_policy: PolicyFactory | None = None, max_steps: int | None = None,
                 **make_kwargs) -> list[Episode]:
    """Run n_episodes episodes in a fresh `gym.make(env_id, **make_kwargs)`, episode i from
    reset(seed=seed + i).

    Give exactly one of `policy` (one callable used for every episode: deterministic, or carrying
    its own seeded generator) and `make_policy` (called as make_policy(env.action_space, seed + i)
    at the start of episode i, e.g. `random_policy`). Returns a list of n_episodes Episodes.
    """
    if (policy is None) == (make_policy is None):
        raise ValueError("give exactly one of `policy` (obs -> action) and `make_policy` "
                         "((action_space, seed) -> policy), e.g. make_policy=random_policy.")
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}.")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}; "
                         "an evaluation without a seed cannot be reproduced.")
    env = gym.make(env_id, **make_kwargs)
    try:
        episodes = []
        for i in range(n_episodes):
            episode_seed = int(seed) + i
            pi = policy if make_policy is None else make_policy(env.action_space, episode_seed)
            episodes.append(run_episode(env, pi, seed=episode_seed, max_steps=max_steps))
        return episodes
    finally:
        env.close()


def evaluate(env_id: str, policy: Policy | None = None, *, n_episodes: int, seed: int,
             make_policy: PolicyFactory | None = None, max_steps: int | None = None,
             **make_kwargs) -> np.ndarray:
    """The undiscounted return of each of n_episodes episodes, as an array [n_episodes].

    Same arguments and seeding rule as `run_episodes`. One episode is noise: report the mean of
    this array with an interval (mean +- 1.96 * SD / sqrt(n_episodes)), never a single value.

        evaluate("CartPole-v1", make_policy=random_policy, n_episodes=1000, seed=0)
    """
    episodes = run_episodes(env_id, policy, n_episodes=n_episodes, seed=seed,
                            make_policy=make_policy, max_steps=max_steps, **make_kwargs)
    return np.array([e.total_reward for e in episodes])  # [n_episodes]
