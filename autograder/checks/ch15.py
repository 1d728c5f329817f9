"""Checks for chapter 15, data-parallel PPO on several processes.

The learner writes the four distributed pieces of rlcore/distributed.py; each is checked against it, the
collective ones inside real gloo process groups of 2 (and 3) local processes started by
`rlcore.distributed.launch` (the `fork` start method, so functions defined in a notebook run there too):

- `env_seeds(seed, rank, local_num_envs)`: the seed of each environment of a rank, never shared across ranks;
- `shard(n, rank, world_size)`: the contiguous block of n items a rank owns;
- `all_reduce_gradients(module)`: every gradient averaged over ranks, in place;
- `kl_early_stop(approx_kl, target_kl)`: the target-KL decision, the same on every rank;
- `data_parallel(shard, all_reduce_gradients)`: the two together in PPO updates: (a) the parameters are
  bit-identical on every rank after k updates on different data, (b) 2 ranks x half of every minibatch give
  the parameters of 1 rank x the whole minibatch, to float tolerance, and (a) again inside rlcore.ppo.train.

Sample efficiency (2 ranks learn CartPole as fast per step as 1 rank) needs multi-seed runs of a minute or
more of CPU; it is measured in autograder/references/gen_ch15.py and shown in the lesson, not graded here.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from autograder.checks.ch11 import reference_policy_loss, reference_value_loss
from autograder.protocol import Check, CheckFailed, LearnerCodeError, describe
from rlcore import distributed
from rlcore.nets import ActorCritic

LESSON = "lesson 15 (course/15_multi_gpu_ppo.ipynb)"
REFERENCE_FILE = Path(__file__).parent.parent / "references" / "ch15_multi_gpu_ppo.json"
LAUNCH_TIMEOUT_S = 60.0

# The reference implementations the checks compare with.
reference_env_seeds = distributed.env_seeds
reference_shard = distributed.shard
reference_all_reduce_gradients = distributed.all_reduce_gradients
reference_kl_early_stop = distributed.kl_early_stop

# The learner's pieces run inside gloo ranks (forked processes) that the grader's replay cannot record.

@lru_cache(maxsize=1)
def load_reference() -> dict:
    """Our measurements (autograder/references/ch15_multi_gpu_ppo.json)."""
    return json.loads(REFERENCE_FILE.read_text())


# =============================================================================================
# Running learner code on several ranks
# =============================================================================================


def _learner_lines(text: str) -> str:
    """The last lines of a rank's traceback: the exception, and the learner's line where it is shown."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n  ".join(lines[-3:])


def run_ranks(check: Check, fn, world_size: int, *args, what: str, timeout: float | None = None) -> list:
    """`rlcore.distributed.launch(fn, world_size, *args)`: what each rank returned [world_size], with every
    failure turned into a learner-facing message: an exception in a rank (their code raised), or a hang (ranks
    waiting in collectives that do not match, or a loop that never ends). timeout: seconds for all ranks
    (default LAUNCH_TIMEOUT_S).

    The ranks run the learner's code, so what they return is the learner's output: it goes through Check.call
    and is recorded in the kernel, and the grader's replay judges the same results on its side."""
    return check.call(_launch, fn, world_size, args, what, timeout, budget_s=None, what=what,
                      record=_as_recorded, replay=_as_recorded)


def _as_recorded(results: list) -> list:
    return results


