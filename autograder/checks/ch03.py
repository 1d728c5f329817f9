"""Checks for chapter 03, Monte Carlo methods, on Blackjack with the book's rules
(`gym.make("Blackjack-v1", sab=True)`).

- `play_episode`: exact. The learner's episode loop and rlcore's play twin Gymnasium environments
  seeded alike, with three fixed policies; states, actions and rewards must match step for step.
- `mc_prediction`: exact on hand-computed episodes (a repeated state separates first-visit from
  every-visit) and on random episodes against `rlcore.tabular.mc`. Then Figure 5.1: the learner
  estimates v_pi from 500,000 episodes the grader generates, and each of the 200 states is judged
  by its z-score against the exact value from dynamic programming, with the standard error of an
  N-return average (the SD of the return is exact too). Rule: sum of z^2 below the chi-square
  quantile and max |z| below the Bonferroni bound, each at 0.05%.
- `mc_es`: exact on made-up episodes (the grader replays the learner's calls and recomputes every
  Q and the policy it should have passed), then Figure 5.2: 200,000 episodes of the learner's
  exploring-starts control on the grader's Blackjack. Starts must be uniform over the 400
  (state, action) pairs; the greedy policy must equal the DP optimum wherever the two actions'
  values differ by at least GAP_CLEAR; and its exact value may fall short of the optimum's by at
  most a threshold fitted to 100 reference runs (a 0.1% tail, see gen_ch03.py).
- `off_policy_estimates`: exact on hand-computed and random cases against rlcore, then Figure 5.3:
  100 runs x 10,000 episodes from the state (13, dealer 2, usable ace) under the uniform behavior
  policy. Per run, the log10 of the mean squared error over episodes 1-10 and 1001-10000, for
  both estimators, is judged with `stats.equivalence` against 2000 reference runs.

Reference data: autograder/references/ch03_monte_carlo.json (autograder/references/gen_ch03.py).
The `judge_*` functions are where results become verdicts: the checks, the reference generator
(which measures their false-failure rate) and the tests call them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import gymnasium as gym
import numpy as np
from scipy import stats as scipy_stats

from autograder import stats
from autograder.feedback import Panel, curve_figure
from autograder.protocol import Check, CheckFailed, LearnerCodeError, grading_seeds
from rlcore.tabular import blackjack as bj
from rlcore.tabular import mc as ref

LESSON = "lesson 03 (course/03_monte_carlo.ipynb)"
REFERENCE_FILE = Path(__file__).parent.parent / "references" / "ch03_monte_carlo.json"

# play_episode: episodes per policy in lockstep.
PLAY_EPISODES = 200
PLAY_SEED = 3001

# mc_prediction, Figure 5.1: the book's 500,000 episodes of the stick-on-20 policy.
PRED_EPISODES = 500_000
PRED_SEED = 3002
PRED_ALPHA = 0.0005  # false-failure rate of each of the two rules on a correct estimate

# mc_es, Figure 5.2.
ES_EPISODES = 200_000
ES_SEED = 3003
GAP_CLEAR = 0.2  # states where |q*(s, stick) - q*(s, hit)| >= this must get the optimal action
ES_LOSS_SDS = 5.0  # the loss threshold is at least the reference runs' mean + this many SDs
ES_START_Z = 5.0  # each exploring-start pair's frequency within 5 binomial SDs of 1/400

# off_policy_estimates, Figure 5.3 / Example 5.4.
IS_STATE = bj.state_index(13, 2, 1)  # player sum 13 with a usable ace, dealer shows a 2
IS_RUNS = 100  # the book's
IS_EPISODES = 10_000  # the book's
IS_SEED = 3004
IS_WINDOWS = (("ordinary", 1, 10), ("weighted", 1, 10), ("ordinary", 1001, 10_000), ("weighted", 1001, 10_000))
IS_MARGIN = 0.05  # log10 units: 12% of the MSE, for harmless variants
IS_Z = 3.5  # four verdicts: about 0.05% each, measured by the reference generator

UNIT_BUDGET_S = 10.0  # seconds for one call on a small case


@lru_cache(maxsize=1)
def load_reference() -> dict:
    """Our reference data (autograder/references/ch03_monte_carlo.json)."""
    return json.loads(REFERENCE_FILE.read_text())


def stick20() -> np.ndarray:
    """The book's policy for Example 5.1 and the target policy of Example 5.4: stick on 20 or 21."""
    return bj.threshold_policy(20)


def is_policies() -> tuple[np.ndarray, np.ndarray]:
    """(target, behavior) probabilities [360, 2] of Example 5.4: stick on 20 or 21; uniform random."""
    return bj.policy_probs(stick20()), np.full((bj.N_STATES, bj.N_ACTIONS), 0.5)


def _show_state(s: int) -> str:
    player_sum, dealer, usable = bj.decode(int(s))
    return f"state {int(s)} (sum {player_sum}, dealer {'A' if dealer == 1 else dealer}, {'usable ace' if usable else 'no usable ace'})"


def _fmt(values, digits: int = 4) -> str:
    flat = np.asarray(values, dtype=float).reshape(-1)
    return "[" + ", ".join(f"{v:.{digits}g}" for v in flat) + "]"


def _pair(out, what: str, names: tuple[str, str]):
    if not (isinstance(out, tuple) and len(out) == 2):
        raise LearnerCodeError(f"{what} returned {type(out).__name__}; expected a tuple ({names[0]}, {names[1]}).")
    return out


# =============================================================================================
# play_episode
# =============================================================================================


def _play_cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(5)
    return [("stick on 20 or 21", stick20()),
            ("the optimal policy", bj.optimal().policy.copy()),
            ("a fixed random policy", rng.integers(0, 2, size=bj.N_STATES))]


