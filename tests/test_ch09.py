"""Chapter 09, policy gradients: rlcore.reinforce's pieces, the reference data and the checks.

(a) rlcore.reinforce pieces: rollout_reward_to_go against a naive double loop, hand cases and
    rlcore.returns.lambda_returns; finished_steps; action_log_probs against Categorical; the loss's
    value and gradients; normalize_advantages; bad input rejected;
(b) the bandit closed forms used by the gradient estimator check agree with exact enumeration;
(c) the committed reference data: provenance, the rule's margin from its own numbers, calibration >= 99%;
(d) the grader: the solution notebook's functions pass every unit check; each planted-bug variant fails
    the check it targets; planted training-loop bugs fail the curve check quickly (the exact futility
    stop); wrong signatures, exceptions, NaN and wrong shapes give clear messages. The solution's own
    curve check runs in tests/test_notebooks.py (and here under the `slow` marker).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from autograder import deeprl, stats
from autograder.checks import ch09
from autograder.protocol import CheckFailed
from rlcore import reinforce
from rlcore.returns import lambda_returns
from tests.helpers import solution_namespace
from tests.planted.ch09 import BUGS, LOOP_BUGS

REPO = Path(__file__).resolve().parent.parent
SOLUTION = REPO / "solutions" / "09_policy_gradients" / "09_policy_gradients.ipynb"
REFERENCE = REPO / "autograder" / "references" / "ch09_reinforce.json"


# ---------------------------------------------------------------------------------------------
# (a) rlcore.reinforce pieces
# ---------------------------------------------------------------------------------------------


def naive_rollout_rtg(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> np.ndarray:
    """For every (t, i): sum gamma^(k - t) r_k from t to the end of t's episode or of the rollout."""
    T, N = rewards.shape
    G = np.zeros((T, N))
    for i in range(N):
        for t in range(T):
            for k in range(t, T):
                G[t, i] += gamma ** (k - t) * rewards[k, i]
                if dones[k, i]:
                    break
    return G


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gamma", [0.0, 0.9, 1.0])
def test_rollout_reward_to_go_matches_naive_loop_and_lambda_returns(seed, gamma):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(int(rng.integers(1, 40)), int(rng.integers(1, 6))))
    dones = rng.random(rewards.shape) < 0.2
    G = reinforce.rollout_reward_to_go(rewards, dones, gamma)
    np.testing.assert_allclose(G, naive_rollout_rtg(rewards, dones, gamma), rtol=1e-12, atol=1e-12)
    zeros = np.zeros_like(rewards)
    np.testing.assert_allclose(G, lambda_returns(rewards, zeros, zeros, dones, np.zeros_like(dones), gamma, 1.0),
                               rtol=1e-12, atol=1e-12)
    torch_G = reinforce.rollout_reward_to_go(torch.as_tensor(rewards), torch.as_tensor(dones), gamma)
    assert isinstance(torch_G, torch.Tensor)
    np.testing.assert_allclose(torch_G.numpy(), G, rtol=1e-12)


def test_rollout_reward_to_go_hand_case():
    rewards = np.array([[1.0, 1.0], [2.0, 1.0], [4.0, 1.0], [8.0, 1.0]])
    dones = np.array([[0, 0], [1, 0], [0, 1], [1, 0]], dtype=bool)
    expected = np.array([[1 + 0.5 * 2, 1 + 0.5 + 0.25], [2, 1 + 0.5], [4 + 0.5 * 8, 1], [8, 1]])
    np.testing.assert_allclose(reinforce.rollout_reward_to_go(rewards, dones, 0.5), expected)


def test_rollout_reward_to_go_rejects_bad_input():
    with pytest.raises(ValueError, match="gamma must be in"):
        reinforce.rollout_reward_to_go(np.ones((3, 2)), np.zeros((3, 2), bool), 1.5)
    with pytest.raises(ValueError, match=r"time-major \[T, N\]"):
        reinforce.rollout_reward_to_go(np.ones(3), np.zeros(3, bool), 0.9)
    with pytest.raises(ValueError, match="shapes"):
        reinforce.rollout_reward_to_go(np.ones((3, 2)), np.zeros((2, 3), bool), 0.9)