def _launch(fn, world_size: int, args: tuple, what: str, timeout: float | None) -> list:
    timeout = LAUNCH_TIMEOUT_S if timeout is None else timeout
    try:
        return distributed.launch(fn, world_size, *args, timeout=timeout)
    except TimeoutError:
        raise LearnerCodeError(
            f"{what} on {world_size} ranks did not finish within {timeout:g} s. A hang in distributed code means "
            "the ranks called different collectives (or the same one a different number of times): every rank "
            "must call all_reduce with the same tensor sizes, in the same order.") from None
    except RuntimeError as err:
        text = str(err)
        if "NotImplementedError" in text:
            raise LearnerCodeError(f"{what}: your function is not written yet (it raises NotImplementedError). "
                                   "Replace the `raise NotImplementedError` line with your code and run its cell.") from None
        if "Connection closed by peer" in text or "Connection reset by peer" in text:
            raise LearnerCodeError(
                f"{what}: a rank waited in a collective that another rank never called; that rank had finished and "
                "left. Every rank must make the same collective calls (all_reduce, broadcast), in the same order, "
                f"whatever its data.\n  {_learner_lines(text)}") from None
        raise LearnerCodeError(f"{what} failed on a rank:\n  {_learner_lines(text)}") from None


def _fmt(values, digits: int = 6) -> str:
    flat = np.asarray(values, dtype=float).reshape(-1)
    if flat.size > 8:
        return "[" + ", ".join(f"{v:.{digits}g}" for v in flat[:6]) + f", ... ({flat.size} values)]"
    return "[" + ", ".join(f"{v:.{digits}g}" for v in flat) + "]"


# =============================================================================================
# env_seeds(seed, rank, local_num_envs) -> int array [local_num_envs]
# =============================================================================================


def _seed_array(check: Check, fn, seed: int, rank: int, n: int) -> np.ndarray:
    what = f"env_seeds(seed={seed}, rank={rank}, local_num_envs={n})"
    return check.array(check.call(fn, seed, rank, n, what=what), what, shape=(n,), kind="int")


def env_seeds(fn, *, budget_s: float = 5.0) -> None:
    """Check `env_seeds(seed, rank, local_num_envs) -> seeds [local_num_envs]`."""
    with Check("ch15.env_seeds", "per-rank environment seeds that never collide",
               hint=f"Rank r's environment i gets seed + r * local_num_envs + i, so the ranks together use the "
                    f"seeds one process with all the environments would use ({LESSON}, section 3).") as check:
        fn = check.signature(fn, "seed", "rank", "local_num_envs")
        cases = [("seed 1, rank 0 of 4 envs: 1, 2, 3, 4", 1, 0, 4), ("seed 1, rank 1 of 4 envs: 5, 6, 7, 8", 1, 1, 4),
                 ("seed 10, rank 3 of 2 envs: 16, 17", 10, 3, 2), ("seed 0, rank 5 of 1 env: 5", 0, 5, 1)]
        for name, seed, rank, n in cases:
            got = _seed_array(check, fn, seed, rank, n)
            want = reference_env_seeds(seed, rank, n)
            check.require(np.array_equal(got, want), name,
                          f"env_seeds({seed}, {rank}, {n}) returned {_fmt(got)}; expected {_fmt(want)}.")
        rng = np.random.default_rng(150)
        for _ in range(6):
            seed, world, n = int(rng.integers(0, 10_000)), int(rng.integers(2, 9)), int(rng.integers(1, 65))
            per_rank = [_seed_array(check, fn, seed, r, n) for r in range(world)]
            together = np.concatenate(per_rank)
            duplicates = together.size - np.unique(together).size
            check.require(duplicates == 0, f"{world} ranks x {n} envs from seed {seed}: no seed used twice",
                          f"the {world} ranks' {together.size} environments share seeds ({duplicates} repeated): "
                          f"rank 0 got {_fmt(per_rank[0])}, rank 1 got {_fmt(per_rank[1])}. Ranks that share seeds "
                          "collect copies of the same episodes.")
            want = seed + np.arange(world * n)
            check.require(np.array_equal(together, want),
                          f"{world} ranks x {n} envs from seed {seed}: the seeds of one process with all envs",
                          f"ranks 0..{world - 1} together got {_fmt(together)}; expected {seed}, {seed + 1}, ..., "
                          f"{seed + world * n - 1} in rank order.")


# =============================================================================================
# shard(n, rank, world_size) -> slice (or index array) of the rank's block
# =============================================================================================


