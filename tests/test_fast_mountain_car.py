"""rlcore.envs.fast.MountainCar against Gymnasium's MountainCar-v0, exactly.

N plain `gymnasium.make("MountainCar-v0")` environments, reset with seed + i and reset again by hand when
an episode ends, are stepped in lockstep with the batched env. Half of the environments act at random (a
random car almost never reaches the flag, so their episodes run into the 200-step time limit: truncation),
half pump energy (push in the direction of motion), which reaches the flag in about 100 steps and bumps into
the left wall on the way (termination). Observations, rewards, flags, final observations and episode
statistics must be identical, not close.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control import mountain_car as gym_mountain_car

from rlcore.envs import SerialVectorEnv, make_vector
from rlcore.envs.fast import MountainCar
from rlcore.envs.fast.mountain_car import MIN_POSITION, physics
from tests import helpers


def pumping_action(obs: np.ndarray) -> np.ndarray:
    """Push in the direction of motion (2 when the velocity is >= 0, else 0): reaches the flag in ~100 steps."""
    return np.where(obs[..., 1] >= 0, 2, 0)


def choose_actions(obs: np.ndarray, rng: np.random.Generator, pumping: np.ndarray) -> np.ndarray:
    """Pumping envs follow the policy (with a few random actions), the others act at random."""
    random_actions = rng.integers(0, 3, size=len(obs))
    policy = np.where(rng.random(len(obs)) < 0.1, random_actions, pumping_action(obs))
    return np.where(pumping, policy, random_actions)


def gymnasium_lockstep(envs, n: int, seed: int, steps: int, action_seed: int) -> dict[str, int]:
    """tests.helpers.gymnasium_lockstep against MountainCar-v0, half the envs pumping, half at random."""
    rng = np.random.default_rng(action_seed)
    pumping = np.arange(n) % 2 == 0
    return helpers.gymnasium_lockstep(envs, "MountainCar-v0", n, seed, steps,
                                      lambda obs: choose_actions(obs, rng, pumping))


@pytest.mark.parametrize("seed", [0, 12345, 2024])
def test_lockstep_with_gymnasium(seed):
    n = 8
    counts = gymnasium_lockstep(MountainCar(n), n, seed, steps=650, action_seed=seed + 1)
    assert counts["steps"] == 5200
    # Both ways an episode ends, many times: the pumping envs terminate, the random ones are truncated.
    assert counts["terminated"] > 10
    assert counts["truncated"] >= 8


def test_lockstep_through_make_vector():
    n = 4
    envs = make_vector("MountainCar-v0", n, backend="fast")
    assert isinstance(envs, MountainCar)
    counts = gymnasium_lockstep(envs, n, seed=7, steps=420, action_seed=3)
    assert counts["truncated"] >= 2 and counts["terminated"] >= 2


def _gym_step(position: float, velocity: float, action: int) -> tuple[float, float, bool]:
    env = gym_mountain_car.MountainCarEnv()
    env.reset(seed=0)
    env.state = np.array([position, velocity])
    env.step(int(action))
    return float(env.state[0]), float(env.state[1]), bool(env.state[0] >= 0.5 and env.state[1] >= 0)


def test_physics_match_gymnasium_on_random_states():
    # States over the whole box (and beyond the speed limit, where the clip acts), every action.
    rng = np.random.default_rng(0)
    n = 20000
    position = rng.uniform(-1.2, 0.6, n)
    velocity = rng.uniform(-0.075, 0.075, n)
    actions = rng.integers(0, 3, n)
    ours = physics(position, velocity, actions)
    theirs = np.array([_gym_step(p, v, a) for p, v, a in zip(position, velocity, actions)])
    np.testing.assert_array_equal(ours[0], theirs[:, 0])
    np.testing.assert_array_equal(ours[1], theirs[:, 1])
    np.testing.assert_array_equal(ours[2], theirs[:, 2].astype(bool))


@pytest.mark.parametrize("position, velocity, action, expected", [
    (-1.19, -0.05, 0, (MIN_POSITION, 0.0, False)),  # into the left wall: clipped and stopped
    (0.49, 0.03, 2, (None, None, True)),  # over the flag moving right: terminated
    (0.55, -0.01, 0, (None, None, False)),  # beyond the flag but moving left: not terminated
    (-0.5, 0.07, 2, (-0.43, 0.07, False)),  # at the speed limit: the position moves by the clipped speed
])
def test_physics_edge_cases(position, velocity, action, expected):
    p, v, term = physics(np.array([position]), np.array([velocity]), np.array([action]))
    want = _gym_step(position, velocity, action)
    assert (p[0], v[0], term[0]) == want
    for got, exp in zip((p[0], v[0], term[0]), expected):
        if exp is not None:
            assert got == pytest.approx(exp, abs=1e-12)


def test_physics_leaves_its_inputs_alone():
    position, velocity = np.array([-0.5, 0.2]), np.array([0.01, -0.02])
    physics(position, velocity, np.array([0, 2]))
    np.testing.assert_array_equal(position, [-0.5, 0.2])
    np.testing.assert_array_equal(velocity, [0.01, -0.02])


def test_auto_backend_picks_fast_and_make_vector_seed_seeds_the_first_reset():
    auto = make_vector("MountainCar-v0", 3, backend="auto", seed=11)
    assert repr(auto).startswith("MountainCar(num_envs=3")
    obs, _ = auto.reset()
    reference, _ = MountainCar(3).reset(seed=11)
    np.testing.assert_array_equal(obs, reference)
    again, _ = auto.reset()  # the seed is for the first reset only
    assert not np.array_equal(again, reference)


def test_same_outputs_as_the_serial_vector_env():
    n, steps = 4, 450
    fast, serial = MountainCar(n), SerialVectorEnv("MountainCar-v0", n)
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
    assert ended >= 6


def test_reset_without_seed_continues_each_envs_stream():
    n = 3
    envs = MountainCar(n)
    singles = [gym.make("MountainCar-v0") for _ in range(n)]
    envs.reset(seed=5)
    for i, env in enumerate(singles):
        env.reset(seed=5 + i)
    for _ in range(3):
        obs, _ = envs.reset()
        np.testing.assert_array_equal(obs, np.stack([env.reset()[0] for env in singles]))


def test_reset_bounds_option_as_in_gymnasium():
    envs, single = MountainCar(2), gym.make("MountainCar-v0")
    obs, _ = envs.reset(seed=123, options={"low": -0.3, "high": -0.2})
    np.testing.assert_array_equal(obs[0], single.reset(seed=123, options={"low": -0.3, "high": -0.2})[0])


def test_start_states_are_at_rest_in_the_valley():
    obs, _ = MountainCar(500).reset(seed=0)
    assert np.all((obs[:, 0] >= -0.6) & (obs[:, 0] <= -0.4)) and np.all(obs[:, 1] == 0)
    assert np.unique(obs[:, 0]).size == 500  # one generator per env: no two start alike


def test_time_limit_truncates_at_200_with_return_minus_200():
    envs = MountainCar(2)
    obs, _ = envs.reset(seed=0)
    for step in range(1, 201):
        obs, rewards, terminated, truncated, info = envs.step(np.array([1, 1]))  # no push: never leaves the valley
        assert not terminated.any()
        np.testing.assert_array_equal(rewards, [-1.0, -1.0])
        if step < 200:
            assert not truncated.any() and np.isnan(info["episode_return"]).all()
    assert truncated.all()
    np.testing.assert_array_equal(info["episode_length"], [200, 200])
    np.testing.assert_array_equal(info["episode_return"], [-200.0, -200.0])
    assert np.all(obs[:, 1] == 0) and not np.array_equal(info["final_obs"], obs)  # obs starts the next episode


def test_termination_at_the_flag_and_autoreset():
    envs = MountainCar(1)
    obs, _ = envs.reset(seed=1)
    for step in range(1, 200):
        obs, rewards, terminated, truncated, info = envs.step(pumping_action(obs))
        if terminated[0]:
            break
    assert terminated[0] and not truncated[0], "pumping should reach the flag within 200 steps"
    assert info["final_obs"][0, 0] >= 0.5 and info["final_obs"][0, 1] >= 0
    assert info["episode_length"][0] == step and info["episode_return"][0] == -step
    assert -0.6 <= obs[0, 0] <= -0.4 and obs[0, 1] == 0  # the next episode starts in the valley


def test_terminated_and_truncated_at_the_same_step():
    # Find when pumping reaches the flag, then set the time limit to that very step: both flags, as TimeLimit.
    probe = MountainCar(1)
    obs, _ = probe.reset(seed=2)
    for step in range(1, 200):
        obs, _, terminated, _, _ = probe.step(pumping_action(obs))
        if terminated[0]:
            break
    envs = MountainCar(1, max_episode_steps=step)
    obs, _ = envs.reset(seed=2)
    for _ in range(step):
        obs, _, terminated, truncated, info = envs.step(pumping_action(obs))
    assert terminated[0] and truncated[0] and info["episode_length"][0] == step


def test_spaces_match_gymnasium():
    envs, single = MountainCar(3), gym.make("MountainCar-v0")
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.observation_space.shape == (3, 2) and envs.action_space.shape == (3,)


def test_bad_input():
    with pytest.raises(RuntimeError, match="before reset"):
        MountainCar(2).step(np.array([0, 1]))
    envs = MountainCar(2)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        envs.step(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="env 1 got 3"):
        envs.step(np.array([0, 3]))
    with pytest.raises(ValueError, match="num_envs"):
        MountainCar(0)
    envs.close()
    with pytest.raises(RuntimeError, match="closed"):
        envs.step(np.array([0, 1]))
