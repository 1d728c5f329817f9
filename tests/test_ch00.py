"""Chapter 00, the RL loop: rlcore.returns, rlcore.evaluate, the reference data and the checks.

(a) returns: against a naive double loop and hand-computed cases; bad gamma and shapes rejected;
(b) evaluate: episode semantics on real environments (terminated, truncated by a TimeLimit or by
    max_steps), determinism (same seed, same episode), the seeding rule of evaluate, random_policy;
(c) the committed reference data agrees with the published random-policy baselines;
(d) the grader: the solution notebook's own code passes every check; each planted-bug variant fails
    the check it targets; wrong signatures, exceptions, NaN, wrong shapes and hangs give clear messages.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import gymnasium as gym
import nbformat
import numpy as np
import pytest

from autograder.checks import ch00
from autograder.protocol import HIDDEN_ENV, CheckFailed
from rlcore.evaluate import Episode, evaluate, random_policy, run_episode, run_episodes
from rlcore.returns import discounted_return, returns_to_go
from tests.helpers import solution_namespace
from tests.planted.ch00 import BUGS

REPO = Path(__file__).resolve().parent.parent
SOLUTION = REPO / "solutions" / "00_rl_loop" / "00_rl_loop.ipynb"
REFERENCE = REPO / "autograder" / "references" / "ch00_rl_loop.json"


def naive_returns(rewards, gamma):
    """G_t summed from scratch for every t: O(T^2), obviously right."""
    T = len(rewards)
    return np.array([sum(gamma ** (k - t) * rewards[k] for k in range(t, T)) for t in range(T)])


# ---------------------------------------------------------------------------------------------
# (a) rlcore.returns
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.99, 1.0])
def test_returns_match_naive_loop(seed, gamma):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=int(rng.integers(1, 60)))
    before = rewards.copy()
    G = returns_to_go(rewards, gamma)
    np.testing.assert_allclose(G, naive_returns(rewards, gamma), rtol=1e-12, atol=1e-12)
    assert discounted_return(rewards, gamma) == pytest.approx(G[0], rel=1e-12, abs=1e-12)
    np.testing.assert_array_equal(rewards, before)  # inputs untouched


@pytest.mark.parametrize("rewards, gamma, G", [
    ([1, 1, 1], 0.9, [2.71, 1.9, 1.0]),
    ([0, 0, 1], 0.5, [0.25, 0.5, 1.0]),
    ([3, 5, 7], 0.0, [3.0, 5.0, 7.0]),
    ([3, 5, 7], 1.0, [15.0, 12.0, 7.0]),
    ([-1, 2, -3, 4], 0.5, [-0.25, 1.5, -1.0, 4.0]),
])
def test_returns_hand_cases(rewards, gamma, G):
    np.testing.assert_allclose(returns_to_go(rewards, gamma), G, rtol=1e-12)
    assert discounted_return(rewards, gamma) == pytest.approx(G[0], rel=1e-12)


def test_constant_reward_return_approaches_geometric_sum():
    # 1 per step for 10,000 steps with gamma = 0.99 is within 1e-12 of 1 / (1 - gamma) = 100.
    assert discounted_return(np.ones(10_000), 0.99) == pytest.approx(100.0, abs=1e-9)


def test_empty_episode():
    assert discounted_return([], 0.9) == 0.0
    assert returns_to_go([], 0.9).shape == (0,)


@pytest.mark.parametrize("gamma", [-0.1, 1.5, float("nan"), "0.9x"])
def test_bad_gamma_is_rejected(gamma):
    for fn in (discounted_return, returns_to_go):
        with pytest.raises(ValueError, match="gamma must be"):
            fn([1.0, 2.0], gamma)


def test_rewards_of_several_episodes_are_rejected():
    with pytest.raises(ValueError, match=r"shape \[T\]"):
        returns_to_go(np.ones((3, 2)), 0.9)


# ---------------------------------------------------------------------------------------------
# (b) rlcore.evaluate
# ---------------------------------------------------------------------------------------------


def test_episode_that_terminates():
    with gym.make("CartPole-v1") as env:
        ep = run_episode(env, ch00.push_left, seed=0)
    assert ep.terminated and not ep.truncated
    assert ep.observations.shape == (ep.length + 1, 4)
    assert ep.actions.shape == (ep.length,) and ep.rewards.shape == (ep.length,)
    assert 5 <= ep.length < 20 and ep.total_reward == ep.length  # +1 per step
    with gym.make("CartPole-v1") as env:
        np.testing.assert_array_equal(ep.observations[0], env.reset(seed=0)[0])


def test_time_limit_truncates_rather_than_terminates():
    # The lean policy keeps the pole up for 25-50 steps: a 20-step TimeLimit cuts it first.
    with gym.make("CartPole-v1", max_episode_steps=20) as env:
        ep = run_episode(env, ch00.push_toward_lean, seed=2)
    assert ep.truncated and not ep.terminated and ep.length == 20
    with gym.make("CartPole-v1") as env:  # without the limit the same episode terminates later
        longer = run_episode(env, ch00.push_toward_lean, seed=2)
    assert longer.terminated and longer.length > 20
    np.testing.assert_array_equal(longer.observations[:21], ep.observations)


def test_max_steps_is_a_truncation():
    with gym.make("CartPole-v1") as env:
        ep = run_episode(env, ch00.push_toward_lean, seed=2, max_steps=5)
        empty = run_episode(env, ch00.push_toward_lean, seed=2, max_steps=0)
    assert ep.truncated and not ep.terminated and ep.length == 5 and ep.observations.shape == (6, 4)
    assert empty.length == 0 and empty.truncated and empty.total_reward == 0.0


def test_random_mountain_car_is_always_cut_at_200_steps():
    episodes = run_episodes("MountainCar-v0", make_policy=random_policy, n_episodes=5, seed=0)
    assert all(e.truncated and not e.terminated and e.length == 200 for e in episodes)
    assert [e.total_reward for e in episodes] == [-200.0] * 5


def test_continuous_actions_are_stacked():
    with gym.make("Pendulum-v1") as env:
        ep = run_episode(env, ch00.pd_torque, seed=4)
    assert ep.actions.shape == (200, 1) and ep.observations.shape == (201, 3) and ep.truncated


def test_same_seed_same_episode_different_seed_differs():
    def play(seed):
        with gym.make("CartPole-v1") as env:
            return run_episode(env, random_policy(env.action_space, seed), seed=seed)

    a, b, c = play(3), play(3), play(4)
    for field in ("observations", "actions", "rewards"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.observations[0], c.observations[0])


def test_evaluate_episode_i_uses_seed_plus_i():
    returns = evaluate("CartPole-v1", make_policy=random_policy, n_episodes=4, seed=10)
    assert returns.shape == (4,)
    alone = [evaluate("CartPole-v1", make_policy=random_policy, n_episodes=1, seed=10 + i)[0] for i in range(4)]
    np.testing.assert_array_equal(returns, alone)
    np.testing.assert_array_equal(returns, evaluate("CartPole-v1", make_policy=random_policy, n_episodes=4, seed=10))


def test_evaluate_with_a_fixed_policy_and_make_kwargs():
    returns = evaluate("CartPole-v1", ch00.push_toward_lean, n_episodes=3, seed=0, max_episode_steps=20)
    np.testing.assert_array_equal(returns, [20.0, 20.0, 20.0])


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one"),
    ({"policy": ch00.push_left, "make_policy": random_policy}, "exactly one"),
    ({"policy": ch00.push_left, "n_episodes": 0}, "at least 1"),
    ({"policy": ch00.push_left, "seed": None}, "non-negative integer"),
])
def test_evaluate_rejects_bad_arguments(kwargs, message):
    kwargs = {"n_episodes": 2, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        evaluate("CartPole-v1", **kwargs)


def test_random_policy_is_reproducible_and_leaves_the_env_space_alone():
    space = gym.spaces.Discrete(6)
    space.seed(123)
    untouched = [space.sample() for _ in range(50)]
    space.seed(123)
    first = random_policy(space, 7)
    second = random_policy(space, 7)
    draws = [first(None) for _ in range(50)]
    assert draws == [second(None) for _ in range(50)]
    assert [space.sample() for _ in range(50)] == untouched  # the env's own space was not reseeded
    assert all(0 <= a < 6 for a in draws) and len(set(draws)) == 6


def test_random_policy_does_not_reuse_the_reset_stream():
    # With space.seed(s) and env.reset(seed=s), Pendulum's first torque is a linear function of the
    # initial angle (correlation 1). random_policy derives its own seed, so the two are unrelated.
    angles, torques, naive = [], [], []
    with gym.make("Pendulum-v1") as env:
        for s in range(200):
            obs, _ = env.reset(seed=s)
            angles.append(np.arctan2(obs[1], obs[0]))
            torques.append(random_policy(env.action_space, s)(obs)[0])
            env.action_space.seed(s)
            naive.append(env.action_space.sample()[0])
    assert np.corrcoef(angles, naive)[0, 1] > 0.999
    assert abs(np.corrcoef(angles, torques)[0, 1]) < 0.3  # 200 pairs: |r| < 0.3 has p > 0.99 under independence


def test_episode_properties():
    ep = Episode(np.zeros((4, 2)), np.array([0, 1, 0]), np.array([1.0, -2.0, 0.5]), True, False)
    assert ep.length == 3 and ep.total_reward == -0.5


# ---------------------------------------------------------------------------------------------
# (c) The committed reference data
# ---------------------------------------------------------------------------------------------


def test_reference_data_agrees_with_published_baselines():
    data = json.loads(REFERENCE.read_text())
    assert data["command"] == "python -m autograder.references.gen_ch00"
    assert "undiscounted return" in data["metric"]
    assert data["versions"]["gymnasium"] == gym.__version__
    envs = data["envs"]
    assert set(envs) == {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1"}
    for env_id, entry in envs.items():
        assert entry["n_episodes"] >= (300 if env_id == "Acrobot-v1" else 1000), env_id
        assert sum(entry["histogram"]["counts"]) == entry["n_episodes"], env_id
        assert entry["se"] == pytest.approx(entry["sd"] / np.sqrt(entry["n_episodes"]), abs=1e-3)
        published = entry["published"]
        assert published["status"] and published["source"]
        assert abs(published["z_ours_vs_published"]) < 3, (env_id, entry["mean"], published["value"])
    assert envs["MountainCar-v0"]["mean"] == -200.0 and envs["MountainCar-v0"]["fraction_truncated"] == 1.0
    assert envs["CartPole-v1"]["mean"] == pytest.approx(22.7, abs=1.5)


# ---------------------------------------------------------------------------------------------
# (d) The grader: solutions pass, planted bugs fail, bad input is explained
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def solution() -> dict:
    """The solution notebook's setup and solution cells, executed: the learner-facing functions."""
    return solution_namespace("00_rl_loop")


