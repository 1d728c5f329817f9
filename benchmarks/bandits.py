"""`make bench`: speed of rlcore's bandit experiments against the loop a learner would write instead.

No library is the standard choice for the 10-armed testbed; the usual alternative is the per-run,
per-step Python loop of most reproductions of Sutton & Barto's figures. Both run epsilon-greedy
(epsilon = 0.1, sample averages) in the same process; we report run-steps per second and the ratio.

    python benchmarks/bandits.py [--runs 2000] [--steps 1000] [--loop-runs 100]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from functools import partial
from pathlib import Path

import numpy as np

from rlcore.tabular import bandits


def loop_epsilon_greedy(n_runs: int, n_steps: int, seed: int, epsilon: float = 0.1, k: int = 10) -> np.ndarray:
    """The straightforward implementation: one problem at a time, one step at a time."""
    rng = np.random.default_rng(seed)
    rewards = np.empty((n_steps, n_runs))
    for run in range(n_runs):
        q_star = rng.normal(size=k)
        Q, N = np.zeros(k), np.zeros(k)
        for t in range(n_steps):
            if rng.random() < epsilon:
                a = int(rng.integers(k))
            else:
                best = np.flatnonzero(Q == Q.max())
                a = int(rng.choice(best))
            r = q_star[a] + rng.standard_normal()
            N[a] += 1
            Q[a] += (r - Q[a]) / N[a]
            rewards[t, run] = r
    return rewards


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--loop-runs", type=int, default=100, help="runs for the (slow) loop version")
    parser.add_argument("--json", default="benchmarks/results/bandits.json")
    args = parser.parse_args()

    vec = best_of(lambda: bandits.run_testbed(partial(bandits.EpsilonGreedy, epsilon=0.1),
                                              n_runs=args.runs, n_steps=args.steps, seed=0))
    loop = best_of(lambda: loop_epsilon_greedy(args.loop_runs, args.steps, seed=0), repeats=1)
    vec_rate = args.runs * args.steps / vec
    loop_rate = args.loop_runs * args.steps / loop
    result = {
        "benchmark": "10-armed testbed, epsilon-greedy 0.1, sample averages",
        "rlcore_vectorized": {"runs": args.runs, "steps": args.steps, "seconds": round(vec, 3),
                              "run_steps_per_s": round(vec_rate)},
        "python_loop": {"runs": args.loop_runs, "steps": args.steps, "seconds": round(loop, 3),
                        "run_steps_per_s": round(loop_rate)},
        "speedup": round(vec_rate / loop_rate, 1),
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "numpy": np.__version__},
        "command": "python benchmarks/run.py",
    }
    print(f"rlcore vectorized : {args.runs} runs x {args.steps} steps in {vec:.2f} s  ({vec_rate:,.0f} run-steps/s)")
    print(f"python loop       : {args.loop_runs} runs x {args.steps} steps in {loop:.2f} s  ({loop_rate:,.0f} run-steps/s)")
    print(f"speed-up          : {vec_rate / loop_rate:.0f}x")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
