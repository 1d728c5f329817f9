"""Regenerate our measurements for chapter 15 (autograder/references/ch15_multi_gpu_ppo.json).

    python -m autograder.references.gen_ch15          # about 8 minutes of CPU on 2 cores

- Equivalence (b): the largest parameter difference between 2 (and 4) gloo ranks, each on its shard of every
  minibatch of a fixed PPO batch, and 1 process on the whole minibatches, after 8 SGD steps
  (`autograder.checks.ch15.data_parallel_updates`, the check's own experiment), in float64 and float32.
- Sample efficiency (c): rlcore.ppo.train as it is, with the CARTPOLE_FAST preset (32 environments over all
  ranks, one 512-sample minibatch per epoch, advantage normalization over the whole minibatch) for 100,000
  steps on 1 process and on 2 gloo ranks (16 environments each), over SEEDS; per seed the mean return of the
  last 100 training episodes of all ranks' environments (rlcore's Result holds rank 0's alone, which with 2
  ranks spans twice the training steps; stored too). Rule: one-sided non-inferiority of the 2-rank seeds
  against the 1-rank mean with the margin of published_results.md section 6.4 (`stats.noninferiority_delta`),
  and the two-sided difference with its standard error.
  Two more 2-rank arms put back, one at a time, what earlier versions of rlcore.ppo did: "per-rank advantage
  normalization" (each rank normalizes its own half of the minibatch with its own mean and std) and "shared
  noise" (rank 1 keeps the torch generator that seeding gives every rank alike, so the ranks sample their
  actions with the same noise); with each, how often the ranks' first 32 actions agree.

There is no published number for data-parallel PPO on CartPole; the comparison is 2 ranks against our 1 rank.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from autograder import stats
from autograder.checks import ch15
from rlcore import distributed

OUT = Path(__file__).parent / "ch15_multi_gpu_ppo.json"
COMMAND = "python -m autograder.references.gen_ch15"
SEEDS = tuple(range(200, 210))
STEPS = 100_000
RANDOM_MEAN = 22.7  # CartPole-v1 under a uniformly random policy (ch11_ppo.json)


def _fixed_batch_rank(rank, world, seed, dtype):
    return ch15.data_parallel_updates(rank, world, distributed.shard, distributed.all_reduce_gradients, seed=seed,
                                      dtype=dtype)


def equivalence() -> dict:
    """Largest |params(W ranks x 1/W of each minibatch) - params(1 process x whole)| after 8 SGD steps."""
    out = {}
    for world in (2, 4):
        for dtype, name in ((torch.float64, "float64"), (torch.float32, "float32")):
            errors = []
            for seed in (0, 1, 2):
                one = ch15.data_parallel_updates(0, 1, distributed.shard, distributed.all_reduce_gradients, seed=seed,
                                                 dtype=dtype)
                ranks = distributed.launch(_fixed_batch_rank, world, seed, dtype, timeout=120)
                errors.append(float(np.abs(ranks[0] - one).max()))
            out[f"{world}_ranks_{name}"] = max(errors)
    return out


PER_RANK_ADV = "per-rank advantage normalization"
SHARED_NOISE = "shared noise"


def _train_rank(rank, world, seed, variant=None, overrides=None):
    """rlcore.ppo.train on this rank, with `variant` (None, PER_RANK_ADV or SHARED_NOISE) put back; this process
    is a fork, so every replacement below ends with it."""
    from rlcore import ppo

    if variant not in (None, PER_RANK_ADV, SHARED_NOISE):
        raise ValueError(f"unknown variant {variant!r}")
    if variant == PER_RANK_ADV:
        distributed.global_mean_std = lambda x: (x.mean(-1), x.std(-1))  # the statistics of this rank's shard
    elif variant == SHARED_NOISE and rank > 0:
        original = ppo.seed_everything

        def seed_everything(seed_, rank_):
            generator = original(seed_, rank_)  # seeds torch alike on every rank
            torch.manual_seed = lambda *args: None  # so rlcore.ppo's reseed of ranks > 0 does nothing
            return generator

        ppo.seed_everything = seed_everything
    from rlcore.envs import make_vector

    class Recording:
        """Every episode of this rank's environments, at its global step, and the first 32 actions."""

        def __init__(self, envs, global_envs):
            self.envs, self.global_envs, self.step_count = envs, global_envs, 0
            self.actions, self.episodes = [], []

        def __getattr__(self, name):
            return getattr(self.envs, name)

        def step(self, actions):
            if len(self.actions) < 32:
                self.actions.append(np.array(actions))
            out = self.envs.step(actions)
            self.step_count += self.global_envs  # rlcore.ppo counts steps over all ranks
            returns = out[4]["episode_return"]
            self.episodes += [(self.step_count, float(r)) for r in returns[~np.isnan(returns)]]
            return out

    settings = dict(ppo.CARTPOLE_FAST, total_timesteps=STEPS)
    settings.update(overrides or {})
    config = ppo.PPOConfig(**settings, seed=seed, progress=False)
    envs = Recording(make_vector(config.env_id, config.num_envs // world, backend=config.backend), config.num_envs)
    cpu = time.process_time()
    ppo.train(config, envs=envs)
    return {"cpu": time.process_time() - cpu, "actions": np.stack(envs.actions), "episodes": envs.episodes}


def last_100_and_hit(per_rank_episodes: list, threshold: float = 475.0) -> tuple[float, int | None]:
    """The mean return of the last 100 episodes of ALL ranks (merged by global step), and the first global step
    at which that mean reached the threshold. rlcore's own Result holds rank 0's episodes only: with W ranks,
    rank 0's last 100 episodes span W times as many training steps, so they lag behind a 1-rank run's."""
    episodes = sorted((step, r) for eps in per_rank_episodes for step, r in eps)
    returns = np.array([r for _, r in episodes])
    means = np.lib.stride_tricks.sliding_window_view(returns, 100).mean(axis=1)
    hits = np.flatnonzero(means >= threshold)
    return float(returns[-100:].mean()), (int(episodes[hits[0] + 99][0]) if hits.size else None)


def rank0_last_100(per_rank_episodes: list) -> float:
    """The same mean over rank 0's episodes alone (what rlcore.ppo's Result and progress bar report)."""
    return float(np.mean([r for _, r in per_rank_episodes[0][-100:]]))


# arm: (ranks, variant, config overrides)
ARMS = {"1 rank": (1, None, {}), "2 ranks": (2, None, {}), f"2 ranks, {PER_RANK_ADV}": (2, PER_RANK_ADV, {}),
        f"2 ranks, {SHARED_NOISE}": (2, SHARED_NOISE, {})}


def sample_efficiency(arm_specs: dict = ARMS, reference_arm: str = "1 rank") -> dict:
    arms = {arm: [] for arm in arm_specs}
    cpu = {k: [] for k in arms}
    agreement = {k: [] for k in arms}
    hits = {k: [] for k in arms}
    rank0 = {k: [] for k in arms}
    for seed in SEEDS:
        for arm, (world, variant, overrides) in arm_specs.items():
            out = distributed.launch(_train_rank, world, seed, variant, overrides, timeout=900)
            final, hit = last_100_and_hit([o["episodes"] for o in out])
            arms[arm].append(round(final, 1))
            rank0[arm].append(round(rank0_last_100([o["episodes"] for o in out]), 1))
            cpu[arm].append(sum(o["cpu"] for o in out))
            hits[arm].append(hit)
            if world == 2:
                agreement[arm].append(float((out[0]["actions"] == out[1]["actions"]).mean()))
            print(f"  seed {seed} {arm:44s}: last-100 mean {final:6.1f} (rank 0's alone {rank0[arm][-1]:6.1f}), "
                  f"475 at {hit}, CPU {cpu[arm][-1]:.1f} s", flush=True)
    one = np.array(arms[reference_arm])
    ref_mean, ref_sd = float(one.mean()), float(one.std(ddof=1))
    delta = stats.noninferiority_delta(ref_mean, ref_sd, RANDOM_MEAN)
    result = {"steps": STEPS, "seeds": list(SEEDS), "random_mean": RANDOM_MEAN,
              "metric": "mean return of the last 100 training episodes of all ranks' environments (merged by global "
                        "step) at 100,000 steps; rank0_final: the same over rank 0's environments alone, as "
                        "rlcore.ppo's Result reports it",
              "noninferiority_delta": round(delta, 1), "arms": {}}
    for arm, finals in arms.items():
        x = np.array(finals)
        reached = [h for h in hits[arm] if h is not None]
        entry = {"final": finals, "mean": round(float(x.mean()), 1), "sd": round(float(x.std(ddof=1)), 1),
                 "n": int(x.size), "rank0_final": rank0[arm], "rank0_mean": round(float(np.mean(rank0[arm])), 1),
                 "cpu_seconds_per_seed_all_ranks": round(float(np.mean(cpu[arm])), 1),
                 "reached_475": f"{len(reached)}/{len(hits[arm])}",
                 "median_steps_to_475": float(np.median(reached)) if reached else None}
        if arm != reference_arm:
            verdict = stats.non_inferiority(x, ref_mean=ref_mean, delta=delta, metric=f"{arm} vs {reference_arm}")
            diff = float(x.mean() - ref_mean)
            se = float(np.hypot(x.std(ddof=1) / np.sqrt(x.size), ref_sd / np.sqrt(one.size)))
            entry.update({"noninferiority": {"passed": verdict.passed, "detail": verdict.detail},
                          "reference_arm": reference_arm, "difference_vs_1_rank": round(diff, 1),
                          "difference_se": round(se, 1),
                          "first_32_steps_action_agreement_rank0_rank1": round(float(np.mean(agreement[arm])), 3)})
        result["arms"][arm] = entry
    return result


def compact_json(data) -> str:
    """Indented JSON with every list of numbers on one line."""
    text = json.dumps(data, indent=1)
    return re.sub(r"\[\s+([-\d.,\s eE+null]+?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)


def main(argv: list[str] = ()) -> None:
    """Everything, written to OUT."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    data = {
        "chapter": "15_multi_gpu_ppo",
        "description": "Data-parallel PPO with rlcore on gloo ranks of one CPU machine: the equivalence of W ranks "
                       "on shards with one process, and sample efficiency of 2 ranks against 1.",
        "command": COMMAND,
        "machine": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "load_average_at_start": [round(x, 1) for x in os.getloadavg()], "gpu": None},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                     "gymnasium": gym.__version__},
        "published": "none: no published data-parallel PPO result on CartPole-v1; 2 ranks are compared with our 1 rank",
    }
    print("equivalence of W ranks with 1 process on a fixed batch", flush=True)
    data["equivalence_max_abs_diff"] = equivalence()
    print(data["equivalence_max_abs_diff"], flush=True)
    print(f"sample efficiency: {len(SEEDS)} seeds x {len(ARMS)} arms x {STEPS:,} steps", flush=True)
    data["sample_efficiency"] = sample_efficiency()
    data["wall_seconds"] = round(time.perf_counter() - started, 1)
    OUT.write_text(compact_json(data) + "\n")
    print(f"wrote {OUT} in {data['wall_seconds']:.0f} s")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