def play_episode(fn) -> None:
    """Check `play_episode(env, policy) -> (states, actions, rewards)` in lockstep with rlcore."""
    with Check("ch03.play_episode", "one Blackjack episode in Gymnasium",
               hint=f"Reset without a seed, then until terminated or truncated: s = obs_index(obs), a = policy[s], "
                    f"step, and record s, a and the reward that followed ({LESSON}, section 1).") as check:
        fn = check.signature(fn, "env", "policy")
        seeds, _ = grading_seeds("ch03.play_episode", [PLAY_SEED])
        for seed in seeds:
            for name, policy in _play_cases():
                env_learner = gym.make("Blackjack-v1", sab=True)
                env_ref = gym.make("Blackjack-v1", sab=True)
                env_learner.reset(seed=seed)
                env_ref.reset(seed=seed)
                for i in range(PLAY_EPISODES):
                    label = f"play_episode(env, policy) for {name}, episode {i + 1}"
                    out = check.call(fn, env_learner, policy.copy(), what=label, budget_s=UNIT_BUDGET_S)
                    if not (isinstance(out, tuple) and len(out) == 3):
                        raise LearnerCodeError(f"{label} returned {type(out).__name__}; expected a tuple "
                                               "(states, actions, rewards).")
                    want = bj.play_episode(env_ref, policy)
                    got = [check.array(x, f"{label} -> {k}", kind="float" if k == "rewards" else "int")
                           for x, k in zip(out, ("states", "actions", "rewards"))]
                    ok = all(g.shape == w.shape and np.array_equal(g, w) for g, w in zip(got, want))
                    if not ok:
                        check.require(False, f"{name}: episode {i + 1} matches Gymnasium's", _play_mismatch(got, want))
                check.expect(True, f"{name}: {PLAY_EPISODES} episodes match Gymnasium's step for step")


def _play_mismatch(got, want) -> str:
    gs, ga, gr = got
    ws, wa, wr = want
    lines = [f"expected states {ws.tolist()}, actions {wa.tolist()}, rewards {wr.tolist()}; "
             f"got states {gs.tolist()}, actions {ga.tolist()}, rewards {gr.tolist()}."]
    if gs.size == ws.size + 1 or gr.size == wr.size + 1:
        lines.append("One step too many: stop as soon as step() says terminated (or truncated).")
    elif gs.size + 1 == ws.size or gr.size + 1 == wr.size:
        lines.append("One step short: record the last step too (its reward is the only nonzero one).")
    elif gs.size == ws.size and gs.size > 1 and np.array_equal(gs[:-1], ws[1:]):
        lines.append("Your states are one step late: record the state *before* calling step(), the one the "
                     "action was taken in.")
    elif gs.size == ws.size and not np.array_equal(gs, ws) and gs.size:
        lines.append(f"The first state already differs ({_show_state(ws[0])} expected). Did you reset with a "
                     "seed? The grader seeds the environment once; every reset() must continue that sequence.")
    return " ".join(lines)


# =============================================================================================
# mc_prediction
# =============================================================================================

# Hand cases: (episodes, n_states, gamma, first_visit, V, N, what it shows). Returns for the
# episode states [0, 1, 0, 2], rewards [1, 2, 3, 4]: G = [10, 9, 7, 4] with gamma = 1 and
# [3.25, 4.5, 5, 4] with gamma = 0.5.
_EPISODE = ([0, 1, 0, 2], [0, 0, 0, 0], [1.0, 2.0, 3.0, 4.0])
PRED_HAND_CASES = [
    ([_EPISODE], 4, 1.0, True, [10.0, 9.0, 4.0, 0.0], [1, 1, 1, 0],
     "first visit: state 0 is visited at t = 0 (G = 10) and t = 2 (G = 7); only G_0 = 10 counts; "
     "state 3 is never visited and stays 0"),
    ([_EPISODE], 4, 1.0, False, [8.5, 9.0, 4.0, 0.0], [2, 1, 1, 0],
     "every visit: state 0 averages both returns, (10 + 7) / 2 = 8.5"),
    ([_EPISODE], 4, 0.5, True, [3.25, 4.5, 4.0, 0.0], [1, 1, 1, 0],
     "discounted: G_0 = 1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 4 = 3.25"),
    ([_EPISODE, ([2, 1], [0, 0], [0.0, -2.0])], 4, 1.0, True, [10.0, 3.5, 1.0, 0.0], [1, 2, 2, 0],
     "two episodes: state 1 averages 9 and -2, state 2 averages 4 and -2"),
]


def _prediction_mistakes(episodes, n_states, gamma, first_visit) -> dict[str, np.ndarray]:
    """V as common mistakes compute it, to name the one a wrong answer matches."""
    out = {
        ("every-visit averaging where first-visit was asked" if first_visit else
         "first-visit averaging where every-visit was asked"): ref.mc_prediction(episodes, n_states, gamma, not first_visit)[0],
        "the last visit of each episode instead of the first (the 'appears earlier' test looks at later steps)":
            _last_visit(episodes, n_states, gamma),
        "the return of the whole episode (G_0) credited to every visit": _whole_return(episodes, n_states, gamma, first_visit),
        "gamma ignored (undiscounted returns)": ref.mc_prediction(episodes, n_states, 1.0, first_visit)[0],
    }
    return out


def _last_visit(episodes, n_states, gamma):
    total, count = np.zeros(n_states), np.zeros(n_states)
    for states, _, rewards in episodes:
        G, seen = 0.0, set()
        for t in range(len(states) - 1, -1, -1):
            G = gamma * G + rewards[t]
            if states[t] not in seen:
                seen.add(states[t])
                total[states[t]] += G
                count[states[t]] += 1
    return np.divide(total, count, out=np.zeros(n_states), where=count > 0)


def _whole_return(episodes, n_states, gamma, first_visit):
    total, count = np.zeros(n_states), np.zeros(n_states)
    for states, _, rewards in episodes:
        G0 = sum(r * gamma**t for t, r in enumerate(rewards))
        seen = set()
        for s in states:
            if first_visit and s in seen:
                continue
            seen.add(s)
            total[s] += G0
            count[s] += 1
    return np.divide(total, count, out=np.zeros(n_states), where=count > 0)


def _which(got, mistakes: dict, want) -> str:
    for name, value in mistakes.items():
        if not np.allclose(value, want) and np.allclose(got, value, rtol=1e-7, atol=1e-9):
            return f" Your answer is what you get with {name}."
    return ""


def _random_episodes(rng, n_episodes, n_states, n_actions, max_len, behavior=None) -> ref.Episodes:
    """Random episodes over a few states, with repeated states (shortest first)."""
    episodes = []
    for _ in range(n_episodes):
        T = int(rng.integers(1, max_len + 1))
        states = rng.integers(n_states, size=T)
        if behavior is None:
            actions = rng.integers(n_actions, size=T)
        else:
            actions = np.array([rng.choice(n_actions, p=behavior[s]) for s in states])
        episodes.append((states, actions, np.round(rng.normal(size=T), 3)))
    episodes.sort(key=lambda e: len(e[0]))
    return ref.Episodes.from_list(episodes)


