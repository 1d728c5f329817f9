"""Where the time of a training loop goes: a phase timer, and best-of-k timing of a piece of code.

    timer = PhaseTimer()
    for iteration in range(iterations):
        with timer.phase("policy inference"):
            actions = agent.act(obs)
        with timer.phase("env step"):
            obs, rewards, terminated, truncated, info = envs.step(actions)
        ...
    print(timer.table())          # seconds, share of the total and calls per phase, wall and CPU

Two clocks, because they answer different questions. Wall time (`time.perf_counter`) is what you wait for;
on a shared machine it also counts the moments the operating system ran someone else's process. CPU time
(`time.process_time`, all threads of this process) counts only the work this process did, so it is the
steadier number for comparing two pieces of code on a busy machine, but it misses time spent waiting for
other processes (worker processes of a vector env, a GPU) and counts every thread of a multi-threaded op.

On a GPU, work is queued and the call returns at once: without synchronizing, the time of a forward pass
shows up in whichever later phase first waits for its result (often the host-device copy). Pass
`sync=torch.cuda.synchronize` to charge queued work to the phase that queued it (at the price of the
overlap the asynchrony gave).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Iterator

__all__ = ["PhaseTimer", "Timing", "best_of"]


class PhaseTimer:
    """Accumulates wall and CPU seconds per named phase. Phases do not nest.

    sync: called at the start and at the end of every phase, before the clocks are read
    (e.g. torch.cuda.synchronize); None on a CPU.
    """

    def __init__(self, sync: Callable[[], object] | None = None):
        self.sync = sync
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._open: str | None = None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the body of the `with` block as phase `name` (added to its earlier calls)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a phase needs a non-empty name, got {name!r}.")
        if self._open is not None:
            raise RuntimeError(f"phase {name!r} started inside phase {self._open!r}: phases do not nest, so that "
                               "their times add up to the loop's time. End the outer phase first.")
        self._open = name
        if self.sync is not None:
            self.sync()
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            if self.sync is not None:
                self.sync()
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu
            self.calls[name] = self.calls.get(name, 0) + 1
            self._open = None

    def reset(self) -> None:
        """Forget every phase (after a warm-up, say)."""
        self.wall.clear()
        self.cpu.clear()
        self.calls.clear()

    def summary(self) -> list[dict]:
        """One dict per phase, in the order phases were first seen: name, wall_s, cpu_s, calls,
        wall_share (of the summed wall time of all phases)."""
        total = sum(self.wall.values())
        return [{"phase": name, "wall_s": self.wall[name], "cpu_s": self.cpu[name], "calls": self.calls[name],
                 "wall_share": self.wall[name] / total if total > 0 else float("nan")} for name in self.wall]

    def table(self) -> str:
        """The summary as aligned text, with a total line."""
        rows = self.summary()
        width = max([len("phase")] + [len(r["phase"]) for r in rows])
        lines = [f"{'phase':<{width}}  {'wall s':>8}  {'share':>6}  {'CPU s':>8}  {'calls':>6}  {'ms/call':>8}"]
        for r in rows:
            lines.append(f"{r['phase']:<{width}}  {r['wall_s']:8.3f}  {r['wall_share']:6.1%}  {r['cpu_s']:8.3f}  "
                         f"{r['calls']:6d}  {1e3 * r['wall_s'] / r['calls']:8.3f}")
        lines.append(f"{'total':<{width}}  {sum(self.wall.values()):8.3f}  {'':>6}  {sum(self.cpu.values()):8.3f}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Timing:
    """Best-of-k timing of one piece of code: the smallest wall and the smallest CPU seconds over the rounds
    (each minimum taken separately), and every round's numbers."""

    wall_s: float
    cpu_s: float
    wall_rounds: tuple[float, ...]
    cpu_rounds: tuple[float, ...]


def best_of(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1) -> Timing:
    """Run fn() `warmup` times untimed (first calls pay for imports, allocations, caches), then `repeats`
    timed rounds, and keep the fastest: on a shared machine the slow rounds measure the neighbours, and
    the fastest round is the best estimate of what the code itself costs."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}.")
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return Timing(min(walls), min(cpus), tuple(walls), tuple(cpus))
