"""Regenerate our reference runs for chapter 01 (autograder/references/ch01_bandits.json).

    python -m autograder.references.gen_ch01          # 40,000 runs per configuration, about 2 minutes

For every graded configuration in autograder.checks.ch01.CONFIGS, rlcore's agents play
N_RUNS fresh testbed problems for 1000 steps. We store, per graded metric, the mean and the SD of
the per-run values (the checks derive standard errors from them), and per step the mean and SD of
the reward and of "optimal arm pulled" (the feedback plots draw their bands from these).
The published values (shared references, section 1b) are stored beside ours as anchors, with their
source and status, and the agreement between the two is printed and stored.
"""

from __future__ import annotations

import json
import platform
import time
from functools import partial
from pathlib import Path

import numpy as np

import rlcore
from autograder.checks.ch01 import CONFIGS, N_STEPS
from rlcore.tabular import bandits

OUT = Path(__file__).parent / "ch01_bandits.json"
N_RUNS = 40_000
CHUNK = 10_000  # runs simulated at once: [1000, 10000] float32 rewards is 40 MB
SEED = 20261121  # distinct from the checks' visible seed, so references and checks share no problems

SOURCE = ("Sutton & Barto, Reinforcement Learning: An Introduction, 2nd ed., section 2.3-2.8; "
          "values reproduced by an independent implementation (shared/references/published_results.md "
          "section 1b, status COMPUTED, 2000-run averages)")
# Published anchors: metric -> (value, SD of a 2000-run average, status). Section 1b of the references.
PUBLISHED = {
    "greedy": {"reward at step 1000": (1.027, 0.029, "COMPUTED"), "mean reward, steps 901-1000": (1.033, 0.016, "COMPUTED"),
               "fraction optimal at step 1000": (0.354, 0.013, "COMPUTED"),
               "book text": "reward per step of only about 1, best possible about 1.55; optimal in about one third of tasks (V-primary)"},
    "eps_0.01": {"mean reward, steps 901-1000": (1.313, 0.012, "COMPUTED"), "fraction optimal at step 1000": (0.603, 0.009, "COMPUTED")},
    "eps_0.1": {"reward at step 1000": (1.359, 0.024, "COMPUTED"), "mean reward, steps 901-1000": (1.370, 0.012, "COMPUTED"),
                "fraction optimal at step 1000": (0.798, 0.011, "COMPUTED"),
                "book text": "never selects the optimal action more than 91% of the time (V-primary)"},
    "optimistic": {"fraction optimal at step 1000": (0.858, 0.007, "COMPUTED"), "reward at step 1000": (1.503, None, "COMPUTED")},
    "ucb_c2": {"mean reward at step 11": (1.089, None, "COMPUTED"), "mean reward, steps 901-1000": (1.496, 0.013, "COMPUTED"),
               "fraction optimal at step 1000": (0.861, None, "COMPUTED")},
    "gradient_baseline": {"fraction optimal at step 1000": (0.854, 0.007, "COMPUTED")},
    "gradient_no_baseline": {"fraction optimal at step 1000": (0.495, 0.009, "COMPUTED")},
}


def _make(config):
    return partial(getattr(bandits, config.agent), **config.params)


