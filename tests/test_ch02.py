"""The chapter 02 grader is itself tested: the solution's code passes every check, every planted
bug fails the check it targets, legitimate variants (other tie-breaking, in-place sweeps, plain
Python loops) pass, bad input gets a clear message, and the reference data agree with the
published numbers and with a fresh regeneration."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from autograder.checks import ch02
from autograder.protocol import CheckFailed
from autograder.references import gen_ch02
from tests.helpers import solution_namespace
from tests.planted import ch02 as planted

FIGURE_CHECKS = {
    "gridworld_figures": ("policy_evaluation", "value_iteration"),
    "gambler": ("value_iteration",),
    "frozen_lake": ("value_iteration",),
}


@pytest.fixture(scope="module")
def solution():
    return solution_namespace("02_dynamic_programming")


def test_every_graded_piece_has_at_least_three_planted_bugs():
    for name, bugs in {**planted.UNIT_BUGS, **planted.FIGURE_BUGS}.items():
        assert len(bugs) >= 3, name
    assert set(planted.FIGURE_BUGS) == set(FIGURE_CHECKS)


@pytest.mark.parametrize("name", list(planted.UNIT_BUGS))
def test_solution_passes_unit_check(solution, name, capsys):
    getattr(ch02, name)(solution[name])
    out = capsys.readouterr()
    assert f"✔ ch02.{name} passed" in out.out and out.err == ""


@pytest.mark.parametrize("name", list(FIGURE_CHECKS))
def test_solution_passes_figure_check(solution, name, capsys):
    getattr(ch02, name)(*[solution[f] for f in FIGURE_CHECKS[name]])
    out = capsys.readouterr()
    assert f"✔ ch02.{name} passed" in out.out and out.err == ""


@pytest.mark.parametrize("name, description, fn",
                         [(n, d, f) for n, bugs in planted.UNIT_BUGS.items() for d, f in bugs])
def test_planted_bug_fails_unit_check(name, description, fn, capsys):
    with pytest.raises(CheckFailed) as err:
        getattr(ch02, name)(fn)
    assert f"✘ ch02.{name} failed" in str(err.value) and "Hint:" in str(err.value)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name, description, args",
                         [(n, d, a) for n, bugs in planted.FIGURE_BUGS.items() for d, a in bugs])
def test_planted_bug_fails_figure_check(name, description, args, capsys):
    with pytest.raises(CheckFailed) as err:
        getattr(ch02, name)(*args)
    assert f"✘ ch02.{name} failed" in str(err.value) and "Hint:" in str(err.value)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name, description, fn",
                         [(n, d, f) for n, variants in planted.LEGIT.items() for d, f in variants])
def test_legitimate_variant_passes(name, description, fn, capsys):
    getattr(ch02, name)(fn)
    assert f"✔ ch02.{name} passed" in capsys.readouterr().out


def test_messages_name_the_mistake():
    """When a wrong answer equals a known mistake, the message says which."""
    with pytest.raises(CheckFailed) as err:
        ch02.q_from_v(planted.q_no_gamma)
    assert "gamma left out" in str(err.value)
    with pytest.raises(CheckFailed) as err:
        ch02.policy_evaluation(planted.pe_always_in_place)
    assert "in-place result" in str(err.value) or "synchronous" in str(err.value)
    with pytest.raises(CheckFailed) as err:
        ch02.gridworld_figures(planted.pe_always_in_place, ch02.ref.value_iteration)
    assert "Diagnosis: v_1 equals the in-place result" in str(err.value)


@pytest.mark.slow
def test_plain_python_loops_pass_every_check_in_time(capsys):
    """A straightforward learner (loops over s, a, s') passes, well within the 2-minute budget."""
    start = time.perf_counter()
    for name, fn in planted.LOOPS.items():
        getattr(ch02, name)(fn)
    for name, needs in FIGURE_CHECKS.items():
        getattr(ch02, name)(*[planted.LOOPS[f] for f in needs])
    assert capsys.readouterr().out.count("passed") == 8
    assert time.perf_counter() - start < 120


def test_feedback_plots_are_saved(solution, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_PLOTS", str(tmp_path))
    ch02.gambler(solution["value_iteration"])
    ch02.frozen_lake(solution["value_iteration"])
    assert (tmp_path / "ch02.gambler.gambler.png").stat().st_size > 10_000
    assert (tmp_path / "ch02.frozen_lake.frozen_lake.png").stat().st_size > 10_000


# ---- reference data -----------------------------------------------------------------------


def test_references_agree_with_published_values():
    ref = ch02.load_reference()
    grids = ref["gridworlds"]
    for key in ("fig_3_2", "fig_3_5", "fig_4_1"):
        assert grids[key]["max_abs_difference"] <= 5e-3, key  # the published numbers are ours, rounded
    for k in ch02.SWEEPS_SHOWN:
        assert grids[f"fig_4_1_k{k}"]["max_abs_difference_first_row"] <= 5e-3
    assert grids["sweeps_to_1e-4"]["ours"] == {"synchronous": 173, "in_place": 114}
    gambler = ref["gambler"]
    for s, value in gambler["published"].items():
        # Published values carry 3 or 4 significant digits.
        assert abs(gambler["v"][int(s)] - value) <= 5e-5 + 1e-9, s
    for s, stake in ch02.GAMBLER_STAKES.items():
        assert gambler["optimal_stakes"][str(s)] == [stake]
    jack = ref["jack"]
    assert jack["improvements"] == 4 and jack["states_changed"] == [318, 272, 79, 8, 0]
    for state, value in jack["published"]["v"].items():
        assert abs(jack["v"][state] - value) < 0.1, state
    lake = ref["frozen_lake"]
    assert abs(lake["episodes"]["z_vs_exact"]) < 3
    assert lake["success_unlimited"] == pytest.approx(14 / 17, abs=1e-6)


def test_references_are_reproducible():
    """The committed exact values are what the generator computes today (FrozenLake's episodes aside)."""
    ref = ch02.load_reference()
    fresh = json.loads(json.dumps({"gridworlds": gen_ch02.gridworlds(), "gambler": gen_ch02.gambler(),
                                   "jack": gen_ch02.jack()}))
    for key in ("gridworlds", "gambler"):
        assert fresh[key] == ref[key], key
    assert fresh["jack"]["states_changed"] == ref["jack"]["states_changed"]
    assert fresh["jack"]["policies_moves"] == ref["jack"]["policies_moves"]
    np.testing.assert_allclose(list(fresh["jack"]["v"].values()), list(ref["jack"]["v"].values()), atol=1e-3)


# ---- bad input: every failure is a message that names the problem ---------------------------


def _message(check, *fns) -> str:
    with pytest.raises(CheckFailed) as err:
        check(*fns)
    return str(err.value)


def test_wrong_signature():
    msg = _message(ch02.policy_evaluation, lambda mdp, pi, theta: np.zeros(mdp.n_states))
    assert "but the check calls it as" in msg and "(mdp, pi, theta, in_place, max_sweeps)" in msg


def test_not_a_function():
    assert "expected a function" in _message(ch02.value_iteration, None)


def test_raises():
    def broken(mdp, v):
        return mdp.R + mdp.gamma * mdp.P @ v[:, None, None]  # shapes do not broadcast

    msg = _message(ch02.q_from_v, broken)
    assert "raised ValueError" in msg and "in your code" in msg and "Traceback" not in msg


def test_returns_nan():
    msg = _message(ch02.policy_evaluation, lambda mdp, pi, theta, in_place=False, max_sweeps=None:
                   np.full(mdp.n_states, np.nan))
    assert "NaN" in msg


def test_policy_as_actions_instead_of_probabilities():
    def actions_only(mdp, v):
        return np.where(mdp.allowed, mdp.R + mdp.gamma * mdp.P @ v, -np.inf).argmax(axis=1)

    msg = _message(ch02.greedy_policy, actions_only)
    assert "one action per state" in msg and "np.eye(A)[best]" in msg


def test_q_with_nan_for_an_allowed_action():
    def nan_q(mdp, v):
        q = mdp.R + mdp.gamma * mdp.P @ v
        q[0, 0] = np.nan
        return q

    assert "NaN" in _message(ch02.q_from_v, nan_q)


def test_rows_that_are_not_distributions():
    msg = _message(ch02.greedy_policy, lambda mdp, v: np.ones((mdp.n_states, mdp.n_actions)))
    assert "sum to 1" in msg


def test_returns_values_only():
    msg = _message(ch02.value_iteration, lambda mdp, theta: np.zeros(mdp.n_states))
    assert "expected a pair (pi, v)" in msg


def test_returns_none():
    def forgot_return(mdp, pi, theta, in_place=False, max_sweeps=None):
        v = np.zeros(mdp.n_states)
        v += 1.0

    assert "returned None" in _message(ch02.policy_evaluation, forgot_return)


def test_writing_into_the_model_is_reported():
    def writes(mdp, v):
        mdp.R[0, 0] = 0.0
        return mdp.R

    msg = _message(ch02.q_from_v, writes)
    assert "read-only" in msg


def test_hangs_past_budget():
    def never_stops(mdp, v):
        while True:
            pass

    start = time.perf_counter()
    msg = _message(ch02.q_from_v, never_stops)
    assert "did not finish within" in msg and time.perf_counter() - start < 30
