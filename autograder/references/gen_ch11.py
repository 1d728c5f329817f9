"""Regenerate our reference runs for chapter 11 (autograder/references/ch11_ppo.json).

    python -m autograder.references.gen_ch11                    # about 6 minutes of CPU
    python -m autograder.references.gen_ch11 --workers 2        # the same runs in two processes
    python -m autograder.references.gen_ch11 --only continuous  # the MuJoCo part alone (about 1 minute)

- The two graded curves: rlcore.ppo.train with exactly the exercise's settings (autograder.checks.ch11.SETTINGS,
  32 environments), in the grader's own environment (`deeprl.GradedVectorEnv`), on CartPole-v1 for 150,000 steps
  and Acrobot-v1 for 100,000 steps, 12 seeds each (REFERENCE_SEEDS, distinct from the visible grading seeds 1-7
  and from the seeds 1000-1005 on which the settings were chosen). Stored: `deeprl.reference_entry` (the final
  last-100 means and the curve band), the CPU seconds per seed, and a calibration: the fraction of 20,000
  bootstrap draws of 7 of our finals that pass the check's rule (must be at least 99%).
- Continuous control: rlcore.ppo with a Gaussian policy and observation and reward normalization on MuJoCo's
  InvertedPendulum-v5 (the `mujoco` wheels), 2 seeds: steps per second and the last-100 mean return, for the
  lesson's section 8. Skipped (and said so in the JSON) when mujoco is not installed.

The published numbers (shared/references/published_results.md section 2, CleanRL ppo.py at 500k steps, 3 seeds,
population SD) are stored next to ours with the margin the checks use.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from autograder import deeprl, stats
from autograder.checks import ch11
from rlcore.ppo import INVERTED_PENDULUM_FAST, PPOConfig, train

OUT = Path(__file__).parent / "ch11_ppo.json"
REFERENCE_SEEDS = tuple(range(100, 112))
CALIBRATION_DRAWS = 20_000
CALIBRATION_SEED = 11
CONTINUOUS_ENV = "InvertedPendulum-v5"
CONTINUOUS_SEEDS = (1, 2)

COMMAND = "python -m autograder.references.gen_ch11"
PUBLISHED = {
    "cartpole": {"env_id": "CartPole-v1", "value": 490.04, "sd_population": 6.12, "seeds": 3, "steps": 500_000,
                 "random": 22.7, "source": "CleanRL docs/rl-algorithms/ppo.md + docs/benchmark/ppo.md (tag pr-424), "
                 "ppo.py, 4 envs x 128 steps; published_results.md section 2, V-primary"},
    "acrobot": {"env_id": "Acrobot-v1", "value": -86.36, "sd_population": 1.32, "seeds": 3, "steps": 500_000,
                "random": -499.2, "source": "CleanRL docs/rl-algorithms/ppo.md (tag pr-424), ppo.py; "
                "published_results.md section 2, V-primary"},
}


def grading_config(env_id: str, total_timesteps: int, seed: int) -> PPOConfig:
    """rlcore's PPO with the exercise's settings (ch11.SETTINGS) and ch11.NUM_ENVS environments."""
    return PPOConfig(env_id=env_id, num_envs=ch11.NUM_ENVS, total_timesteps=total_timesteps, seed=seed,
                     progress=False, **ch11.SETTINGS)


def run_one(job: tuple[str, int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """One rlcore PPO run in the grader's environment: (episode steps [E], returns [E], CPU seconds)."""
    env_id, total_timesteps, seed = job
    torch.set_num_threads(1)
    envs = deeprl.GradedVectorEnv(env_id, ch11.NUM_ENVS, seed=seed, total_timesteps=total_timesteps)
    t0 = time.process_time()
    train(grading_config(env_id, total_timesteps, seed), envs=envs)
    seconds = time.process_time() - t0
    envs.close()
    ep = np.array(envs.episodes, dtype=np.float64).reshape(-1, 3)
    print(f"  {env_id} seed {seed}: last-100 mean {deeprl.final_score(ep[:, 0], ep[:, 1]):8.2f}  ({seconds:.1f} s CPU)",
          flush=True)
    return ep[:, 0].astype(np.int64), ep[:, 1], seconds


def run_seeds(jobs: list[tuple[str, int, int]], workers: int) -> list:
    """run_one over jobs, in `workers` processes (each single-threaded; the CPU seconds are per process)."""
    if workers <= 1:
        return [run_one(job) for job in jobs]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(run_one, jobs, chunksize=1)


def calibration(finals: np.ndarray, published: dict, n_seeds: int) -> dict:
    """The fraction of bootstrap draws of n_seeds of our finals that pass the check's rule."""
    delta = stats.noninferiority_delta(published["value"], stats.population_to_sample_sd(published["sd_population"], 3),
                                       published["random"])
    passed = deeprl.calibration(finals, ref_mean=published["value"], delta=delta, n_seeds=n_seeds,
                                draws=CALIBRATION_DRAWS, seed=CALIBRATION_SEED)
    return {"rule": "stats.non_inferiority (95% one-sided t lower bound >= published - delta)",
            "delta": round(float(delta), 3), "threshold": round(published["value"] - delta, 3), "seeds_per_draw": n_seeds,
            "draws": CALIBRATION_DRAWS, "rng_seed": CALIBRATION_SEED, "pass_fraction": round(float(passed), 5)}


