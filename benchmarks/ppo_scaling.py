"""Data-parallel PPO on CartPole-v1: steps per second and time to threshold with 1, 2, ... ranks, same global batch.

Every run is one `torchrun --standalone --nproc-per-node N benchmarks/ppo_scaling.py --worker ...` with rlcore's
CARTPOLE_FAST preset: 32 environments and one 512-sample minibatch per epoch over the whole run, so N ranks
step 32 / N environments each, take 512 / N samples of every minibatch and average their gradients (the same
updates as one process, up to float summation order). Rank 0 measures, from the start of training:

    steps per second        environment steps over all ranks / wall time
    time to threshold       wall time until the mean return of the last 100 training episodes (of all ranks'
                            environments, merged by global step) first reaches 475, Gymnasium's reward threshold
    steps to threshold      environment steps over all ranks at that moment

and scaling efficiency = sps(N) / (N * sps(1)): 1.0 when N ranks are N times as fast as one.

    python benchmarks/ppo_scaling.py                          # CPU, gloo: 1 and 2 ranks, 5 seeds
    python benchmarks/ppo_scaling.py --device cuda --nproc 8  # GPUs, nccl: 1, 2, 4, 8 ranks, one per GPU
    python benchmarks/ppo_scaling.py --device cuda --nproc 8 --backend torch --num-envs 4096
                                                              # ... with CartPole on the GPUs (chapter 14)

On a machine with C cores, N ranks share them with each other (and with anything else running): on 2 cores,
2 ranks get no more CPU than 1 rank could use, so the CPU numbers measure the cost of communication and of
smaller per-rank batches, not a speed-up. Writes benchmarks/results/ppo_scaling.json (ppo_scaling_cuda.json with
--device cuda, or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

THRESHOLD = 475.0
RESULTS = Path(__file__).parent / "results" / "ppo_scaling.json"  # --device cuda: ppo_scaling_cuda.json


class EpisodeLog:
    """A vector env that also notes (global step, return, seconds since creation) of every episode that ends.
    An on-device env's returns stay on the device until `episodes()` is called: a copy to the host every step
    would synchronize the GPU every step."""

    def __init__(self, envs, global_envs: int):
        self.envs, self.global_envs, self.step_count = envs, global_envs, 0
        self.pending: list = []
        self.start = time.perf_counter()

    def __getattr__(self, name):
        return getattr(self.envs, name)

    def step(self, actions):
        out = self.envs.step(actions)
        self.step_count += self.global_envs  # rlcore.ppo counts steps over all ranks
        returns = out[4]["episode_return"]
        returns = returns.detach().clone() if hasattr(returns, "detach") else np.array(returns)
        self.pending.append((self.step_count, returns, time.perf_counter() - self.start))
        return out

    def episodes(self) -> list[tuple[int, float, float]]:
        found = []
        for step, returns, seconds in self.pending:
            returns = returns.cpu().numpy() if hasattr(returns, "cpu") else returns
            found += [(step, float(r), seconds) for r in returns[~np.isnan(returns)]]
        return found


def first_hit(episodes: list[tuple[int, float, float]]) -> tuple[int, float] | None:
    """(global step, seconds) when the mean of the last 100 episodes of all ranks first reaches THRESHOLD."""
    episodes = sorted(episodes)
    if len(episodes) < 100:
        return None
    means = np.lib.stride_tricks.sliding_window_view(np.array([e[1] for e in episodes]), 100).mean(axis=1)
    hits = np.flatnonzero(means >= THRESHOLD)
    return (episodes[hits[0] + 99][0], episodes[hits[0] + 99][2]) if hits.size else None


def worker(args) -> None:
    """One rank of a run (started by torchrun); rank 0 writes the measurements to args.out as JSON.

    The threshold is judged on the episodes of ALL ranks, merged by global step. (rlcore.ppo's stop_at_return
    judges rank 0's episodes, whose last 100 span W times as many steps; the run stops there, a little later.)"""
    import torch

    from rlcore import distributed
    from rlcore.envs import make_vector
    from rlcore.envs.torch_cartpole import make_on_device
    from rlcore.ppo import CARTPOLE_FAST, PPOConfig, train

    overrides = dict(CARTPOLE_FAST, total_timesteps=args.budget)
    for name in ("num_envs", "num_steps", "backend"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    config = PPOConfig(**overrides, seed=args.seed, device=args.device, progress=False, stop_at_return=THRESHOLD)
    rank, world = distributed.init_from_env(config.device)
    local_envs = config.num_envs // world
    made = (make_on_device(config.env_id, local_envs, config.torch_device()) if config.backend == "torch"
            else make_vector(config.env_id, local_envs, backend=config.backend))
    envs = EpisodeLog(made, config.num_envs)
    cpu = time.process_time()
    result = train(config, envs=envs)
    cpu = time.process_time() - cpu
    # Every rank's episodes and CPU time, gathered on rank 0: on a shared CPU the ranks compete for the same cores.
    gathered = [(envs.episodes(), cpu)]
    if distributed.active():
        gathered = [None] * distributed.world_size()
        torch.distributed.all_gather_object(gathered, (envs.episodes(), cpu))
    if distributed.is_main():
        hit = first_hit([e for episodes, _ in gathered for e in episodes])
        Path(args.out).write_text(json.dumps({
            "nproc": distributed.world_size(), "seed": args.seed, "reached": hit is not None,
            "steps_to_threshold": hit[0] if hit else None, "time_to_threshold_s": hit[1] if hit else None,
            "total_steps": result.global_step, "wall_s": result.wall_time, "sps": result.sps,
            "cpu_s_per_rank": [c for _, c in gathered]}))
    envs.close()
    distributed.shutdown()


def run_one(nproc: int, seed: int, args) -> dict:
    """One torchrun with nproc ranks; returns rank 0's measurements."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
                   str(Path(__file__).resolve()), "--worker", "--seed", str(seed), "--budget", str(args.budget),
                   "--device", args.device, "--out", str(out)]
        for name in ("num_envs", "num_steps", "backend"):
            if getattr(args, name) is not None:
                command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def summarize(runs: list[dict]) -> dict:
    reached = [r for r in runs if r["reached"]]
    med = (lambda key: float(np.median([r[key] for r in reached])) if reached else None)
    return {"reached": f"{len(reached)}/{len(runs)}", "median_sps": float(np.median([r["sps"] for r in runs])),
            "median_time_to_threshold_s": med("time_to_threshold_s"), "median_steps_to_threshold": med("steps_to_threshold"),
            "median_cpu_s_total": float(np.median([sum(r["cpu_s_per_rank"]) for r in runs]))}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (nccl, one GPU per rank)")
    parser.add_argument("--nproc", type=int, default=2, help="the largest number of ranks; runs 1, 2, 4, ... up to it")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=300_000, help="step budget per run (stops at the threshold)")
    parser.add_argument("--num-envs", type=int, default=None, help="global environments (default: CARTPOLE_FAST's 32)")
    parser.add_argument("--num-steps", type=int, default=None, help="steps per environment per rollout")
    parser.add_argument("--backend", default=None, help="vector-env backend (default: the preset's)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run before it counts as hung")
    parser.add_argument("--out", default=None, help=f"where the JSON goes (default: {RESULTS}, or "
                                                    "ppo_scaling_cuda.json next to it with --device cuda)")
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return {}

    ranks = [1]
    while ranks[-1] * 2 <= args.nproc:
        ranks.append(ranks[-1] * 2)
    if ranks[-1] != args.nproc:
        ranks.append(args.nproc)
    load_before = os.getloadavg()
    runs: dict[int, list[dict]] = {n: [] for n in ranks}
    # Interleave the rank counts seed by seed, so a change in machine load hits all of them alike.
    for seed in range(1, args.seeds + 1):
        for n in ranks:
            r = run_one(n, seed, args)
            runs[n].append(r)
            hit = f"reached at {r['steps_to_threshold']:>7,} steps, {r['time_to_threshold_s']:6.2f} s" if r["reached"] \
                else f"NOT reached in {r['total_steps']:,} steps"
            print(f"  {n} rank(s) seed {seed}: {hit}; {r['sps']:>8,.0f} steps/s", flush=True)
    load_after = os.getloadavg()
    summary = {str(n): summarize(rs) for n, rs in runs.items()}
    base = summary["1"]["median_sps"]
    print(f"\n{'ranks':>5s} {'reached':>8s} {'steps/s':>9s} {'efficiency':>11s} {'time to 475 (s)':>16s} "
          f"{'steps to 475':>13s} {'CPU s, all ranks':>17s}")
    for n in ranks:
        s = summary[str(n)]
        s["scaling_efficiency"] = s["median_sps"] / (n * base)
        fmt = (lambda v, f: "n/a" if v is None else format(v, f))
        print(f"{n:>5d} {s['reached']:>8s} {s['median_sps']:>9,.0f} {s['scaling_efficiency']:>11.2f} "
              f"{fmt(s['median_time_to_threshold_s'], '.2f'):>16s} {fmt(s['median_steps_to_threshold'], ',.0f'):>13s} "
              f"{fmt(s['median_cpu_s_total'], '.1f'):>17s}")
    import torch

    device_name = (torch.cuda.get_device_name(0) if args.device.startswith("cuda") and torch.cuda.is_available()
                   else None)
    result = {
        "benchmark": "data-parallel PPO on CartPole-v1 (rlcore CARTPOLE_FAST, same global batch), steps per second and "
                     "time to mean(last 100 training episodes) >= 475",
        "command": "python benchmarks/ppo_scaling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "device": args.device, "gpu": device_name,
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in load_after]},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "backend": "nccl" if args.device.startswith("cuda") else "gloo",
        "seeds": args.seeds, "budget": args.budget, "scaling_efficiency": "sps(N) / (N * sps(1)), medians over seeds",
        "summary": summary, "runs": {str(n): rs for n, rs in runs.items()},
    }
    out = Path(args.out) if args.out else (
        RESULTS.with_name("ppo_scaling_cuda.json") if args.device.startswith("cuda") else RESULTS)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {out}")
    return result


if __name__ == "__main__":
    main()