def judge_prediction(V: np.ndarray, N: np.ndarray, evaluation: bj.PolicyEvaluation,
                     alpha: float = PRED_ALPHA) -> tuple[list[stats.Verdict], np.ndarray]:
    """Figure 5.1: z-scores of V over the 200 decision states against the exact first-visit targets.

    V: estimates [360]; N: returns averaged per state [360] (the grader's count, from the episodes).
    z(s) = (V(s) - target(s)) / (SD(s) / sqrt(N(s))), both target and SD exact from DP. For a correct
    estimate z is about standard normal, so sum z^2 is chi-square with one degree per state.
    Returns (verdicts, z [200], NaN where a state was never visited)."""
    states = bj.DECISION_STATES
    n = N[states].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (V[states] - evaluation.mc_target[states]) / (evaluation.mc_sd[states] / np.sqrt(n))
    z = np.where(n > 0, z, np.nan)
    seen = np.isfinite(z)
    k = int(seen.sum())
    chi2 = float(np.sum(z[seen] ** 2))
    chi2_max = float(scipy_stats.chi2.ppf(1 - alpha, k))
    z_max = float(scipy_stats.norm.ppf(1 - alpha / (2 * k)))
    worst = int(np.nanargmax(np.abs(z)))
    worst_state = states[worst]
    verdicts = [
        stats.Verdict(chi2 <= chi2_max, "chi_square", "sum of z^2 over the states", chi2, float(k), 0.0, chi2_max,
                      f"sum of z^2 over {k} states = {chi2:.1f}; a correct estimate gives about {k}, at most "
                      f"{chi2_max:.1f} (chi-square quantile {1 - alpha:.4%})", {"k": k}),
        stats.Verdict(abs(z[worst]) <= z_max, "max_z", "largest |z|", float(abs(z[worst])), 0.0, -z_max, z_max,
                      f"largest |z| = {abs(z[worst]):.2f} at {_show_state(worst_state)}: V = {V[worst_state]:.4f}, "
                      f"exact {evaluation.mc_target[worst_state]:.4f}, SE {evaluation.mc_sd[worst_state] / np.sqrt(max(n[worst], 1)):.4f} "
                      f"over {int(n[worst])} returns; allowed {z_max:.2f}", {"state": int(worst_state)}),
    ]
    return verdicts, z


def mc_prediction(fn) -> None:
    """Check `mc_prediction(episodes, n_states, gamma, first_visit) -> (V, N)`."""
    with Check("ch03.mc_prediction", "Monte Carlo prediction reproduces Figure 5.1",
               hint=f"Walk each episode backwards with G = gamma * G + rewards[t]; on a first visit (the state does "
                    f"not occur earlier in the episode) or on every visit, add G to the state's total and 1 to N; "
                    f"V = total / N, 0 where N = 0 ({LESSON}, section 3).") as check:
        fn = check.signature(fn, "episodes", "n_states", "gamma", "first_visit")

        def run(episodes, n_states, gamma, first_visit, label, budget_s=None):
            out = check.call(fn, episodes, n_states, gamma, first_visit, what=label, budget_s=budget_s or UNIT_BUDGET_S)
            V, N = _pair(out, label, ("V", "N"))
            return (check.array(V, label + " -> V", shape=(n_states,)),
                    check.array(N, label + " -> N", shape=(n_states,), kind="int"))

        # 1. Hand cases.
        for episodes, n_states, gamma, first_visit, want_V, want_N, shows in PRED_HAND_CASES:
            label = f"mc_prediction({len(episodes)} episode(s), {n_states}, gamma={gamma}, first_visit={first_visit})"
            V, N = run(episodes, n_states, gamma, first_visit, label)
            ok = np.allclose(V, want_V) and np.array_equal(N, want_N)
            hint = "" if ok else _which(V, _prediction_mistakes(ref.Episodes.from_list(episodes), n_states, gamma, first_visit), want_V)
            check.require(ok, shows, f"episodes {[tuple(list(x) for x in e) for e in episodes]}: got V = {_fmt(V)}, "
                                     f"N = {N.tolist()}; expected V = {_fmt(want_V)}, N = {want_N}.{hint}")
        # 2. Random episodes against rlcore, both rules, discounted.
        rng = np.random.default_rng(31)
        for first_visit in (True, False):
            episodes = _random_episodes(rng, 300, 6, 2, 8)
            want_V, want_N = ref.mc_prediction(episodes, 6, 0.9, first_visit)
            V, N = run(episodes, 6, 0.9, first_visit, f"mc_prediction(300 random episodes, 6, 0.9, {first_visit})")
            hint = _which(V, _prediction_mistakes(episodes, 6, 0.9, first_visit), want_V)
            check.require(np.allclose(V, want_V, rtol=1e-7, atol=1e-9) and np.array_equal(N, want_N),
                          f"300 random episodes with repeated states, gamma = 0.9, first_visit = {first_visit}",
                          f"got V = {_fmt(V)}, N = {N.tolist()}; expected V = {_fmt(want_V)}, N = {want_N.tolist()}.{hint}")
        # 3. Figure 5.1 on the grader's Blackjack episodes.
        evaluation = bj.evaluate_policy(stick20())
        seeds, hidden = grading_seeds("ch03.mc_prediction", [PRED_SEED])
        for seed in seeds:
            episodes = bj.generate_episodes(stick20(), PRED_EPISODES, np.random.default_rng(seed))
            V, _ = run(episodes, bj.N_STATES, 1.0, True,
                       f"mc_prediction({PRED_EPISODES} Blackjack episodes, 360, 1.0, True)", budget_s=120.0)
            _, N = ref.mc_prediction(episodes, bj.N_STATES)  # the grader's own count of returns per state
            verdicts, z = judge_prediction(V, N, evaluation)
            for v in verdicts:
                check.verdict(v, f"Figure 5.1 ({PRED_EPISODES} episodes): {v.metric}")
            check.plot(_prediction_figure(V, N, evaluation, all(v.passed for v in verdicts), hidden), "figure_5_1")
        failed = [v for v in check.verdicts if not v.passed]
        if failed:
            check.diagnosis.append(
                "Your estimates on the grader's episodes are off by more than Monte Carlo noise explains. "
                "Is every episode's reward credited to the states of that episode only, and are returns summed to "
                "the end of the episode (the only nonzero reward in Blackjack is the last)?")
        else:
            check.note(f"Figure 5.1: sum of z^2 = {check.verdicts[0].estimate:.1f} over 200 states "
                       f"(about 200 expected), largest |z| = {check.verdicts[1].estimate:.2f}")