def simulate(config, n_runs: int, seed: int):
    """Run `config` over n_runs problems in chunks. Returns per-run metric values and per-step sums."""
    per_metric = {m.name: [] for m in config.metrics}
    extra = {"reward at step 1000": [], "fraction optimal at step 1000": []}
    sums = {k: np.zeros(N_STEPS) for k in ("reward", "reward_sq", "optimal")}
    seeds = np.random.SeedSequence(seed).spawn(n_runs // CHUNK)
    for chunk_seed in seeds:
        run = bandits.run_testbed(_make(config), n_runs=CHUNK, n_steps=N_STEPS,
                                  mean=config.testbed_mean, seed=chunk_seed)
        for m in config.metrics:
            per_metric[m.name].append(run.per_run(m.kind, m.first, m.last))
        extra["reward at step 1000"].append(run.per_run("reward", N_STEPS, N_STEPS))
        extra["fraction optimal at step 1000"].append(run.per_run("optimal", N_STEPS, N_STEPS))
        r = run.rewards.astype(np.float64)
        sums["reward"] += r.sum(axis=1)
        sums["reward_sq"] += (r**2).sum(axis=1)
        sums["optimal"] += run.optimal.sum(axis=1)
    values = {k: np.concatenate(v) for k, v in {**per_metric, **extra}.items()}
    return values, sums


def summarize(values: np.ndarray) -> dict:
    return {"mean": round(float(values.mean()), 5), "sd": round(float(values.std(ddof=1)), 5), "n": int(values.size)}


def main() -> None:
    start = time.perf_counter()
    configs_out = {}
    print(f"{'configuration':<24}{'metric':<36}{'ours':>9}{'published':>11}{'z':>7}")
    for i, (key, config) in enumerate(CONFIGS.items()):
        values, sums = simulate(config, N_RUNS, SEED + i)
        reward_mean = sums["reward"] / N_RUNS
        reward_sd = np.sqrt(np.maximum(sums["reward_sq"] / N_RUNS - reward_mean**2, 0) * N_RUNS / (N_RUNS - 1))
        optimal_mean = sums["optimal"] / N_RUNS
        metrics = {name: summarize(v) for name, v in values.items()}
        published = {}
        for name, anchor in PUBLISHED.get(key, {}).items():
            if name == "book text":
                published[name] = anchor
                continue
            value, sd2000, status = anchor
            ours = metrics[name]
            # Agreement: difference in units of the combined SE (published SD is of a 2000-run mean).
            se = np.hypot(ours["sd"] / np.sqrt(ours["n"]), sd2000 or 0.0)
            z = (ours["mean"] - value) / se if sd2000 else None
            published[name] = {"value": value, "sd_of_2000_run_mean": sd2000, "status": status,
                               "z_ours_vs_published": None if z is None else round(float(z), 2)}
            print(f"{key:<24}{name:<36}{ours['mean']:>9.3f}{value:>11.3f}{'' if z is None else f'{z:>7.1f}'}")
        configs_out[key] = {
            "label": config.label,
            "agent": f"rlcore.tabular.bandits.{config.agent}",
            "params": config.params,
            "testbed_mean": config.testbed_mean,
            "metrics": metrics,
            "published": published,
            "curves": {
                "reward_mean": np.round(reward_mean, 4).tolist(),
                "reward_sd": np.round(reward_sd, 4).tolist(),
                "optimal_mean": np.round(optimal_mean, 4).tolist(),
                "optimal_sd": np.round(np.sqrt(optimal_mean * (1 - optimal_mean)), 4).tolist(),
            },
        }
    data = {
        "chapter": "01_bandits",
        "description": "Our reference runs of the 10-armed testbed with rlcore's agents.",
        "command": "python -m autograder.references.gen_ch01",
        "source": SOURCE,
        "metric_definitions": {
            "mean reward, steps 901-1000": "per run: the average reward over steps 901..1000; then mean and SD across runs",
            "fraction optimal, steps 901-1000": "per run: the fraction of steps 901..1000 on which the optimal arm was pulled",
            "mean reward at step 11": "per run: the reward at step 11 (1-based)",
            "reward at step 1000": "per run: the reward at step 1000",
            "fraction optimal at step 1000": "per run: 1 if the optimal arm was pulled at step 1000, else 0",
            "curves": "per step over all runs: mean and SD of the reward, and of the optimal-arm indicator",
        },
        "testbed": "k = 10; q*(a) ~ N(testbed_mean, 1) per run; reward ~ N(q*(A), 1); 1000 steps",
        "n_runs": N_RUNS,
        "seed": SEED,
        "versions": {"rlcore": rlcore.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "configs": configs_out,
    }
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