def _raised(fn, *args) -> list | None:
    """[exception class name, whether it is a ValueError, message] of what fn(*args) raised; None if it returned."""
    try:
        fn(*args)
    except Exception as err:  # noqa: BLE001 - which error it was is the answer
        return [type(err).__name__, isinstance(err, ValueError), str(err)]
    return None


def _owned(check: Check, fn, n: int, rank: int, world: int) -> np.ndarray:
    what = f"shard(n={n}, rank={rank}, world_size={world})"
    out = check.call(fn, n, rank, world, what=what)
    if out is None:
        raise LearnerCodeError(f"{what} returned None. Did you forget a `return` statement?")
    try:
        owned = np.arange(n)[out]
    except Exception:
        raise LearnerCodeError(f"{what} returned {describe(out)}, which cannot index an array of {n} items; "
                               "return a slice, e.g. slice(start, stop).") from None
    return np.atleast_1d(owned)


def shard(fn, *, budget_s: float = 5.0) -> None:
    """Check `shard(n, rank, world_size) -> slice`: rank's contiguous block of n / world_size items."""
    with Check("ch15.shard", "the block of a batch (or of the environments) each rank owns",
               hint=f"Rank r of W owns items r * n // W up to (r + 1) * n // W (excluded), and n not divisible by W "
                    f"is an error, not a rounding ({LESSON}, section 3).") as check:
        fn = check.signature(fn, "n", "rank", "world_size")
        cases = [("8 items, rank 0 of 2: items 0-3", 8, 0, 2), ("8 items, rank 1 of 2: items 4-7", 8, 1, 2),
                 ("6 items, rank 2 of 3: items 4, 5", 6, 2, 3), ("5 items, rank 0 of 1: all of them", 5, 0, 1)]
        for name, n, rank, world in cases:
            got = _owned(check, fn, n, rank, world)
            want = np.arange(n)[reference_shard(n, rank, world)]
            check.require(np.array_equal(got, want), name,
                          f"shard({n}, {rank}, {world}) owns items {_fmt(got)}; expected {_fmt(want)}.")
        rng = np.random.default_rng(151)
        for _ in range(8):
            world = int(rng.integers(2, 9))
            n = world * int(rng.integers(1, 40))
            blocks = [_owned(check, fn, n, r, world) for r in range(world)]
            together = np.concatenate(blocks)
            check.require(np.array_equal(np.sort(together), np.arange(n)) and together.size == n,
                          f"{n} items over {world} ranks: every item owned exactly once",
                          f"the ranks' blocks {[_fmt(b) for b in blocks[:3]]}... own {together.size} items with "
                          f"{together.size - np.unique(together).size} repeated and "
                          f"{n - np.intersect1d(together, np.arange(n)).size} never owned.")
            check.require(np.array_equal(together, np.arange(n)),
                          f"{n} items over {world} ranks: contiguous blocks in rank order",
                          f"the blocks cover every item but not as rank 0 first, then rank 1, ...: got {_fmt(together)}.")
        for n, world in ((10, 4), (7, 2)):
            what = f"shard(n={n}, rank=0, world_size={world})"
            raised = check.call(_raised, fn, n, 0, world, budget_s=budget_s, what=what)
            if raised and raised[1]:
                check.expect(True, f"{n} items over {world} ranks raises ValueError")
                continue
            if raised:
                check.require(False, f"{n} items over {world} ranks raises ValueError",
                              f"{what} raised {raised[0]}: {raised[2]}; raise ValueError with a message instead.")
            check.require(False, f"{n} items over {world} ranks raises ValueError",
                          f"{what} returned without an error. Unequal shards would weigh one rank's samples more in "
                          "the averaged gradient; raise ValueError saying n must be divisible by world_size.")


# =============================================================================================
# all_reduce_gradients(module): in real process groups
# =============================================================================================


def _grad_case_module(dtype=torch.float64) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1)).to(dtype)


