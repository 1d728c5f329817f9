"""Planted-bug variants of the chapter 15 pieces: realistic mistakes the checks must catch.

`BUGS[check_name]` lists (description, buggy function) for each single-function check of
autograder.checks.ch15; `DATA_PARALLEL_BUGS` lists (description, shard, all_reduce_gradients) pairs with one
mistake each for ch15.data_parallel. Each function has the exercise's signature and differs from a correct
solution by one mistake.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from rlcore import distributed

# ------------------------------------------------------------------------------------------
# env_seeds(seed, rank, local_num_envs)
# ------------------------------------------------------------------------------------------


def seeds_ignore_rank(seed, rank, local_num_envs):
    return seed + np.arange(local_num_envs)  # every rank collects the same episodes


def seeds_offset_by_rank(seed, rank, local_num_envs):
    return seed + rank + np.arange(local_num_envs)  # rank 1's envs overlap rank 0's from the second on


def seeds_one_per_rank(seed, rank, local_num_envs):
    return np.full(local_num_envs, seed + rank * local_num_envs)  # the envs of a rank are copies of each other


def seeds_times_rank(seed, rank, local_num_envs):
    return seed * (rank + 1) + np.arange(local_num_envs)  # rank r starts at r * seed: overlaps for small seeds


# ------------------------------------------------------------------------------------------
# shard(n, rank, world_size)
# ------------------------------------------------------------------------------------------


def shard_overlapping(n, rank, world_size):
    size = n // world_size
    return slice(rank * size, (rank + 1) * size + 1)  # one item past the block: neighbours share it


def shard_ignores_rank(n, rank, world_size):
    return slice(0, n // world_size)  # every rank takes the first block


def shard_remainder_to_last(n, rank, world_size):
    size = n // world_size
    stop = n if rank == world_size - 1 else (rank + 1) * size  # uneven shards instead of an error
    return slice(rank * size, stop)


def shard_block_of_world_size(n, rank, world_size):
    return slice(rank * world_size, (rank + 1) * world_size)  # the block size is n / W, not W


# ------------------------------------------------------------------------------------------
# all_reduce_gradients(module)
# ------------------------------------------------------------------------------------------


def _grads(module):
    return [p.grad for p in module.parameters() if p.grad is not None]


def all_reduce_sum(module):
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return
    grads = _grads(module)
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)  # the sum of W means: W times the gradient (Adam hides it, SGD does not)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_weights_only(module):
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return
    for p in module.parameters():
        if p.grad is not None and p.dim() > 1:  # the biases keep each rank's own gradient
            dist.all_reduce(p.grad)
            p.grad /= dist.get_world_size()


def all_reduce_no_copy_back(module):
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return
    flat = torch.cat([g.reshape(-1) for g in _grads(module)])  # a copy: reducing it leaves p.grad alone
    dist.all_reduce(flat)
    flat /= dist.get_world_size()


def all_reduce_divide_by_two(module):
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return
    grads = _grads(module)
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= 2  # right for 2 ranks only
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_skips_last(module):
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return
    for g in _grads(module)[:-1]:  # the value head's bias is never averaged
        dist.all_reduce(g)
        g /= dist.get_world_size()


# ------------------------------------------------------------------------------------------
# kl_early_stop(approx_kl, target_kl)
# ------------------------------------------------------------------------------------------


def kl_stop_local(approx_kl, target_kl):
    return target_kl is not None and approx_kl > target_kl  # each rank decides alone: the hang of section 5


def kl_stop_sum(approx_kl, target_kl):
    if target_kl is None:
        return False
    t = torch.tensor([float(approx_kl)], dtype=torch.float64)
    if dist.is_initialized():
        dist.all_reduce(t)  # the sum, not the mean
    return bool(t.item() > target_kl)


def kl_stop_rank0_decides(approx_kl, target_kl):
    if target_kl is None:
        return False
    decision = torch.tensor([float(approx_kl > target_kl)])
    if dist.is_initialized():
        dist.broadcast(decision, src=0)  # consistent, but rank 0's KL alone
    return bool(decision.item())


def kl_stop_halved(approx_kl, target_kl):
    if target_kl is None:
        return False
    t = torch.tensor([float(approx_kl)], dtype=torch.float64)
    if dist.is_initialized():
        dist.all_reduce(t)
        t /= 2  # the mean of two ranks only
    return bool(t.item() > target_kl)


BUGS = {
    "env_seeds": [
        ("the same seeds on every rank", seeds_ignore_rank),
        ("seed + rank + i: neighbouring ranks overlap", seeds_offset_by_rank),
        ("one seed for all the envs of a rank", seeds_one_per_rank),
        ("seed * (rank + 1) + i", seeds_times_rank),
    ],
    "shard": [
        ("overlapping shards", shard_overlapping),
        ("every rank takes the first block", shard_ignores_rank),
        ("the last rank takes the remainder instead of an error", shard_remainder_to_last),
        ("blocks of world_size items", shard_block_of_world_size),
    ],
    "all_reduce_gradients": [
        ("summed without dividing by the world size", all_reduce_sum),
        ("biases not all-reduced", all_reduce_weights_only),
        ("all-reduced into a copy, never written back", all_reduce_no_copy_back),
        ("divided by 2 instead of the world size", all_reduce_divide_by_two),
        ("the last tensor skipped", all_reduce_skips_last),
    ],
    "kl_early_stop": [
        ("each rank decides on its own KL", kl_stop_local),
        ("the sum of the KLs, not their mean", kl_stop_sum),
        ("rank 0's decision broadcast", kl_stop_rank0_decides),
        ("the sum divided by 2 instead of the world size", kl_stop_halved),
    ],
}

DATA_PARALLEL_BUGS = [
    ("summed gradients", distributed.shard, all_reduce_sum),
    ("biases not all-reduced", distributed.shard, all_reduce_weights_only),
    ("all-reduced into a copy", distributed.shard, all_reduce_no_copy_back),
    ("the last tensor skipped", distributed.shard, all_reduce_skips_last),
    ("overlapping shards", shard_overlapping, distributed.all_reduce_gradients),
    ("every rank takes the first block", shard_ignores_rank, distributed.all_reduce_gradients),
]
