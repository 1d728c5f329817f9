"""End-to-end PPO on CartPole-v1 with the environment on the GPU: training steps per second from 1k to 1M
environments, and wall time to solve.

    python benchmarks/ppo_gpu.py --device cuda              # the GPU benchmark (make bench-gpu)
    python benchmarks/ppo_gpu.py --device cpu               # the same on the CPU, smaller sizes

Three measurements, each on `--device`:
    simulation   TorchCartPole alone (random actions drawn on the device): the ceiling for the env;
    training     rlcore.ppo with backend="torch" at each N: environment steps per second of the whole loop
                 (collect, GAE, update, logging), over iterations 2..k (the first pays for allocation and
                 kernel selection), and per second of the run's CPU time (steadier on a shared CPU machine);
                 optionally also with bf16 autocast and with torch.compile (--variants; on a CPU counted per
                 CPU second of the steady iterations 3..6, compilation excluded);
    solve        wall time from the call of train() (network init and env creation included) until the mean
                 return of the last 100 training episodes first reaches 475, over a few seeds.

PPO settings: rlcore.ppo.CARTPOLE_FAST (16 steps per rollout, 8 epochs, gamma 0.98, lambda 0.8), the learning
rate scaled as sqrt(N / 32) from 3e-3 (the rule benchmarks/batch_scaling.py measures), and minibatches of
at most --max-minibatch samples (2^20 by default: a 16M-sample batch at N = 1M is too large for one step's
activations), so the number of gradient steps per rollout is 8 * ceil(16 N / max_minibatch).

Targets of the course (not yet measured: no GPU was available where this was written): at least 10M
environment steps per second of end-to-end training on one H100, and CartPole solved in under 2 s.
Writes benchmarks/results/ppo_gpu_<device type>.json and prints tables.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

THRESHOLD = 475.0
RESULTS = Path(__file__).parent / "results"
DEFAULTS = {  # sizes per device type: (training sizes, solve sizes, solve seeds)
    "cuda": ([1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20], [1 << 10, 1 << 12, 1 << 14], [1, 2, 3]),
    "cpu": ([1 << 8, 1 << 10, 1 << 12], [1 << 8], [1]),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ppo_config(num_envs: int, device: str, *, iterations: int | None = None, max_minibatch: int = 1 << 20,
               seed: int = 1, **overrides):
    """CARTPOLE_FAST at num_envs environments with the sqrt learning-rate rule, on the on-device CartPole."""
    from rlcore.ppo import CARTPOLE_FAST, PPOConfig

    batch = 16 * num_envs
    settings = dict(CARTPOLE_FAST, num_envs=num_envs, learning_rate=3e-3 * math.sqrt(num_envs / 32),
                    num_minibatches=max(1, math.ceil(batch / max_minibatch)))
    if iterations is not None:
        settings["total_timesteps"] = iterations * batch
    else:  # solving: at least 400k steps and 100 rollouts, as in batch_scaling.py
        settings["total_timesteps"] = max(400_000, 100 * batch)
    settings.update(overrides)
    return PPOConfig(**settings, backend="torch", device=device, seed=seed, progress=False)


def simulation_sps(num_envs: int, device: torch.device, steps: int) -> float:
    """Environment steps per second of TorchCartPole alone, float32, random actions drawn on the device."""
    from rlcore.envs.torch_cartpole import make_on_device

    envs = make_on_device("CartPole-v1", num_envs, device)
    envs.reset(seed=0)
    gen = torch.Generator(device=device).manual_seed(0)
    actions = [torch.randint(0, 2, (num_envs,), generator=gen, device=device) for _ in range(8)]
    for k in range(5):  # warm-up
        envs.step(actions[k % 8])
    sync(device)
    start = time.perf_counter()
    for k in range(steps):
        envs.step(actions[k % 8])
    sync(device)
    return num_envs * steps / (time.perf_counter() - start)


def training_sps(num_envs: int, device: str, iterations: int, max_minibatch: int, **overrides) -> dict:
    """Steps per second of rlcore.ppo.train over iterations 2..k (the history's per-iteration clock)."""
    from rlcore.ppo import train

    config = ppo_config(num_envs, device, iterations=iterations, max_minibatch=max_minibatch, **overrides)
    start, cpu = time.perf_counter(), time.process_time()
    result = train(config)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    rows = result.history["charts/sps"]  # [(global_step, steps / seconds since the start)] once per iteration
    elapsed = [(step, step / sps) for step, sps in rows]
    (s1, t1), (sk, tk) = elapsed[0], elapsed[-1]
    steady = (sk - s1) / (tk - t1) if len(elapsed) > 1 else sk / tk
    collect = [v for _, v in result.history["time/collect"][1:]]
    update = [v for _, v in result.history["time/update"][1:]]
    return {"num_envs": num_envs, "batch_size": config.batch_size, "minibatch_size": config.minibatch_size,
            "iterations": config.num_iterations, "sps": round(steady), "wall_s": round(total, 3),
            # CPU time of the whole run (first iteration and any compilation included): on a shared CPU machine a
            # steadier measure than the wall clock; on a GPU it counts only the host's share.
            "cpu_s": round(cpu, 3), "sps_per_cpu_second": round(result.global_step / cpu),
            "collect_s_per_iteration": round(float(np.mean(collect)), 5) if collect else None,
            "update_s_per_iteration": round(float(np.mean(update)), 5) if update else None, **overrides}


def steady_cpu_sps(num_envs: int, device: str, max_minibatch: int, **overrides) -> dict:
    """Training steps per CPU second of iterations 3..6, for a CPU device on a shared machine: a one-iteration
    warm-up (which also compiles, with compile=True), then runs of 2 and of 6 iterations; the difference of
    their CPU times is 4 iterations' worth, with no first-iteration or compilation cost in it."""
    from rlcore.ppo import train

    cpu = []
    for iterations in (1, 2, 6):
        start = time.process_time()
        train(ppo_config(num_envs, device, iterations=iterations, max_minibatch=max_minibatch, **overrides))
        cpu.append(time.process_time() - start)
    per_iteration = (cpu[2] - cpu[1]) / 4
    return {"num_envs": num_envs, "batch_size": 16 * num_envs, "cpu_s_per_iteration": round(per_iteration, 4),
            "sps_per_cpu_second": round(16 * num_envs / per_iteration), **overrides}


def solve(num_envs: int, device: str, seed: int, max_minibatch: int) -> dict:
    """Wall time from train() to a last-100 mean return of 475."""
    from rlcore.ppo import train

    config = ppo_config(num_envs, device, max_minibatch=max_minibatch, seed=seed, stop_at_return=THRESHOLD)
    start, cpu = time.perf_counter(), time.process_time()
    result = train(config)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    hit = result.steps_to_threshold(THRESHOLD)
    return {"num_envs": num_envs, "seed": seed, "reached": hit is not None,
            "steps": hit if hit is not None else result.global_step, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}


def guarded(fn, *args, **kwargs) -> dict:
    """fn(...), or the reason it could not run at this size (out of memory)."""
    try:
        return fn(*args, **kwargs)
    except torch.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        return {"error": f"out of memory: {str(exc).splitlines()[0]}"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", help="training sizes N (default: by device)")
    parser.add_argument("--solve-sizes", type=int, nargs="*", help="sizes to solve at (default: by device; none: skip)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds of the solve runs (default: by device)")
    parser.add_argument("--iterations", type=int, default=6, help="PPO iterations per training measurement")
    parser.add_argument("--sim-steps", type=int, default=200, help="steps per simulation measurement")
    parser.add_argument("--max-minibatch", type=int, default=1 << 20)
    parser.add_argument("--variants", action="store_true",
                        help="also measure bf16 autocast and torch.compile (at --variant-sizes)")
    parser.add_argument("--variant-sizes", type=int, nargs="+",
                        help="sizes of the variant runs (default: the largest training size up to 2^16)")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/ppo_gpu_<device type>.json")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA device.")
    torch.set_num_threads(1)
    sizes, solve_sizes, seeds = DEFAULTS["cuda" if device.type == "cuda" else "cpu"]
    sizes = args.sizes or sizes
    solve_sizes = solve_sizes if args.solve_sizes is None else args.solve_sizes
    seeds = args.seeds or seeds

    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "torch": torch.__version__, "device": str(device), "threads": 1}
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    print(f"PPO on the on-device CartPole, {machine.get('gpu', machine['processor'])} ({device})")

    simulation, training, variants, solving = [], [], [], []
    for n in sizes:
        simulation.append({"num_envs": n, **guarded(lambda: {"sps": round(simulation_sps(n, device, args.sim_steps))})})
        training.append(guarded(training_sps, n, args.device, args.iterations, args.max_minibatch) | {"num_envs": n})
        print(f"N={n:>9,}: simulation {simulation[-1].get('sps', 0):>14,.0f} steps/s, "
              f"training {training[-1].get('sps', 0):>12,.0f} steps/s {training[-1].get('error', '')}", flush=True)
    # On a CPU, steps per CPU second of the steady iterations (the wall clock of a shared machine says little);
    # on a GPU, steps per second of wall time.
    measure = steady_cpu_sps if device.type == "cpu" else (
        lambda n, dev, mb, **extra: training_sps(n, dev, args.iterations, mb, **extra))
    for n in (args.variant_sizes or [max([s for s in sizes if s <= 1 << 16] or sizes[:1])]) if args.variants else []:
        for name, extra in [("float32", {}), ("bf16 autocast", {"mixed_precision": True}),
                            ("torch.compile", {"compile": True})]:
            variants.append({"variant": name, **guarded(measure, n, args.device, args.max_minibatch, **extra)})
            rate = variants[-1].get("sps_per_cpu_second" if device.type == "cpu" else "sps", 0)
            print(f"N={n:,} {name:14s}: {rate:>12,.0f} steps per {'CPU ' if device.type == 'cpu' else ''}second",
                  flush=True)
    for n in solve_sizes:
        for seed in seeds:
            solving.append(guarded(solve, n, args.device, seed, args.max_minibatch) | {"num_envs": n, "seed": seed})
            r = solving[-1]
            print(f"solve N={n:,} seed {seed}: {'reached' if r.get('reached') else 'missed'} 475 after "
                  f"{r.get('steps', 0):,} steps in {r.get('wall_s', float('nan')):.2f} s", flush=True)

    out = {"command": "python " + " ".join(["benchmarks/ppo_gpu.py", *(argv if argv is not None else sys.argv[1:])]),
           "machine": machine, "threshold": THRESHOLD, "simulation": simulation, "training": training,
           "variants": variants, "solve": solving,
           "targets": {"training_sps_h100": 10_000_000, "solve_wall_s_h100": 2.0}}
    path = args.out or RESULTS / f"ppo_gpu_{device.type}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    best = max((t.get("sps", 0) for t in training), default=0)
    solved = [r["wall_s"] for r in solving if r.get("reached")]
    print(f"best training throughput {best:,.0f} steps/s; "
          + (f"median time to solve {np.median(solved):.2f} s ({len(solved)}/{len(solving)} runs reached 475)"
             if solving else "no solve runs"))
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
