"""Checks for chapter 01, bandits.

Unit checks compare the learner's pieces with `rlcore.tabular.bandits` on random and hand-made
cases. Random choices (ties, exploration) are judged by their frequencies over many rows, with
5-standard-error bounds, so any correct implementation passes whatever random calls it makes.

Curve checks run the learner's agent classes on a testbed the grader owns (rewards are recorded by
`run_testbed`, never by the agent) and judge per-run metrics with `stats.equivalence` against our
reference runs (autograder/references/ch01_bandits.json, 40,000 runs per configuration).
`judge` is the one place where a run becomes verdicts: the checks and the calibration
(autograder/calibration/calibrate.py) both call it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from autograder import stats
from autograder.feedback import Panel, curve_figure
from autograder.protocol import Check, CheckFailed, grading_seeds
from rlcore.tabular import bandits as ref

LESSON = "lesson 01 (course/01_bandits.ipynb)"
REFERENCE_FILE = Path(__file__).parent.parent / "references" / "ch01_bandits.json"

# How many rows the frequency cases use: 20,000 rows put a 5-SE bound at about +-1.1 percentage
# points on a 10% frequency, tight enough to see "first arm always" or "epsilon ignored".
FREQ_ROWS = 20_000
FREQ_Z = 5.0


# =============================================================================================
# The graded experiments (shared with the reference generator and the calibration)
# =============================================================================================


@dataclass(frozen=True)
class Metric:
    """A per-run metric and its equivalence margin.

    kind: "reward" or "optimal"; steps first..last (1-based, inclusive) are averaged per run.
    margin: the implementation tolerance of the equivalence rule, in the metric's units: about 2%
    of the metric's scale (1.54, the expected best arm, for rewards; 1 for fractions), which
    absorbs harmless variants such as the baseline including or excluding the current reward.
    """

    name: str
    kind: str
    first: int
    last: int
    margin: float


@dataclass(frozen=True)
class Config:
    """One graded curve: an agent with parameters on a testbed (mean of q*)."""

    key: str
    agent: str  # class name in rlcore.tabular.bandits and in the exercise
    params: dict = field(default_factory=dict)
    testbed_mean: float = 0.0
    metrics: tuple[Metric, ...] = ()
    label: str = ""


LAST100_REWARD = Metric("mean reward, steps 901-1000", "reward", 901, 1000, 0.03)
LAST100_OPTIMAL = Metric("fraction optimal, steps 901-1000", "optimal", 901, 1000, 0.02)
STEP11_REWARD = Metric("mean reward at step 11", "reward", 11, 11, 0.03)

CONFIGS: dict[str, Config] = {
    c.key: c
    for c in [
        Config("greedy", "EpsilonGreedy", {"epsilon": 0.0}, 0.0, (LAST100_REWARD, LAST100_OPTIMAL),
               "greedy (epsilon = 0), Fig 2.2"),
        Config("eps_0.01", "EpsilonGreedy", {"epsilon": 0.01}, 0.0, (LAST100_REWARD, LAST100_OPTIMAL),
               "epsilon = 0.01, Fig 2.2"),
        Config("eps_0.1", "EpsilonGreedy", {"epsilon": 0.1}, 0.0, (LAST100_REWARD, LAST100_OPTIMAL),
               "epsilon = 0.1, Fig 2.2"),
        Config("optimistic", "EpsilonGreedy", {"epsilon": 0.0, "alpha": 0.1, "initial": 5.0}, 0.0,
               (STEP11_REWARD, LAST100_OPTIMAL), "optimistic Q1 = 5, epsilon = 0, alpha = 0.1, Fig 2.3"),
        Config("ucb_c2", "UCB", {"c": 2.0}, 0.0, (STEP11_REWARD, LAST100_REWARD, LAST100_OPTIMAL),
               "UCB c = 2, Fig 2.4"),
        Config("gradient_baseline", "GradientBandit", {"alpha": 0.1, "baseline": True}, 4.0,
               (LAST100_OPTIMAL,), "gradient, alpha = 0.1, with baseline, Fig 2.5"),
        Config("gradient_no_baseline", "GradientBandit", {"alpha": 0.1, "baseline": False}, 4.0,
               (LAST100_OPTIMAL,), "gradient, alpha = 0.1, without baseline, Fig 2.5"),
    ]
}

# Which configurations each curve check runs, and its visible seeds (one seed = one testbed of
# N_RUNS problems). Hidden seeds come from the instructor file (protocol.grading_seeds).
CURVE_CHECKS = {
    "EpsilonGreedy": ("greedy", "eps_0.01", "eps_0.1", "optimistic"),
    "UCB": ("ucb_c2",),
    "GradientBandit": ("gradient_baseline", "gradient_no_baseline"),
}
N_RUNS = 2000  # the book's run count
N_STEPS = 1000
VISIBLE_SEED = 2018


@lru_cache(maxsize=1)
def load_reference() -> dict:
    """Our reference runs (autograder/references/ch01_bandits.json)."""
    return json.loads(REFERENCE_FILE.read_text())


def judge(config: Config, run: ref.BanditRun, reference: dict | None = None) -> list[stats.Verdict]:
    """Apply the equivalence rule to every graded metric of one configuration's run."""
    reference = reference or load_reference()
    entry = reference["configs"][config.key]["metrics"]
    verdicts = []
    for m in config.metrics:
        r = entry[m.name]
        samples = run.per_run(m.kind, m.first, m.last)  # [R]
        verdicts.append(stats.equivalence_to(samples, r, margin=m.margin, z=3.0, metric=f"{config.label}: {m.name}"))
    return verdicts