def _hand_gradients(rank: int, world: int, fn) -> list[np.ndarray]:
    """Rank r sets every weight gradient to r + 1 and every bias gradient to 10 (r + 1), then calls fn."""
    module = _grad_case_module()
    for name, p in module.named_parameters():
        p.grad = torch.full_like(p, (rank + 1) * (10.0 if name.endswith("bias") else 1.0))
    fn(module)
    return [p.grad.detach().numpy().copy() for p in module.parameters()]


def _random_gradients(rank: int, world: int, fn, seed: int) -> tuple[list, list]:
    """Gradients of a real loss on rank-specific data: (what each rank had, what fn left)."""
    module = ActorCritic(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), (8, 8)).double()
    g = torch.Generator().manual_seed(seed * 100 + rank)
    obs = torch.randn(16, 4, generator=g, dtype=torch.float64)
    loss = module.value(obs).square().mean() + module.actor(obs).logsumexp(-1).mean()
    loss.backward()
    before = [p.grad.detach().numpy().copy() for p in module.parameters()]
    fn(module)
    return before, [p.grad.detach().numpy().copy() for p in module.parameters()]


def _single_process(fn) -> list[np.ndarray]:
    """fn called with no process group (a run on one process): the gradients must come back unchanged."""
    module = _grad_case_module()
    for p in module.parameters():
        p.grad = torch.full_like(p, 2.5)
    fn(module)
    return [p.grad.detach().numpy().copy() for p in module.parameters()]


def all_reduce_gradients(fn) -> None:
    """Check `all_reduce_gradients(module)`: every gradient averaged over the ranks, in place."""
    with Check("ch15.all_reduce_gradients", "gradients averaged over ranks with all-reduce",
               hint=f"After loss.backward(), every rank has the mean gradient over its own samples; sum the p.grad "
                    f"of every parameter over ranks (one flat buffer, dist.all_reduce), divide by the world size and "
                    f"copy the result back into each p.grad ({LESSON}, section 4).") as check:
        fn = check.signature(fn, "module")
        names = [n for n, _ in _grad_case_module().named_parameters()]
        if distributed.active():
            raise CheckFailed("this check starts its own process groups; run it outside a distributed run.")
        got = check.call(_single_process, fn, what="all_reduce_gradients(module) without a process group")
        check.require(all(np.all(g == 2.5) for g in got), "one process (no process group): gradients unchanged",
                      "with a single process there is nothing to average, but the gradients changed to "
                      f"{_fmt(np.concatenate([g.ravel() for g in got]))}. Return early when "
                      "torch.distributed is not initialized (dist.is_initialized()) or the world size is 1.")
        for world in (2, 3):
            results = run_ranks(check, _hand_gradients, world, fn, what="all_reduce_gradients(module)")
            mean = (world + 1) / 2
            for rank, grads in enumerate(results):
                for name, g in zip(names, grads):
                    want = mean * (10.0 if name.endswith("bias") else 1.0)
                    scale = 10.0 if name.endswith("bias") else 1.0
                    detail = (f"on {world} ranks, rank r's gradients were {scale:g} * (r + 1) for {name}; after your "
                              f"function rank {rank} has {_fmt(np.unique(g))}, expected {want:g} (the mean).")
                    if np.allclose(g, want * world):
                        detail += " That is the sum: divide by the world size."
                    elif np.allclose(g, scale * (rank + 1)):
                        detail += f" That is rank {rank}'s own gradient: {name} was not all-reduced (or not copied back)."
                    check.require(np.allclose(g, want, rtol=0, atol=1e-12),
                                  f"{world} ranks, hand-set gradients: {name} averaged on rank {rank}", detail)
        for seed in (1, 2):
            results = run_ranks(check, _random_gradients, 2, fn, seed, what="all_reduce_gradients(module)")
            for rank in range(2):
                for i, (b0, b1, g) in enumerate(zip(results[0][0], results[1][0], results[rank][1])):
                    want = (b0 + b1) / 2
                    check.require(np.allclose(g, want, rtol=1e-12, atol=1e-12),
                                  f"2 ranks, an actor-critic's gradients (seed {seed}): tensor {i} on rank {rank}",
                                  f"largest error {np.abs(g - want).max():.3g} against the mean of the two ranks' "
                                  f"gradients (tensor {i} of shape {b0.shape}).")


