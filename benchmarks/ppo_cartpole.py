"""PPO on CartPole-v1: rlcore against Stable-Baselines3, in the same run, single-threaded, several seeds.

For each seed and contender we measure, from constructing the agent to the moment the mean return of the
last 100 *training* episodes first reaches 475 (Gymnasium's reward threshold):

    wall time to threshold      seconds, end to end (environment creation and network init included)
    steps to threshold          environment steps, so speed bought with sample efficiency shows up
    steps per second            over the whole run, and in steady state: over the second half of the run's
                                steps, which leaves out start-up (environments, networks, first calls)

One-time costs of the process are paid before any timing, for every contender alike: importing
Stable-Baselines3 and torch's lazily imported torch._dynamo (which the first torch.optim optimizer of a
process loads, about 1.5 s here).

Contenders:
    rlcore-wallclock   rlcore.ppo with the CARTPOLE_WALLCLOCK preset (tuned for wall time to 475) on the batched
                       NumPy CartPole (rlcore.envs.fast)
    rlcore-throughput  rlcore.ppo with the CARTPOLE_THROUGHPUT preset (512 environments, one pass of two 4,096-sample
                       minibatches per rollout, tuned for steps per second), same batched CartPole: more steps to
                       475, each much cheaper
    rlcore-fast        rlcore.ppo with the course's CARTPOLE_FAST preset (the settings the chapter 11 exercise uses)
    rlcore-cleanrl     rlcore.ppo with CleanRL ppo.py's defaults (4 envs x 128 steps), same batched CartPole
    sb3-zoo            Stable-Baselines3 PPO with rl-baselines3-zoo's tuned CartPole-v1 hyperparameters
                       (8 envs, n_steps 32, batch 256, 20 epochs, lr and clip linear from 1e-3 and 0.2,
                       gamma 0.98, gae_lambda 0.8, ent_coef 0), on Gymnasium's CartPole-v1 in a DummyVecEnv
    sb3-default        Stable-Baselines3 PPO with its defaults (1 env, n_steps 2048, batch 64, 10 epochs, lr 3e-4),
                       the same environment: what a user who does not tune gets

CleanRL's ppo.py is not measured here: the only PyPI release (cleanrl 0.4.8, 2021) predates Gymnasium and
needs the retired `gym` package; its documented numbers are quoted in benchmarks/README.md instead.

    python benchmarks/ppo_cartpole.py [--seeds 5] [--first-seed 101] [--budget 300000] [--only rlcore-wallclock,sb3-zoo]

Writes benchmarks/results/ppo_cartpole.json and prints a table with medians and ratios to SB3.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

THRESHOLD = 475.0
RESULTS = Path(__file__).parent / "results" / "ppo_cartpole.json"
# CleanRL ppo.py on CartPole-v1 on a 2-core machine of this kind: 24-31 s to 475 at about 8.5k steps/s, as quoted
# in benchmarks/README.md (not measured by this script: see the module docstring).
CLEANRL_QUOTED_WALL_S = (24.0, 31.0)
CLEANRL_QUOTED_SPS = 8_500


def run_rlcore(seed: int, budget: int, preset: str) -> dict:
    from rlcore import ppo

    overrides = dict(getattr(ppo, preset)) if preset else {}
    # A preset's own total_timesteps sets its learning-rate schedule; the budget only caps a run without one.
    overrides.setdefault("total_timesteps", budget)
    start = time.perf_counter()
    result = ppo.train(ppo.PPOConfig(env_id="CartPole-v1", seed=seed, progress=False, stop_at_return=THRESHOLD,
                                     **overrides))
    wall = time.perf_counter() - start
    hit = result.steps_to_threshold(THRESHOLD)
    # charts/sps is steps per second since the run started, so (step / sps) is the time of each iteration's end.
    marks = [(step, step / sps) for step, sps in result.history["charts/sps"]]
    return {"reached": hit is not None, "steps": hit if hit is not None else result.global_step,
            "wall_s": wall, "sps": result.global_step / wall, "steady_sps": steady_sps(marks),
            "total_steps": result.global_step}


def steady_sps(marks: list[tuple[int, float]]) -> float:
    """Steps per second over the second half of a run's steps, from (global_step, seconds) marks."""
    end_step, end_time = marks[-1]
    mid_step, mid_time = next((s, t) for s, t in marks if s >= end_step / 2)
    if end_step == mid_step:  # a run too short to have two halves
        return end_step / end_time
    return (end_step - mid_step) / (end_time - mid_time)


def run_sb3(seed: int, budget: int, tuned: bool) -> dict:
    """tuned: rl-baselines3-zoo's CartPole-v1 hyperparameters; otherwise SB3's defaults (1 environment, 2,048 steps
    per rollout, 10 epochs of 64-sample minibatches, lr 3e-4): what `PPO("MlpPolicy", "CartPole-v1")` trains."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class StopAtThreshold(BaseCallback):
        """Track training-episode returns (Monitor's info["episode"]) and stop at the threshold."""

        def __init__(self):
            super().__init__()
            self.returns: list[float] = []
            self.hit_step: int | None = None
            self.marks: list[tuple[int, float]] = []  # (num_timesteps, seconds) at the end of each rollout

        def _on_rollout_end(self) -> None:
            self.marks.append((self.num_timesteps, time.perf_counter() - start))

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(info["episode"]["r"])
            if len(self.returns) >= 100 and np.mean(self.returns[-100:]) >= THRESHOLD:
                self.hit_step = self.num_timesteps
                return False
            return True

    def linear(initial: float):
        return lambda progress_remaining: progress_remaining * initial

    start = time.perf_counter()
    if tuned:
        env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
        model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                    ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed, device="cpu",
                    verbose=0)
    else:
        model = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=1, seed=seed), seed=seed, device="cpu", verbose=0)
    callback = StopAtThreshold()
    model.learn(total_timesteps=budget, callback=callback)
    wall = time.perf_counter() - start
    steps = callback.hit_step if callback.hit_step is not None else model.num_timesteps
    marks = callback.marks + [(model.num_timesteps, wall)]
    return {"reached": callback.hit_step is not None, "steps": steps, "wall_s": wall,
            "sps": model.num_timesteps / wall, "steady_sps": steady_sps(marks), "total_steps": model.num_timesteps}