# =============================================================================================
# Frequency helpers for random choices
# =============================================================================================


def _frequency_case(check: Check, actions: np.ndarray, expected: np.ndarray, name: str) -> bool:
    """Record whether the arm frequencies of `actions` [R] match `expected` [k] within 5 SE."""
    n = actions.size
    observed = np.bincount(actions, minlength=expected.size)[: expected.size] / n
    se = np.sqrt(np.maximum(expected * (1 - expected), 1e-12) / n)
    # An arm that should never be chosen must never be chosen.
    bad = np.where(expected == 0, observed > 0, np.abs(observed - expected) > FREQ_Z * se + 1e-12)
    if not bad.any():
        return check.expect(True, name)
    arm = int(np.argmax(bad))
    shown = ", ".join(f"{p:.3f}" for p in observed[:10])
    return check.expect(False, name, (
        f"arm {arm} was chosen in {observed[arm]:.1%} of {n} rows; expected {expected[arm]:.1%}. "
        f"Observed frequencies: [{shown}]"
    ))


def _actions(check: Check, fn, args, rows: int, k: int, label: str) -> np.ndarray:
    out = check.call(fn, *args, what=label)
    arr = check.array(out, label, shape=(rows,), kind="int")
    if arr.size and (arr.min() < 0 or arr.max() >= k):
        raise CheckFailed(f"{label} returned arm {int(arr.max() if arr.max() >= k else arr.min())}; arms are 0..{k - 1}.")
    return arr


# =============================================================================================
# Unit checks
# =============================================================================================


