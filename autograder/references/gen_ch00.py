"""Regenerate our random-policy baselines for chapter 00 (autograder/references/ch00_rl_loop.json).

    python -m autograder.references.gen_ch00          # about a minute

For each classic-control environment, rlcore.evaluate runs a uniformly random policy
(`random_policy`) for N_EPISODES[env_id] episodes under gymnasium's default time limit, episode i
from env.reset(seed=SEED + i). CartPole-v1, the graded one, gets 100,000 episodes (about 25 s), so
its reference mean has a standard error of 0.04, a tenth of that of a learner's 1000-episode
estimate. We store the mean and per-episode SD of the undiscounted return (the checks derive
standard errors from them), how episodes ended, and a histogram of the returns (the feedback plot
draws the reference distribution from it). The published values (shared
references, section 2) are stored beside ours as anchors with their source and status, and the
agreement between the two is printed and stored.
"""

from __future__ import annotations

import json
import math
import platform
import re
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import rlcore
from rlcore.evaluate import random_policy, run_episodes

OUT = Path(__file__).parent / "ch00_rl_loop.json"
N_EPISODES = {"CartPole-v1": 100_000, "Acrobot-v1": 1000, "MountainCar-v0": 1000, "Pendulum-v1": 1000}
SEED = 0  # episodes 0..99999; the graded check uses seeds 100000 + i, so the two share no episode
METRIC = ("undiscounted return of one episode with a uniformly random policy, gymnasium default time limit")
SOURCE = ("shared/references/published_results.md, section 2 (random-policy baselines): computed by an "
          "independent implementation with gymnasium 1.4.0 over 1000 episodes (Acrobot-v1: 300)")
# Published anchors: value, per-episode SD (None where not printed), episodes, status.
PUBLISHED = {
    "CartPole-v1": (22.7, 11.8, 1000, "COMPUTED"),
    "Acrobot-v1": (-499.2, None, 300, "COMPUTED"),
    "MountainCar-v0": (-200.0, None, 1000, "COMPUTED"),
    "Pendulum-v1": (-1219.0, 287.0, 1000, "COMPUTED"),
}


def histogram(returns: np.ndarray, max_bins: int = 30) -> dict:
    """Bin edges and counts of the returns. Integer-valued returns get integer-width bins, so
    every bin holds the same number of possible values; a single value gets one bin around it."""
    lo, hi = float(returns.min()), float(returns.max())
    if lo == hi:
        edges = np.array([lo - 0.5, hi + 0.5])
    elif np.all(returns == np.round(returns)):
        width = max(1, math.ceil((hi - lo + 1) / max_bins))
        edges = np.arange(lo, hi + width + 1, width) - 0.5  # [B+1], integers sit mid-bin
    else:
        edges = np.linspace(math.floor(lo), math.ceil(hi), max_bins + 1)
    counts, _ = np.histogram(returns, edges)
    return {"bin_edges": np.round(edges, 4).tolist(), "counts": counts.tolist()}


def baseline(env_id: str, n_episodes: int, seed: int) -> dict:
    """Run the random policy and summarise its episodes."""
    episodes = run_episodes(env_id, make_policy=random_policy, n_episodes=n_episodes, seed=seed)
    returns = np.array([e.total_reward for e in episodes])  # [n]
    lengths = np.array([e.length for e in episodes])  # [n]
    quantiles = np.quantile(returns, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {
        "mean": round(float(returns.mean()), 4),
        "sd": round(float(returns.std(ddof=1)), 4),
        "se": round(float(returns.std(ddof=1) / np.sqrt(n_episodes)), 4),
        "n_episodes": n_episodes,
        "seed": seed,
        "min": float(returns.min()),
        "max": float(returns.max()),
        "quantiles": dict(zip(("5%", "25%", "50%", "75%", "95%"), np.round(quantiles, 3).tolist(), strict=True)),
        "mean_length": round(float(lengths.mean()), 3),
        "fraction_terminated": float(np.mean([e.terminated for e in episodes])),
        "fraction_truncated": float(np.mean([e.truncated for e in episodes])),
        "max_episode_steps": gym.spec(env_id).max_episode_steps,
        "histogram": histogram(returns),
    }


def published_entry(env_id: str, ours: dict) -> dict:
    """The published anchor, and how far ours is from it in combined standard errors."""
    value, sd, n, status = PUBLISHED[env_id]
    entry = {"value": value, "sd": sd, "n_episodes": n, "status": status, "source": SOURCE}
    # The published SE uses its own SD where printed, else ours (same distribution, fewer episodes).
    se = math.hypot(ours["se"], (sd if sd is not None else ours["sd"]) / math.sqrt(n))
    entry["z_ours_vs_published"] = round((ours["mean"] - value) / se, 2) if se > 0 else 0.0
    return entry


def _compact(text: str) -> str:
    """Put lists of numbers on one line, so the file stays readable."""
    return re.sub(r"\[\s*([-0-9.e,\s]+?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def main() -> None:
    start = time.perf_counter()
    envs = {}
    print(f"{'environment':<16}{'ours':>10}{'SD':>9}{'published':>11}{'z':>7}{'seconds':>9}")
    for env_id, n_episodes in N_EPISODES.items():
        t0 = time.perf_counter()
        ours = baseline(env_id, n_episodes, SEED)
        ours["published"] = published_entry(env_id, ours)
        envs[env_id] = ours
        print(f"{env_id:<16}{ours['mean']:>10.2f}{ours['sd']:>9.2f}{ours['published']['value']:>11.1f}"
              f"{ours['published']['z_ours_vs_published']:>7.2f}{time.perf_counter() - t0:>9.1f}")
    data = {
        "chapter": "00_rl_loop",
        "description": "Random-policy baselines on the classic-control environments, run with rlcore.evaluate.",
        "command": "python -m autograder.references.gen_ch00",
        "metric": METRIC,
        "policy": "rlcore.evaluate.random_policy: uniform samples from a copy of env.action_space, seeded "
                  "with a seed derived from the episode's seed",
        "seeding": "episode i: env.reset(seed=seed + i) and random_policy(env.action_space, seed + i)",
        "fields": {
            "mean, sd, se": "mean of the per-episode returns, their sample SD (ddof=1), and SD / sqrt(n_episodes)",
            "fraction_terminated, fraction_truncated": "how episodes ended (both can be true at the time limit)",
            "histogram": "counts of the per-episode returns in bins [bin_edges[j], bin_edges[j + 1])",
            "published.z_ours_vs_published": "(ours - published) / combined SE",
        },
        "versions": {"rlcore": rlcore.__version__, "gymnasium": gym.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "envs": envs,
    }
    OUT.write_text(_compact(json.dumps(data, indent=2)) + "\n")
    print(f"wrote {OUT} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
