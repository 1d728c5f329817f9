"""rlcore.envs.fast.CartPole against Gymnasium's CartPole-v1, exactly.

N plain `gymnasium.make("CartPole-v1")` environments, reset with seed + i and reset again by hand when
an episode ends, are stepped in lockstep with the batched env over thousands of steps. Half of the
environments follow random actions (short episodes, many resets inside the run), half a balancing policy
that survives to the 500-step time limit (truncation). Observations, rewards, flags, final observations
and episode statistics must be identical, not close: the batched physics claim bit-for-bit equality.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlcore.envs import SerialVectorEnv, make_vector
from tests import helpers
from rlcore.envs.fast import CartPole


def balancing_action(obs: np.ndarray) -> np.ndarray:
    """Push toward the side the pole falls to: survives to the time limit from every start state."""
    theta, theta_dot = obs[..., 2], obs[..., 3]
    return (theta + 0.5 * theta_dot > 0).astype(np.int64)


def choose_actions(obs: np.ndarray, rng: np.random.Generator, balancing: np.ndarray) -> np.ndarray:
    """Balancing envs follow the policy (with a few random pushes), the others act at random."""
    random_actions = rng.integers(0, 2, size=len(obs))
    policy = np.where(rng.random(len(obs)) < 0.05, random_actions, balancing_action(obs))
    return np.where(balancing, policy, random_actions)


def gymnasium_lockstep(envs, n: int, seed: int, steps: int, action_seed: int) -> dict[str, int]:
    """tests.helpers.gymnasium_lockstep against CartPole-v1, half the envs on the policy, half at random."""
    rng = np.random.default_rng(action_seed)
    balancing = np.arange(n) % 2 == 0
    return helpers.gymnasium_lockstep(envs, "CartPole-v1", n, seed, steps, lambda obs: choose_actions(obs, rng, balancing))


@pytest.mark.parametrize("seed", [0, 12345])
def test_lockstep_with_gymnasium(seed):
    n = 6
    counts = gymnasium_lockstep(CartPole(n), n, seed, steps=1300, action_seed=seed + 1)
    # The run must have exercised both ways an episode ends, many times.
    assert counts["terminated"] > 100
    assert counts["truncated"] >= 3


def test_lockstep_through_make_vector():
    n = 4
    envs = make_vector("CartPole-v1", n, backend="fast")
    assert isinstance(envs, CartPole)
    counts = gymnasium_lockstep(envs, n, seed=7, steps=1100, action_seed=3)
    assert counts["truncated"] >= 2 and counts["terminated"] > 20


def test_auto_backend_picks_fast_and_make_vector_seed_seeds_the_first_reset():
    auto = make_vector("CartPole-v1", 3, backend="auto", seed=11)
    obs, _ = auto.reset()
    reference, _ = CartPole(3).reset(seed=11)
    np.testing.assert_array_equal(obs, reference)
    # The seed is for the first reset only; a later reset without one continues the streams.
    again, _ = auto.reset()
    assert not np.array_equal(again, reference)


def test_same_outputs_as_the_serial_vector_env():
    # The protocol's own reference backend over Gymnasium envs: same arrays, field by field.
    n, steps = 5, 700
    fast, serial = CartPole(n), SerialVectorEnv("CartPole-v1", n)
    rng = np.random.default_rng(0)
    balancing = np.arange(n) < 2
    obs_f, _ = fast.reset(seed=3)
    obs_s, _ = serial.reset(seed=3)
    np.testing.assert_array_equal(obs_f, obs_s)
    for _ in range(steps):
        actions = choose_actions(obs_f, rng, balancing)
        out_f, out_s = fast.step(actions), serial.step(actions)
        for a, b in zip(out_f[:4], out_s[:4]):
            np.testing.assert_array_equal(a, b)
        for key in ("final_obs", "episode_return", "episode_length"):
            np.testing.assert_array_equal(out_f[4][key], out_s[4][key])
        obs_f = out_f[0]
    serial.close()


def test_reset_without_seed_continues_each_envs_stream():
    n = 3
    envs = CartPole(n)
    singles = [gym.make("CartPole-v1") for _ in range(n)]
    envs.reset(seed=5)
    for i, env in enumerate(singles):
        env.reset(seed=5 + i)
    for _ in range(3):
        obs, _ = envs.reset()
        np.testing.assert_array_equal(obs, np.stack([env.reset()[0] for env in singles]))


def test_reseeding_repeats_the_episode():
    envs = CartPole(2)
    actions = np.array([0, 1])
    first = [envs.reset(seed=9)[0]] + [envs.step(actions)[0] for _ in range(30)]
    second = [envs.reset(seed=9)[0]] + [envs.step(actions)[0] for _ in range(30)]
    np.testing.assert_array_equal(np.stack(first), np.stack(second))


def test_time_limit_truncates_at_500_and_counts_the_last_reward():
    envs = CartPole(2)
    obs, _ = envs.reset(seed=0)
    for step in range(1, 501):
        obs, rewards, terminated, truncated, info = envs.step(balancing_action(obs))
        assert not terminated.any(), f"the balancing policy fell at step {step}"
        if step < 500:
            assert not truncated.any()
    assert truncated.all()
    np.testing.assert_array_equal(info["episode_length"], [500, 500])
    np.testing.assert_array_equal(info["episode_return"], [500.0, 500.0])
    assert not np.array_equal(info["final_obs"], obs)  # obs is already the next episode's first


def test_custom_time_limit():
    envs = CartPole(1, max_episode_steps=7)
    obs, _ = envs.reset(seed=0)
    for _ in range(7):
        obs, _, _, truncated, info = envs.step(balancing_action(obs))
    assert truncated[0] and info["episode_length"][0] == 7


def test_spaces_match_gymnasium():
    envs, single = CartPole(3), gym.make("CartPole-v1")
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.observation_space.shape == (3, 4) and envs.action_space.shape == (3,)
    assert envs.num_envs == 3


def test_float_actions_that_are_whole_numbers_are_accepted():
    a, b = CartPole(2), CartPole(2)
    a.reset(seed=1), b.reset(seed=1)
    np.testing.assert_array_equal(a.step(np.array([1.0, 0.0]))[0], b.step(np.array([1, 0]))[0])


# Errors: tests/test_fast_envs.py, shared by every batched environment.