def argmax_random_ties(fn) -> None:
    """Check `argmax_random_ties(values, rng) -> actions`: argmax per row, ties at random."""
    with Check("ch01.argmax_random_ties", "argmax with random tie-breaking",
               hint=f"np.argmax always returns the first maximum. Find all maxima per row, then pick one "
                    f"uniformly at random ({LESSON}, section 2).") as check:
        fn = check.signature(fn, "values", "rng")
        rng = np.random.default_rng(0)
        # 1. A unique maximum per row.
        values = rng.normal(size=(50, 10))
        got = _actions(check, fn, (values.copy(), rng), 50, 10, "argmax_random_ties(values [50, 10], rng)")
        wrong = int(np.argmax(got != values.argmax(axis=1)))  # the first wrong row, if any
        check.require(np.array_equal(got, values.argmax(axis=1)), "unique maximum per row",
                      f"first wrong row {wrong}: values {np.round(values[wrong], 3).tolist()}, "
                      f"you chose {got[wrong]}")
        # 2. Every arm tied: each arm about 10% of the time.
        tied = np.zeros((FREQ_ROWS, 10))
        got = _actions(check, fn, (tied, rng), FREQ_ROWS, 10, "argmax_random_ties(zeros [20000, 10], rng)")
        _frequency_case(check, got, np.full(10, 0.1), "all 10 arms tied: each chosen about 10% of the time")
        # 3. Two of four tied at the top: only those two, about half each.
        values = np.tile([1.0, 3.0, 3.0, 0.0], (FREQ_ROWS, 1))
        got = _actions(check, fn, (values, rng), FREQ_ROWS, 4, "argmax_random_ties([1, 3, 3, 0] x 20000, rng)")
        _frequency_case(check, got, np.array([0, 0.5, 0.5, 0]), "arms 1 and 2 tied at the top of [1, 3, 3, 0]")
        # 4. Untried arms often score +inf (UCB): +inf ties are ties too.
        values = np.tile([np.inf, 0.0, np.inf], (FREQ_ROWS, 1))
        got = _actions(check, fn, (values, rng), FREQ_ROWS, 3, "argmax_random_ties([inf, 0, inf] x 20000, rng)")
        _frequency_case(check, got, np.array([0.5, 0, 0.5]), "two arms tied at +inf")


def epsilon_greedy(fn) -> None:
    """Check `epsilon_greedy(Q, epsilon, rng) -> actions`."""
    with Check("ch01.epsilon_greedy", "epsilon-greedy action selection",
               hint=f"With probability epsilon pick any arm uniformly (the greedy one included), otherwise a "
                    f"greedy arm with ties broken at random ({LESSON}, section 4).") as check:
        fn = check.signature(fn, "Q", "epsilon", "rng")
        rng = np.random.default_rng(1)
        Q = rng.normal(size=(50, 10))
        got = _actions(check, fn, (Q.copy(), 0.0, rng), 50, 10, "epsilon_greedy(Q [50, 10], 0.0, rng)")
        check.require(np.array_equal(got, Q.argmax(axis=1)), "epsilon = 0 is greedy",
                      "with epsilon = 0 every choice must be the arm with the largest Q")
        tied = np.zeros((FREQ_ROWS, 10))
        got = _actions(check, fn, (tied, 0.0, rng), FREQ_ROWS, 10, "epsilon_greedy(zeros, 0.0, rng)")
        _frequency_case(check, got, np.full(10, 0.1), "epsilon = 0 with all arms tied: ties broken at random")
        Q = np.tile(np.arange(10.0), (FREQ_ROWS, 1))  # arm 9 is greedy
        got = _actions(check, fn, (Q, 1.0, rng), FREQ_ROWS, 10, "epsilon_greedy(Q, 1.0, rng)")
        _frequency_case(check, got, np.full(10, 0.1), "epsilon = 1 picks every arm uniformly")
        got = _actions(check, fn, (Q, 0.1, rng), FREQ_ROWS, 10, "epsilon_greedy(Q, 0.1, rng)")
        expected = np.full(10, 0.01)
        expected[9] = 0.91  # greedy 90% of the time, plus its 1-in-10 share of the random 10%
        _frequency_case(check, got, expected, "epsilon = 0.1: greedy arm 91%, each other arm 1%")