def test_finished_steps_numpy_and_torch():
    dones = np.array([[0, 0, 1], [1, 0, 0], [0, 0, 0], [0, 1, 0]], dtype=bool)
    expected = np.array([[1, 1, 1], [1, 1, 0], [0, 1, 0], [0, 1, 0]], dtype=bool)
    np.testing.assert_array_equal(reinforce.finished_steps(dones), expected)
    np.testing.assert_array_equal(reinforce.finished_steps(torch.as_tensor(dones)).numpy(), expected)


def test_action_log_probs_matches_categorical_and_is_stable():
    rng = np.random.default_rng(0)
    logits = torch.as_tensor(rng.normal(size=(50, 4)) * 4)
    actions = torch.as_tensor(rng.integers(0, 4, 50))
    want = torch.distributions.Categorical(logits=logits).log_prob(actions)
    torch.testing.assert_close(reinforce.action_log_probs(logits, actions), want)
    big = reinforce.action_log_probs(torch.tensor([[1000.0, 0.0]]), torch.tensor([1]))
    assert torch.isfinite(big).all() and big.item() == pytest.approx(-1000.0)


def test_policy_gradient_loss_value_gradient_and_detached_baseline():
    lp = torch.tensor([-1.0, -2.0, -0.5], requires_grad=True)
    G, b = torch.tensor([1.0, 3.0, -2.0]), torch.tensor([0.5, 1.0, 0.0], requires_grad=True)
    loss = reinforce.policy_gradient_loss(lp, G, b)
    assert loss.item() == pytest.approx(-((-1 * 0.5) + (-2 * 2.0) + (-0.5 * -2.0)) / 3)
    loss.backward()
    torch.testing.assert_close(lp.grad, -(G - b.detach()) / 3)
    assert b.grad is None
    assert reinforce.policy_gradient_loss(lp, G).item() == pytest.approx(-(-1 - 6 + 1) / 3)


def test_normalize_advantages():
    a = torch.tensor([1.0, 2.0, 3.0, 10.0])
    out = reinforce.normalize_advantages(a)
    assert out.mean().abs() < 1e-6 and out.std().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(reinforce.normalize_advantages(torch.full((5,), 2.0)), torch.zeros(5))


def test_preset_and_episodes_per_update():
    config = reinforce.REINFORCEConfig(**reinforce.CARTPOLE_GRADED)
    assert config.episodes_per_batch == reinforce.CARTPOLE_GRADED["episodes_per_update"]
    assert reinforce.REINFORCEConfig(num_envs=5).episodes_per_batch == 5
    with pytest.raises(ValueError, match="episodes_per_update"):
        reinforce.REINFORCEConfig(episodes_per_update=0)


def test_train_uses_exactly_the_budget_in_a_graded_env():
    # The grader's env raises on a step past total_timesteps: rlcore must stop at the budget.
    envs = deeprl.GradedVectorEnv("CartPole-v1", 4, seed=0, total_timesteps=2000)
    result = reinforce.train(reinforce.REINFORCEConfig(num_envs=4, total_timesteps=2000, progress=False), envs=envs)
    assert envs.global_step == result.global_step == 2000
    np.testing.assert_array_equal(result.episode_returns, [r for _, r, _ in envs.episodes])


# ---------------------------------------------------------------------------------------------
# (b) The bandit's closed forms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("b", [0.0, 1.3, -2.0])
def test_bandit_closed_forms_agree_with_enumeration(b):
    truth = ch09.bandit_truth(b)
    pi = truth["pi"]
    # Exact expectation over the two actions of g = (onehot(a) - pi) (r - b), r ~ N(mu_a, sd^2).
    scores = np.eye(2) - pi
    mean = sum(pi[a] * scores[a] * (ch09.BANDIT_MEANS[a] - b) for a in range(2))
    np.testing.assert_allclose(truth["mean"], mean, atol=1e-12)  # independent of b
    np.testing.assert_allclose(truth["mean"], ch09.bandit_truth(0.0)["mean"], atol=1e-12)
    # The analytic gradient of J(theta) = sum_a pi_a mu_a, by autograd.
    theta = torch.tensor(ch09.BANDIT_THETA, requires_grad=True)
    (theta.softmax(0) @ torch.tensor(ch09.BANDIT_MEANS)).backward()
    np.testing.assert_allclose(truth["mean"], theta.grad.numpy(), atol=1e-12)
    # The variance with b = J is the smallest over constant baselines.
    assert ch09.bandit_truth(truth["J"])["variance"] <= truth["variance"] + 1e-12


