"""Regenerate our reference runs for chapter 06 (autograder/references/ch06_function_approximation.json).

    python -m autograder.references.gen_ch06          # about 5 minutes of CPU

Everything runs on rlcore's batched learner, `rlcore.tabular.approx.run_sarsa`, on the book's
Mountain Car (no time limit), 8 tilings of 8 x 8 tiles with asymmetric offsets, Q0 = 0, epsilon = 0:

- Figure 10.2: one-step Sarsa, alpha = 0.5/8, 0.2/8, 0.1/8, 500 episodes, 300 runs each (book: 100);
- Figure 10.3: n-step Sarsa with n = 8, alpha = 0.3/8, 500 episodes, 300 runs (n = 1 is Figure 10.2's 0.5/8);
- Figure 10.4: mean steps per episode over the first 50 episodes for n = 1, 2, 4, 8, 16 over a grid
  of alpha, 100 runs per point (the book's count);
- the graded experiments of autograder/checks/ch06.py (CURVE_CONFIGS), 1000 runs each: per-run
  metrics (mean and SD, from which the checks take standard errors) and per-episode mean and SD
  (the feedback plots' bands).

A run whose episode passes MAX_EPISODE_STEPS steps is given up ("trapped", see rlcore.tabular.approx)
and left out of the statistics; how many were is stored. The published values (shared references,
section 1b) are stored beside ours as anchors, with the agreement in units of the combined standard
error where the published value has one.
"""

from __future__ import annotations

import json
import platform
import re
import time
from pathlib import Path

import numpy as np

import rlcore
from autograder.checks.ch06 import CURVE_CONFIGS, MAX_EPISODE_STEPS
from rlcore.tabular.approx import run_sarsa

OUT = Path(__file__).parent / "ch06_function_approximation.json"
SEED = 20_180_610  # distinct from the checks' visible seeds (6010, 6020) and replay seeds (6100+)
FIG_10_2_RUNS, FIG_10_2_EPISODES, FIG_10_2_ALPHAS = 300, 500, (0.5, 0.2, 0.1)  # alpha x 8
FIG_10_3_RUNS = 300
FIG_10_4_RUNS, FIG_10_4_EPISODES = 100, 50
FIG_10_4_GRID = {  # alpha x 8 per n; the largest values of n = 8 and 16 are where learning breaks down
    1: (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6),
    2: (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6),
    4: (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4),
    8: (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0),
    16: (0.1, 0.2, 0.3, 0.4, 0.5, 0.6),
}
CHECK_RUNS = 1000

SOURCE = ("Sutton & Barto, Reinforcement Learning: An Introduction, 2nd ed., Example 10.1, Figures 10.2-10.4; "
          "values reproduced by an independent implementation (shared/references/published_results.md section 1b, "
          "status COMPUTED, 100-run averages; the book's figures average 100 runs)")
# Published anchors (section 1b): metric -> (value, SD of one run or None, status).
PUBLISHED = {
    0.5: {"steps in episode 1": (1548, None), "steps in episode 10": (315, None), "steps in episode 50": (166, None),
          "steps in episode 100": (143, None), "steps in episode 500": (118, None),
          "mean steps, episodes 451-500": (116.3, 4.3), "mean steps, episodes 1-50": (284.4, None)},
    0.2: {"steps in episode 1": (2379, None), "steps in episode 50": (212, None), "mean steps, episodes 451-500": (124.9, None)},
    0.1: {"steps in episode 1": (3458, None), "steps in episode 50": (262, None), "mean steps, episodes 451-500": (136.5, None)},
    "n8": {"mean steps, episodes 1-50": (243.7, None)},
}
PUBLISHED_FIG_10_4_MINIMA = {1: (1.4, 228.7), 2: (1.2, 227.8), 4: (1.0, 224.6), 8: (0.6, 224.4), 16: (0.4, 234.2)}
BOOK_TEXT = ("Example 10.1: 8 tilings, each tile 1/8 of the bounded distance in each dimension, asymmetric offsets; "
             "Q0 = 0 (optimistic: rewards are -1), epsilon = 0; start x uniform in [-0.6, -0.4), velocity 0. "
             "Figure 10.2's axis label: averaged over 100 runs.")


def window(lengths: np.ndarray, first: int, last: int) -> np.ndarray:
    """Per run, the mean steps per episode over episodes first..last (1-based): [R]."""
    return lengths[first - 1 : last].mean(axis=0)


def summarize(values: np.ndarray) -> dict:
    return {"mean": round(float(values.mean()), 3), "sd": round(float(values.std(ddof=1)), 3), "n": int(values.size)}


def curve(lengths: np.ndarray) -> dict:
    """Per episode over runs: mean and SD of the steps, [E] each."""
    return {"mean": np.round(lengths.mean(axis=1), 1).tolist(), "sd": np.round(lengths.std(axis=1, ddof=1), 1).tolist()}


