"""The chapter 04 grader is itself tested: the solution's code passes every check, every planted
bug fails the check it targets, and bad input gets a clear message rather than a grader traceback."""

from __future__ import annotations

import time

import numpy as np
import pytest

from autograder.checks import ch04
from autograder.protocol import CheckFailed
from tests.helpers import solution_namespace
from tests.planted import ch04 as planted

UNIT_CHECKS = ["td0_episode", "mc_episode", "sarsa_target", "q_learning_target", "expected_sarsa_target",
               "double_q_update"]
CURVE_CHECKS = {"rms_curve": ("rms_curve",), "td_control": ("td_control",),
                "maximization_bias": ("q_learning_target", "double_q_update")}


@pytest.fixture(scope="module")
def solution():
    return solution_namespace("04_temporal_difference")


def test_every_check_has_at_least_three_planted_bugs():
    assert set(planted.BUGS) == set(UNIT_CHECKS) | set(CURVE_CHECKS)
    for name, bugs in planted.BUGS.items():
        assert len(bugs) >= 3, name


@pytest.mark.parametrize("name", UNIT_CHECKS)
def test_solution_passes_unit_check(solution, name, capsys):
    getattr(ch04, name)(solution[name])
    out = capsys.readouterr()
    assert f"✔ ch04.{name} passed" in out.out and out.err == ""


@pytest.mark.parametrize("name", list(CURVE_CHECKS))
def test_solution_passes_curve_check(solution, name, capsys):
    getattr(ch04, name)(*(solution[arg] for arg in CURVE_CHECKS[name]))
    out = capsys.readouterr()
    assert f"✔ ch04.{name} passed" in out.out and out.err == ""


@pytest.mark.parametrize("name, description, args",
                         [(n, d, a) for n, bugs in planted.BUGS.items() for d, a in bugs])
def test_planted_bug_fails_its_check(name, description, args, capsys):
    with pytest.raises(CheckFailed) as err:
        getattr(ch04, name)(*args)
    message = str(err.value)
    assert f"✘ ch04.{name} failed" in message and "Hint:" in message
    assert capsys.readouterr().err == ""


def test_curve_failures_carry_a_diagnosis():
    """A bug that runs but learns the wrong thing gets the numbers and a diagnosis, not only a verdict."""
    with pytest.raises(CheckFailed) as err:
        ch04.maximization_bias(*dict(planted.BUGS["maximization_bias"])["Double Q with one table picking and valuing"])
    message = str(err.value)
    assert "pass range" in message and "Diagnosis: Double Q goes left" in message


def test_cliff_diagnosis_names_the_method_a_result_resembles():
    """The cliff's diagnosis, on made-up returns: Sarsa at Q-learning's level is named as such."""
    reference = ch04.load_reference()["cliff"]
    level = {m: reference[m]["metrics"][ch04.CLIFF_METRIC]["mean"] for m in ch04.CLIFF_METHODS}
    returns = {m: np.full((50, 500), level[m]) for m in ch04.CLIFF_METHODS}
    assert ch04._diagnose_cliff(returns) == []
    returns["sarsa"] = np.full((50, 500), level["q_learning"])
    (note,) = ch04._diagnose_cliff(returns)
    assert "Your Sarsa" in note and "like Q-learning" in note
    returns["sarsa"] = np.full((50, 500), -90.0)
    assert "Falling off the cliff" in ch04._diagnose_cliff(returns)[0]


def test_references_agree_with_published_values():
    """Our reference runs and the published reproduction (section 1b) agree within 3 combined SE."""
    reference = ch04.load_reference()
    zs = [entry["published"][ch04.WALK_METRIC]["z_ours_vs_published"] for entry in reference["random_walk"].values()]
    zs += [reference["cliff"][m]["published"][ch04.CLIFF_METRIC]["z_ours_vs_published"] for m in ch04.CLIFF_METHODS]
    assert len(zs) == 10 and all(abs(z) < 3 for z in zs), zs
    assert abs(reference["cliff"]["gap"]["mean"] - 22.0) < 1.5
    windy = reference["windy"]["steps for 170 episodes"]
    assert abs(windy["mean"] - 8224) < 3 * np.hypot(235, windy["sd"]) / np.sqrt(2000)
    # Batch updating: exact fixed points vs a tolerance-stopped sweep; TD below MC either way.
    for e in (25, 50, 100):
        key = f"RMS error after {e} episodes"
        assert reference["batch"]["td"]["metrics"][key]["mean"] < reference["batch"]["mc"]["metrics"][key]["mean"]
        for method in ("td", "mc"):
            ours = reference["batch"][method]["metrics"][key]["mean"]
            assert abs(ours - reference["batch"][method]["published"][key]["value"]) < 0.008


