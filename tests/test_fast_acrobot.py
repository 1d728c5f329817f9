"""rlcore.envs.fast.Acrobot against Gymnasium's Acrobot-v1, exactly.

N plain `gymnasium.make("Acrobot-v1")` environments, reset with seed + i and reset again by hand when
an episode ends, are stepped in lockstep with the batched env over tens of thousands of steps. Half of
the environments act at random (the acrobot rarely reaches the line that way, so their episodes run to
the 500-step time limit: truncation), half follow an energy-pumping policy that reaches it in about 100
steps (termination). Observations, rewards, flags, final observations and episode statistics must be
identical, not close: the batched Runge-Kutta integration claims bit-for-bit equality.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control import acrobot as gym_acrobot

from rlcore.envs import SerialVectorEnv, make_vector
from tests import helpers
from rlcore.envs.fast import Acrobot
from rlcore.envs.fast.acrobot import dynamics, rk4_step, wrap_angle


def pumping_action(obs: np.ndarray) -> np.ndarray:
    """Torque along the second joint's angular velocity: swings the acrobot up in about 100 steps."""
    return np.where(obs[..., 5] > 0, 2, 0)


def choose_actions(obs: np.ndarray, rng: np.random.Generator, pumping: np.ndarray) -> np.ndarray:
    """Pumping envs follow the policy (with a few random actions), the others act at random."""
    random_actions = rng.integers(0, 3, size=len(obs))
    policy = np.where(rng.random(len(obs)) < 0.1, random_actions, pumping_action(obs))
    return np.where(pumping, policy, random_actions)


def gymnasium_lockstep(envs, n: int, seed: int, steps: int, action_seed: int) -> dict[str, int]:
    """tests.helpers.gymnasium_lockstep against Acrobot-v1, half the envs on the policy, half at random."""
    rng = np.random.default_rng(action_seed)
    pumping = np.arange(n) % 2 == 0
    return helpers.gymnasium_lockstep(envs, "Acrobot-v1", n, seed, steps, lambda obs: choose_actions(obs, rng, pumping))


@pytest.mark.parametrize("seed", [0, 12345, 2024])
def test_lockstep_with_gymnasium(seed):
    n = 8
    counts = gymnasium_lockstep(Acrobot(n), n, seed, steps=1050, action_seed=seed + 1)
    assert counts["steps"] == 8400
    # Both ways an episode ends, many times: the pumping envs terminate, the random ones are truncated.
    assert counts["terminated"] > 20
    assert counts["truncated"] >= 6


def test_lockstep_through_make_vector():
    n = 4
    envs = make_vector("Acrobot-v1", n, backend="fast")
    assert isinstance(envs, Acrobot)
    counts = gymnasium_lockstep(envs, n, seed=7, steps=520, action_seed=3)
    assert counts["truncated"] >= 2 and counts["terminated"] > 5


def test_dynamics_match_gymnasium_on_random_states():
    # The derivative function alone, on states spread over the whole range (velocities up to their
    # bounds, every torque): same float64 numbers as AcrobotEnv._dsdt, term for term. Many squares of
    # these velocities land within a hair of a rounding tie, where pow(x, 2) and x * x differ.
    rng = np.random.default_rng(0)
    n = 20000
    state = np.stack([rng.uniform(-math.pi, math.pi, n), rng.uniform(-math.pi, math.pi, n),
                      rng.uniform(-4 * math.pi, 4 * math.pi, n), rng.uniform(-9 * math.pi, 9 * math.pi, n)])
    torque = np.array([-1.0, 0.0, 1.0])[rng.integers(0, 3, n)]
    ours = np.stack(dynamics(*state, torque))
    env = gym_acrobot.AcrobotEnv()
    theirs = np.stack([env._dsdt(np.append(state[:, i], torque[i]))[:4] for i in range(n)], axis=1)
    np.testing.assert_array_equal(ours, theirs)


def test_rk4_step_matches_gymnasium():
    rng = np.random.default_rng(1)
    n = 2000
    state = np.stack([rng.uniform(-math.pi, math.pi, n), rng.uniform(-math.pi, math.pi, n),
                      rng.uniform(-4 * math.pi, 4 * math.pi, n), rng.uniform(-9 * math.pi, 9 * math.pi, n)])
    torque = np.array([-1.0, 0.0, 1.0])[rng.integers(0, 3, n)]
    env = gym_acrobot.AcrobotEnv()
    theirs = np.stack([gym_acrobot.rk4(env._dsdt, np.append(state[:, i], torque[i]), [0, env.dt])
                       for i in range(n)], axis=1)
    np.testing.assert_array_equal(rk4_step(state, torque), theirs)


def test_wrap_angle_matches_gymnasium_including_several_turns():
    x = np.concatenate([np.linspace(-25, 25, 2001), [math.pi, -math.pi, 3 * math.pi, -3 * math.pi, 0.0]])
    expected = np.array([gym_acrobot.wrap(v, -math.pi, math.pi) for v in x])
    np.testing.assert_array_equal(wrap_angle(x), expected)
    assert np.all(np.abs(wrap_angle(x)) <= math.pi)


def test_auto_backend_picks_fast_and_make_vector_seed_seeds_the_first_reset():
    auto = make_vector("Acrobot-v1", 3, backend="auto", seed=11)
    assert repr(auto).startswith("Acrobot(num_envs=3")
    obs, _ = auto.reset()
    reference, _ = Acrobot(3).reset(seed=11)
    np.testing.assert_array_equal(obs, reference)
    again, _ = auto.reset()  # the seed is for the first reset only
    assert not np.array_equal(again, reference)