def _prediction_figure(V, N, evaluation, passed, hidden):
    """Figure 5.1 as lines: V over the 100 states of each panel against the exact value +- 3 SE."""
    gV, gN = bj.grid(V), bj.grid(N)
    gT, gS = bj.grid(evaluation.mc_target), bj.grid(evaluation.mc_sd)
    panels = []
    for usable, title in ((1, "usable ace"), (0, "no usable ace")):
        half = 3 * gS[usable] / np.sqrt(np.maximum(gN[usable], 1))
        panels.append(Panel(
            title=f"Figure 5.1, {title}", ylabel="v(s)", x=np.arange(100),
            learner=gV[usable].ravel(), ref_mean=gT[usable].ravel(), ref_low=(gT[usable] - half).ravel(),
            ref_high=(gT[usable] + half).ravel(), passed=passed,
            xlabel="state: player sum 12..21 (blocks of 10), dealer A..10 within a block",
            ref_label="exact (DP) +- 3 SE", learner_label="your V"))
    fig = curve_figure(panels, f"MC prediction, {PRED_EPISODES:,} episodes of 'stick on 20 or 21'"
                               f"{' (hidden seed)' if hidden else ''}")
    for ax in fig.axes:
        ax.set_xticks(np.arange(0, 100, 10), [str(s) for s in range(12, 22)])
    return fig


# =============================================================================================
# mc_es
# =============================================================================================

_CANNED_POOL = np.array([bj.state_index(13, 10, 0), bj.state_index(16, 7, 0), bj.state_index(18, 9, 1),
                         bj.state_index(12, 4, 0)])
CANNED_EPISODES = 300


_DECISION_SET = frozenset(bj.DECISION_STATES.tolist())


def _bad_start(episode: int, state, action) -> str:
    def plain(x):
        try:
            return int(x)
        except (TypeError, ValueError):
            return repr(x)

    return (f"exploring starts: episode {episode} asked generate_episode "
            f"to start from state {plain(state)} with action {plain(action)}. Exploring starts draw the state from DECISION_STATES "
            "(the 200 states with a player sum of 12 to 21) and the action from {0, 1}.")


