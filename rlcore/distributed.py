"""torch.distributed for data-parallel RL: one process per device, gradients averaged every step.

    python -m rlcore ppo ...                          # world_size 1: every collective here is a no-op
    torchrun --nproc-per-node 2 -m rlcore ppo ...     # 2 processes; gloo on CPU, nccl on GPUs
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 --rdzv-id JOB \\
        -m rlcore ppo ...                             # 16 processes on two machines (run on both)

The recipe of data parallelism, in the order a training script meets it:

1. join the process group (`init_from_env`: torchrun puts RANK, WORLD_SIZE, MASTER_ADDR, ... in the
   environment of each process it starts);
2. give each rank its own share of the environments (`shard`) with seeds no other rank uses
   (`env_seeds`), or W ranks would collect W copies of the same experience;
3. start from identical parameters (`broadcast_parameters` from rank 0);
4. after every backward pass, average the gradients over ranks (`all_reduce_gradients`), so every
   rank takes the same optimizer step and the replicas stay bit-identical without ever sending
   parameters again; a loss that uses statistics of the whole minibatch (PPO's advantage
   normalization) takes them over every rank's shard (`global_mean_std`), or the averaged gradient is
   not one process's;
5. take every decision that changes the control flow collectively (`kl_early_stop`,
   `all_reduce_mean`): a rank that leaves a loop the others stay in leaves them waiting forever in
   their next collective;
6. log and checkpoint on rank 0 only (`is_main`).

`launch` runs a function on W local processes joined in a gloo group, without torchrun: the course's
tests and checks use it (with the `fork` start method a function defined in a notebook works too).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
import warnings
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from rlcore.seeding import env_seed

# ------------------------------------------------------------------------------------ process group


def init_from_env(device: str = "cpu") -> tuple[int, int]:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR...).

    Returns (rank, world_size); (0, 1) without touching torch.distributed when not launched by torchrun
    (WORLD_SIZE unset or 1). When a group already exists (made by `launch` or by the caller), it is used.
    Backend: nccl for CUDA devices (GPU to GPU over NVLink or InfiniBand), gloo otherwise (CPU tensors
    over TCP)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1 and not dist.is_initialized():
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if str(device).startswith("cuda") else "gloo"
        if backend == "nccl":  # one GPU per process: the rank's local index picks it
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def active() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's index in the group, 0 .. world_size - 1 (0 without a group)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """The number of processes in the group (1 without a group)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """True on the rank that logs, checkpoints and shows progress (rank 0)."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank reaches this line."""
    if active():
        dist.barrier()