# ---------------------------------------------------------------------------------------------
# (c) The committed reference data
# ---------------------------------------------------------------------------------------------


def test_reference_data_provenance_rule_and_calibration():
    data = json.loads(REFERENCE.read_text())
    assert data["command"] == "python -m autograder.references.gen_ch09"
    assert data["config"] == dict(reinforce.CARTPOLE_GRADED, hidden=list(reinforce.CARTPOLE_GRADED["hidden"]))
    final = data["runs"]["final"]
    assert final["n"] == len(data["seeds"]) >= 10 and not set(data["seeds"]) & set(ch09.VISIBLE_SEEDS)
    assert final["mean"] == pytest.approx(np.mean(final["values"]), abs=0.01)
    delta = stats.noninferiority_delta(final["mean"], final["sd"], ch09.RANDOM_RETURN)
    assert data["rule"]["delta"] == pytest.approx(delta, abs=1e-3)
    assert data["rule"]["calibration"]["fraction_passing"] >= 0.99
    assert data["runs"]["seconds_per_seed"] > 0 and len(data["runs"]["curve"]["x"]) == 60
    assert "PPO" in json.dumps(data["published"]) and "no published REINFORCE" in data["published"]["note"]


# ---------------------------------------------------------------------------------------------
# (d) The grader
# ---------------------------------------------------------------------------------------------

UNIT_CHECKS = ("rollout_reward_to_go", "action_log_probs", "policy_gradient_loss", "normalize_advantages")


@pytest.fixture(scope="module")
def solution() -> dict:
    return solution_namespace("09_policy_gradients")


def test_solution_notebook_is_marked_up_as_documented():
    nb = nbformat.read(SOLUTION, as_version=4)
    tests = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")}
    expected = {f"check_{name}": f"ch09.{name}({name})" for name in (*UNIT_CHECKS, "train_reinforce")}
    expected["check_gradient_estimator"] = "ch09.gradient_estimator(action_log_probs, policy_gradient_loss)"
    assert {k: c.source for k, c in tests.items()} == expected
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            if cell.metadata["nbgrader"]["solution"]:
                assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
    for cell in tests.values():
        assert cell.metadata["nbgrader"]["locked"] and cell.metadata["nbgrader"]["points"] > 0


def test_exercise_states_the_graded_setting(solution):
    config = reinforce.CARTPOLE_GRADED
    assert solution["EPISODES_PER_UPDATE"] == config["episodes_per_update"]
    assert solution["LEARNING_RATE"] == config["learning_rate"] and solution["GAMMA"] == config["gamma"]
    assert tuple(solution["HIDDEN"]) == config["hidden"]


@pytest.mark.parametrize("name", UNIT_CHECKS)
def test_solution_passes_its_check(solution, name, capsys):
    start = time.perf_counter()
    assert getattr(ch09, name)(solution[name]) is None
    out, err = capsys.readouterr()
    assert out.startswith(f"✔ ch09.{name} passed") and err == ""
    assert time.perf_counter() - start < 5


def test_solution_passes_the_gradient_estimator_check(solution, capsys):
    ch09.gradient_estimator(solution["action_log_probs"], solution["policy_gradient_loss"])
    out, err = capsys.readouterr()
    assert out.startswith("✔ ch09.gradient_estimator passed") and err == ""


def test_rlcore_passes_the_unit_checks(capsys):
    for name in UNIT_CHECKS:
        getattr(ch09, name)(getattr(reinforce, name))
    ch09.gradient_estimator(reinforce.action_log_probs, reinforce.policy_gradient_loss)
    assert capsys.readouterr().out.count("passed") == len(UNIT_CHECKS) + 1


