"""The chapter 05 grader is itself tested: the solution's code passes every check, every planted
bug fails the check it targets, and bad input gets a clear message rather than a grader traceback."""

from __future__ import annotations

import numpy as np
import pytest

from autograder.checks import ch05
from autograder.protocol import CheckFailed
from tests.helpers import solution_namespace
from tests.planted import ch05 as planted

UNIT_CHECKS = list(planted.UNIT_BUGS)
LOOP_CHECKS = list(planted.LOOP_BUGS)


@pytest.fixture(scope="module")
def solution():
    return solution_namespace("05_nstep_and_planning")


def test_every_graded_piece_has_at_least_three_planted_bugs():
    for name, bugs in {**planted.UNIT_BUGS, **planted.LOOP_BUGS}.items():
        assert len(bugs) >= 3, name
    assert set(UNIT_CHECKS + LOOP_CHECKS) == {
        "nstep_return", "nstep_td_episode", "nstep_td", "q_learning_update", "TabularModel", "dyna_q"}


@pytest.mark.parametrize("name", UNIT_CHECKS + LOOP_CHECKS)
def test_solution_passes_check(solution, name, capsys):
    getattr(ch05, name)(solution[name])
    out = capsys.readouterr()
    assert f"✔ ch05.{name} passed" in out.out and out.err == ""


# Where a wrong answer matches a known mistake, the message must say which (planted description ->
# a phrase of the message).
NAMED_MISTAKES = {
    "bootstrap discounted by gamma^(n-1)": "gamma^(n-1) instead of gamma^n",
    "bootstraps from the terminal state when tau + n == T": "V of the terminal state",
    "reward window one step late": "one step late",
    "the last n - 1 updates missing": "last n - 1 steps missing",
    "all returns from the values before the episode": "values from before the episode",
    "mean over next actions instead of max": "a mean over the next state's actions",
    "uniform over pairs, not state then action": "a random observed state, then a random action",
    "replays a list of all transitions (frequency-weighted)": "the latest outcome replaces the old one",
    "values recorded before the episode's updates": "lag one episode behind",
    "V starts at 0.5": "starting at 0.5",
    "V shared between calls": "keep V between calls",
    "Q shared between calls": "created afresh in each call",
    "epsilon never used (greedy with random ties)": "Does epsilon reach epsilon_greedy_action?",
    "planning once per episode instead of after every step": "planning does not",
}


@pytest.mark.parametrize("name, description, fn",
                         [(n, d, f) for n, bugs in planted.UNIT_BUGS.items() for d, f in bugs])
def test_planted_bug_fails_unit_check(name, description, fn, capsys):
    with pytest.raises(CheckFailed) as err:
        getattr(ch05, name)(fn)
    message = str(err.value)
    assert f"✘ ch05.{name} failed" in message and "Hint:" in message
    assert NAMED_MISTAKES.get(description, "") in message
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name, description, fn",
                         [(n, d, f) for n, bugs in planted.LOOP_BUGS.items() for d, f in bugs])
def test_planted_bug_fails_loop_check(name, description, fn, capsys):
    with pytest.raises(CheckFailed) as err:
        getattr(ch05, name)(fn)
    message = str(err.value)
    assert f"✘ ch05.{name} failed" in message and "Hint:" in message
    assert NAMED_MISTAKES.get(description, "") in message
    assert capsys.readouterr().err == ""


def test_every_named_mistake_is_planted():
    planted_descriptions = {d for bugs in {**planted.UNIT_BUGS, **planted.LOOP_BUGS}.values() for d, _ in bugs}
    assert set(NAMED_MISTAKES) <= planted_descriptions


def test_references_agree_with_published_values():
    """Our Dyna reference and the published reproduction (section 1b) agree within 3 SE where the
    published row gives a spread, and on the first episode below 20 steps exactly; Figure 7.2's
    best n is intermediate."""
    reference = ch05.load_reference()
    for key, config in reference["dyna"]["configs"].items():
        for name, anchor in config["published"].items():
            if isinstance(anchor, dict) and anchor.get("z_ours_vs_published") is not None:
                assert abs(anchor["z_ours_vs_published"]) < 3, (key, name, anchor)
        first = config["published"]["first episode with mean below 20"]
        assert first["ours"] == first["published"], (key, first)
    first = reference["dyna"]["first_episode"]
    assert abs(first["mean"] - first["exact_mean"]) < 3 * first["sd"] / np.sqrt(first["n"])
    assert reference["nstep"]["best_n"] in (2, 4, 8)


def test_feedback_plots_are_saved(solution, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_PLOTS", str(tmp_path))
    ch05.nstep_td(solution["nstep_td"])
    assert (tmp_path / "ch05.nstep_td.figure_7_2.png").stat().st_size > 10_000


# ---- bad input: every failure is a message that names the problem ---------------------------


def _message(check, fn) -> str:
    with pytest.raises(CheckFailed) as err:
        check(fn)
    return str(err.value)


def test_wrong_signature():
    msg = _message(ch05.nstep_return, lambda states, rewards, tau, n, gamma: 0.0)
    assert "but the check calls it as" in msg and "(V, states, rewards, tau, n, gamma)" in msg


def test_not_a_function():
    assert "expected a function" in _message(ch05.q_learning_update, None)


def test_raises_index_error_without_truncation():
    def no_truncation(V, states, rewards, tau, n, gamma):
        return sum(gamma**i * rewards[tau + i] for i in range(n)) + gamma**n * V[states[tau + n]]

    msg = _message(ch05.nstep_return, no_truncation)
    assert "raised IndexError" in msg and "in your code" in msg and "Traceback" not in msg


def test_returns_nan():
    assert "NaN" in _message(ch05.q_learning_update, lambda Q, s, a, r, s2, alpha, gamma: Q * np.nan)


def test_returns_none():
    def forgot_return(V, states, rewards, n, alpha, gamma):
        V[states[0]] += alpha

    assert "returned None" in _message(ch05.nstep_td_episode, forgot_return)


def test_wrong_history_shape():
    def transposed(walk, n, alpha, n_episodes, rng):
        return np.zeros((walk.n_states, n_episodes))

    assert "expected (3, 19)" in _message(ch05.nstep_td, transposed)


def test_own_episodes_are_refused():
    def own_walk(walk, n, alpha, n_episodes, rng):
        return np.zeros((n_episodes, walk.n_states))

    assert "drew 0 episodes from walk.episode(rng)" in _message(ch05.nstep_td, own_walk)


def test_dyna_steps_miscounted():
    def counts_from_one(maze, n_planning, n_episodes, rng, alpha=0.1, epsilon=0.1, gamma=0.95):
        return planted.dyna_plans_at_episode_end(maze, 0, n_episodes, rng) - 1

    msg = _message(ch05.dyna_q, counts_from_one)
    assert "but the maze counted" in msg


def test_dyna_without_reset():
    def no_reset(maze, n_planning, n_episodes, rng, alpha=0.1, epsilon=0.1, gamma=0.95):
        maze.step(0)

    msg = _message(ch05.dyna_q, no_reset)
    assert "raised RuntimeError" in msg and "reset()" in msg


def test_model_sample_wrong_type():
    class ReturnsList:
        def __init__(self):
            self.t = None

        def add(self, state, action, reward, next_state):
            self.t = [state, action, reward, next_state]

        def sample(self, rng):
            return self.t

    assert "expected a tuple (state, action, reward, next_state)" in _message(ch05.TabularModel, ReturnsList)