CHECKS = ("discounted_return", "returns_to_go", "run_episode", "random_baseline")


def test_solution_notebook_is_marked_up_as_documented():
    nb = nbformat.read(SOLUTION, as_version=4)
    tests = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    assert set(tests) == {f"check_{name}" for name in CHECKS}
    for name in CHECKS:
        cell = tests[f"check_{name}"]
        assert cell.source == f"ch00.{name}({name})"
        assert cell.metadata["nbgrader"]["locked"] and cell.metadata["nbgrader"]["points"] > 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            if cell.metadata["nbgrader"]["solution"]:
                assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source


@pytest.mark.parametrize("name", CHECKS)
def test_solution_passes_its_check(solution, name, capsys):
    start = time.perf_counter()
    assert getattr(ch00, name)(solution[name]) is None
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert out.startswith(f"✔ ch00.{name} passed") and err == ""
    assert elapsed < 20, f"ch00.{name} took {elapsed:.1f} s on the solution"


def test_rlcore_passes_the_episode_check(capsys):
    ch00.run_episode(run_episode)  # rlcore's keyword-only seed is accepted
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("name, description, fn", [
    pytest.param(name, description, fn, id=f"{name}: {description}")
    for name, bugs in BUGS.items() for description, fn in bugs
])
def test_planted_bug_fails_its_check(name, description, fn, capsys):
    assert len(BUGS[name]) >= 3
    with pytest.raises(CheckFailed, match=rf"ch00\.{name} failed"):
        getattr(ch00, name)(fn)
    assert capsys.readouterr().err == ""


