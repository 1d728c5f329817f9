"""The chapter 01 grader is itself tested: the solution's code passes every check, every planted
bug fails the check it targets, and bad input gets a clear message rather than a grader traceback."""

from __future__ import annotations

import time

import numpy as np
import pytest

from autograder.checks import ch01
from autograder.protocol import CheckFailed
from tests.helpers import solution_namespace
from tests.planted import ch01 as planted

UNIT_CHECKS = list(planted.UNIT_BUGS)
AGENT_CHECKS = list(planted.AGENT_BUGS)


@pytest.fixture(scope="module")
def solution():
    return solution_namespace("01_bandits")


def test_every_graded_piece_has_at_least_three_planted_bugs():
    for name, bugs in {**planted.UNIT_BUGS, **planted.AGENT_BUGS}.items():
        assert len(bugs) >= 3, name


@pytest.mark.parametrize("name", UNIT_CHECKS)
def test_solution_passes_unit_check(solution, name, capsys):
    getattr(ch01, name)(solution[name])
    out = capsys.readouterr()
    assert f"✔ ch01.{name} passed" in out.out and out.err == ""


@pytest.mark.parametrize("name", AGENT_CHECKS)
def test_solution_passes_curve_check(solution, name, capsys):
    getattr(ch01, f"{name}_curves")(solution[name])
    assert f"✔ ch01.{name}_curves passed" in capsys.readouterr().out


@pytest.mark.parametrize("name, description, fn",
                         [(n, d, f) for n, bugs in planted.UNIT_BUGS.items() for d, f in bugs])
def test_planted_bug_fails_unit_check(name, description, fn, capsys):
    with pytest.raises(CheckFailed) as err:
        getattr(ch01, name)(fn)
    assert f"✘ ch01.{name} failed" in str(err.value) and "Hint:" in str(err.value)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name, description, cls",
                         [(n, d, c) for n, bugs in planted.AGENT_BUGS.items() for d, c in bugs])
def test_planted_bug_fails_curve_check(name, description, cls):
    with pytest.raises(CheckFailed) as err:
        getattr(ch01, f"{name}_curves")(cls)
    message = str(err.value)
    assert "pass range" in message and "Diagnosis:" in message


def test_references_agree_with_published_values():
    """Our reference runs and the published reproduction (section 1b) agree within 3 SE."""
    for key, config in ch01.load_reference()["configs"].items():
        for metric, anchor in config["published"].items():
            if isinstance(anchor, dict) and anchor["z_ours_vs_published"] is not None:
                assert abs(anchor["z_ours_vs_published"]) < 3, (key, metric, anchor)


def test_curve_feedback_plot_is_saved(solution, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_PLOTS", str(tmp_path))
    ch01.UCB_curves(solution["UCB"])
    assert (tmp_path / "ch01.UCB_curves.curves.png").stat().st_size > 10_000


# ---- bad input: every failure is a message that names the problem ---------------------------


def _message(check, fn) -> str:
    with pytest.raises(CheckFailed) as err:
        check(fn)
    return str(err.value)


def test_wrong_signature():
    msg = _message(ch01.epsilon_greedy, lambda Q, rng: Q.argmax(axis=1))
    assert "but the check calls it as" in msg and "(Q, epsilon, rng)" in msg


def test_not_a_function():
    assert "expected a function" in _message(ch01.ucb, 3)


def test_raises():
    def broken(Q, epsilon, rng):
        return Q[0, 0, 0]

    msg = _message(ch01.epsilon_greedy, broken)
    assert "raised IndexError" in msg and "in your code" in msg and "Traceback" not in msg


def test_returns_nan():
    msg = _message(ch01.gradient_bandit_update, lambda H, a, r, b, alpha: H * np.nan)
    assert "NaN" in msg


def test_wrong_shape():
    msg = _message(ch01.argmax_random_ties, lambda values, rng: values.argmax(axis=0))
    assert "shape" in msg and "expected (50,)" in msg


def test_returns_none():
    def forgot_return(Q, N, actions, rewards, alpha=None):
        Q[np.arange(len(actions)), actions] = rewards

    assert "tuple (Q, N)" in _message(ch01.update_estimates, forgot_return)


def test_hangs_past_budget(monkeypatch):
    def slow(values, rng):
        while True:
            pass

    start = time.perf_counter()
    msg = _message(ch01.argmax_random_ties, slow)
    assert "did not finish within" in msg and time.perf_counter() - start < 30


def test_agent_with_wrong_action_shape():
    class Broken:
        def __init__(self, n_runs, k, rng, **params):
            self.k = k

        def act(self):
            return np.zeros(self.k, dtype=int)

        def update(self, actions, rewards):
            pass

    msg = _message(ch01.UCB_curves, Broken)
    assert "expected (2000,), one arm per run" in msg


def test_agent_missing_keyword():
    class NoEpsilon:
        def __init__(self, n_runs, k, rng):
            pass

    assert "unexpected keyword argument 'epsilon'" in _message(ch01.EpsilonGreedy_curves, NoEpsilon)
