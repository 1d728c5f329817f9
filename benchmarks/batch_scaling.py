"""Batch size and learning rate: how many environment steps, and how much time, PPO needs to solve CartPole-v1
as the number of environments N grows, with the learning rate held fixed or scaled with the batch.

Every run is rlcore.ppo with the on-device CartPole (backend="torch", here on the CPU) and CARTPOLE_FAST's
settings (16 steps per rollout, the whole rollout as one minibatch, 8 epochs, gamma 0.98, lambda 0.8) except
N and the learning rate, so the batch is 16 N samples and every rollout buys 8 gradient steps whatever N is.
A run stops when the mean return of the last 100 training episodes first reaches 475 (or at its budget).

Learning-rate rules, from CARTPOLE_FAST's lr0 = 3e-3 at N0 = 32:
    constant   lr = lr0 at every N
    sqrt       lr = lr0 * sqrt(N / N0): the square-root rule for Adam (the gradient noise falls as 1/sqrt(B))
Linear scaling (Goyal et al. 2017, for SGD) would give lr = 0.1 at N = 1024, where Adam diverges; it is
left out.

    python benchmarks/batch_scaling.py [--sizes 4 16 64 256 1024] [--seeds 1 2 3] [--rules constant sqrt]

Writes benchmarks/results/batch_scaling.json and batch_scaling.png and prints a table of medians. The
steps and times are measured single-threaded on the machine it runs on; course/14_large_batch_ppo.ipynb
shows the table of the committed run.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

THRESHOLD = 475.0
BASE_ENVS, BASE_LR = 32, 3e-3
RESULTS = Path(__file__).parent / "results"


def learning_rate(rule: str, num_envs: int) -> float:
    """The learning rate of `rule` ("constant" or "sqrt") at num_envs environments."""
    if rule == "constant":
        return BASE_LR
    if rule == "sqrt":
        return BASE_LR * math.sqrt(num_envs / BASE_ENVS)
    raise ValueError(f"unknown learning-rate rule {rule!r}; use 'constant' or 'sqrt'.")


def budget(num_envs: int) -> int:
    """Environment steps a run may use: at least 300k, and at least 60 rollouts of 16 N steps."""
    return max(300_000, 60 * 16 * num_envs)


def run(num_envs: int, rule: str, seed: int) -> dict:
    """One PPO run to the threshold; returns what was measured."""
    from rlcore.ppo import CARTPOLE_FAST, PPOConfig, train

    torch.set_num_threads(1)
    config = PPOConfig(**dict(CARTPOLE_FAST, num_envs=num_envs, learning_rate=learning_rate(rule, num_envs),
                              total_timesteps=budget(num_envs)),
                       backend="torch", seed=seed, progress=False, stop_at_return=THRESHOLD)
    wall, cpu = time.perf_counter(), time.process_time()
    result = train(config)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    hit = result.steps_to_threshold(THRESHOLD)
    return {"num_envs": num_envs, "rule": rule, "seed": seed, "learning_rate": config.learning_rate,
            "batch_size": config.batch_size, "reached": hit is not None,
            "steps": hit if hit is not None else result.global_step, "updates": result.global_step // config.batch_size
            * config.update_epochs * config.num_minibatches, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "sps": round(result.global_step / wall, 1), "budget": config.total_timesteps}


def _run(task: tuple[int, str, int]) -> dict:
    return run(*task)


def summarize(runs: list[dict]) -> list[dict]:
    """One row per (rule, N): runs that reached 475, and medians over seeds (unreached runs count at their budget)."""
    rows = []
    for rule in dict.fromkeys(r["rule"] for r in runs):
        for n in sorted({r["num_envs"] for r in runs if r["rule"] == rule}):
            group = [r for r in runs if r["rule"] == rule and r["num_envs"] == n]
            rows.append({"rule": rule, "num_envs": n, "learning_rate": group[0]["learning_rate"],
                         "batch_size": group[0]["batch_size"], "reached": sum(r["reached"] for r in group),
                         "seeds": len(group), "median_steps": int(np.median([r["steps"] for r in group])),
                         "median_updates": int(np.median([r["updates"] for r in group])),
                         "median_wall_s": round(float(np.median([r["wall_s"] for r in group])), 2),
                         "median_cpu_s": round(float(np.median([r["cpu_s"] for r in group])), 2),
                         "median_sps": round(float(np.median([r["sps"] for r in group])))})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| lr rule | N | batch | lr | reached 475 | median steps | median gradient steps | median CPU s | "
             "median wall s | steps/s |", "| --- " * 10 + "|"]
    for r in rows:
        lines.append(f"| {r['rule']} | {r['num_envs']} | {r['batch_size']:,} | {r['learning_rate']:.2g} | "
                     f"{r['reached']}/{r['seeds']} | {r['median_steps']:,} | {r['median_updates']:,} | "
                     f"{r['median_cpu_s']:.1f} | {r['median_wall_s']:.1f} | {r['median_sps']:,.0f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for rule, marker in zip(dict.fromkeys(r["rule"] for r in rows), "os^"):
        sub = [r for r in rows if r["rule"] == rule]
        n = [r["num_envs"] for r in sub]
        axes[0].plot(n, [r["median_steps"] for r in sub], marker=marker, label=f"lr {rule}")
        axes[1].plot(n, [r["median_cpu_s"] for r in sub], marker=marker, label=f"lr {rule}")
    for ax, ylabel in zip(axes, ["environment steps to 475 (median)", "CPU seconds to 475 (median)"]):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("environments N (batch = 16 N)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle("PPO on CartPole-v1, on-device env on one CPU thread")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64, 256, 1024])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rules", nargs="+", default=["constant", "sqrt"], choices=["constant", "sqrt"])
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (one thread each)")
    parser.add_argument("--out", type=Path, default=RESULTS / "batch_scaling.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tasks = [(n, rule, seed) for rule in args.rules for n in args.sizes for seed in args.seeds]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        runs = []
        for r in pool.imap(_run, tasks):  # in order, printed as they finish
            runs.append(r)
            print(f"lr {r['rule']:8s} N={r['num_envs']:5d} seed {r['seed']}: {'reached' if r['reached'] else 'missed '} "
                  f"475 at {r['steps']:>9,} steps, {r['cpu_s']:6.1f} s CPU, {r['wall_s']:6.1f} s wall", flush=True)
    rows = summarize(runs)
    out = {"command": "python " + " ".join(["benchmarks/batch_scaling.py", *(argv if argv is not None else sys.argv[1:])]),
           "threshold": THRESHOLD, "base": {"num_envs": BASE_ENVS, "learning_rate": BASE_LR},
           "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                       "torch": torch.__version__, "threads": 1, "device": "cpu"},
           "summary": rows, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    plot(rows, args.out.with_suffix(".png"))
    print(table(rows))
    return out


if __name__ == "__main__":
    main()