def shutdown() -> None:
    """Leave the process group (at the end of a run; a no-op without one).

    Every rank waits for the others first: a rank that tears down its gloo connections while a peer is
    still working (rank 0 writing its last checkpoint) can make that peer, or itself, abort at exit."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- who owns what


def shard(n: int, rank: int, world_size: int) -> slice:
    """The contiguous block of `n` items (environments, or the samples of a minibatch) that `rank` owns
    when `world_size` ranks split them equally: items [rank * n / W, (rank + 1) * n / W).

    The blocks of ranks 0 .. W-1 are disjoint and cover 0 .. n-1 in order, so the ranks together hold
    exactly what one process would. Raises ValueError when W does not divide n: unequal shards would
    weight the samples of the smaller shard more in the averaged gradient."""
    for name, value in (("n", n), ("rank", rank), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"shard: {name} must be an integer, got {value!r}.")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"shard: need 0 <= rank < world_size, got rank {rank} and world_size {world_size}.")
    if n < 0 or n % world_size:
        raise ValueError(f"shard: {n} items do not split into {world_size} equal shards; make the number of "
                         f"environments and the minibatch size multiples of the number of ranks.")
    size = n // world_size
    return slice(rank * size, (rank + 1) * size)


def env_seeds(seed: int, rank: int, local_num_envs: int) -> np.ndarray:
    """The seed of each of the `local_num_envs` environments of `rank`, int64 [local_num_envs].

    Rank r's environment i gets seed + r * local_num_envs + i: no two environments of the run share a
    seed, and the W ranks together use seed, seed + 1, ..., seed + W * local_num_envs - 1, the seeds one
    process with every environment would use (rlcore.seeding.env_seed gives the first of them; a
    vector env seeded with it seeds its environment i with that + i)."""
    first = env_seed(seed, rank, local_num_envs)
    if isinstance(local_num_envs, bool) or not isinstance(local_num_envs, (int, np.integer)) or local_num_envs < 1:
        raise ValueError(f"env_seeds: local_num_envs must be a positive integer, got {local_num_envs!r}.")
    return first + np.arange(int(local_num_envs), dtype=np.int64)


# -------------------------------------------------------------------------------------- collectives


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (identical replicas at the start).

    Seeding every rank the same is not enough on its own: a different torch build, device or
    initialisation order would silently start the replicas apart."""
    if not active():
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def all_reduce_gradients(module: torch.nn.Module) -> None:
    """Average every parameter's gradient over ranks, in place, after `loss.backward()`.

    Each rank's gradient is the mean over its own share of the minibatch; with equal shares, their average
    is the gradient of the mean over the whole minibatch, so each rank then takes the optimizer step one
    process would take on all the data. The gradients travel in one flat buffer: one collective, not one
    per tensor, because for small networks each call's latency, not the bandwidth, is the cost
    (DistributedDataParallel does the same with ~25 MB buckets, overlapped with the backward pass).

    Parameters without a gradient (grad None) are skipped; every rank must have the same ones, or the
    buffers would differ in size."""
    if not active():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # [total number of gradient entries]
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()  # the sum of W means is W times too large
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_mean(value: float, device: str | torch.device = "cpu") -> float:
    """The mean of a scalar over ranks (e.g. approx_kl, so every rank takes the same early-stop decision).
    device: where the collective runs (a CUDA device under nccl, the CPU under gloo)."""
    if not active():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / dist.get_world_size()


def global_mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and the standard deviation of x along its last dimension, over every rank's x together.

    x: [..., n], this rank's shard of each row (e.g. [num_minibatches, local_minibatch_size] advantages);
    returns (mean [...], std [...]) in x's dtype and on its device, each row's statistics over the W shards
    of that row (W * n values when the shards are equal). std is torch's default, unbiased (ddof = 1), so one
    process gets x.mean(-1), x.std(-1). Every rank must call it with the same leading shape; the shards of a
    row may differ in size.

    Why: per-minibatch advantage normalization with statistics of a rank's own shard is not the update of
    one process on the whole minibatch (a shard's mean and std are not the minibatch's); with these, it is."""
    if not active():
        return x.mean(-1), x.std(-1)
    # One all-reduce of (count, sum, sum of squares) per row, instead of a second one for the centred squares.
    # The one-pass variance subtracts two large numbers: its relative error is about 1e-16 * (mean / std)^2 in
    # float64, below float32 rounding unless |mean| / std exceeds about 10^4 (advantages: rarely above 10).
    x64 = x.detach().to(torch.float64)
    count = torch.full(x64.shape[:-1], float(x64.shape[-1]), dtype=torch.float64, device=x.device)
    sums = torch.stack([count, x64.sum(-1), x64.square().sum(-1)], dim=-1)  # [..., 3]
    dist.all_reduce(sums, op=dist.ReduceOp.SUM)
    n, total, total_sq = sums.unbind(-1)
    mean = total / n
    var = (total_sq - total * mean) / (n - 1)  # sum of squared deviations / (n - 1)
    return mean.to(x.dtype), var.clamp(min=0).sqrt().to(x.dtype)  # clamp: rounding can make var -1e-17


def kl_early_stop(approx_kl: float, target_kl: float | None, device: str | torch.device = "cpu") -> bool:
    """Whether to stop this update's epochs: the mean of approx_kl over ranks exceeds target_kl.

    Every rank gets the same answer. Deciding on the local approx_kl alone would let one rank break out
    of its epochs while another goes on to its next minibatch and waits forever in all_reduce_gradients
    for a partner that never comes. With target_kl None the answer is False, with no communication
    (every rank has the same config, so every rank skips the collective)."""
    if target_kl is None:
        return False
    return all_reduce_mean(approx_kl, device) > target_kl


# ----------------------------------------------------------------------- local process groups


def _loopback_interface() -> str | None:
    """The name of the loopback network interface (lo on Linux, lo0 on macOS), if it can be found."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return None
    return next((n for n in names if n in ("lo", "lo0")), None)