# =============================================================================================
# kl_early_stop(approx_kl, target_kl) -> bool, the same on every rank
# =============================================================================================


def _kl_decisions(rank: int, world: int, fn, kls: list, target) -> bool:
    return bool(fn(float(kls[rank]), target))


def kl_early_stop(fn) -> None:
    """Check `kl_early_stop(approx_kl, target_kl) -> bool`: mean KL over ranks > target_kl, on every rank."""
    with Check("ch15.kl_early_stop", "the target-KL early stop decided together",
               hint=f"Average approx_kl over the ranks (all_reduce with SUM, divided by the world size) and compare "
                    f"the mean with target_kl; every rank then computes the same answer. target_kl None: never stop "
                    f"({LESSON}, section 5).") as check:
        fn = check.signature(fn, "approx_kl", "target_kl")
        for kl, target, want in ((0.03, 0.02, True), (0.01, 0.02, False), (0.5, None, False)):
            what = f"kl_early_stop({kl}, {target}) without a process group"
            got = check.call(fn, kl, target, what=what)
            check.require(isinstance(got, (bool, np.bool_)) or got in (0, 1), f"one process: {what} is a bool",
                          f"{what} returned {describe(got)}; return True or False.")
            check.require(bool(got) == want, f"one process: {what} is {want}",
                          f"{what} returned {got}; with one process the decision is approx_kl > target_kl.")
        cases = [
            ("both ranks above the target: both stop", [0.05, 0.04], 0.02),
            ("rank 0 above, mean above: both stop", [0.03, 0.01], 0.015),
            ("rank 0 above, mean below: neither stops", [0.03, 0.001], 0.02),
            ("both below, sum above: neither stops", [0.01, 0.01], 0.015),
            ("rank 1 above, mean above: both stop", [0.001, 0.05], 0.02),
            ("target_kl None: neither stops", [0.5, 0.5], None),
        ]
        for name, kls, target in cases:
            got = run_ranks(check, _kl_decisions, 2, fn, kls, target, what=f"kl_early_stop(approx_kl, {target})")
            mean = float(np.mean(kls))
            want = target is not None and mean > target
            detail = (f"with approx_kl {kls[0]} on rank 0 and {kls[1]} on rank 1 (mean {mean:.4g}) and target_kl "
                      f"{target}, rank 0 returned {got[0]} and rank 1 returned {got[1]}; expected {want} on both.")
            if got[0] != got[1]:
                detail += (" The ranks disagree: the one that stops leaves its epochs while the other waits in its next "
                           "all-reduce for a partner that never comes (a hang). Decide on the mean over ranks.")
            check.require(got[0] == got[1] == want, name, detail)
        three = run_ranks(check, _kl_decisions, 3, fn, [0.06, 0.0, 0.0], 0.025, what="kl_early_stop(approx_kl, 0.025)")
        check.require(three == [False, False, False], "3 ranks, mean 0.02 below 0.025: none stops",
                      f"with approx_kl 0.06, 0, 0 on ranks 0, 1, 2 (mean 0.02) and target_kl 0.025 the ranks returned "
                      f"{three}; expected False on every rank (divide the sum by the world size, not by 2).")


# =============================================================================================
# data_parallel(shard, all_reduce_gradients): (a) identical replicas, (b) 2 ranks == 1 rank
# =============================================================================================


