"""Seeding: one integer seed per run makes it reproducible, with no global RNG in environments.

    rng = seed_everything(seed, rank)    # torch's and NumPy's generators for this process
    env_seed(seed, rank, num_envs)       # the seed for envs.reset(seed=...) on this rank

Ranks (processes of a distributed run, `rlcore.distributed`) must not share environment seeds, or
N processes would collect N copies of the same experience. Rank r seeds its environments from
seed + r * num_envs, so the envs of all ranks get the consecutive seeds seed, seed + 1, ... that one
process with every env would use: a 2-rank run sees the same episodes as a 1-rank run with twice the envs.
Network initialisation, in contrast, uses the same seed on every rank (and rank 0's parameters are
broadcast anyway), so all replicas start identical.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def seed_everything(seed: int, rank: int = 0) -> np.random.Generator:
    """Seed torch (CPU and CUDA) and Python's `random` with `seed`, and return a NumPy Generator for
    this rank (for action sampling, minibatch shuffling and anything else random on the host).

    torch gets the same seed on every rank (identical initial parameters); the returned Generator
    differs per rank (independent minibatch orders and exploration)."""
    seed = _check_seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return np.random.default_rng([seed, _check_seed(rank)])


def env_seed(seed: int, rank: int, num_envs: int) -> int:
    """The seed for `envs.reset(seed=...)` on `rank` when every rank runs `num_envs` environments."""
    return _check_seed(seed) + _check_seed(rank) * int(num_envs)