class CannedEpisodes:
    """Made-up episodes for the exact part of the MC ES check. Each starts where the learner asks,
    then visits states of a small pool (so pairs repeat within an episode and across episodes),
    taking the action the learner's policy gives, with random rewards. Every call is logged with a
    copy of the policy passed, so the grader can replay the algorithm and say what it expected."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.calls: list[tuple[int, int, np.ndarray, tuple[list, list, list]]] = []

    def __call__(self, start_state, start_action, policy):
        if start_state not in _DECISION_SET or start_action not in (0, 1):
            raise CheckFailed(_bad_start(len(self.calls) + 1, start_state, start_action))
        policy = np.array(policy, copy=True)
        if policy.shape != (bj.N_STATES,):
            raise CheckFailed(f"generate_episode was given a policy of shape {policy.shape}; it needs one action "
                              f"per state, [{bj.N_STATES}].")
        if self.calls:
            length = int(self.rng.integers(1, 5))
            states = [int(start_state)] + [int(s) for s in self.rng.choice(_CANNED_POOL, size=length - 1)]
        else:  # the first episode is long and visits a pool state twice (the same action both times)
            states = [int(start_state), int(_CANNED_POOL[0]), int(_CANNED_POOL[1]), int(_CANNED_POOL[0])]
            length = 4
        actions = [int(start_action)] + [int(policy[s]) for s in states[1:]]
        rewards = [float(r) for r in np.round(self.rng.normal(size=length), 3)]
        self.calls.append((int(start_state), int(start_action), policy, (states, actions, rewards)))
        return list(states), list(actions), list(rewards)


def replay_es(calls) -> tuple[np.ndarray, np.ndarray, int | None, np.ndarray | None]:
    """Replay logged MC ES calls with the book's algorithm. Returns (Q [360, 2], allowed [360, 2] bool:
    the greedy actions after the last episode, first call whose policy was wrong or None, and the
    allowed actions at that call)."""
    Q = np.zeros((bj.N_STATES, 2))
    N = np.zeros((bj.N_STATES, 2), dtype=np.int64)
    updated = np.zeros(bj.N_STATES, dtype=bool)
    initial = stick20()

    def allowed_actions():
        greedy = np.isclose(Q, Q.max(axis=1, keepdims=True), rtol=0, atol=1e-9)  # ties allow both
        return np.where(updated[:, None], greedy, np.eye(2, dtype=bool)[initial])

    first_wrong, wrong_allowed = None, None
    for i, (_, _, policy, (states, actions, rewards)) in enumerate(calls):
        allowed = allowed_actions()
        if first_wrong is None and not allowed[np.arange(bj.N_STATES), np.clip(policy, 0, 1).astype(int)].all():
            first_wrong, wrong_allowed = i, allowed
        G = 0.0
        for t in range(len(states) - 1, -1, -1):
            G += rewards[t]
            pair = (states[t], actions[t])
            if pair in zip(states[:t], actions[:t]):
                continue
            N[pair] += 1
            Q[pair] += (G - Q[pair]) / N[pair]
            updated[states[t]] = True
    return Q, allowed_actions(), first_wrong, wrong_allowed


def judge_es(policy: np.ndarray, reference: dict | None = None) -> tuple[list[stats.Verdict], dict]:
    """Figure 5.2: the learned greedy policy against the DP optimum.

    Verdicts: (1) no mismatch on a decision state whose action gap is >= GAP_CLEAR; (2) the loss of
    the policy's exact value from Gymnasium's deal, v* - v_policy, at most the reference threshold."""
    reference = reference or load_reference()
    es = reference["figure_5_2"]["mc_es_runs"]
    opt = bj.optimal()
    states = bj.DECISION_STATES
    clear = states[opt.gap[states] >= GAP_CLEAR]
    wrong_clear = clear[policy[clear] != opt.policy[clear]]
    wrong_all = states[policy[states] != opt.policy[states]]
    loss = bj.evaluate_policy(opt.policy).start_value() - bj.evaluate_policy(policy).start_value()
    threshold = es["loss_threshold"]
    shown = ", ".join(f"{_show_state(s)}: {'hit' if policy[s] else 'stick'} (gap {opt.gap[s]:.3f})" for s in wrong_clear[:3])
    verdicts = [
        stats.Verdict(wrong_clear.size == 0, "exact", f"optimal action on the {clear.size} clear states",
                      float(wrong_clear.size), 0.0, 0.0, 0.0,
                      f"{wrong_clear.size} of the {clear.size} states where the two actions differ by at least "
                      f"{GAP_CLEAR} in value get the wrong action" + (f": {shown}" if shown else ""),
                      {"wrong": wrong_clear.tolist()}),
        stats.Verdict(loss <= threshold, "threshold", "value lost against the optimal policy", float(loss), 0.0,
                      -np.inf, threshold,
                      f"your greedy policy's exact expected return from the deal is {-loss:+.4f} below the optimum's "
                      f"({bj.evaluate_policy(opt.policy).start_value():.4f}); reference runs lose {es['loss_mean']:.4f} "
                      f"on average (SD {es['loss_sd']:.4f}), correct code stays below {threshold:.4f} 99.9% of the time", {"loss": float(loss)}),
    ]
    return verdicts, {"wrong_all": wrong_all, "wrong_clear": wrong_clear, "loss": loss}


def _start_counts(check: Check, starts: list, n_episodes: int) -> None:
    if len(starts) != n_episodes:
        check.require(False, "one generate_episode call per episode",
                      f"your mc_es called generate_episode {len(starts)} times for n_episodes = {n_episodes}.")
    pairs = np.asarray(starts, dtype=np.int64).reshape(-1, 2)
    s, a = pairs[:, 0], pairs[:, 1]
    outside = ~np.isin(s, bj.DECISION_STATES) | ~np.isin(a, [0, 1])
    if outside.any():
        i = int(np.argmax(outside))
        check.require(False, "exploring starts from the 200 decision states",
                      f"episode {i + 1} started from state {s[i]} with action {a[i]}; starts must be a state of "
                      "DECISION_STATES (player sum 12..21) and an action 0 or 1.")
    counts = np.zeros((bj.N_STATES, 2))
    np.add.at(counts, (s, a), 1)
    counts = counts[bj.DECISION_STATES].ravel()
    p = 1 / counts.size
    sd = np.sqrt(n_episodes * p * (1 - p))
    dev = np.abs(counts - n_episodes * p) / sd
    worst = int(dev.argmax())
    ws, wa = bj.DECISION_STATES[worst // 2], worst % 2
    check.require(dev[worst] <= ES_START_Z, "exploring starts are uniform over the 400 (state, action) pairs",
                  f"{_show_state(ws)} with action {wa} started {int(counts[worst])} of {n_episodes} episodes; "
                  f"expected {n_episodes * p:.0f} +- {ES_START_Z * sd:.0f}. Draw the state uniformly from "
                  "DECISION_STATES and the action uniformly from {0, 1}, independently of the policy.")


def mc_es(fn) -> None:
    """Check `mc_es(generate_episode, n_episodes, rng) -> (Q, policy)`."""
    with Check("ch03.mc_es", "Monte Carlo ES reproduces Figure 5.2",
               hint=f"Q = 0 and the policy 'stick on 20 or 21' to start. Each episode: a random start state from "
                    f"DECISION_STATES and a random first action, then generate_episode(s0, a0, policy); walk back with "
                    f"G += reward; for the first visit of each (s, a): N += 1, Q += (G - Q) / N, policy[s] = argmax "
                    f"Q[s] ({LESSON}, section 4).") as check:
        fn = check.signature(fn, "generate_episode", "n_episodes", "rng")

        def run(generate, n_episodes, seed, label, budget_s):
            out = check.call(fn, generate, n_episodes, np.random.default_rng(seed), what=label, budget_s=budget_s)
            Q, policy = _pair(out, label, ("Q", "policy"))
            Q = check.array(Q, label + " -> Q", shape=(bj.N_STATES, 2))
            policy = check.array(policy, label + " -> policy", shape=(bj.N_STATES,), kind="int")
            if not np.isin(policy, [0, 1]).all():
                raise LearnerCodeError(f"{label} -> policy holds {np.unique(policy)[:5]}; actions are 0 (stick) and 1 (hit).")
            return Q, policy

        # 1. One made-up episode: Q must hold each first-visited pair's return, the policy be greedy there.
        canned = CannedEpisodes(31)
        label = "mc_es(one made-up episode, 1, rng)"
        Q, policy = run(canned, 1, 30, label, UNIT_BUDGET_S)
        if len(canned.calls) != 1:
            check.require(False, "one generate_episode call per episode",
                          f"{label} called generate_episode {len(canned.calls)} times; expected 1.")
        want_Q, allowed, _, _ = replay_es(canned.calls)
        states, actions, rewards = canned.calls[0][3]
        returns = np.cumsum(rewards[::-1])[::-1]
        shown = ", ".join(f"({_short(s)}, a={a}, r={r:g}, G={g:.3f})" for s, a, r, g in zip(states, actions, rewards, returns))
        ok = np.allclose(Q, want_Q, atol=1e-9)
        mistake = ""
        if not ok and np.allclose(Q, _replay_every_visit(canned.calls), atol=1e-9):
            mistake = ". Your Q averages every visit of the repeated pair; only its first visit counts"
        check.require(ok, "Q after one episode holds the return of each pair's first visit",
                      f"episode (state, action, reward, return G_t): {shown}. " + ("" if ok else _q_difference(Q, want_Q))
                      + mistake + ("" if ok else "."))
        ok = allowed[np.arange(bj.N_STATES), policy].all()
        check.require(ok, "after one episode the policy is greedy at the states it visited, unchanged elsewhere",
                      "" if ok else f"{_show_state(int(np.argmin(allowed[np.arange(bj.N_STATES), policy])))} has "
                                    "the wrong action in the returned policy (greedy with respect to Q where the episode "
                                    "updated Q, stick on 20 or 21 elsewhere)")

        # 2. Many made-up episodes: replay the learner's calls and compare every step of the algorithm.
        canned = CannedEpisodes(32)
        label = f"mc_es(made-up episodes, {CANNED_EPISODES}, rng)"
        Q, policy = run(canned, CANNED_EPISODES, 33, label, UNIT_BUDGET_S)
        starts = [(c[0], c[1]) for c in canned.calls]
        if len(starts) != CANNED_EPISODES:
            check.require(False, "one generate_episode call per episode",
                          f"{label} called generate_episode {len(starts)} times; expected {CANNED_EPISODES}.")
        want_Q, allowed, first_wrong, wrong_allowed = replay_es(canned.calls)
        if first_wrong is not None:
            passed = canned.calls[first_wrong][2]
            bad = np.flatnonzero(~wrong_allowed[np.arange(bj.N_STATES), np.clip(passed, 0, 1).astype(int)])
            s = int(bad[0])
            why = ("Q at that point makes the other action greedy" if _was_updated(canned.calls[:first_wrong], s) else
                   "no earlier episode visited that state, so it should still have the initial policy, stick on 20 or 21")
            check.require(False, "the policy passed to generate_episode is greedy with respect to Q so far",
                          f"at episode {first_wrong + 1} your policy at {_show_state(s)} was {int(passed[s])}: {why}. "
                          "Start from threshold_policy(20), improve the policy at a state right after updating its Q, "
                          "and pass the current policy to generate_episode.")
        detail = _q_difference(Q, want_Q) + " (each pair's Q is the average of the returns after its first visit in each episode)"
        if not np.allclose(Q, want_Q, atol=1e-7):
            every = _replay_every_visit(canned.calls)
            if np.allclose(Q, every, atol=1e-7):
                detail += ". Your Q counts every visit; update only the first visit of a pair in an episode."
        check.require(np.allclose(Q, want_Q, atol=1e-7), f"Q after {CANNED_EPISODES} made-up episodes (pairs repeat)", detail)
        ok = allowed[np.arange(bj.N_STATES), policy].all()
        check.require(ok, "the returned policy is greedy with respect to Q",
                      "" if ok else f"{_show_state(int(np.argmin(allowed[np.arange(bj.N_STATES), policy])))} has the "
                                    "wrong action in the returned policy")

        # 3. Figure 5.2 on the grader's Blackjack.
        seeds, hidden = grading_seeds("ch03.mc_es", [ES_SEED])
        for seed in seeds:
            sampler = bj.EpisodeSampler(np.random.default_rng([seed, 1]))
            starts = []

            def generate_episode(start_state, start_action, policy, _starts=starts, _episode=sampler.episode):
                _starts.append((start_state, start_action))
                if start_state not in _DECISION_SET or start_action not in (0, 1):
                    raise CheckFailed(_bad_start(len(_starts), start_state, start_action))
                return _episode(start_state, start_action, policy)

            Q, policy = run(generate_episode, ES_EPISODES, seed, f"mc_es(generate_episode, {ES_EPISODES}, rng)", 150.0)
            _start_counts(check, starts, ES_EPISODES)
            verdicts, facts = judge_es(policy)
            for v in verdicts:
                check.verdict(v, f"Figure 5.2 ({ES_EPISODES} episodes): {v.metric}")
            check.plot(_policy_figure(policy, facts, all(v.passed for v in verdicts), hidden), "figure_5_2")
        failed = [v for v in check.verdicts if not v.passed]
        if failed:
            check.diagnosis.append(
                "Your greedy policy is further from the optimum than exploring-starts control gets in "
                f"{ES_EPISODES} episodes. Do both actions get tried from every start, and is each return "
                "the sum of the rewards to the end of the episode?")
        else:
            es = load_reference()["figure_5_2"]["mc_es_runs"]
            check.note(f"Figure 5.2: {facts['wrong_all'].size} of 200 states differ from the optimum "
                       f"(reference runs: {es['mismatch_mean']:.1f} on average), all with small gaps; "
                       f"value lost {facts['loss']:.4f}")


def _short(state: int) -> str:
    player_sum, dealer, usable = bj.decode(int(state))
    return f"sum {player_sum}{' soft' if usable else ''} vs {'A' if dealer == 1 else dealer}"


def _q_difference(Q, want_Q) -> str:
    err = np.abs(Q - want_Q)
    worst = np.unravel_index(int(err.argmax()), err.shape)
    return f"Q at {_show_state(worst[0])}, action {worst[1]}: yours {Q[worst]:.4f}, expected {want_Q[worst]:.4f}"


def _was_updated(calls, state) -> bool:
    return any(state in c[3][0] for c in calls)


def _replay_every_visit(calls) -> np.ndarray:
    Q = np.zeros((bj.N_STATES, 2))
    N = np.zeros((bj.N_STATES, 2))
    for _, _, _, (states, actions, rewards) in calls:
        G = 0.0
        for t in range(len(states) - 1, -1, -1):
            G += rewards[t]
            N[states[t], actions[t]] += 1
            Q[states[t], actions[t]] += (G - Q[states[t], actions[t]]) / N[states[t], actions[t]]
    return Q


def _policy_figure(policy, facts, passed, hidden):
    """Figure 5.2: the optimal policy (DP) as a grid, with the learner's disagreements marked."""
    import matplotlib.pyplot as plt

    opt = bj.optimal()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    wrong = np.zeros(bj.N_STATES, dtype=bool)
    wrong[facts["wrong_all"]] = True
    for ax, usable, title in ((axes[0], 1, "usable ace"), (axes[1], 0, "no usable ace")):
        grid = bj.grid(opt.policy)[usable]  # [sum 12..21, dealer A..10]
        ax.imshow(grid, origin="lower", cmap="Pastel1_r", vmin=0, vmax=1, aspect="auto",
                  extent=(0.5, 10.5, 11.5, 21.5))
        for i, s in enumerate(range(12, 22)):
            for j, d in enumerate(range(1, 11)):
                state = bj.state_index(s, d, usable)
                mark = "HS"[1 - policy[state]] if wrong[state] else "HS"[1 - opt.policy[state]]
                color = "tab:red" if wrong[state] else "0.3"
                weight = "bold" if wrong[state] else "normal"
                ax.text(d, s, mark, ha="center", va="center", color=color, fontsize=8, fontweight=weight)
        ax.set(title=f"{title}: optimal policy (DP); red = your action differs", xlabel="dealer showing",
               ylabel="player sum", xticks=range(1, 11), yticks=range(12, 22))
        ax.set_xticklabels(["A"] + [str(i) for i in range(2, 11)])
    fig.suptitle(f"Figure 5.2, {ES_EPISODES:,} episodes of MC ES{' (hidden seed)' if hidden else ''}: "
                 f"{facts['wrong_all'].size} states differ, value lost {facts['loss']:.4f}  " + ("✔" if passed else "✘"),
                 fontsize=10)
    fig.tight_layout()
    return fig