def _worker(fn, rank: int, world: int, store_dir: str, args: tuple, conn, quiet: bool) -> None:
    """One rank of `launch`: join the gloo group through a file store, run fn, send back its result."""
    if quiet:  # gloo and torch log from C++ to file descriptor 2; a notebook would show it as an error
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        sys.stdout = sys.stderr = open(os.devnull, "w")
    try:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world))
        loopback = _loopback_interface()
        if loopback:  # a machine without a network (a grading sandbox) still has loopback
            os.environ["GLOO_SOCKET_IFNAME"] = loopback
        torch.set_num_threads(1)
        store = dist.FileStore(os.path.join(store_dir, "store"), world)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
        # Every rank connected before any leaves: a rank whose fn makes no collective would otherwise close its
        # connections while a slower rank is still opening them.
        dist.barrier()
        result = fn(rank, world, *args)
        conn.send(("ok", result))
    except BaseException:  # noqa: BLE001 - whatever went wrong goes back to the parent as text
        conn.send(("error", traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        conn.close()


def launch(fn: Callable[..., Any], world_size: int, *args, timeout: float = 120.0,
           start_method: str | None = None, quiet: bool = True) -> list:
    """Run `fn(rank, world_size, *args)` in `world_size` new processes on this machine, joined in a gloo
    process group (so rlcore's collectives, and rlcore.ppo.train, run as under torchrun); returns the
    list of what each rank returned, [rank 0's, rank 1's, ...] (results travel pickled: return plain data,
    NumPy arrays or CPU tensors).

    timeout: seconds for all ranks together; a rank still running then is killed and TimeoutError is
        raised, so a hang (ranks waiting in collectives that do not match) becomes an error.
    start_method: "fork" (the default on Linux and macOS) lets fn be any function, one defined in a
        notebook included; "spawn" needs fn importable from a module.
    quiet: the ranks' stdout and stderr go to /dev/null (an error comes back with its traceback anyway).

    Raises RuntimeError with the first failing rank's traceback; the other ranks are then stopped, since
    they may be waiting for the one that failed."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    if isinstance(world_size, bool) or not isinstance(world_size, (int, np.integer)) or world_size < 1:
        raise ValueError(f"launch: world_size must be a positive integer, got {world_size!r}.")
    if start_method is None:
        start_method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(start_method)
    if start_method == "fork":
        # torch's optimizers import torch._dynamo when first constructed (~2 s of CPU): once here, before the
        # fork, instead of once in every rank.
        import torch._dynamo  # noqa: F401
    store_dir = tempfile.mkdtemp(prefix="rlcore-launch-")
    procs, conns, finished = [], {}, False
    try:
        with warnings.catch_warnings():  # Python 3.12+ warns that fork() in a threaded process may deadlock
            warnings.simplefilter("ignore", DeprecationWarning)
            for r in range(world_size):
                receive, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_worker, args=(fn, r, world_size, store_dir, args, send, quiet),
                                   daemon=True)
                proc.start()
                send.close()
                procs.append(proc)
                conns[receive] = r
        results: dict[int, Any] = {}
        deadline = time.monotonic() + timeout
        while conns:
            ready = wait(list(conns), timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                missing = sorted(conns.values())
                raise TimeoutError(
                    f"rank(s) {missing} of {world_size} did not finish within {timeout:g} s. The usual cause is a "
                    "hang: some ranks wait in a collective (all_reduce, broadcast) that another rank never "
                    "reaches, e.g. one rank left its loop early on a decision the others did not share.")
            for conn in ready:
                r = conns.pop(conn)
                try:
                    status, payload = conn.recv()
                except EOFError:
                    procs[r].join(timeout=5)
                    raise RuntimeError(f"rank {r} died without a result (exit code {procs[r].exitcode}).") from None
                if status == "error":
                    raise RuntimeError(f"rank {r} of {world_size} raised:\n{payload}")
                results[r] = payload
        finished = True
        return [results[r] for r in range(world_size)]
    finally:
        for proc in procs:
            if not finished:  # the others may wait forever for a rank that failed
                proc.kill()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        for conn in conns:
            conn.close()
        shutil.rmtree(store_dir, ignore_errors=True)