def update_estimates(fn) -> None:
    """Check `update_estimates(Q, N, actions, rewards, alpha=None) -> (Q, N)`."""
    with Check("ch01.update_estimates", "incremental sample-average and constant-step updates",
               hint=f"Only the pulled arm changes: N[a] += 1, then Q[a] += step * (R - Q[a]) with step = 1/N[a] "
                    f"(after counting this pull) or alpha ({LESSON}, section 3).") as check:
        fn = check.signature(fn, "Q", "N", "actions", "rewards", "alpha")

        def run(Q, N, actions, rewards, alpha, label):
            out = check.call(fn, Q.copy(), N.copy(), actions.copy(), rewards.copy(), alpha, what=label)
            if not (isinstance(out, tuple) and len(out) == 2):
                raise CheckFailed(f"{label} returned {type(out).__name__}; expected a tuple (Q, N).")
            return (check.array(out[0], label + " -> Q", shape=Q.shape),
                    check.array(out[1], label + " -> N", shape=N.shape))

        # 1. By hand: first pull of arm 1 with reward 2 sets Q[1] = 2 exactly.
        Q, N = run(np.zeros((1, 3)), np.zeros((1, 3), dtype=int), np.array([1]), np.array([2.0]), None,
                   "update_estimates(zeros, zeros, [1], [2.0], None)")
        check.require(np.allclose(Q, [[0, 2, 0]]) and np.array_equal(N, [[0, 1, 0]]),
                      "first pull: Q[1] becomes the reward, N[1] becomes 1",
                      f"got Q = {Q.tolist()}, N = {N.tolist()}; expected Q = [[0, 2, 0]], N = [[0, 1, 0]]")
        # 2. By hand: five pulls of one arm with rewards 1..5 give their average, 3.
        Q, N = np.zeros((1, 2)), np.zeros((1, 2), dtype=int)
        for r in [1.0, 2.0, 3.0, 4.0, 5.0]:
            Q, N = run(Q, N.astype(int), np.array([0]), np.array([r]), None, "update_estimates(..., alpha=None)")
        check.require(np.isclose(Q[0, 0], 3.0) and N[0, 0] == 5, "sample average of rewards 1..5 is 3",
                      f"after five pulls Q[0] = {Q[0, 0]:.6g} and N[0] = {N[0, 0]}; expected 3 and 5")
        # 3. By hand: constant step 0.1 from Q = 1 with reward 3 gives 1.2.
        Q, N = run(np.ones((1, 2)), np.full((1, 2), 7), np.array([0]), np.array([3.0]), 0.1,
                   "update_estimates(ones, 7s, [0], [3.0], 0.1)")
        check.require(np.isclose(Q[0, 0], 1.2) and np.isclose(Q[0, 1], 1.0), "constant step size alpha = 0.1",
                      f"got Q = {Q.tolist()}; expected [[1.2, 1.0]] (Q + 0.1 * (3 - 1), other arm unchanged)")
        # 4. Random cases against rlcore, both step-size rules.
        rng = np.random.default_rng(2)
        for alpha in (None, 0.25):
            Q0 = rng.normal(size=(200, 10))
            N0 = rng.integers(0, 20, size=(200, 10))
            actions = rng.integers(10, size=200)
            rewards = rng.normal(size=200)
            want_Q, want_N = ref.update_estimates(Q0, N0, actions, rewards, alpha)
            Q, N = run(Q0, N0, actions, rewards, alpha, f"update_estimates(random [200, 10], alpha={alpha})")
            err = np.abs(Q - want_Q)
            row = int(err.max(axis=1).argmax())
            check.expect(np.allclose(Q, want_Q) and np.array_equal(N, want_N),
                         f"200 random rows, alpha = {alpha}",
                         f"row {row}: action {actions[row]}, reward {rewards[row]:.4f}, N before "
                         f"{N0[row].tolist()}: your Q {np.round(Q[row], 4).tolist()}, "
                         f"expected {np.round(want_Q[row], 4).tolist()}")


