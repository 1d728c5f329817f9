"""Probe environments (rlcore.envs.probes): their analytic answers agree with an exact tabular
evaluation of real rollouts and with the returns of fixed policies, and they are deterministic
under seeds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlcore.envs import make_env, make_vector
from rlcore.envs.probes import PROBES, Counter, DelayedReward, TimeLimitProbe

GAMMA = 0.9


def policy_for(env: gym.Env, kind: str):
    """obs -> action: "optimal" uses the probe's own optimal_action (action 0 when it has one
    action), "worst" the other action (for two-action probes)."""
    probe = env.unwrapped
    if not hasattr(probe, "optimal_action"):
        return lambda obs: 0
    if kind == "optimal":
        return lambda obs: probe.optimal_action(obs)
    return lambda obs: 1 - probe.optimal_action(obs)


def collect(env_id: str, kind: str, *, num_envs: int = 4, steps: int = 40, seed: int = 0) -> list[tuple]:
    """Transitions (obs, action, reward, next_obs, terminated, truncated) of a fixed policy, from a
    vector env; next_obs is info["final_obs"] where an episode ended (the real next state)."""
    probe = make_env(env_id)
    policy = policy_for(probe, kind)
    transitions = []
    with make_vector(env_id, num_envs, seed=seed) as envs:
        obs, _ = envs.reset()
        for _ in range(steps):
            actions = np.array([policy(o) for o in obs])
            next_obs, rewards, terminated, truncated, info = envs.step(actions)
            for i in range(num_envs):
                transitions.append((obs[i], actions[i], rewards[i], info["final_obs"][i], terminated[i], truncated[i]))
            obs = next_obs
    return transitions


def tabular_values(transitions: list[tuple], gamma: float, *, truncation_is_termination: bool = False) -> dict:
    """Exact evaluation of the policy behind the transitions, one value per distinct observation:
    solve V = R + gamma * P V, where R(s) is the mean reward from s and P(s, s') the empirical
    probability of moving on from s to s' without the episode ending."""
    states = sorted({tuple(t[0]) for t in transitions} | {tuple(t[3]) for t in transitions})
    index = {s: k for k, s in enumerate(states)}
    R, P, counts = np.zeros(len(states)), np.zeros((len(states), len(states))), np.zeros(len(states))
    for obs, _, reward, next_obs, terminated, truncated in transitions:
        s = index[tuple(obs)]
        counts[s] += 1
        R[s] += reward
        ends = terminated or (truncated and truncation_is_termination)
        if not ends:
            P[s, index[tuple(next_obs)]] += 1
    visited = counts > 0
    R[visited] /= counts[visited]
    P[visited] /= counts[visited, None]
    V = np.linalg.solve(np.eye(len(states)) - gamma * P, R)
    return {s: V[k] for s, k in index.items() if counts[k] > 0}


@pytest.mark.parametrize("env_id", [k for k in PROBES if "TimeLimit" not in k])
def test_value_of_optimal_policy_matches_tabular_evaluation(env_id):
    values = tabular_values(collect(env_id, "optimal"), GAMMA)
    probe = make_env(env_id).unwrapped
    assert len(values) >= 1
    for obs, v in values.items():
        assert v == pytest.approx(probe.value(np.array(obs, dtype=np.float32), GAMMA), abs=1e-9), obs


@pytest.mark.parametrize("env_id", [k for k in PROBES if hasattr(PROBES[k], "optimal_action")])
def test_value_of_worst_policy_matches_q_values(env_id):
    """Taking the wrong action everywhere: V(s) = Q(s, wrong action) at the decision state, and
    the optimal policy beats it by a margin."""
    values = tabular_values(collect(env_id, "worst"), GAMMA)
    probe = make_env(env_id).unwrapped
    for obs, v in values.items():
        obs = np.array(obs, dtype=np.float32)
        wrong = 1 - probe.optimal_action(obs)
        assert v == pytest.approx(probe.q_value(obs, wrong, GAMMA), abs=1e-9)
    start = np.array(next(iter(values)), dtype=np.float32)
    assert probe.value(start, GAMMA) == max(probe.q_value(start, a, GAMMA) for a in range(2))


@pytest.mark.parametrize("env_id", list(PROBES))
def test_q_values_are_returns_of_one_action_then_optimal(env_id):
    """Monte Carlo check with gymnasium directly: from several seeds, take each action first and the
    optimal policy afterwards; the discounted return must be q_value(first obs, action)."""
    env = make_env(env_id)
    probe = env.unwrapped
    act = policy_for(env, "optimal")
    for seed in range(6):
        for first in range(env.action_space.n):
            obs, _ = env.reset(seed=seed)
            first_obs, action, rewards = obs, first, []
            while True:
                obs, reward, terminated, truncated, _ = env.step(action)
                rewards.append(reward)
                if terminated or truncated:
                    break
                action = act(obs)
            discounted = sum(GAMMA ** t * r for t, r in enumerate(rewards))
            if truncated:  # the time limit probe: bootstrap from where the cut came
                discounted += GAMMA ** len(rewards) * probe.value(obs, GAMMA)
            assert discounted == pytest.approx(probe.q_value(first_obs, first, GAMMA), abs=1e-9)


def test_truncation_treated_as_termination_gives_the_documented_wrong_value():
    env_id = "rlcore/Probe6-TimeLimit-v0"
    probe = make_env(env_id).unwrapped
    transitions = collect(env_id, "optimal", num_envs=2, steps=3 * probe.max_steps)  # whole episodes
    assert sum(t[5] for t in transitions) == 2 * 3 and not any(t[4] for t in transitions)
    right = tabular_values(transitions, 0.99)
    wrong = tabular_values(transitions, 0.99, truncation_is_termination=True)
    (obs,) = right
    assert right[obs] == pytest.approx(probe.value(obs, 0.99)) == pytest.approx(100.0)
    assert wrong[obs] == pytest.approx(probe.value_if_truncation_is_termination(0.99))
    assert wrong[obs] == pytest.approx(1 / (1 - 0.99 * 19 / 20))


def test_delayed_reward_values_along_the_episode():
    probe = DelayedReward(delay=3)
    obs, _ = probe.reset(seed=0)
    assert probe.optimal_action(obs) == 1
    assert probe.q_value(obs, 1, 0.5) == 0.125 and probe.q_value(obs, 0, 0.5) == -0.125
    rewards = []
    for t in range(4):
        obs, reward, terminated, truncated, _ = probe.step(1)
        rewards.append(reward)
        assert terminated == (t == 3) and not truncated
        if not terminated:
            assert probe.value(obs, 0.5) == 0.5 ** (2 - t)
    assert rewards == [0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("env_id", list(PROBES) + ["rlcore/Counter-v0"])
def test_spaces_and_determinism(env_id):
    def rollout(seed):
        env = gym.make(env_id)  # importing rlcore.envs registered the ids
        actions = np.random.default_rng(seed).integers(0, env.action_space.n, size=25)
        obs, _ = env.reset(seed=seed)
        trace = [obs]
        for a in actions:
            obs, reward, terminated, truncated, _ = env.step(int(a))
            assert env.observation_space.contains(obs)
            trace += [obs, reward, terminated, truncated]
            if terminated or truncated:
                obs, _ = env.reset()
                trace.append(obs)
        return trace

    env = gym.make(env_id)
    assert isinstance(env.observation_space, gym.spaces.Box) and env.observation_space.dtype == np.float32
    assert isinstance(env.action_space, gym.spaces.Discrete)
    first, second = rollout(3), rollout(3)
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("env_id", ["rlcore/Probe2-ObsDependentReward-v0",
                                    "rlcore/Probe5-ObsAndActionDependentReward-v0"])
def test_random_observations_depend_on_the_seed(env_id):
    env = make_env(env_id)
    signs = [float(env.reset(seed=seed)[0][0]) for seed in range(20)]
    assert set(signs) == {-1.0, 1.0}
    assert signs == [float(env.reset(seed=seed)[0][0]) for seed in range(20)]


def test_errors():
    env = make_env("rlcore/Probe1-ConstantReward-v0").unwrapped
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step(0)
    env = make_env("rlcore/Probe4-ActionDependentReward-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="not in Discrete"):
        env.step(2)
    with pytest.raises(ValueError, match="max_steps"):
        TimeLimitProbe(max_steps=0)
    with pytest.raises(ValueError, match="delay"):
        DelayedReward(delay=0)
    with pytest.raises(ValueError, match="min_length"):
        Counter(min_length=3, max_length=2)


def test_counter_episode_lengths_and_rewards():
    env = Counter(min_length=2, max_length=4)
    lengths = set()
    for seed in range(30):
        obs, _ = env.reset(seed=seed)
        length, rewards, terminated = int(obs[2]), [], False
        while not terminated:
            obs, reward, terminated, _, _ = env.step(seed % 2)
            rewards.append(reward)
            assert obs[1] == seed % 2
        assert rewards == list(range(1, length + 1)) and obs[0] == length
        lengths.add(length)
    assert lengths == {2, 3, 4}