# =============================================================================================
# off_policy_estimates
# =============================================================================================

# Hand episodes over 2 states and 2 actions. target: state 0 always action 0, state 1 either
# action; behavior: uniform. A: rho = (1 / 0.5) * (0.5 / 0.5) = 2, G = 1. B: rho = 0 (the
# target never takes action 1 in state 0), G = -1. C: rho = 2, G = -1.
_TARGET = np.array([[1.0, 0.0], [0.5, 0.5]])
_BEHAVIOR = np.full((2, 2), 0.5)
_A = ([0, 1], [0, 1], [0.0, 1.0])
_B = ([0], [1], [-1.0])
_C = ([0, 1], [0, 0], [0.0, -1.0])
IS_HAND_CASES = [
    ([_A], [2.0], [1.0], "one episode with rho = 2 and G = 1: ordinary 2 * 1 / 1 = 2, weighted 2 * 1 / 2 = 1"),
    ([_B, _A], [0.0, 1.0], [0.0, 1.0],
     "an episode the target could not produce (rho = 0) first: weighted is 0 while the sum of ratios is 0"),
    ([_A, _B, _C], [2.0, 1.0, 0.0], [1.0, 1.0, 0.0],
     "three episodes: ordinary divides by the number of episodes, weighted by the sum of the ratios"),
]