def ucb(fn) -> None:
    """Check `ucb(Q, N, t, c, rng) -> actions`."""
    with Check("ch01.ucb", "upper-confidence-bound action selection",
               hint=f"Score Q + c * sqrt(ln t / N); an arm with N = 0 counts as maximizing (score +inf), so "
                    f"every arm is tried once first; break ties at random ({LESSON}, section 6).") as check:
        fn = check.signature(fn, "Q", "N", "t", "c", "rng")
        rng = np.random.default_rng(3)
        # 1. Untried arms come first, whatever Q says; at t = 1 nothing has been tried yet.
        Q = np.tile([5.0, 0.0, -1.0, 2.0], (FREQ_ROWS, 1))
        N = np.tile([3, 0, 0, 1], (FREQ_ROWS, 1))
        got = _actions(check, fn, (Q, N, 5, 2.0, rng), FREQ_ROWS, 4, "ucb(Q, N with untried arms 1 and 2, t=5, c=2)")
        _frequency_case(check, got, np.array([0, 0.5, 0.5, 0]),
                        "untried arms (N = 0) are chosen first, ties among them at random")
        got = _actions(check, fn, (np.zeros((FREQ_ROWS, 10)), np.zeros((FREQ_ROWS, 10), dtype=int), 1, 2.0, rng),
                       FREQ_ROWS, 10, "ucb(zeros, zeros, t=1, c=2)")
        _frequency_case(check, got, np.full(10, 0.1), "t = 1, nothing tried: a uniformly random arm")
        # 2. By hand: Q = [1, 0.5], N = [10, 1], t = 11, c = 1: scores 1.49 and 2.05, so arm 1.
        got = _actions(check, fn, (np.array([[1.0, 0.5]]), np.array([[10, 1]]), 11, 1.0, rng), 1, 2,
                       "ucb([[1, 0.5]], [[10, 1]], t=11, c=1)")
        check.require(got[0] == 1, "hand case: the less-tried arm wins on its bonus",
                      f"scores are 1 + sqrt(ln 11 / 10) = 1.49 and 0.5 + sqrt(ln 11 / 1) = 2.05, so arm 1; you chose {got[0]}")
        # 3. c = 0 is greedy.
        Q = rng.normal(size=(100, 10))
        N = rng.integers(1, 50, size=(100, 10))
        got = _actions(check, fn, (Q.copy(), N.copy(), 100, 0.0, rng), 100, 10, "ucb(Q, N, t=100, c=0)")
        check.expect(np.array_equal(got, Q.argmax(axis=1)), "c = 0 is greedy", "with c = 0 UCB must pick argmax Q")
        # 4. Random cases against rlcore (continuous values, so no ties).
        for t, c in ((20, 2.0), (500, 0.5)):
            Q = rng.normal(size=(200, 10))
            N = rng.integers(1, t // 5 + 2, size=(200, 10))
            want = ref.ucb_scores(Q, N, t, c).argmax(axis=1)
            got = _actions(check, fn, (Q.copy(), N.copy(), t, c, rng), 200, 10, f"ucb(random, t={t}, c={c})")
            row = int(np.argmax(got != want))
            check.expect(np.array_equal(got, want), f"200 random rows, t = {t}, c = {c}",
                         f"row {row}: Q {np.round(Q[row], 3).tolist()}, N {N[row].tolist()}: you chose {got[row]}, "
                         f"UCB scores pick {want[row]}")


def gradient_bandit_update(fn) -> None:
    """Check `gradient_bandit_update(H, actions, rewards, baseline, alpha) -> H`."""
    with Check("ch01.gradient_bandit_update", "gradient-bandit preference update",
               hint=f"Every arm moves: H[a] += alpha * (R - baseline) * (1[a == A] - pi[a]), with pi = softmax(H) "
                    f"before the update ({LESSON}, section 7).") as check:
        fn = check.signature(fn, "H", "actions", "rewards", "baseline", "alpha")

        def run(H, actions, rewards, baseline, alpha, label):
            out = check.call(fn, H.copy(), actions.copy(), np.array(rewards, dtype=float), baseline, alpha, what=label)
            return check.array(out, label, shape=H.shape)

        # 1. By hand: k = 2, H = 0 (pi = 1/2 each), arm 0 pulled, R - baseline = 2, alpha = 0.5: +-0.5.
        got = run(np.zeros((1, 2)), np.array([0]), [3.0], np.array([1.0]), 0.5,
                  "gradient_bandit_update(zeros, [0], [3.0], baseline [1.0], 0.5)")
        check.require(np.allclose(got, [[0.5, -0.5]]), "hand case with two arms",
                      f"got {np.round(got, 4).tolist()}; expected [[0.5, -0.5]] "
                      "(0.5 * 2 * (1 - 1/2) for the pulled arm, 0.5 * 2 * (0 - 1/2) for the other)")
        # 2. A reward equal to the baseline changes nothing.
        H = np.random.default_rng(4).normal(size=(5, 4))
        got = run(H, np.array([0, 1, 2, 3, 0]), [1.0, 2, 3, 4, 5], np.array([1.0, 2, 3, 4, 5]), 0.3,
                  "gradient_bandit_update(H, actions, rewards, baseline = rewards, 0.3)")
        check.require(np.allclose(got, H), "reward equal to the baseline: no change",
                      "when R equals the baseline the update must be zero; is the baseline subtracted?")
        # 3. Random cases against rlcore, array and scalar baselines.
        rng = np.random.default_rng(5)
        for baseline in ("array", 0.0):
            H = rng.normal(size=(200, 10))
            actions = rng.integers(10, size=200)
            rewards = rng.normal(4, 1, size=200)
            b = rng.normal(4, 1, size=200) if baseline == "array" else baseline
            want = ref.gradient_bandit_update(H, actions, rewards, b, 0.1)
            got = run(H, actions, rewards, b, 0.1, f"gradient_bandit_update(random [200, 10], baseline={baseline})")
            row = int(np.abs(got - want).max(axis=1).argmax())
            check.expect(np.allclose(got, want), f"200 random rows, {baseline} baseline",
                         f"row {row}: action {actions[row]}: your H {np.round(got[row], 4).tolist()}, "
                         f"expected {np.round(want[row], 4).tolist()}")


# =============================================================================================
# Curve checks: the learner's agent classes on the grader's testbed
# =============================================================================================


class _ActionLog:
    """The learner's agent, with the actions it chose kept (copies, [R] each) for the grader's replay."""

    def __init__(self, agent, actions: list):
        self.agent, self.actions = agent, actions

    def act(self):
        chosen = self.agent.act()
        self.actions.append(np.array(chosen, copy=True))
        return chosen

    def update(self, actions, rewards):
        self.agent.update(actions, rewards)


class _Scripted:
    """Plays recorded actions [T, R], one row per step (the grader's replay of a learner's run)."""

    def __init__(self, actions: np.ndarray):
        self.rows, self.t = np.asarray(actions), 0

    def act(self) -> np.ndarray:
        if self.t >= len(self.rows):
            raise ValueError(f"the record has actions for {len(self.rows)} steps only")
        self.t += 1
        return self.rows[self.t - 1].astype(np.int64)

    def update(self, actions, rewards) -> None:
        pass


def _curve_check(agent_class, class_name: str, title: str, hint: str) -> None:
    check_id = f"ch01.{class_name}_curves"
    with Check(check_id, title, hint=hint) as check:
        agent_class = check.signature(agent_class, "n_runs", "k", "rng")
        seeds, hidden = grading_seeds(check_id, [VISIBLE_SEED])
        reference = load_reference()
        panels = []
        for key in CURVE_CHECKS[class_name]:
            config = CONFIGS[key]
            curves_reward, curves_optimal, verdicts = [], [], []
            for seed in seeds:
                actions: list[np.ndarray] = []

                def make_agent(n_runs, k, rng, _params=config.params, _actions=actions):
                    return _ActionLog(agent_class(n_runs, k, rng, **_params), _actions)

                def replay(recorded, _mean=config.testbed_mean, _seed=seed):
                    # The grader's own testbed, played with the actions the agent took: the rewards are the grader's.
                    return ref.run_testbed(lambda n, k, rng: _Scripted(recorded), n_runs=N_RUNS, n_steps=N_STEPS,
                                           mean=_mean, seed=_seed)

                shown = ", ".join(f"{k}={v}" for k, v in config.params.items())
                run = check.call(
                    ref.run_testbed, make_agent, n_runs=N_RUNS, n_steps=N_STEPS, mean=config.testbed_mean,
                    seed=seed, budget_s=120.0,
                    what=f"{class_name}({shown}) on {N_RUNS} runs x {N_STEPS} steps",
                    record=lambda run, _actions=actions: np.stack(_actions).astype(np.int16), replay=replay,
                )
                verdicts += judge(config, run, reference)
                curves_reward.append(run.mean_reward())
                curves_optimal.append(run.fraction_optimal())
            for v in verdicts:
                check.verdict(v, v.metric)
            passed = all(v.passed for v in verdicts)
            learner = {"reward": np.mean(curves_reward, axis=0), "optimal": np.mean(curves_optimal, axis=0)}
            panels.append(_panel(config, reference, learner, passed))
        check.plot(curve_figure(panels, f"{class_name}: your agent ({len(seeds)} x {N_RUNS} runs"
                                        f"{', hidden seeds' if hidden else ''}) vs the reference"), "curves")
        failed = [v for v in check.verdicts if not v.passed]
        if failed:
            check.diagnosis.extend(_diagnose(failed))
        else:
            for v in check.verdicts:
                check.note(f"{v.metric}: {v.estimate:.3f} (reference {v.reference:.3f})")


def _panel(config: Config, reference: dict, learner: dict[str, np.ndarray], passed: bool) -> Panel:
    """Plot reward (or, for gradient bandits, fraction optimal) against the reference band.

    The band is where the 2000-run average of a correct agent falls with 99.7% probability:
    reference mean +- 3 * per-step SD / sqrt(2000)."""
    curves = reference["configs"][config.key]["curves"]
    # Reward curves where a late reward metric is graded (Fig 2.2, 2.4), fraction optimal otherwise (2.3, 2.5).
    which = "reward" if LAST100_REWARD in config.metrics else "optimal"
    mean = np.asarray(curves[f"{which}_mean"])
    sd = np.asarray(curves[f"{which}_sd"])
    half = 3 * sd / np.sqrt(N_RUNS)
    x = np.arange(1, mean.size + 1)
    graded = [m for m in config.metrics if m.kind == which]
    return Panel(title=config.label, ylabel="fraction optimal" if which == "optimal" else "mean reward",
                 x=x, learner=learner[which], ref_mean=mean, ref_low=mean - half, ref_high=mean + half,
                 passed=passed, window=(graded[-1].first, graded[-1].last))


def _diagnose(failed: list[stats.Verdict]) -> list[str]:
    """Name the likely cause from which metric failed in which direction."""
    notes = []
    for v in failed:
        direction = "below" if v.estimate < v.low else "above"
        notes.append(f"{v.metric} is {direction} the reference ({v.estimate:.3f} vs {v.reference:.3f}).")
        if "step 11" in v.metric:
            notes.append("No spike at step 11: does every arm get tried once before any is tried twice, "
                         "and does t start at 1 on the first act()?")
        elif "without baseline" in v.metric:
            notes.append("The no-baseline variant should learn poorly on this testbed; "
                         "is the `baseline` flag ignored?")
        elif "with baseline" in v.metric:
            notes.append("Is the baseline the average of past rewards, updated every step, and subtracted from R?")
        elif "epsilon = 0.1" in v.metric or "epsilon = 0.01" in v.metric or "greedy" in v.metric:
            notes.append("Is epsilon used as the exploration probability, and are Q and N updated for the pulled arm only?")
    return notes


def EpsilonGreedy_curves(agent_class) -> None:
    """Check the learner's EpsilonGreedy class: Fig 2.2 (epsilon 0, 0.01, 0.1) and Fig 2.3 (optimistic)."""
    _curve_check(agent_class, "EpsilonGreedy", "epsilon-greedy agents reproduce Figures 2.2 and 2.3",
                 f"act() chooses with epsilon_greedy on self.Q; update() calls update_estimates with self.alpha; "
                 f"Q starts at `initial` ({LESSON}, sections 4 and 5).")


def UCB_curves(agent_class) -> None:
    """Check the learner's UCB class: Fig 2.4, including the spike at step 11."""
    _curve_check(agent_class, "UCB", "UCB reproduces Figure 2.4 and its spike at step 11",
                 f"act() increments t first (t = 1 on the first pull), then calls ucb; update() calls "
                 f"update_estimates ({LESSON}, section 6).")


def GradientBandit_curves(agent_class) -> None:
    """Check the learner's GradientBandit class: Fig 2.5, with and without baseline."""
    _curve_check(agent_class, "GradientBandit", "gradient bandits reproduce Figure 2.5",
                 f"act() samples from softmax(self.H); update() uses the average of past rewards as the "
                 f"baseline when baseline=True and 0 otherwise ({LESSON}, section 7).")