def _hang(*args, **kwargs):
    while True:
        pass


def _raises(*args, **kwargs):
    raise ZeroDivisionError("division by zero in the learner's code")


@pytest.mark.parametrize("name, fn, message", [
    ("discounted_return", lambda rewards: 0.0, "(rewards, gamma). Keep the signature"),
    ("discounted_return", None, "expected a function"),
    ("discounted_return", _raises, "raised ZeroDivisionError: division by zero"),
    ("discounted_return", lambda rewards, gamma: float("nan"), "NaN"),
    ("discounted_return", lambda rewards, gamma: None, "returned None"),
    ("discounted_return", lambda rewards, gamma: np.zeros(2), "shape (2,); expected ()"),
    ("returns_to_go", lambda rewards, gamma: 0.0, "shape (); expected (0,)"),
    ("returns_to_go", lambda rewards, gamma: np.full(len(rewards), np.inf), "returns_to_go(np.array([1, 1, 1])"),
    ("run_episode", lambda env, policy: None, "calls it as <lambda>(env, policy, seed=...)"),
    ("run_episode", lambda env, policy, seed=None: (10.0, 10, True, False), "which has no observations"),
    ("run_episode", lambda env, policy, seed=None: None, "returned None"),
    ("random_baseline", lambda env_id, n_episodes, seed: [1.0, 2.0], "shape (2,); expected (5,)"),
    ("random_baseline", lambda env_id, n_episodes, seed: np.full(n_episodes, np.nan), "NaN"),
    ("random_baseline", lambda env_id, n_episodes, seed: np.zeros(n_episodes), "between 1 and 500"),
])
def test_bad_learner_code_is_explained(name, fn, message, capsys):
    with pytest.raises(CheckFailed) as info:
        getattr(ch00, name)(fn)
    assert message in str(info.value)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name", CHECKS)
def test_a_hang_is_stopped_by_the_budget(name):
    start = time.perf_counter()
    with pytest.raises(CheckFailed, match=r"did not finish within 0\.3 s"):
        getattr(ch00, name)(_hang, budget_s=0.3)
    assert time.perf_counter() - start < 5


def test_hidden_seeds_replace_the_visible_one(solution, tmp_path, monkeypatch, capsys):
    hidden = tmp_path / "hidden.json"
    hidden.write_text(json.dumps({"seeds": {"ch00.random_baseline": [31337, 4242]}}))
    monkeypatch.setenv(HIDDEN_ENV, str(hidden))
    ch00.random_baseline(solution["random_baseline"])
    out = capsys.readouterr().out
    assert "2000 episodes, hidden seeds" in out and "seed 100000" not in out
