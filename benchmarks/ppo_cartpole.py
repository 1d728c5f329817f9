"""PPO on CartPole-v1: rlcore against Stable-Baselines3, in the same run, single-threaded, several seeds.

For each seed and contender we measure, from constructing the agent to the moment the mean return of the
last 100 *training* episodes first reaches 475 (Gymnasium's reward threshold):

    wall time to threshold      seconds, end to end (environment creation and network init included)
    steps to threshold          environment steps, so speed bought with sample efficiency shows up
    steps per second            over the same interval

Contenders:
    rlcore-fast      rlcore.ppo with the CARTPOLE_FAST preset on the batched NumPy CartPole (rlcore.envs.fast)
    rlcore-cleanrl   rlcore.ppo with CleanRL ppo.py's defaults (4 envs x 128 steps), same batched CartPole
    sb3-zoo          Stable-Baselines3 PPO with rl-baselines3-zoo's tuned CartPole-v1 hyperparameters
                     (8 envs, n_steps 32, batch 256, 20 epochs, lr and clip linear from 1e-3 and 0.2,
                     gamma 0.98, gae_lambda 0.8, ent_coef 0), on Gymnasium's CartPole-v1 in a DummyVecEnv

CleanRL's ppo.py is not measured here: the only PyPI release (cleanrl 0.4.8, 2021) predates Gymnasium and
needs the retired `gym` package; its documented numbers are quoted in benchmarks/README.md instead.

    python benchmarks/ppo_cartpole.py [--seeds 5] [--budget 300000] [--only rlcore-fast,sb3-zoo]

Writes benchmarks/results/ppo_cartpole.json and prints a table with medians and ratios to SB3.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

THRESHOLD = 475.0
RESULTS = Path(__file__).parent / "results" / "ppo_cartpole.json"


def run_rlcore(seed: int, budget: int, preset: str) -> dict:
    from rlcore.ppo import CARTPOLE_FAST, PPOConfig, train

    overrides = dict(CARTPOLE_FAST) if preset == "fast" else {}
    overrides["total_timesteps"] = overrides.get("total_timesteps", budget) if preset == "fast" else budget
    start = time.perf_counter()
    result = train(PPOConfig(env_id="CartPole-v1", seed=seed, progress=False, stop_at_return=THRESHOLD, **overrides))
    wall = time.perf_counter() - start
    hit = result.steps_to_threshold(THRESHOLD)
    return {"reached": hit is not None, "steps": hit if hit is not None else result.global_step,
            "wall_s": wall, "sps": result.global_step / wall, "total_steps": result.global_step}


def run_sb3(seed: int, budget: int) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class StopAtThreshold(BaseCallback):
        """Track training-episode returns (Monitor's info["episode"]) and stop at the threshold."""

        def __init__(self):
            super().__init__()
            self.returns: list[float] = []
            self.hit_step: int | None = None

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
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed, device="cpu", verbose=0)
    callback = StopAtThreshold()
    model.learn(total_timesteps=budget, callback=callback)
    wall = time.perf_counter() - start
    steps = callback.hit_step if callback.hit_step is not None else model.num_timesteps
    return {"reached": callback.hit_step is not None, "steps": steps, "wall_s": wall,
            "sps": model.num_timesteps / wall, "total_steps": model.num_timesteps}


CONTENDERS = {
    "rlcore-fast": lambda seed, budget: run_rlcore(seed, budget, "fast"),
    "rlcore-cleanrl": lambda seed, budget: run_rlcore(seed, budget, "cleanrl"),
    "sb3-zoo": run_sb3,
}


def summarize(runs: list[dict]) -> dict:
    reached = [r for r in runs if r["reached"]]
    med = (lambda key: float(np.median([r[key] for r in reached])) if reached else None)
    return {"reached": f"{len(reached)}/{len(runs)}", "median_wall_s": med("wall_s"), "median_steps": med("steps"),
            "median_sps": float(np.median([r["sps"] for r in runs]))}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=300_000, help="step budget per run (stops at the threshold)")
    parser.add_argument("--only", default=",".join(CONTENDERS), help="comma-separated contenders")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = args.only.split(",")
    runs: dict[str, list[dict]] = {name: [] for name in names}
    # Interleave contenders seed by seed, so a change in machine load hits all of them alike.
    for seed in range(1, args.seeds + 1):
        for name in names:
            runs[name].append(CONTENDERS[name](seed, args.budget))
            r = runs[name][-1]
            print(f"  {name:15s} seed {seed}: {'reached' if r['reached'] else 'NOT reached'} at {r['steps']:>7,} "
                  f"steps, {r['wall_s']:6.2f} s, {r['sps']:>9,.0f} steps/s", flush=True)
    summary = {name: summarize(rs) for name, rs in runs.items()}
    ref = summary.get("sb3-zoo")
    print(f"\n{'contender':15s} {'reached':>8s} {'median wall s':>14s} {'median steps':>13s} {'steps/s':>10s}"
          f" {'time ratio vs sb3':>18s} {'sps ratio vs sb3':>17s}")
    for name, s in summary.items():
        t_ratio = (ref["median_wall_s"] / s["median_wall_s"]) if ref and ref["median_wall_s"] and s["median_wall_s"] else None
        sps_ratio = s["median_sps"] / ref["median_sps"] if ref else None
        s["speedup_time_vs_sb3"], s["speedup_sps_vs_sb3"] = t_ratio, sps_ratio
        fmt = (lambda v, f: "n/a" if v is None else format(v, f))
        print(f"{name:15s} {s['reached']:>8s} {fmt(s['median_wall_s'], '.2f'):>14s} {fmt(s['median_steps'], ',.0f'):>13s}"
              f" {s['median_sps']:>10,.0f} {fmt(t_ratio, '.1f'):>18s} {fmt(sps_ratio, '.1f'):>17s}")
    import stable_baselines3

    out = {"benchmark": "PPO CartPole-v1, time to mean(last 100 training episodes) >= 475",
           "command": "python benchmarks/ppo_cartpole.py " + " ".join(argv or []),
           "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                       "torch_threads": torch.get_num_threads()},
           "versions": {"torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__,
                        "numpy": np.__version__},
           "seeds": args.seeds, "budget": args.budget, "summary": summary, "runs": runs}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nwrote {RESULTS}")
    return out


if __name__ == "__main__":
    main()