CONTENDERS = {
    "rlcore-wallclock": lambda seed, budget: run_rlcore(seed, budget, "CARTPOLE_WALLCLOCK"),
    "rlcore-throughput": lambda seed, budget: run_rlcore(seed, budget, "CARTPOLE_THROUGHPUT"),
    "rlcore-fast": lambda seed, budget: run_rlcore(seed, budget, "CARTPOLE_FAST"),
    "rlcore-cleanrl": lambda seed, budget: run_rlcore(seed, budget, ""),
    "sb3-zoo": lambda seed, budget: run_sb3(seed, budget, tuned=True),
    "sb3-default": lambda seed, budget: run_sb3(seed, budget, tuned=False),
}
DEFAULT = "rlcore-wallclock,rlcore-throughput,rlcore-fast,sb3-zoo,sb3-default"


def warm_up() -> None:
    """Pay the process's one-time import costs before anything is timed (see the module docstring)."""
    importlib.import_module("stable_baselines3")
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # imports torch._dynamo


def summarize(runs: list[dict]) -> dict:
    reached = [r for r in runs if r["reached"]]
    med = (lambda key: float(np.median([r[key] for r in reached])) if reached else None)
    return {"reached": f"{len(reached)}/{len(runs)}", "median_wall_s": med("wall_s"), "median_steps": med("steps"),
            "wall_s_range": [min(r["wall_s"] for r in reached), max(r["wall_s"] for r in reached)] if reached else None,
            "median_sps": float(np.median([r["sps"] for r in runs])),
            "median_steady_sps": float(np.median([r["steady_sps"] for r in runs]))}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=101,
                        help="seeds first-seed, first-seed + 1, ...; the default keeps clear of seeds 1-15, on which "
                             "rlcore's CartPole presets were tuned and checked")
    parser.add_argument("--budget", type=int, default=300_000, help="step budget per run (stops at the threshold)")
    parser.add_argument("--only", default=DEFAULT, help=f"comma-separated contenders of {', '.join(CONTENDERS)}")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = args.only.split(",")
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    warm_up()
    load_start = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    # Interleave contenders seed by seed, so a change in machine load hits all of them alike.
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name in names:
            runs[name].append(CONTENDERS[name](seed, args.budget))
            r = runs[name][-1]
            print(f"  {name:17s} seed {seed}: {'reached' if r['reached'] else 'NOT reached'} at {r['steps']:>9,} "
                  f"steps, {r['wall_s']:6.2f} s, {r['sps']:>9,.0f} steps/s ({r['steady_sps']:,.0f} steady)", flush=True)
    summary = {name: summarize(rs) for name, rs in runs.items()}
    ref = summary.get("sb3-zoo")  # the ratios are to SB3 at its best (tuned); sb3-default's row shows the rest
    print(f"\n{'contender':17s} {'reached':>7s} {'median wall s':>13s} {'median steps':>12s} {'steps/s':>9s}"
          f" {'steady steps/s':>14s} {'time vs sb3':>11s} {'steady sps vs sb3':>17s} {'time vs cleanrl':>15s}")
    fmt = (lambda v, f: "n/a" if v is None else format(v, f))  # noqa: E731
    for name, s in summary.items():
        wall = s["median_wall_s"]
        s["speedup_time_vs_sb3"] = ref["median_wall_s"] / wall if ref and ref["median_wall_s"] and wall else None
        s["speedup_steady_sps_vs_sb3"] = s["median_steady_sps"] / ref["median_steady_sps"] if ref else None
        # Against the quoted CleanRL time (module docstring), from its fast end: the smaller of the two ratios.
        s["speedup_time_vs_cleanrl_quoted"] = CLEANRL_QUOTED_WALL_S[0] / wall if wall else None
        print(f"{name:17s} {s['reached']:>7s} {fmt(wall, '.2f'):>13s} {fmt(s['median_steps'], ',.0f'):>12s}"
              f" {s['median_sps']:>9,.0f} {s['median_steady_sps']:>14,.0f}"
              f" {fmt(s['speedup_time_vs_sb3'], '.1f'):>11s} {fmt(s['speedup_steady_sps_vs_sb3'], '.1f'):>17s}"
              f" {fmt(s['speedup_time_vs_cleanrl_quoted'], '.1f'):>15s}")
    import stable_baselines3

    out = {"benchmark": "PPO CartPole-v1, time to mean(last 100 training episodes) >= 475",
           "command": " ".join(["python benchmarks/ppo_cartpole.py", *(sys.argv[1:] if argv is None else argv)]),
           "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
           "cleanrl_quoted": {"wall_s_to_475": CLEANRL_QUOTED_WALL_S, "sps": CLEANRL_QUOTED_SPS,
                              "source": "quoted in benchmarks/README.md (not measured by this script)"},
           "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                       "torch_threads": torch.get_num_threads()},
           "versions": {"torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__,
                        "numpy": np.__version__},
           "seeds": list(range(args.first_seed, args.first_seed + args.seeds)), "budget": args.budget,
           "summary": summary, "runs": runs}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nwrote {RESULTS}")
    return out


if __name__ == "__main__":
    main()