def test_same_outputs_as_the_serial_vector_env():
    # The protocol's own reference backend over Gymnasium envs: same arrays, field by field.
    n, steps = 4, 600
    fast, serial = Acrobot(n), SerialVectorEnv("Acrobot-v1", n)
    rng = np.random.default_rng(0)
    pumping = np.arange(n) < 2
    obs_f, _ = fast.reset(seed=3)
    obs_s, _ = serial.reset(seed=3)
    np.testing.assert_array_equal(obs_f, obs_s)
    ended = 0
    for _ in range(steps):
        actions = choose_actions(obs_f, rng, pumping)
        out_f, out_s = fast.step(actions), serial.step(actions)
        for a, b in zip(out_f[:4], out_s[:4]):
            np.testing.assert_array_equal(a, b)
        for key in ("final_obs", "episode_return", "episode_length"):
            np.testing.assert_array_equal(out_f[4][key], out_s[4][key])
        ended += int((out_f[2] | out_f[3]).sum())
        obs_f = out_f[0]
    serial.close()
    assert ended > 5


def test_reset_without_seed_continues_each_envs_stream():
    n = 3
    envs = Acrobot(n)
    singles = [gym.make("Acrobot-v1") for _ in range(n)]
    envs.reset(seed=5)
    for i, env in enumerate(singles):
        env.reset(seed=5 + i)
    for _ in range(3):
        obs, _ = envs.reset()
        np.testing.assert_array_equal(obs, np.stack([env.reset()[0] for env in singles]))


def test_reset_bounds_option_as_in_gymnasium():
    envs, single = Acrobot(2), gym.make("Acrobot-v1")
    obs, _ = envs.reset(seed=123, options={"low": -0.2, "high": 0.2})
    np.testing.assert_array_equal(obs[0], single.reset(seed=123, options={"low": -0.2, "high": 0.2})[0])


def test_reseeding_repeats_the_episode():
    envs = Acrobot(3)
    actions = np.array([0, 1, 2])
    first = [envs.reset(seed=9)[0]] + [envs.step(actions)[0] for _ in range(30)]
    second = [envs.reset(seed=9)[0]] + [envs.step(actions)[0] for _ in range(30)]
    np.testing.assert_array_equal(np.stack(first), np.stack(second))
    third = [envs.reset(seed=10)[0]] + [envs.step(actions)[0] for _ in range(30)]
    assert not np.array_equal(np.stack(first), np.stack(third))


def test_start_states_hang_down():
    obs, _ = Acrobot(500).reset(seed=0)
    # cos of angles in [-0.1, 0.1] is at least cos(0.1); velocities in [-0.1, 0.1].
    assert np.all(obs[:, [0, 2]] >= np.float32(math.cos(0.1))) and np.all(np.abs(obs[:, 4:]) <= 0.1)


def test_time_limit_truncates_at_500_with_return_minus_500():
    envs = Acrobot(2)
    obs, _ = envs.reset(seed=0)
    for step in range(1, 501):
        obs, rewards, terminated, truncated, info = envs.step(np.array([1, 1]))  # no torque: never swings up
        assert not terminated.any()
        np.testing.assert_array_equal(rewards, [-1.0, -1.0])
        if step < 500:
            assert not truncated.any() and np.isnan(info["episode_return"]).all()
    assert truncated.all()
    np.testing.assert_array_equal(info["episode_length"], [500, 500])
    np.testing.assert_array_equal(info["episode_return"], [-500.0, -500.0])
    assert not np.array_equal(info["final_obs"], obs)  # obs is already the next episode's first


def test_termination_rewards_zero_and_autoresets():
    envs = Acrobot(1)
    obs, _ = envs.reset(seed=1)
    for step in range(1, 500):
        obs, rewards, terminated, truncated, info = envs.step(pumping_action(obs))
        if terminated[0]:
            break
    assert terminated[0] and not truncated[0], "the pumping policy should reach the line within 500 steps"
    final = info["final_obs"][0]
    tip_height = -final[0] - (final[0] * final[2] - final[1] * final[3])  # -cos t1 - cos(t1 + t2)
    assert tip_height > 1.0 - 1e-5  # above the line (up to the float32 rounding of the observation)
    assert rewards[0] == 0.0
    assert info["episode_length"][0] == step and info["episode_return"][0] == -(step - 1)
    assert obs[0, 0] >= np.float32(math.cos(0.1))  # the next episode starts hanging down


def test_custom_time_limit():
    envs = Acrobot(1, max_episode_steps=7)
    envs.reset(seed=0)
    for _ in range(7):
        _, _, _, truncated, info = envs.step(np.array([1]))
    assert truncated[0] and info["episode_length"][0] == 7 and info["episode_return"][0] == -7.0


def test_spaces_match_gymnasium():
    envs, single = Acrobot(3), gym.make("Acrobot-v1")
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.observation_space.shape == (3, 6) and envs.action_space.shape == (3,)
    assert envs.num_envs == 3


def test_context_manager_closes():
    with Acrobot(2) as envs:
        envs.reset(seed=0)
    with pytest.raises(RuntimeError, match="closed"):
        envs.step(np.array([0, 1]))


# Errors: tests/test_fast_envs.py, shared by every batched environment.