def standard_metrics(lengths: np.ndarray) -> dict:
    E = lengths.shape[0]
    out = {f"steps in episode {e}": summarize(window(lengths, e, e)) for e in (1, 10, 50, 100, 500) if e <= E}
    for first, last in ((1, 50), (1, 100), (91, 100), (451, 500)):
        if last <= E:
            out[f"mean steps, episodes {first}-{last}"] = summarize(window(lengths, first, last))
    return out


def anchors(metrics: dict, published: dict) -> dict:
    out = {}
    for name, (value, sd_one_run) in published.items():
        ours = metrics[name]
        entry = {"value": value, "status": "COMPUTED"}
        if sd_one_run is not None:
            # Published: the mean of 100 runs, SD of one run given; ours: n runs.
            se = np.hypot(ours["sd"] / np.sqrt(ours["n"]), sd_one_run / np.sqrt(100))
            entry["sd_one_run"] = sd_one_run
            entry["z_ours_vs_published"] = round(float((ours["mean"] - value) / se), 2)
        else:
            entry["relative_difference"] = round(float((ours["mean"] - value) / value), 4)
        out[name] = entry
    return out


def completed(run) -> np.ndarray:
    return run.episode_lengths[:, ~run.trapped]  # [E, completed runs]


def compact_json(data) -> str:
    """Indented JSON with every list of numbers on one line."""
    text = json.dumps(data, indent=1)
    return re.sub(r"\[\s+([-\d.,\s eE+]+?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)


def main() -> None:
    start = time.perf_counter()
    seeds = np.random.SeedSequence(SEED).spawn(4 + len(FIG_10_4_GRID))
    timings = {}

    # Figure 10.2: three step sizes in one batch (alpha per run).
    t0 = time.perf_counter()
    alphas = np.repeat(np.array(FIG_10_2_ALPHAS) / 8, FIG_10_2_RUNS)
    run = run_sarsa(alphas.size, FIG_10_2_EPISODES, alphas, 1, seed=seeds[0], max_episode_steps=MAX_EPISODE_STEPS)
    timings["fig10_2"] = round(time.perf_counter() - t0, 1)
    fig_10_2 = {}
    print(f"{'experiment':<28}{'metric':<34}{'ours':>9}{'published':>11}{'z / rel':>9}")
    for i, a8 in enumerate(FIG_10_2_ALPHAS):
        part = slice(i * FIG_10_2_RUNS, (i + 1) * FIG_10_2_RUNS)
        lengths = run.episode_lengths[:, part][:, ~run.trapped[part]]
        metrics = standard_metrics(lengths)
        published = anchors(metrics, PUBLISHED[a8])
        fig_10_2[str(a8)] = {"alpha": f"{a8}/8", "n": 1, "n_runs": FIG_10_2_RUNS, "trapped": int(run.trapped[part].sum()),
                             "metrics": metrics, "published": published, "curve": curve(lengths)}
        for name, p in published.items():
            z = p.get("z_ours_vs_published", p.get("relative_difference"))
            print(f"{'Fig 10.2 alpha ' + str(a8) + '/8':<28}{name:<34}{metrics[name]['mean']:>9.1f}{p['value']:>11}{z:>9}")

    # Figure 10.3: n = 8, alpha = 0.3/8.
    t0 = time.perf_counter()
    run = run_sarsa(FIG_10_3_RUNS, FIG_10_2_EPISODES, 0.3 / 8, 8, seed=seeds[1], max_episode_steps=MAX_EPISODE_STEPS)
    timings["fig10_3"] = round(time.perf_counter() - t0, 1)
    lengths = completed(run)
    metrics = standard_metrics(lengths)
    published = anchors(metrics, PUBLISHED["n8"])
    fig_10_3 = {"n8_a0.3": {"alpha": "0.3/8", "n": 8, "n_runs": FIG_10_3_RUNS, "trapped": int(run.trapped.sum()),
                            "metrics": metrics, "published": published, "curve": curve(lengths)}}
    for name, p in published.items():
        print(f"{'Fig 10.3 n = 8, 0.3/8':<28}{name:<34}{metrics[name]['mean']:>9.1f}{p['value']:>11}{p['relative_difference']:>9}")

    # Figure 10.4: every alpha of one n in one batch.
    t0 = time.perf_counter()
    fig_10_4 = {}
    for k, (n, grid) in enumerate(FIG_10_4_GRID.items()):
        alphas = np.repeat(np.array(grid) / 8, FIG_10_4_RUNS)
        run = run_sarsa(alphas.size, FIG_10_4_EPISODES, alphas, n, seed=seeds[4 + k], max_episode_steps=MAX_EPISODE_STEPS)
        means, ses, trapped = [], [], []
        for i in range(len(grid)):
            part = slice(i * FIG_10_4_RUNS, (i + 1) * FIG_10_4_RUNS)
            x = window(run.episode_lengths[:, part][:, ~run.trapped[part]], 1, FIG_10_4_EPISODES)
            means.append(round(float(x.mean()), 1))
            ses.append(round(float(x.std(ddof=1) / np.sqrt(x.size)), 1))
            trapped.append(int(run.trapped[part].sum()))
        best = int(np.argmin(means))
        pa, pv = PUBLISHED_FIG_10_4_MINIMA[n]
        fig_10_4[str(n)] = {"alphas_x8": list(grid), "mean": means, "se": ses, "trapped": trapped,
                            "best": {"alpha_x8": grid[best], "mean": means[best]},
                            "published_best": {"alpha_x8": pa, "mean": pv, "status": "COMPUTED"}}
        print(f"{'Fig 10.4 n = ' + str(n):<28}{'best mean, episodes 1-50':<34}{means[best]:>9.1f}{pv:>11}"
              f"   at alpha {grid[best]}/8 (published {pa}/8)")
    timings["fig10_4"] = round(time.perf_counter() - t0, 1)

    # The graded experiments: one batch per (n, alpha), as many episodes as the longest check needs.
    t0 = time.perf_counter()
    checks = {}
    groups: dict[tuple, list] = {}
    for config in CURVE_CONFIGS.values():
        groups.setdefault((config.n, config.alpha_x8), []).append(config)
    for k, ((n, a8), configs) in enumerate(groups.items()):
        episodes = max(c.n_episodes for c in configs)
        run = run_sarsa(CHECK_RUNS, episodes, a8 / 8, n, seed=seeds[2 + k], max_episode_steps=MAX_EPISODE_STEPS)
        lengths = completed(run)
        for config in configs:
            part = lengths[: config.n_episodes]
            checks[config.key] = {
                "label": config.label, "n": n, "alpha": f"{a8}/8", "n_episodes": config.n_episodes,
                "n_runs": CHECK_RUNS, "trapped": int(run.trapped.sum()), "runs_per_check": config.n_runs,
                "metrics": {m.name: summarize(window(part, m.first, m.last)) for m in config.metrics},
                "curve": curve(part),
            }
            for m in config.metrics:
                s = checks[config.key]["metrics"][m.name]
                print(f"{'check ' + config.key:<28}{m.name:<34}{s['mean']:>9.1f}   SD one run {s['sd']:.1f}, "
                      f"trapped {int(run.trapped.sum())} of {CHECK_RUNS}")
    timings["checks"] = round(time.perf_counter() - t0, 1)

    data = {
        "chapter": "06_function_approximation",
        "description": "Our reference runs of semi-gradient Sarsa on the book's Mountain Car with rlcore's batched learner.",
        "command": "python -m autograder.references.gen_ch06",
        "source": SOURCE,
        "book": BOOK_TEXT,
        "environment": ("rlcore.tabular.mountain_car: the book's dynamics, no time limit, reward -1 per step, "
                        "start x ~ U[-0.6, -0.4), velocity reset to 0 at the left wall"),
        "learner": ("rlcore.tabular.approx.run_sarsa: linear q over rlcore.tabular.tiles.MOUNTAIN_CAR_CODER (8 tilings, "
                    "8 x 8 tiles, asymmetric offsets (1, 3), equivalent to tiles3 with IHT(4096)), Q0 = 0, epsilon = 0, "
                    "greedy ties at random, gamma = 1"),
        "metric_definitions": {
            "steps in episode e": "per run: the number of steps of episode e (the return is minus that)",
            "mean steps, episodes a-b": "per run: the average number of steps per episode over episodes a..b",
            "metrics": "mean and SD across completed runs, n = their number",
            "curve": "per episode over completed runs: mean and SD of the steps",
            "fig10_4": "per (n, alpha): mean over runs of the per-run mean steps over episodes 1-50, and its SE",
        },
        "max_episode_steps": MAX_EPISODE_STEPS,
        "trapped": ("a run whose episode passes max_episode_steps without reaching the goal is given up and left out: "
                    "greedy Sarsa can cycle forever at the valley floor, where nearby states share all 8 tiles"),
        "seed": SEED,
        "versions": {"rlcore": rlcore.__version__, "numpy": np.__version__, "python": platform.python_version()},
        "seconds": timings,
        "fig10_2": fig_10_2,
        "fig10_3": fig_10_3,
        "fig10_4": {"n_runs": FIG_10_4_RUNS, "n_episodes": FIG_10_4_EPISODES, "by_n": fig_10_4},
        "checks": checks,
    }
    OUT.write_text(compact_json(data) + "\n")
    print(f"wrote {OUT} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
