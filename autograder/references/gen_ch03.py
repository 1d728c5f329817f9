"""Regenerate our reference data for chapter 03 (autograder/references/ch03_monte_carlo.json).

    python -m autograder.references.gen_ch03          # about 7 minutes on one core

Blackjack with the book's rules (Gymnasium's Blackjack-v1, sab=True), infinite deck. Three parts:

1. Figure 5.1: exact values of the policy "stick on 20 or 21" by dynamic programming
   (rlcore.tabular.blackjack.evaluate_policy), the exact first-visit MC targets and return SDs, and
   100 simulated gradings of the check's rule (500,000 episodes each) to show its false-failure rate.
2. Figure 5.2: the optimal policy by dynamic programming, and 100 runs of rlcore's MC ES
   (rlcore.tabular.mc.mc_es) of 200,000 episodes each: how far a correct learner's greedy policy
   stays from the optimum (value lost, states that differ, and the largest action gap among them).
   The check's loss threshold is the 99.9% quantile of a conservative model of the loss fitted to
   these runs (each state wrong independently, at its observed rate or its gap band's, whichever is higher).
3. Figure 5.3 / Example 5.4: 2000 runs (the book: 100) of 10,000 episodes from (13, dealer 2, usable
   ace) under the uniform behavior policy, estimated by rlcore's ordinary and weighted importance
   sampling: per-run log10 MSE over the graded windows, MSE curves at log-spaced episodes, the exact
   ordinary-IS MSE (Var(rho G) / k, from DP), and the check rule's false-failure rate measured by
   drawing 100-run sets from one half of the runs and judging them against the other half.

The published numbers (shared references, section 1a) are stored beside ours with the largest
difference between the two.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import gymnasium
import numpy as np

import rlcore
from autograder import stats
from autograder.checks import ch03
from rlcore.tabular import blackjack as bj
from rlcore.tabular import mc

OUT = Path(__file__).parent / "ch03_monte_carlo.json"
SEED_PRED, SEED_ES, SEED_IS, SEED_CAL = 20260301, 20260302, 20260303, 20260304  # none is a check's seed
PRED_GRADINGS = 100
ES_RUNS = 100
IS_RUNS = 2000
IS_CALIBRATION_DRAWS = 4000

SOURCE = ("Sutton & Barto, Reinforcement Learning: An Introduction, 2nd ed., section 5.1-5.7 (Examples 5.1, 5.3, 5.4; "
          "Figures 5.1-5.3); exact values from an independent DP (shared/references/published_results.md section 1a, "
          "status COMPUTED); v = -0.27726 quoted from the book's text (V-primary)")

# Section 1a of the shared references. Dealer order A, 2, ..., 10.
PUBLISHED_FIG_5_1 = {
    "no usable ace, sum 20": [0.146, 0.640, 0.650, 0.661, 0.670, 0.704, 0.773, 0.792, 0.758, 0.435],
    "no usable ace, sum 13": [-0.666, -0.577, -0.576, -0.574, -0.573, -0.567, -0.556, -0.553, -0.556, -0.601],
    "usable ace, sum 13": [-0.429, -0.277, -0.274, -0.271, -0.269, -0.260, -0.241, -0.236, -0.241, -0.318],
}
PUBLISHED_FIG_5_2 = {
    "usable ace": {12: "H" * 10, 13: "H" * 10, 14: "H" * 10, 15: "H" * 10, 16: "H" * 10, 17: "H" * 10,
                   18: "HSSSSSSSHH", 19: "S" * 10, 20: "S" * 10, 21: "S" * 10},
    "no usable ace": {12: "HHHSSSHHHH", 13: "HSSSSSHHHH", 14: "HSSSSSHHHH", 15: "HSSSSSHHHH", 16: "HSSSSSHHHH",
                      17: "S" * 10, 18: "S" * 10, 19: "S" * 10, 20: "S" * 10, 21: "S" * 10},
}
PUBLISHED_V_STAR = {"(13, no usable ace, dealer 2)": -0.293, "(16, no usable ace, dealer 10)": -0.569,
                    "(18, usable ace, dealer 9)": -0.101}
V_BOOK, V_EXACT_PUBLISHED = -0.27726, -0.27720


def _r(x, digits=5):
    return np.round(np.asarray(x, dtype=float), digits).tolist()


def figure_5_1() -> dict:
    ev = bj.evaluate_policy(ch03.stick20())
    grid_v = bj.grid(ev.v)
    ours = {"no usable ace, sum 20": grid_v[0, 8], "no usable ace, sum 13": grid_v[0, 1], "usable ace, sum 13": grid_v[1, 1]}
    diff = max(float(np.abs(ours[k] - np.array(v)).max()) for k, v in PUBLISHED_FIG_5_1.items())
    print(f"Figure 5.1: exact v_pi vs published rows, largest difference {diff:.4f}")
    # The check's rule on fresh episodes: how its statistics fall for a correct estimator.
    chi2, zmax, fails = [], [], 0
    for i in range(PRED_GRADINGS):
        episodes = bj.generate_episodes(ch03.stick20(), ch03.PRED_EPISODES, np.random.default_rng([SEED_PRED, i]))
        V, N = mc.mc_prediction(episodes, bj.N_STATES)
        verdicts, _ = ch03.judge_prediction(V, N, ev)
        chi2.append(verdicts[0].estimate)
        zmax.append(verdicts[1].estimate)
        fails += not all(v.passed for v in verdicts)
    print(f"  {PRED_GRADINGS} simulated gradings: sum z^2 {np.mean(chi2):.1f} +- {np.std(chi2):.1f} (200 expected), "
          f"max |z| {np.mean(zmax):.2f}, {fails} failed")
    return {
        "policy": "stick on 20 or 21, hit otherwise",
        "layout": "grids are [usable ace (0 no, 1 yes)][player sum 12..21][dealer A, 2, ..., 10]",
        "v_exact": _r(bj.grid(ev.v)),
        "mc_target": _r(bj.grid(ev.mc_target)),
        "mc_return_sd": _r(bj.grid(ev.mc_sd)),
        "note": ("mc_target equals v_exact except at sum 21 with a usable ace, where naturals and three-card 21s "
                 "share the observation; a first-visit MC estimate converges to their visit-weighted mix"),
        "start_value": round(ev.start_value(), 6),
        "published": {"values": PUBLISHED_FIG_5_1, "status": "COMPUTED (exact DP)", "largest_difference": round(diff, 5)},
        "rule_simulation": {"gradings": PRED_GRADINGS, "episodes": ch03.PRED_EPISODES,
                            "sum_z2_mean": round(float(np.mean(chi2)), 2), "sum_z2_sd": round(float(np.std(chi2)), 2),
                            "max_abs_z_mean": round(float(np.mean(zmax)), 3), "max_abs_z_max": round(float(np.max(zmax)), 3),
                            "failed": fails},
    }


def figure_5_2() -> dict:
    opt = bj.optimal()
    letters = np.array(["S", "H"])[opt.policy]
    ours = {"usable ace": {s: "".join(bj.grid(letters)[1, s - 12]) for s in range(12, 22)},
            "no usable ace": {s: "".join(bj.grid(letters)[0, s - 12]) for s in range(12, 22)}}
    policy_matches = ours == PUBLISHED_FIG_5_2
    v_star = {"(13, no usable ace, dealer 2)": opt.v[bj.state_index(13, 2, 0)],
              "(16, no usable ace, dealer 10)": opt.v[bj.state_index(16, 10, 0)],
              "(18, usable ace, dealer 9)": opt.v[bj.state_index(18, 9, 1)]}
    v_diff = max(abs(v_star[k] - PUBLISHED_V_STAR[k]) for k in v_star)
    optimal_start = bj.evaluate_policy(opt.policy).start_value()
    print(f"Figure 5.2: optimal policy equals the published one: {policy_matches}; v* differences {v_diff:.4f}; "
          f"optimal expected return {optimal_start:.5f}")
    states = bj.DECISION_STATES
    losses, mismatches, worst_gap = [], [], []
    mismatch_count = np.zeros(bj.N_STATES, dtype=int)
    start = time.perf_counter()
    for r in range(ES_RUNS):
        sampler = bj.EpisodeSampler(np.random.default_rng([SEED_ES, r, 1]))
        _, policy = mc.mc_es(sampler.episode, ch03.ES_EPISODES, np.random.default_rng([SEED_ES, r]),
                             start_states=states, n_states=bj.N_STATES, initial_policy=ch03.stick20())
        wrong = states[policy[states] != opt.policy[states]]
        mismatch_count[wrong] += 1
        losses.append(optimal_start - bj.evaluate_policy(policy).start_value())
        mismatches.append(wrong.size)
        worst_gap.append(float(opt.gap[wrong].max()) if wrong.size else 0.0)
        if r % 10 == 9:
            print(f"  MC ES run {r + 1}/{ES_RUNS}: loss {losses[-1]:.4f}, {wrong.size} states differ "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    losses = np.array(losses)
    bands = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 2.0]
    by_gap = {}
    for lo, hi in zip(bands[:-1], bands[1:]):
        in_band = states[(opt.gap[states] >= lo) & (opt.gap[states] < hi)]
        by_gap[f"{lo}-{hi}"] = {"states": int(in_band.size),
                                "mismatch_rate": round(float(mismatch_count[in_band].sum() / max(in_band.size * ES_RUNS, 1)), 4)}
    # The loss threshold. 100 runs cannot show a 0.1% tail, so model it: the loss is a sum over the
    # states a policy gets wrong of (visits from the deal) x (action gap), the performance-difference
    # identity. Drawing each state wrong independently with its observed rate reproduces the runs'
    # mean and SD; to be conservative, each state gets its gap band's rate where that is higher (a
    # state never seen wrong in 100 runs still can be). The threshold is that model's 99.9% quantile,
    # and at least the runs' mean + ES_LOSS_SDS SD.
    band_rate = np.zeros(bj.N_STATES)
    for lo, hi in zip(bands[:-1], bands[1:]):
        in_band = states[(opt.gap[states] >= lo) & (opt.gap[states] < hi)]
        band_rate[in_band] = by_gap[f"{lo}-{hi}"]["mismatch_rate"]
    rate = np.maximum(mismatch_count / ES_RUNS, band_rate)[states]
    ev = bj.evaluate_policy(opt.policy)
    weight = (ev.visits * opt.gap)[states]
    model_rng = np.random.default_rng(SEED_ES + 1)
    model = np.concatenate([(model_rng.random((20_000, states.size)) < rate) @ weight for _ in range(10)])
    observed = np.concatenate([(model_rng.random((20_000, states.size)) < (mismatch_count / ES_RUNS)[states]) @ weight
                               for _ in range(10)])
    threshold = max(float(np.quantile(model, 0.999)), float(losses.mean() + ch03.ES_LOSS_SDS * losses.std(ddof=1)))
    exceed = float((model > threshold).mean())
    print(f"  loss {losses.mean():.4f} +- {losses.std(ddof=1):.4f} (max {losses.max():.4f}); model with observed rates "
          f"{observed.mean():.4f} +- {observed.std():.4f}, conservative model {model.mean():.4f} +- {model.std():.4f}; "
          f"threshold {threshold:.4f}, P(conservative model > threshold) = {exceed:.4f}")
    print(f"  states differing {np.mean(mismatches):.1f} on average; largest gap of a wrong state {max(worst_gap):.3f}")
    return {
        "optimal_policy": ours,
        "gap": _r(bj.grid(opt.gap), 4),
        "v_star": _r(bj.grid(opt.v), 4),
        "optimal_start_value": round(optimal_start, 6),
        "published": {"policy": PUBLISHED_FIG_5_2, "policy_matches": policy_matches, "v_star": PUBLISHED_V_STAR,
                      "v_star_ours": {k: round(float(v), 4) for k, v in v_star.items()},
                      "largest_difference": round(float(v_diff), 5), "status": "COMPUTED (exact DP)"},
        "mc_es_runs": {
            "runs": ES_RUNS, "episodes": ch03.ES_EPISODES, "seed": SEED_ES,
            "algorithm": "rlcore.tabular.mc.mc_es: first-visit, sample averages, starts uniform over 200 states x 2 "
                         "actions, initial policy stick on 20 or 21, episodes by rlcore.tabular.blackjack.EpisodeSampler",
            "loss_mean": round(float(losses.mean()), 6), "loss_sd": round(float(losses.std(ddof=1)), 6),
            "loss_max": round(float(losses.max()), 6), "loss_threshold": round(threshold, 6),
            "loss_threshold_rule": f"99.9% quantile of the conservative loss model (loss_model), at least the runs' "
                                   f"mean + {ch03.ES_LOSS_SDS:g} SD",
            "mismatch_mean": round(float(np.mean(mismatches)), 2), "mismatch_max": int(np.max(mismatches)),
            "largest_gap_mismatched": round(max(worst_gap), 4), "gap_clear": ch03.GAP_CLEAR,
            "mismatch_rate_by_gap": by_gap,
            "loss_quantiles": {q: round(float(np.quantile(losses, float(q))), 6) for q in ("0.5", "0.9", "0.99")},
            "mismatch_count": bj.grid(mismatch_count).tolist(),
            "loss_model": {"mean": round(float(model.mean()), 6), "sd": round(float(model.std()), 6),
                           "p_exceed_threshold": exceed, "draws": int(model.size),
                           "observed_rates_mean": round(float(observed.mean()), 6),
                           "observed_rates_sd": round(float(observed.std()), 6),
                           "observed_rates_p_exceed_threshold": float((observed > threshold).mean()),
                           "method": "sum over decision states of visits(s) x gap(s) x Bernoulli(rate(s)), rate = "
                                     "max(observed mismatch rate, its gap band's rate), states independent"},
        },
    }


def _log_points(n: int, count: int = 60) -> np.ndarray:
    return np.unique(np.round(np.logspace(0, np.log10(n), count)).astype(int))


def figure_5_3() -> dict:
    target, behavior = ch03.is_policies()
    value = float(bj.evaluate_policy(ch03.stick20()).v[ch03.IS_STATE])
    second = bj.importance_sampling_second_moment(target, behavior, ch03.IS_STATE)
    variance = second - value**2
    E = ch03.IS_EPISODES
    points = _log_points(E)
    windows = list(ch03.IS_WINDOWS) + [(n, 11, 100) for n in ("ordinary", "weighted")] + \
        [(n, 101, 1000) for n in ("ordinary", "weighted")]
    per_run = {f"{n} {a}-{b}": [] for n, a, b in windows}
    sums = {n: np.zeros(points.size) for n in ("ordinary", "weighted")}
    sq = {n: np.zeros(points.size) for n in ("ordinary", "weighted")}
    final = {n: [] for n in ("ordinary", "weighted")}
    chunk = 100
    rng = np.random.default_rng(SEED_IS)
    start = time.perf_counter()
    for c in range(IS_RUNS // chunk):
        episodes = bj.generate_episodes(behavior, chunk * E, rng, start_state=ch03.IS_STATE)
        est = {"ordinary": np.empty((chunk, E)), "weighted": np.empty((chunk, E))}
        for r in range(chunk):
            est["ordinary"][r], est["weighted"][r] = mc.off_policy_estimates(episodes[r * E:(r + 1) * E], target, behavior)
        for n, a, b in windows:
            per_run[f"{n} {a}-{b}"].append(ch03.window_log_mse(est[n], value, a, b))
        for n, x in est.items():
            err = (x[:, points - 1] - value) ** 2
            sums[n] += err.sum(axis=0)
            sq[n] += (err**2).sum(axis=0)
            final[n].append(x[:, -1])
    print(f"Figure 5.3: {IS_RUNS} runs x {E} episodes in {time.perf_counter() - start:.0f} s")
    per_run = {k: np.concatenate(v) for k, v in per_run.items()}
    curves = {"episodes": points.tolist()}
    for n in ("ordinary", "weighted"):
        mean = sums[n] / IS_RUNS
        sd = np.sqrt(np.maximum(sq[n] / IS_RUNS - mean**2, 0) * IS_RUNS / (IS_RUNS - 1))
        curves[n] = {"mse_mean": _r(mean, 6), "mse_sd": _r(sd, 6)}
    curves["ordinary"]["mse_exact"] = _r(variance / points, 6)
    ratio = np.asarray(curves["ordinary"]["mse_mean"]) / (variance / points)
    print(f"  ordinary MSE / exact Var/k: median {np.median(ratio):.3f}, range {ratio.min():.2f}-{ratio.max():.2f}")
    windows_out = {k: {"mean": round(float(v.mean()), 5), "sd": round(float(v.std(ddof=1)), 5), "n": int(v.size)}
                   for k, v in per_run.items()}
    # The check's false-failure rate: 100-run sets drawn from one half, judged against the other half.
    half = IS_RUNS // 2
    cal_rng = np.random.default_rng(SEED_CAL)
    fails = {f"{n} {a}-{b}": 0 for n, a, b in ch03.IS_WINDOWS}
    any_fail = {ch03.IS_Z: 0, 3.0: 0}
    for _ in range(IS_CALIBRATION_DRAWS):
        pick = cal_rng.choice(np.arange(half, IS_RUNS), size=ch03.IS_RUNS, replace=False)
        for z in any_fail:
            failed = False
            for n, a, b in ch03.IS_WINDOWS:
                key = f"{n} {a}-{b}"
                ref_half = per_run[key][:half]
                verdict = stats.equivalence(per_run[key][pick], ref_mean=ref_half.mean(),
                                                 ref_se=ref_half.std(ddof=1) / np.sqrt(half), margin=ch03.IS_MARGIN, z=z)
                failed |= not verdict.passed
                if z == ch03.IS_Z:
                    fails[key] += not verdict.passed
            any_fail[z] += failed
    rates = {k: round(v / IS_CALIBRATION_DRAWS, 4) for k, v in fails.items()}
    print(f"  false-failure rate of the rule (z = {ch03.IS_Z}): {any_fail[ch03.IS_Z] / IS_CALIBRATION_DRAWS:.4f} "
          f"(z = 3: {any_fail[3.0] / IS_CALIBRATION_DRAWS:.4f}); per window {rates}")
    final_o, final_w = np.concatenate(final["ordinary"]), np.concatenate(final["weighted"])
    return {
        "state": "player sum 13, usable ace, dealer shows 2 (not a natural)",
        "target": "stick on 20 or 21", "behavior": "hit or stick with probability 1/2 each",
        "v_exact": round(value, 6), "v_book": V_BOOK, "v_exact_published": V_EXACT_PUBLISHED,
        "v_status": "book: Monte Carlo estimate over 100,000,000 episodes (V-primary); exact: our DP (COMPUTED)",
        "var_rho_G": round(variance, 6), "second_moment_rho_G": round(second, 6),
        "ordinary_mse_exact": "var_rho_G / k after k episodes (ordinary IS is an average of k independent rho * G)",
        "runs": IS_RUNS, "episodes": E, "seed": SEED_IS,
        "estimate_after_10000": {"ordinary_mean": round(float(final_o.mean()), 5), "ordinary_sd": round(float(final_o.std()), 5),
                                 "weighted_mean": round(float(final_w.mean()), 5), "weighted_sd": round(float(final_w.std()), 5)},
        "windows": windows_out,
        "window_metric": "per run: log10 of the mean of (estimate - v)^2 over the window's episodes; then mean and SD over runs",
        "curves": curves,
        "rule_calibration": {"draws": IS_CALIBRATION_DRAWS, "runs_per_draw": ch03.IS_RUNS, "z": ch03.IS_Z,
                             "margin": ch03.IS_MARGIN, "false_failure_rate": round(any_fail[ch03.IS_Z] / IS_CALIBRATION_DRAWS, 4),
                             "false_failure_rate_z3": round(any_fail[3.0] / IS_CALIBRATION_DRAWS, 4),
                             "per_window": rates,
                             "method": "100-run sets drawn without replacement from runs 1001-2000, judged against runs 1-1000"},
    }


def main() -> None:
    start = time.perf_counter()
    data = {
        "chapter": "03_monte_carlo",
        "description": "Exact Blackjack values and policies (DP), and our reference runs of rlcore's Monte Carlo methods.",
        "command": "python -m autograder.references.gen_ch03",
        "source": SOURCE,
        "environment": "gymnasium.make('Blackjack-v1', sab=True): infinite deck, dealer stands on all 17s, "
                       "a natural wins +1 unless the dealer has one too (draw); gamma = 1",
        "versions": {"rlcore": rlcore.__version__, "numpy": np.__version__, "gymnasium": gymnasium.__version__,
                     "python": platform.python_version()},
        "figure_5_1": figure_5_1(),
        "figure_5_2": figure_5_2(),
        "figure_5_3": figure_5_3(),
    }
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