def test_maximization_bias_reference_has_the_books_shape():
    reference = ch04.load_reference()["maximization_bias"]
    q, dq = reference["q_learning"], reference["double_q"]
    assert q["peak"]["fraction"] > 0.8 and 5 < q["peak"]["episode"] < 50
    assert dq["peak"]["fraction"] < 0.55 and dq["last_100_episodes"] < 0.1
    assert q["last_100_episodes"] > dq["last_100_episodes"] + 0.03  # "significantly more often than 5%"


def test_bonferroni_z():
    assert ch04.bonferroni_z(1) == pytest.approx(2.807, abs=1e-3)
    assert ch04.bonferroni_z(7) > ch04.bonferroni_z(4) > 3.0


def test_curve_feedback_plot_is_saved(solution, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_PLOTS", str(tmp_path))
    ch04.maximization_bias(solution["q_learning_target"], solution["double_q_update"])
    assert (tmp_path / "ch04.maximization_bias.curves.png").stat().st_size > 10_000


# ---- bad input: every failure is a message that names the problem ---------------------------


def _message(check, *fns) -> str:
    with pytest.raises(CheckFailed) as err:
        check(*fns)
    return str(err.value)


def test_wrong_signature():
    msg = _message(ch04.td0_episode, lambda V, states, rewards: V)
    assert "but the check calls it as" in msg and "(V, states, rewards, alpha, gamma)" in msg


def test_not_a_function():
    assert "expected a function" in _message(ch04.sarsa_target, None)


def test_raises():
    def broken(rewards, next_q, terminated, gamma):
        return rewards + gamma * next_q.max(axis=2)

    msg = _message(ch04.q_learning_target, broken)
    assert "raised AxisError" in msg and "in your code" in msg and "Traceback" not in msg


def test_returns_nan():
    msg = _message(ch04.mc_episode, lambda V, states, rewards, alpha, gamma=1.0: V * np.nan)
    assert "NaN" in msg


def test_wrong_shape():
    msg = _message(ch04.expected_sarsa_target, lambda rewards, next_q, epsilon, terminated, gamma: next_q)
    assert "shape" in msg and "expected (1,)" in msg


def test_returns_none():
    def forgot_return(Q1, Q2, states, actions, rewards, next_states, terminated, alpha, gamma, rng):
        Q1[0, 0, 0] = 1.0

    assert "expected a tuple (Q1, Q2)" in _message(ch04.double_q_update, forgot_return)


def test_hangs_past_budget():
    def slow(V, states, rewards, alpha, gamma=1.0):
        while True:
            pass

    start = time.perf_counter()
    msg = _message(ch04.td0_episode, slow)
    assert "did not finish within" in msg and time.perf_counter() - start < 30


def test_loop_with_wrong_action_shape():
    def broken(env, method, n_episodes, alpha, epsilon, gamma, rng):
        env.reset()
        env.step(np.zeros(env.n_runs + 1, dtype=int))

    msg = _message(ch04.td_control, broken)
    assert "one action per run" in msg and "in your code" in msg


def test_loop_that_forgets_to_return_q():
    def no_return(env, method, n_episodes, alpha, epsilon, gamma, rng):
        planted._loop(env, method, n_episodes, alpha, epsilon, gamma, rng)

    assert "returned None" in _message(ch04.td_control, no_return)


def test_maximization_bias_reports_a_bad_return_inside_the_loop():
    def rows_of_q(rewards, next_q, terminated, gamma):
        return next_q  # [R, A] instead of [R]

    msg = _message(ch04.maximization_bias, rows_of_q, planted.dq_always_q1)
    assert "inside the training loop" in msg and "one target per run" in msg