@pytest.mark.parametrize("name, description, fn", [
    pytest.param(name, description, fn, id=f"{name}: {description}")
    for name, bugs in BUGS.items() for description, fn in bugs
])
def test_planted_bug_fails_its_check(name, description, fn, capsys):
    assert len(BUGS[name]) >= 3
    with pytest.raises(CheckFailed, match=rf"ch09\.{name} failed"):
        if name == "gradient_estimator":
            ch09.gradient_estimator(*fn)
        else:
            getattr(ch09, name)(fn)
    assert capsys.readouterr().err == ""


# The two quickest failures run by default (under 10 s each on a loaded 2-core machine); the other loop bugs
# also fail after the first seed, but train it on many short episodes (10 to 25 s), so they are slow-marked.
QUICK_LOOP_BUGS = ("log-probabilities detached: the policy never changes", "episode ends ignored by the reward-to-go")


@pytest.mark.parametrize("description, fn", [
    pytest.param(d, fn, id=d, marks=() if d in QUICK_LOOP_BUGS else pytest.mark.slow) for d, fn in LOOP_BUGS
])
def test_planted_loop_bug_fails_the_curve_check_quickly(description, fn, capsys):
    start = time.perf_counter()
    with pytest.raises(CheckFailed, match=r"ch09\.train_reinforce failed"):
        ch09.train_reinforce(fn)
    assert time.perf_counter() - start < 30
    assert capsys.readouterr().err == ""


def test_curve_task_matches_the_reference():
    task = ch09.curve_task()
    data = json.loads(REFERENCE.read_text())
    assert task.published_mean == data["runs"]["final"]["mean"] and task.delta == data["rule"]["delta"]
    assert len(task.seeds) >= 7 and task.num_envs == reinforce.CARTPOLE_GRADED["num_envs"]
    lesson = nbformat.read(REPO / "course" / "09_policy_gradients.ipynb", as_version=4)
    headings = {line.lstrip("#").strip() for c in lesson.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("#")}
    assert set(task.sections.values()) <= headings


def _raises(*args, **kwargs):
    raise ZeroDivisionError("division by zero in the learner's code")


@pytest.mark.parametrize("name, fn, message", [
    ("rollout_reward_to_go", lambda rewards, gamma: rewards, "(rewards, dones, gamma). Keep the signature"),
    ("rollout_reward_to_go", None, "expected a function"),
    ("rollout_reward_to_go", _raises, "raised ZeroDivisionError"),
    ("rollout_reward_to_go", lambda rewards, dones, gamma: rewards * float("nan"), "NaN"),
    ("rollout_reward_to_go", lambda rewards, dones, gamma: None, "returned None"),
    ("rollout_reward_to_go", lambda rewards, dones, gamma: rewards[0], "expected (3, 1)"),
    ("action_log_probs", lambda logits, actions: logits, "expected (1,)"),
    ("action_log_probs", lambda logits, actions: [[0.5, 0.5]], "returned shape (1, 2); expected (1,)"),
    ("policy_gradient_loss", lambda log_probs, returns, baseline: log_probs * returns, "the loss is one number"),
    ("policy_gradient_loss", lambda log_probs, returns, baseline: 3.5, "return the loss as a torch tensor"),
    ("normalize_advantages", lambda advantages: advantages[:1], "expected (3,)"),
    ("train_reinforce", lambda envs, seed: None, "(envs, seed, total_timesteps, log)"),
    ("train_reinforce", lambda envs, seed, total_timesteps, log: None, "the loop stopped after 0 environment steps"),
])
def test_bad_learner_code_is_explained(name, fn, message, capsys):
    with pytest.raises(CheckFailed) as info:
        getattr(ch09, name)(fn)
    assert message in str(info.value)
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_solution_passes_the_curve_check(solution, capsys):
    ch09.train_reinforce(solution["train_reinforce"])
    assert "✔ ch09.train_reinforce passed" in capsys.readouterr().out
