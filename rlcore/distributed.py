"""torch.distributed for data-parallel RL: one process per device, gradients averaged every step.

    python -m rlcore ppo ...                          # world_size 1: every function here is a no-op
    torchrun --nproc-per-node 2 -m rlcore ppo ...     # 2 processes; gloo on CPU, nccl on GPUs

Each rank collects its own share of the environments (its own seeds, rlcore.seeding.env_seed), computes
gradients on its own share of every minibatch, and all-reduces them before the optimizer step. With
identical initial parameters (broadcast from rank 0) and identical averaged gradients, every replica
stays bit-identical without ever sending parameters again.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env(device: str = "cpu") -> tuple[int, int]:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR...).

    Returns (rank, world_size); (0, 1) without touching torch.distributed when not launched by torchrun.
    Backend: nccl for CUDA devices, gloo otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if str(device).startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """True on the rank that logs, checkpoints and shows progress (rank 0)."""
    return rank() == 0


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (identical replicas at the start)."""
    if not active():
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def all_reduce_gradients(module: torch.nn.Module) -> None:
    """Average every parameter's gradient over ranks, in one flat buffer (one collective, not one per
    tensor: for small networks the per-call latency, not bandwidth, is the cost)."""
    if not active():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_mean(value: float, device: str | torch.device = "cpu") -> float:
    """The mean of a scalar over ranks (e.g. approx_kl, so every rank takes the same early-stop decision)."""
    if not active():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / dist.get_world_size()


def barrier() -> None:
    if active():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