def _is_mistakes(episodes, target, behavior, gamma) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    ep = ref.Episodes.coerce(episodes)
    G = ref.episode_returns(ep, gamma)
    k = np.arange(1, len(ep) + 1)
    rho = ref.importance_ratios(ep, target, behavior)
    out = {}
    first_only = np.array([target[s[0], a[0]] / behavior[s[0], a[0]] for s, a, _ in ep])
    no_last = np.array([np.prod(target[s[:-1], a[:-1]] / behavior[s[:-1], a[:-1]]) for s, a, _ in ep])
    for name, r in (("the ratio of the first step only", first_only),
                    ("the ratio without the last step's factor", no_last)):
        num, den = np.cumsum(r * G), np.cumsum(r)
        out[name] = (num / k, np.divide(num, den, out=np.zeros(len(ep)), where=den > 0))
    num = np.cumsum(rho * G)
    nonzero = np.cumsum(rho > 0)
    out["the weighted denominator counting episodes with rho > 0 instead of summing the ratios"] = (
        num / k, np.divide(num, nonzero, out=np.zeros(len(ep)), where=nonzero > 0))
    out["ordinary and weighted swapped"] = ref.off_policy_estimates(ep, target, behavior, gamma)[::-1]
    return out


def window_log_mse(estimates: np.ndarray, value: float, first: int, last: int) -> np.ndarray:
    """Per run, log10 of the mean squared error over episodes first..last (1-based, inclusive).
    estimates [runs, E] -> [runs]. A floor of 1e-12 keeps an exact answer finite."""
    return np.log10(np.maximum(((estimates[:, first - 1:last] - value) ** 2).mean(axis=1), 1e-12))


def judge_is(ordinary: np.ndarray, weighted: np.ndarray, reference: dict | None = None,
             z: float = IS_Z) -> list[stats.Verdict]:
    """Figure 5.3: equivalence of per-run log10 window MSEs with the reference runs.
    ordinary, weighted: estimates [runs, E] after each episode."""
    reference = reference or load_reference()
    fig = reference["figure_5_3"]
    value = fig["v_exact"]
    verdicts = []
    for name, first, last in IS_WINDOWS:
        x = window_log_mse(ordinary if name == "ordinary" else weighted, value, first, last)
        r = fig["windows"][f"{name} {first}-{last}"]
        verdicts.append(stats.equivalence_to(x, r, margin=IS_MARGIN, z=z,
                                             metric=f"{name} IS, log10 MSE over episodes {first}-{last}"))
    return verdicts


def _is_diagnosis(failed: list[stats.Verdict]) -> list[str]:
    notes = []
    for v in failed:
        direction = "higher" if v.estimate > v.high else "lower"
        notes.append(f"{v.metric}: {v.estimate:.2f}, {direction} than the reference {v.reference:.2f} "
                     f"(an error {10 ** abs(v.estimate - v.reference):.1f} times {direction}).")
        if "1001" in v.metric and direction == "higher":
            notes.append("A late error that stays high means a biased estimate: is rho the product over *every* step "
                         "of the episode of target / behavior, and G the whole episode's return?")
        elif "weighted" in v.metric:
            notes.append("Weighted importance sampling divides the sum of rho * G by the sum of the ratios "
                         "(0 while that sum is 0).")
        elif "ordinary" in v.metric:
            notes.append("Ordinary importance sampling divides the sum of rho * G by the number of episodes.")
    return notes


