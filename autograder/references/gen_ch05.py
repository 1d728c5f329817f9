"""Regenerate our reference runs for chapter 05 (autograder/references/ch05_nstep_and_planning.json).

    python -m autograder.references.gen_ch05          # about 4 minutes on one free core
    python -m autograder.references.gen_ch05 dyna     # one part only: nstep (Figure 7.2) or dyna (Figure 8.2)

Figure 7.2: rlcore's vectorized n-step TD (`nstep_td_runs`) on the 19-state walk, every n in
1, 2, 4, ..., 512 and every alpha in 0, 0.1, ..., 1, over N_NSTEP_RUNS runs (the book: 100). Each run's
metric is its RMS error over the 19 states averaged over the first 10 episodes; we store its mean
and SD for every (n, alpha), and the per-episode error curve at the graded points.

Figure 8.2: rlcore's vectorized Dyna-Q (`dyna_q_runs`) on the maze for n = 0, 5, 50 over
N_DYNA_RUNS runs (the book: 30) and 50 episodes: per-episode mean and SD of the steps, the graded
per-run windows, the first episode whose mean is below 20, and the exact mean of episode 1.
Published values (shared references, section 1b; the book's text) are stored beside ours, with the
agreement between the two where the published row gives a spread.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

import rlcore
from autograder.checks.ch05 import (
    DYNA_ALPHA,
    DYNA_CONFIGS,
    DYNA_EPSILON,
    DYNA_GAMMA,
    DYNA_REFERENCE_EPISODES,
    NSTEP_ALPHAS,
    NSTEP_EPISODES,
    NSTEP_NS,
    NSTEP_POINTS,
    make_walk,
)
from rlcore.tabular import nstep, planning

OUT = Path(__file__).parent / "ch05_nstep_and_planning.json"
N_NSTEP_RUNS = 10_000
NSTEP_CHUNK = 2_000  # runs per call: history [10, 2000, 11, 19] floats is 33 MB
N_DYNA_RUNS = 2_000
SEED = 20260705  # distinct from the checks' visible seeds

# Section 1b of the shared references (status COMPUTED unless noted): episode -> (mean, SD of a
# 30-run average or None), and the first episode whose mean is below 20.
PUBLISHED_DYNA = {
    "n0": {"episodes": {2: (679, 119), 10: (132, None), 20: (47, None), 50: (17.9, None)}, "first_below_20": 28,
           "book": "the nonplanning agent took about 25 episodes to reach (epsilon-)optimal performance (V-primary)"},
    "n5": {"episodes": {2: (154, 12), 5: (22.6, None)}, "first_below_20": 6,
           "book": "the n = 5 agent took about five episodes (V-primary)"},
    "n50": {"episodes": {2: (39.4, 2.0), 3: (17.6, None)}, "first_below_20": 3,
            "book": "the n = 50 agent took only three episodes (V-primary)"},
}
PUBLISHED_FIRST_EPISODE = ("about 820-850 mean, heavy tail (COMPUTED); the book's 'about 1700 steps' is one seed "
                           "(V-primary text)")
PUBLISHED_RUNS = 1000  # the published reproduction's run count; its SD(30) came from 33 blocks of 30 runs


def summarize(values: np.ndarray) -> dict:
    return {"mean": round(float(values.mean()), 5), "sd": round(float(values.std(ddof=1)), 5), "n": int(values.size)}


def nstep_reference() -> dict:
    walk = make_walk()
    true_values = walk.true_values()
    alphas = np.array(NSTEP_ALPHAS)
    chunk_seeds = np.random.SeedSequence(SEED).spawn(N_NSTEP_RUNS // NSTEP_CHUNK)
    grid, points = {}, {}
    for n in NSTEP_NS:
        metric, curves = [], []
        for chunk_seed in chunk_seeds:  # the same seeds for every n: every n sees the same episodes
            history = nstep.nstep_td_runs(walk, n, alphas, NSTEP_CHUNK, NSTEP_EPISODES, seed=chunk_seed)
            errors = nstep.rms_error(history, true_values)  # [E, R, A]
            metric.append(errors.mean(axis=0))  # [R, A]
            curves.append(errors)
        metric = np.concatenate(metric)  # [N, A]
        curves = np.concatenate(curves, axis=1)  # [E, N, A]
        grid[str(n)] = {"mean": np.round(metric.mean(axis=0), 5).tolist(),
                        "sd": np.round(metric.std(axis=0, ddof=1), 5).tolist()}
        for point in NSTEP_POINTS:
            if point.n == n:
                a = int(np.argmin(np.abs(alphas - point.alpha)))
                points[point.key] = {**summarize(metric[:, a]), "role": point.role,
                                     "rms_by_episode_mean": np.round(curves[:, :, a].mean(axis=1), 5).tolist(),
                                     "rms_by_episode_sd": np.round(curves[:, :, a].std(axis=1, ddof=1), 5).tolist()}
        best = int(np.argmin(metric.mean(axis=0)))
        print(f"n = {n:>3}: best alpha {alphas[best]:.1f}, RMS {metric.mean(axis=0)[best]:.4f} "
              f"(per-run SD {metric.std(axis=0, ddof=1)[best]:.4f})", flush=True)
    best_n = min(NSTEP_NS, key=lambda n: min(grid[str(n)]["mean"]))
    return {
        "environment": "RandomWalk(19, left_reward=-1.0): true values -18/20 .. 18/20; gamma = 1; V starts at 0",
        "metric": f"per run: RMS error over the 19 states after each episode, averaged over episodes 1-{NSTEP_EPISODES}",
        "n_runs": N_NSTEP_RUNS,
        "ns": list(NSTEP_NS),
        "alphas": list(NSTEP_ALPHAS),
        "error_of_V_equal_0": round(float(np.sqrt(np.mean(true_values**2))), 5),
        "grid": grid,
        "points": points,
        "best_n": best_n,
        "published": {
            "book": ("Figure 7.2 (averaged over 100 runs, no printed values): 'methods with an intermediate value "
                     "of n worked best'; y axis 0.25-0.55 (V-primary text, approx fig)"),
            "shared_references": "no COMPUTED row for Figure 7.2 in section 1b; this file is the reference",
        },
    }


def dyna_reference() -> dict:
    maze = planning.DynaMaze()
    exact_mean, exact_sd = maze.random_episode_length()
    configs, firsts = {}, []
    seeds = np.random.SeedSequence(SEED + 1).spawn(len(DYNA_CONFIGS))
    for config, seed in zip(DYNA_CONFIGS, seeds):
        start = time.perf_counter()
        steps = planning.dyna_q_runs(maze, config.n_planning, DYNA_REFERENCE_EPISODES, N_DYNA_RUNS, seed=seed,
                                     alpha=DYNA_ALPHA, epsilon=DYNA_EPSILON, gamma=DYNA_GAMMA)  # [E, R]
        firsts.append(steps[0])
        mean = steps.mean(axis=1)
        published = PUBLISHED_DYNA[config.key]
        anchors = {}
        for episode, (value, sd30) in published["episodes"].items():
            ours = float(mean[episode - 1])
            se_ours = steps[episode - 1].std(ddof=1) / np.sqrt(N_DYNA_RUNS)
            # The published SD is of a 30-run average; its 1000-run mean has SE = SD(30) * sqrt(30 / 1000).
            z = None if sd30 is None else (ours - value) / np.hypot(se_ours, sd30 * np.sqrt(30 / PUBLISHED_RUNS))
            anchors[f"episode {episode}"] = {"ours": round(ours, 2), "published": value, "sd_of_30_run_mean": sd30,
                                             "status": "COMPUTED", "z_ours_vs_published": None if z is None else round(float(z), 2)}
        first_below = planning.first_episode_below(mean)
        anchors["first episode with mean below 20"] = {"ours": first_below, "published": published["first_below_20"],
                                                       "status": "COMPUTED"}
        anchors["book"] = published["book"]
        window = steps[config.first - 1 : config.last].mean(axis=0)
        configs[config.key] = {
            "n_planning": config.n_planning,
            "metric": {**summarize(window), "definition": f"per run: mean steps of episodes {config.first}-{config.last}"},
            "steps_mean": np.round(mean, 3).tolist(),
            "steps_sd": np.round(steps.std(axis=1, ddof=1), 3).tolist(),
            "first_episode_below_20": first_below,
            "published": anchors,
        }
        print(f"Dyna-Q n = {config.n_planning:>2}: episodes 1-5 {np.round(mean[:5], 1).tolist()}, first below 20: "
              f"{first_below}, window {config.first}-{config.last}: {window.mean():.2f} (SD {window.std(ddof=1):.2f}) "
              f"[{time.perf_counter() - start:.0f} s]", flush=True)
    first = np.concatenate(firsts)
    return {
        "environment": ("DynaMaze(): 6 x 9, start (2, 0), goal (0, 8), walls (1,2) (2,2) (3,2) (0,7) (1,7) (2,7) (4,5); "
                        "reward +1 on reaching the goal; shortest path 14 steps"),
        "params": {"alpha": DYNA_ALPHA, "epsilon": DYNA_EPSILON, "gamma": DYNA_GAMMA,
                   "model": "deterministic; planning draws a random observed state, then a random action taken in it"},
        "n_runs": N_DYNA_RUNS,
        "n_episodes": DYNA_REFERENCE_EPISODES,
        "first_episode": {**summarize(first), "exact_mean": round(exact_mean, 3), "exact_sd": round(exact_sd, 3),
                          "definition": "steps of episode 1, pooled over the three settings (a random walk for every n)",
                          "published": PUBLISHED_FIRST_EPISODE},
        "configs": configs,
    }


PARTS = {"nstep": nstep_reference, "dyna": dyna_reference}


def main(parts: tuple[str, ...] = tuple(PARTS)) -> None:
    """Regenerate the given parts ("nstep", "dyna"); a part not named keeps its stored data."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown part(s) {sorted(unknown)}; choose from {list(PARTS)}")
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    data.update({
        "chapter": "05_nstep_and_planning",
        "description": "Our reference runs of Figure 7.2 (n-step TD) and Figure 8.2 (Dyna-Q) with rlcore.",
        "command": "python -m autograder.references.gen_ch05  (or with 'nstep' / 'dyna' to regenerate one part)",
        "source": ("Sutton & Barto, Reinforcement Learning: An Introduction, 2nd ed., sections 7.1 and 8.2; "
                   "shared/references/published_results.md section 1b (Dyna maze row)"),
        "seed": SEED,
        "versions": {"rlcore": rlcore.__version__, "numpy": np.__version__, "python": platform.python_version()},
    })
    seconds = data.get("seconds", {}) if isinstance(data.get("seconds"), dict) else {}
    for part in parts:
        start = time.perf_counter()
        data[part] = PARTS[part]()
        seconds[part] = round(time.perf_counter() - start)
    data["seconds"] = seconds
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT} ({', '.join(f'{k} {v} s' for k, v in seconds.items())})")


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or tuple(PARTS))