def fixed_batch(seed: int, batch_size: int = 64, dtype=torch.float64) -> dict:
    """A fixed PPO batch on CartPole-shaped data: observations [B, 4], actions [B], the log-probabilities and
    values stored at collection time [B], advantages [B] and returns [B]."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(batch_size, 4, generator=g, dtype=dtype)
    return {"obs": obs, "actions": torch.randint(0, 2, (batch_size,), generator=g),
            "logprobs": torch.log(torch.rand(batch_size, generator=g, dtype=dtype) * 0.6 + 0.2),
            "values": torch.randn(batch_size, generator=g, dtype=dtype),
            "advantages": torch.randn(batch_size, generator=g, dtype=dtype),
            "returns": torch.randn(batch_size, generator=g, dtype=dtype)}


def ppo_loss(agent: ActorCritic, mb: dict, clip_coef: float = 0.2) -> torch.Tensor:
    """rlcore/ppo.py's loss on a minibatch (clipped surrogate, clipped value loss, entropy bonus), without
    per-minibatch advantage normalization: normalizing a rank's shard needs the mean and std of the whole
    minibatch, one more collective (rlcore.distributed.global_mean_std, lesson section 4), which is not one
    of the learner's pieces; with a shard's own mean and std the two sides of (b) would differ by 1e-2."""
    newlogprob, entropy = agent.log_prob_entropy(mb["obs"], mb["actions"])
    newvalue = agent.value(mb["obs"])
    ratio = (newlogprob - mb["logprobs"]).exp()
    pg_loss = reference_policy_loss(ratio, mb["advantages"], clip_coef)
    v_loss = reference_value_loss(newvalue, mb["values"], mb["returns"], clip_coef, True)
    return pg_loss - 0.01 * entropy.mean() + 0.5 * v_loss


def data_parallel_updates(rank: int, world: int, shard_fn, all_reduce_fn, *, seed: int = 0, steps: int = 8,
                          minibatch_size: int = 16, optimizer: str = "sgd", same_data: bool = True,
                          dtype=torch.float64) -> np.ndarray:
    """`steps` PPO gradient steps on one rank; returns the flat parameters [P] at the end.

    same_data: every rank holds the same fixed batch and takes its shard of each minibatch (the equivalence
    (b) with 1 rank x whole minibatches); otherwise each rank has its own batch (different rollouts, (a)).
    The minibatch order is the same on every rank (one generator seeded alike), as a shared permutation
    must be for the shards to form one minibatch. SGD without gradient clipping: Adam and norm clipping
    rescale the gradient, which hides an average that is off by a constant factor."""
    torch.manual_seed(seed)
    agent = ActorCritic(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), (16, 16)).to(dtype)
    distributed.broadcast_parameters(agent)
    batch = fixed_batch(seed if same_data else seed * 1000 + rank + 1, dtype=dtype)
    B = batch["obs"].shape[0]
    opt = (torch.optim.SGD(agent.parameters(), lr=0.1) if optimizer == "sgd"
           else torch.optim.Adam(agent.parameters(), lr=3e-3, eps=1e-5))
    order_gen = torch.Generator().manual_seed(seed + 7)
    for step in range(steps):
        if step % (B // minibatch_size) == 0:
            order = torch.randperm(B, generator=order_gen)
        start = (step % (B // minibatch_size)) * minibatch_size
        mb_idx = order[start:start + minibatch_size]
        local = mb_idx[shard_fn(minibatch_size, rank, world)] if same_data else mb_idx[:minibatch_size // world]
        loss = ppo_loss(agent, {k: v[local] for k, v in batch.items()})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        all_reduce_fn(agent)
        opt.step()
    return torch.cat([p.detach().reshape(-1) for p in agent.parameters()]).numpy()


def _ppo_train_ranks(rank: int, world: int, all_reduce_fn) -> np.ndarray:
    """rlcore.ppo.train for 4 iterations on this rank with the learner's all-reduce in place of rlcore's (this
    process is a fork: the replacement ends with it); returns the final flat parameters [P]."""
    import rlcore.ppo as ppo

    distributed.all_reduce_gradients = all_reduce_fn
    config = ppo.PPOConfig(**dict(ppo.CARTPOLE_FAST, num_envs=8, num_steps=16, total_timesteps=512), seed=3,
                           progress=False)
    result = ppo.train(config)
    return torch.cat([p.detach().reshape(-1) for p in result.agent.parameters()]).numpy()


def data_parallel(shard_fn, all_reduce_fn, *, atol: float = 1e-10) -> None:
    """Check the learner's `shard` and `all_reduce_gradients` together in PPO updates on 2 gloo ranks."""
    with Check("ch15.data_parallel", "data-parallel PPO updates: identical replicas, and 2 ranks = 1 rank",
               hint=f"If the replicas drift apart, some gradient is not averaged (or not copied back); if 2 ranks "
                    f"differ from 1 rank, the average or the shards are off ({LESSON}, sections 3 and 4).") as check:
        check.signature(shard_fn, "n", "rank", "world_size")
        check.signature(all_reduce_fn, "module")
        # (a) every rank has different data; after k Adam updates the replicas must still be bit-identical.
        params = run_ranks(check, _different_data, 2, shard_fn, all_reduce_fn, what="8 PPO updates")
        diff = float(np.abs(params[0] - params[1]).max())
        check.require(np.array_equal(params[0], params[1]),
                      "(a) 8 Adam updates on different data per rank: parameters bit-identical on both ranks",
                      f"the two replicas differ by up to {diff:.3g} after 8 updates: they took different steps, so some "
                      "gradient was not averaged, or the average was not written back into p.grad.")
        # (b) a fixed batch: each of 2 ranks takes its half of every minibatch; 1 process takes it whole.
        for seed in (0, 1):
            one = data_parallel_updates(0, 1, reference_shard, reference_all_reduce_gradients, seed=seed)
            two = run_ranks(check, _same_data, 2, shard_fn, all_reduce_fn, seed, what="8 PPO updates on a fixed batch")
            err = float(np.abs(two[0] - one).max())
            detail = (f"after 8 SGD steps the parameters of 2 ranks x half of each 16-sample minibatch differ from "
                      f"1 process x the whole minibatch by up to {err:.3g} (tolerance {atol:g}).")
            ratio = _step_ratio(one, two[0], seed)
            if ratio is not None and abs(ratio - 2.0) < 0.2:
                detail += " The 2-rank steps are twice as long: the gradients were summed, not averaged."
            check.require(err <= atol, f"(b) fixed batch {seed}: 2 ranks x half = 1 rank x whole, to float tolerance",
                          detail)
        # (a) inside rlcore.ppo.train, with the learner's all-reduce and rlcore's other pieces.
        out = run_ranks(check, _ppo_train_ranks, 2, all_reduce_fn, what="rlcore.ppo.train on 2 ranks")
        diff = float(np.abs(out[0] - out[1]).max())
        check.require(np.array_equal(out[0], out[1]),
                      "(a) rlcore.ppo.train, 4 iterations on 2 ranks with your all-reduce: identical parameters",
                      f"the replicas differ by up to {diff:.3g} at the end of training.")
        check.note(f"2 ranks vs 1 rank on a fixed batch: largest parameter difference {err:.2g} (float64)")


def _different_data(rank: int, world: int, shard_fn, all_reduce_fn) -> np.ndarray:
    return data_parallel_updates(rank, world, shard_fn, all_reduce_fn, optimizer="adam", same_data=False)


def _same_data(rank: int, world: int, shard_fn, all_reduce_fn, seed: int) -> np.ndarray:
    return data_parallel_updates(rank, world, shard_fn, all_reduce_fn, seed=seed)


def _step_ratio(one: np.ndarray, two: np.ndarray, seed: int) -> float | None:
    """|2-rank displacement| / |1-rank displacement| from the common initial parameters."""
    torch.manual_seed(seed)
    agent = ActorCritic(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), (16, 16)).double()
    init = torch.cat([p.detach().reshape(-1) for p in agent.parameters()]).numpy()
    base = np.linalg.norm(one - init)
    return float(np.linalg.norm(two - init) / base) if base > 0 else None