def continuous() -> dict:
    """PPO with a Gaussian policy on a MuJoCo task: steps per second and the last-100 mean return."""
    try:
        import mujoco
        gym.make(CONTINUOUS_ENV).close()
    except Exception as err:  # mujoco wheels missing or unusable here
        return {"env_id": CONTINUOUS_ENV, "skipped": f"{type(err).__name__}: {err}"}
    config = dict(INVERTED_PENDULUM_FAST)
    total = config.pop("total_timesteps")
    finals, sps, seconds = [], [], []
    for seed in CONTINUOUS_SEEDS:
        cfg = PPOConfig(env_id=CONTINUOUS_ENV, total_timesteps=total, seed=seed, progress=False, **config)
        envs = deeprl.GradedVectorEnv(CONTINUOUS_ENV, cfg.num_envs, seed=seed, total_timesteps=total)
        t0 = time.process_time()
        train(cfg, envs=envs)
        seconds.append(time.process_time() - t0)
        envs.close()
        ep = np.array(envs.episodes, dtype=np.float64).reshape(-1, 3)
        finals.append(deeprl.final_score(ep[:, 0], ep[:, 1]))
        sps.append(envs.global_step / seconds[-1])
        print(f"  {CONTINUOUS_ENV} seed {seed}: last-100 mean {finals[-1]:8.1f}  ({seconds[-1]:.1f} s CPU, "
              f"{sps[-1]:.0f} steps/s)", flush=True)
    return {"env_id": CONTINUOUS_ENV, "mujoco": mujoco.__version__, "config": dict(INVERTED_PENDULUM_FAST), "preset": "rlcore.ppo.INVERTED_PENDULUM_FAST",
            "seeds": list(CONTINUOUS_SEEDS), "final": [round(f, 1) for f in finals],
            "cpu_seconds_per_seed": round(float(np.mean(seconds)), 1), "steps_per_cpu_second": int(np.mean(sps)),
            "best_return": 1000.0, "metric": "last-100 training-episode mean return (stochastic Gaussian policy)"}


def compact_json(data) -> str:
    """Indented JSON with every list of numbers on one line."""
    text = json.dumps(data, indent=1)
    return re.sub(r"\[\s+([-\d.,\s eE+null]+?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)


def main(argv: list[str] = ()) -> None:
    """All parts; `--only continuous` reruns just the MuJoCo part and keeps the rest of the JSON;
    `--workers K` spreads the runs over K processes."""
    argv = list(argv)
    workers = int(argv[argv.index("--workers") + 1]) if "--workers" in argv else 1
    torch.set_num_threads(1)
    if argv[:2] == ["--only", "continuous"]:
        data = json.loads(OUT.read_text())
        data["continuous"] = continuous()
        OUT.write_text(compact_json(data) + "\n")
        print(f"updated the continuous part of {OUT}")
        return
    started = time.perf_counter()
    data = {
        "chapter": "11_ppo",
        "description": "Our reference runs of rlcore's PPO with the exercise's settings, in the grader's environments.",
        "command": COMMAND + (f" --workers {workers}" if workers > 1 else ""),
        "machine": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "load_average_at_start": [round(x, 1) for x in os.getloadavg()]},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                     "gymnasium": gym.__version__},
        "settings": dict(ch11.SETTINGS, num_envs=ch11.NUM_ENVS),
        "metric": "per seed, the mean return of the last 100 training episodes (CleanRL's metric), as the grader's "
                  "GradedVectorEnv counted them; curve: the same mean at 60 grid steps, band = min/max over seeds",
        "seeds": list(REFERENCE_SEEDS),
        "settings_chosen_on_seeds": [1000, 1001, 1002, 1003, 1004, 1005],
    }
    tasks = {"cartpole": ch11.CARTPOLE_STEPS, "acrobot": ch11.ACROBOT_STEPS}
    jobs = [(PUBLISHED[key]["env_id"], steps, seed) for key, steps in tasks.items() for seed in REFERENCE_SEEDS]
    print(f"{len(jobs)} runs of rlcore PPO in {workers} process(es)", flush=True)
    results = run_seeds(jobs, workers)
    for k, (key, steps) in enumerate(tasks.items()):
        published = PUBLISHED[key]
        mine = results[k * len(REFERENCE_SEEDS):(k + 1) * len(REFERENCE_SEEDS)]
        entry = deeprl.reference_entry([(s_, r_) for s_, r_, _ in mine], total_timesteps=steps)
        finals = np.array(entry["final"]["values"])
        entry.update({
            "env_id": published["env_id"], "total_timesteps": steps,
            "seconds_per_seed": round(float(np.mean([sec for _, _, sec in mine])), 2),
            "seconds_note": "CPU seconds (time.process_time) of rlcore.ppo.train per seed, one thread, on the machine "
                            "in `machine`",
            "published": published,
            "calibration": calibration(finals, published, len(ch11.VISIBLE_SEEDS)),
        })
        data[key] = entry
        cal = entry["calibration"]
        print(f"{published['env_id']}: ours {entry['final']['mean']:.2f} (SD {entry['final']['sd']:.2f}, n "
              f"{entry['final']['n']}) vs published {published['value']} at {published['steps']:,} steps; pass line "
              f"{cal['threshold']}; 7-seed calibration {cal['pass_fraction']:.4f}", flush=True)
    print(f"{CONTINUOUS_ENV}: {len(CONTINUOUS_SEEDS)} seeds", flush=True)
    data["continuous"] = continuous()
    data["generation_seconds"] = round(time.perf_counter() - started, 1)
    OUT.write_text(compact_json(data) + "\n")
    print(f"wrote {OUT} in {data['generation_seconds']:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
