"""The chapter 03 grader is itself tested: the solution's code passes every check, every planted
bug fails the check it targets, the statistical rules reject wrong results on their own, the
reference data agrees with the published numbers, and bad input gets a clear message."""

from __future__ import annotations

import time

import numpy as np
import pytest

from autograder.checks import ch03
from autograder.protocol import CheckFailed
from rlcore.tabular import blackjack as bj
from rlcore.tabular import mc
from tests.helpers import solution_namespace
from tests.planted import ch03 as planted

CHECKS = list(planted.BUGS)
PLOTS = {"mc_prediction": "figure_5_1", "mc_es": "figure_5_2", "off_policy_estimates": "figure_5_3"}


@pytest.fixture(scope="module")
def solution():
    return solution_namespace("03_monte_carlo")


def test_every_graded_piece_has_at_least_three_planted_bugs():
    assert set(CHECKS) == {"play_episode", "mc_prediction", "mc_es", "off_policy_estimates"}
    for name, bugs in planted.BUGS.items():
        assert len(bugs) >= 3, name


@pytest.mark.parametrize("name", CHECKS)
def test_solution_passes_check_and_saves_its_plot(solution, name, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOGRADER_PLOTS", str(tmp_path))
    getattr(ch03, name)(solution[name])
    out = capsys.readouterr()
    assert f"✔ ch03.{name} passed" in out.out and out.err == ""
    if name in PLOTS:
        assert (tmp_path / f"ch03.{name}.{PLOTS[name]}.png").stat().st_size > 10_000


@pytest.mark.parametrize("name, description, fn", [(n, d, f) for n, bugs in planted.BUGS.items() for d, f in bugs])
def test_planted_bug_fails_its_check(name, description, fn, capsys):
    with pytest.raises(CheckFailed) as err:
        getattr(ch03, name)(fn)
    message = str(err.value)
    assert f"✘ ch03.{name} failed" in message and "Hint:" in message and "Traceback" not in message
    assert capsys.readouterr().err == ""


def test_planted_messages_name_the_mistake():
    """Where a wrong answer matches a known mistake, the message says which."""
    cases = [(ch03.mc_prediction, planted.pred_every_visit_always, "every-visit averaging"),
             (ch03.mc_prediction, planted.pred_last_visit, "last visit"),
             (ch03.mc_es, planted.es_every_visit, "every visit"),
             (ch03.off_policy_estimates, planted.is_first_step_ratio, "first step only"),
             (ch03.off_policy_estimates, planted.is_weighted_counts_episodes, "counting episodes"),
             (ch03.play_episode, planted.play_drops_last_step, "One step short")]
    for check, fn, words in cases:
        with pytest.raises(CheckFailed) as err:
            check(fn)
        assert words in str(err.value), (fn.__name__, str(err.value))


# ---- the statistical rules on their own ---------------------------------------------------


def test_figure_5_1_rule_rejects_a_wrong_policy_and_a_small_bias():
    evaluation = bj.evaluate_policy(ch03.stick20())
    episodes = bj.generate_episodes(ch03.stick20(), ch03.PRED_EPISODES, np.random.default_rng(1))
    V, N = mc.mc_prediction(episodes, bj.N_STATES)
    verdicts, z = ch03.judge_prediction(V, N, evaluation)
    assert all(v.passed for v in verdicts) and z.shape == (200,)
    # The estimate of a different policy (stick on 19): the values of 19 and below change.
    wrong = bj.generate_episodes(bj.threshold_policy(19), ch03.PRED_EPISODES, np.random.default_rng(2))
    V19, N19 = mc.mc_prediction(wrong, bj.N_STATES)
    assert not any(v.passed for v in ch03.judge_prediction(V19, N19, evaluation)[0])
    # A bias of 0.02 in every state (a few SEs per state) fails the chi-square rule.
    assert not ch03.judge_prediction(V + 0.02, N, evaluation)[0][0].passed
    # One state off by 0.3 fails the max-|z| rule.
    one = V.copy()
    one[bj.state_index(15, 6, 0)] += 0.3
    assert not ch03.judge_prediction(one, N, evaluation)[0][1].passed


def test_figure_5_2_rule_rejects_poor_policies():
    opt = bj.optimal()
    verdicts, _ = ch03.judge_es(opt.policy)
    assert all(v.passed for v in verdicts)
    verdicts, facts = ch03.judge_es(ch03.stick20())  # the initial policy, never improved
    assert not any(v.passed for v in verdicts) and facts["loss"] > 0.2
    flipped = opt.policy.copy()
    s = bj.state_index(16, 6, 0)  # stick is clearly better against a 6 (gap above GAP_CLEAR)
    assert opt.gap[s] >= ch03.GAP_CLEAR
    flipped[s] = 1 - flipped[s]
    verdicts, facts = ch03.judge_es(flipped)
    assert not verdicts[0].passed and facts["wrong_clear"].tolist() == [s]
    # Many small mistakes, each below GAP_CLEAR, add up to a loss the threshold rejects.
    small = opt.policy.copy()
    close = bj.DECISION_STATES[opt.gap[bj.DECISION_STATES] < ch03.GAP_CLEAR]
    small[close] = 1 - small[close]
    verdicts, _ = ch03.judge_es(small)
    assert verdicts[0].passed and not verdicts[1].passed


def _estimates(rho, G):
    """Ordinary and weighted estimates per run from ratios and returns [runs, E]."""
    num, den = np.cumsum(rho * G, axis=1), np.cumsum(rho, axis=1)
    return num / np.arange(1, rho.shape[1] + 1), np.divide(num, den, out=np.zeros_like(num), where=den > 0)


@pytest.fixture(scope="module")
def is_episodes():
    target, behavior = ch03.is_policies()
    episodes = bj.generate_episodes(behavior, ch03.IS_RUNS * ch03.IS_EPISODES, np.random.default_rng(5),
                                    start_state=ch03.IS_STATE)
    G = mc.episode_returns(episodes).reshape(ch03.IS_RUNS, ch03.IS_EPISODES)
    step_ratio = target[episodes.states, episodes.actions] / behavior[episodes.states, episodes.actions]
    return episodes, step_ratio, G


def test_figure_5_3_rule_passes_rlcore_and_rejects_biased_estimators(is_episodes):
    episodes, step_ratio, G = is_episodes
    shape = (ch03.IS_RUNS, ch03.IS_EPISODES)
    rho = np.multiply.reduceat(step_ratio, episodes.offsets[:-1]).reshape(shape)
    assert all(v.passed for v in ch03.judge_is(*_estimates(rho, G)))
    # The ratio without the last step's factor: ordinary IS is biased, so its late error stays high.
    # (Weighted IS happens to land close to v here: the bias of its numerator and denominator nearly cancel.)
    is_last = np.zeros(step_ratio.size, dtype=bool)
    is_last[episodes.offsets[1:] - 1] = True
    without_last = np.multiply.reduceat(np.where(is_last, 1.0, step_ratio), episodes.offsets[:-1]).reshape(shape)
    verdicts = ch03.judge_is(*_estimates(without_last, G))
    assert not verdicts[2].passed
    # Weighted IS dividing by the number of episodes with rho > 0: far off early and late.
    o, _ = _estimates(rho, G)
    num, count = np.cumsum(rho * G, axis=1), np.cumsum(rho > 0, axis=1)
    w = np.divide(num, count, out=np.zeros_like(num), where=count > 0)
    verdicts = ch03.judge_is(o, w)
    assert verdicts[0].passed and not verdicts[1].passed and not verdicts[3].passed
    # Ordinary IS with the first step's ratio only.
    first = step_ratio[episodes.offsets[:-1]].reshape(shape)
    assert not all(v.passed for v in ch03.judge_is(*_estimates(first, G)))


# ---- reference data ---------------------------------------------------------------------


def test_reference_agrees_with_published_numbers():
    ref = ch03.load_reference()
    assert ref["figure_5_1"]["published"]["largest_difference"] <= 5e-4  # the published rows have 3 decimals
    assert ref["figure_5_2"]["published"]["policy_matches"] is True
    assert ref["figure_5_2"]["published"]["largest_difference"] <= 5e-4
    fig = ref["figure_5_3"]
    assert abs(fig["v_exact"] - fig["v_exact_published"]) < 1e-5 and abs(fig["v_exact"] - fig["v_book"]) < 1e-4
    # 2000 runs of rlcore's estimators end near v, and the ordinary MSE follows Var(rho G) / k.
    after = fig["estimate_after_10000"]
    for name in ("ordinary", "weighted"):
        assert abs(after[f"{name}_mean"] - fig["v_exact"]) < 4 * after[f"{name}_sd"] / np.sqrt(fig["runs"])
    mean = np.array(fig["curves"]["ordinary"]["mse_mean"])
    exact = np.array(fig["curves"]["ordinary"]["mse_exact"])
    assert np.all(np.abs(mean / exact - 1) < 0.3)


def test_reference_runs_support_the_check_rules():
    ref = ch03.load_reference()
    es = ref["figure_5_2"]["mc_es_runs"]
    assert es["runs"] >= 100 and es["episodes"] == ch03.ES_EPISODES and es["gap_clear"] == ch03.GAP_CLEAR
    assert es["largest_gap_mismatched"] < ch03.GAP_CLEAR  # no reference run missed a clear state
    assert es["loss_max"] <= es["loss_threshold"]
    assert ref["figure_5_1"]["rule_simulation"]["failed"] <= 1
    cal = ref["figure_5_3"]["rule_calibration"]
    assert cal["z"] == ch03.IS_Z and cal["margin"] == ch03.IS_MARGIN and cal["false_failure_rate"] <= 0.005
    windows = ref["figure_5_3"]["windows"]
    # The book's point: weighted IS has the lower error early on.
    assert windows["weighted 1-10"]["mean"] < windows["ordinary 1-10"]["mean"] - 0.2


# ---- bad input: every failure is a message that names the problem ---------------------------


def _message(check, fn) -> str:
    with pytest.raises(CheckFailed) as err:
        check(fn)
    return str(err.value)


def test_wrong_signature():
    msg = _message(ch03.mc_prediction, lambda episodes, n_states: (np.zeros(n_states), np.zeros(n_states)))
    assert "but the check calls it as" in msg and "(episodes, n_states, gamma, first_visit)" in msg


def test_not_a_function():
    assert "expected a function" in _message(ch03.mc_es, None)


def test_raises():
    def broken(episodes, target, behavior, gamma=1.0):
        return target[99, 0], None

    msg = _message(ch03.off_policy_estimates, broken)
    assert "raised IndexError" in msg and "in your code" in msg and "Traceback" not in msg


def test_returns_nan():
    msg = _message(ch03.mc_prediction, lambda e, n, g=1.0, f=True: (np.full(n, np.nan), np.zeros(n, dtype=int)))
    assert "NaN" in msg


def test_wrong_shape():
    msg = _message(ch03.mc_prediction, lambda e, n, g=1.0, f=True: (np.zeros(n + 1), np.zeros(n, dtype=int)))
    assert "shape" in msg and "expected (4,)" in msg


def test_returns_none():
    def forgot_return(env, policy):
        env.reset()

    assert "expected a tuple (states, actions, rewards)" in _message(ch03.play_episode, forgot_return)


def test_mc_es_policy_out_of_range():
    msg = _message(ch03.mc_es, lambda gen, n, rng: (np.zeros((360, 2)), np.full(360, 2)))
    assert "actions are 0 (stick) and 1 (hit)" in msg


def test_hangs_past_budget(monkeypatch):
    monkeypatch.setattr(ch03, "UNIT_BUDGET_S", 1.0)

    def slow(episodes, n_states, gamma=1.0, first_visit=True):
        while True:
            pass

    start = time.perf_counter()
    msg = _message(ch03.mc_prediction, slow)
    assert "did not finish within 1 s" in msg and time.perf_counter() - start < 10