def off_policy_estimates(fn) -> None:
    """Check `off_policy_estimates(episodes, target, behavior, gamma) -> (ordinary, weighted)`."""
    with Check("ch03.off_policy_estimates", "ordinary and weighted importance sampling reproduce Figure 5.3",
               hint=f"rho = product over the episode's steps of target[s, a] / behavior[s, a]; G = the episode's "
                    f"return. ordinary[k] = sum(rho * G) / k, weighted[k] = sum(rho * G) / sum(rho) (0 while the "
                    f"sum of ratios is 0), over the first k episodes ({LESSON}, section 5).") as check:
        fn = check.signature(fn, "episodes", "target", "behavior", "gamma")

        def run(episodes, target, behavior, gamma, label, budget_s=None):
            out = check.call(fn, episodes, target, behavior, gamma, what=label, budget_s=budget_s or UNIT_BUDGET_S)
            o, w = _pair(out, label, ("ordinary", "weighted"))
            n = len(episodes)
            return (check.array(o, label + " -> ordinary", shape=(n,)),
                    check.array(w, label + " -> weighted", shape=(n,)))

        # 1. Hand cases.
        for episodes, want_o, want_w, shows in IS_HAND_CASES:
            label = f"off_policy_estimates({len(episodes)} hand episode(s), target, behavior, 1.0)"
            o, w = run(episodes, _TARGET.copy(), _BEHAVIOR.copy(), 1.0, label)
            ok = np.allclose(o, want_o) and np.allclose(w, want_w)
            hint = "" if ok else _which_is(o, w, _is_mistakes(episodes, _TARGET, _BEHAVIOR, 1.0))
            check.require(ok, shows, f"target {_TARGET.tolist()}, behavior uniform, episodes "
                                     f"{[tuple(list(x) for x in e) for e in episodes]}: got ordinary {_fmt(o)}, "
                                     f"weighted {_fmt(w)}; expected {_fmt(want_o)} and {_fmt(want_w)}.{hint}")
        # 2. Random cases against rlcore: stochastic target and behavior, discounted and not.
        rng = np.random.default_rng(34)
        for gamma in (1.0, 0.9):
            target = rng.dirichlet(np.ones(3), size=5)
            behavior = 0.5 * rng.dirichlet(np.ones(3), size=5) + 0.5 / 3  # every action likely enough
            episodes = _random_episodes(rng, 400, 5, 3, 6, behavior)
            want_o, want_w = ref.off_policy_estimates(episodes, target, behavior, gamma)
            o, w = run(episodes, target.copy(), behavior.copy(), gamma,
                       f"off_policy_estimates(400 random episodes, 5 states x 3 actions, gamma={gamma})")
            ok = np.allclose(o, want_o, rtol=1e-7, atol=1e-9) and np.allclose(w, want_w, rtol=1e-7, atol=1e-9)
            k = int(np.argmax(~(np.isclose(o, want_o, rtol=1e-7, atol=1e-9) & np.isclose(w, want_w, rtol=1e-7, atol=1e-9))))
            hint = "" if ok else _which_is(o, w, _is_mistakes(episodes, target, behavior, gamma))
            check.require(ok, f"400 random episodes, stochastic target and behavior, gamma = {gamma}",
                          f"first difference after {k + 1} episodes: ordinary {o[k]:.5g} (expected {want_o[k]:.5g}), "
                          f"weighted {w[k]:.5g} (expected {want_w[k]:.5g}).{hint}")
        # 3. Figure 5.3: 100 runs x 10,000 episodes from the book's state.
        target, behavior = is_policies()
        reference = load_reference()
        seeds, hidden = grading_seeds("ch03.off_policy_estimates", [IS_SEED])
        for seed in seeds:
            episodes = bj.generate_episodes(behavior, IS_RUNS * IS_EPISODES, np.random.default_rng(seed),
                                            start_state=IS_STATE)
            ordinary = np.empty((IS_RUNS, IS_EPISODES))
            weighted = np.empty((IS_RUNS, IS_EPISODES))
            for r in range(IS_RUNS):
                run_episodes = episodes[r * IS_EPISODES:(r + 1) * IS_EPISODES]
                ordinary[r], weighted[r] = run(run_episodes, target.copy(), behavior.copy(), 1.0,
                                               f"off_policy_estimates(run {r + 1}: {IS_EPISODES} Blackjack episodes, "
                                               "target, behavior, 1.0)")
            verdicts = judge_is(ordinary, weighted, reference)
            for v in verdicts:
                check.verdict(v, f"Figure 5.3: {v.metric}")
            check.plot(_is_figure(ordinary, weighted, reference, verdicts, hidden), "figure_5_3")
        failed = [v for v in check.verdicts if not v.passed]
        if failed:
            check.diagnosis.extend(_is_diagnosis(failed))
        else:
            fig = reference["figure_5_3"]
            check.note(f"Figure 5.3: after {IS_EPISODES} episodes your runs average ordinary "
                       f"{ordinary[:, -1].mean():.4f}, weighted {weighted[:, -1].mean():.4f}; "
                       f"v = {fig['v_exact']:.5f} (exact), {fig['v_book']} (book)")


def _which_is(o, w, mistakes) -> str:
    for name, (mo, mw) in mistakes.items():
        if np.allclose(o, mo, rtol=1e-7, atol=1e-9) and np.allclose(w, mw, rtol=1e-7, atol=1e-9):
            return f" Your answer is what you get with {name}."
    return ""


def _is_figure(ordinary, weighted, reference, verdicts, hidden):
    """Figure 5.3: the learner's MSE curves (over 100 runs) against the reference band."""
    fig_ref = reference["figure_5_3"]
    value = fig_ref["v_exact"]
    x = np.asarray(fig_ref["curves"]["episodes"])
    panels = []
    for name, est in (("ordinary", ordinary), ("weighted", weighted)):
        curve = fig_ref["curves"][name]
        mean, sd = np.asarray(curve["mse_mean"]), np.asarray(curve["mse_sd"])
        half = 3 * sd / np.sqrt(IS_RUNS)
        learner = ((est[:, x - 1] - value) ** 2).mean(axis=0)
        passed = all(v.passed for v in verdicts if v.metric.startswith(name))
        panels.append(Panel(title=f"{name} importance sampling", ylabel=f"MSE (average over {IS_RUNS} runs)", x=x,
                            learner=learner, ref_mean=mean, ref_low=np.maximum(mean - half, 1e-6), ref_high=mean + half,
                            passed=passed, xlabel="episodes (log scale)",
                            ref_label=f"reference ({fig_ref['runs']} runs), 99.7% band for {IS_RUNS} runs"))
    fig = curve_figure(panels, f"Figure 5.3: v(13, dealer 2, usable ace) by importance sampling"
                               f"{' (hidden seed)' if hidden else ''}")
    for ax, panel in zip(fig.axes, panels):
        ax.set_xscale("log")
        ax.set_yscale("log")
        # Early on, ordinary IS is so heavy-tailed that mean - 3 SE is below 0: cut the band at the axis.
        ax.set_ylim(bottom=0.3 * min(panel.ref_mean.min(), panel.learner.min()))
        ax.legend(fontsize=7, loc="upper right")  # the curves fall to the lower right
    return fig
