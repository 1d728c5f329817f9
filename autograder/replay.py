"""Decide grades in the grader's process: record a check in the learner's kernel, replay it outside.

A grade cell runs in the learner's kernel, where the learner's code can patch anything: numpy, builtins,
`Check.expect`, the check itself. So the kernel's outcome is never taken on trust. While a check runs
there (under the runner, which sets AUTOGRADER_RESULTS), every crossing into learner code through
`Check.signature` and `Check.call` is recorded as plain data:

- what the call returned (numbers, arrays, tensors, and lists, tuples and dicts of them; anything else,
  such as an instance of the learner's class, as an opaque handle),
- or the error it raised,
- after each call, the new state of the grader's data it was given, when it changed (arrays and tensors
  written in place, a numpy Generator that was drawn from), and of every network or optimizer handed over so
  far (weights, gradients, moments: learner code may keep one and change it later, as loss.backward() does),
- and every call the learner's code makes back into a grader object it was given (an environment, a
  callback, a logger), which it gets behind a proxy (`_Proxy`).

Afterwards the grader's process (`verify_cell`) runs the grade cell's own source again, from the
instructor's copy, with the grader's own numpy and checks. The learner's names are bound to stand-ins:
each call returns the next recorded value and restores the recorded states, so the check computes its
inputs, its expected answers and every comparison itself, on the learner's recorded outputs, and the
recorded calls back are performed on the grader's own objects. A grade cell passes only if it passed in the
kernel AND its replay passes. What learner code can do to its kernel is limited to what it returns, which is
exactly what is being graded.

A check can only be replayed when it is deterministic and reaches learner code only through `Check.call` and
its kin: `Check.grad` differentiates a learner's result where its autograd graph is (the kernel) and records
the gradients; `Check.inspect` asks a question of an object only the kernel has (is it a class? has it a
method?) and records the answer; a returned network is recorded as its torch.nn layers and weights, a returned
record (a dataclass such as rlcore's Episode) as its fields; the results of gloo ranks running learner code
are recorded as one call's output. Where a check is not replayable (a speed measured in the kernel), the
replay says so and the grade stays the kernel's, marked "decided in the kernel" in the results, so an
instructor can see which grades rest on the kernel alone. Which checks are replayed is the grader's knowledge,
not the record's: autograder/replayable.json (`python -m autograder.replay`) lists those replayed on every
solution, and for them a missing or unreplayable record fails the cell. Curve checks pass a `replay=` function
to `Check.call`: the kernel records what the learner did (its actions), and the grader re-runs the
environment on them, so returns always come from the grader's own simulation.

Recorded data is decoded without pickle (np.load with allow_pickle=False): a record forged in the kernel
can only supply outputs to be judged, never run code in the grader.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import importlib
import io
import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from autograder.replay_data import (  # the data layer; encode, decode, snapshot and restore are re-exported
    Delta,
    ReplayMismatch,
    Unverifiable,
    _fingerprint,
    _kind,
    _nbytes,
    decode,
    encode,
    freeze,
    restore,
    snapshot,
)

RECORDING_SLACK = 2.0  # a learner call's time budget is this much larger while the kernel records it
MAX_RECORD_BYTES = 64 * 2**20  # a check's recorded events beyond this are not kept (the grade stays the kernel's)


# ------------------------------------------------------------------------------ recording (the kernel)


class _Ledger:
    """The grader objects handed to learner code, numbered in the order first seen, kept alive (so an id is
    never reused). The kernel's Recording and the grader's Replay keep the same ledger over the same check, so
    an index in the record names the same object on both sides."""

    def __init__(self):
        self.handles: list[Any] = []  # objects learner code gets behind a proxy
        self.tracked: list[tuple[Any, str]] = []  # data whose state is snapshotted
        self._index: dict[int, int] = {}

    def note(self, value: Any) -> tuple[str | None, int]:
        """(kind, index in handles or tracked) of `value`, adding it when first seen; index -1 for kind None."""
        kind = _kind(value)
        if kind is None:
            return None, -1
        if id(value) not in self._index:
            ledger = self.handles if kind == "proxy" else self.tracked
            self._index[id(value)] = len(ledger)
            ledger.append(value if kind == "proxy" else (value, kind))
        return kind, self._index[id(value)]

    def seen(self, value: Any) -> bool:
        return id(value) in self._index


class _Proxy:
    """What learner code gets instead of a grader object it cannot hold as data (an environment, a callback):
    every call and attribute write goes through, and is noted for the grader's replay. isinstance() sees the
    object's own class."""

    __slots__ = ("_rec", "_target", "_obj", "_path")

    def __init__(self, rec: "Recording", target: int, obj: Any, path: tuple = ()):
        object.__setattr__(self, "_rec", rec)
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_path", path)

    @property
    def __class__(self):
        return type(object.__getattribute__(self, "_obj"))

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._obj, name)
        kind = _kind(value)
        return _Proxy(self._rec, self._target, value, (*self._path, name)) if kind == "proxy" else value

    def __setattr__(self, name: str, value: Any) -> None:
        self._rec.callback(self._target, self._path, "setattr", (name, value), {})
        setattr(self._obj, name, value)

    def __call__(self, *args, **kwargs):
        self._rec.callback(self._target, self._path, "call", args, kwargs)
        return self._obj(*args, **kwargs)

    def __bool__(self):
        return bool(self._obj)

    def __len__(self):
        return len(self._obj)

    def __contains__(self, item):
        return item in self._obj

    def __eq__(self, other):
        return self._obj == (other._obj if type(other) is _Proxy else other)

    def __hash__(self):
        return hash(self._obj)

    def __iter__(self):
        return iter(self._obj)

    def __getitem__(self, key):
        return self._obj[key]

    def __repr__(self):
        return repr(self._obj)


class Recording:
    """The events of one check in the learner's kernel. `Check` calls it at each crossing."""

    def __init__(self):
        self.events: list[dict] = []
        self.learner_ids: set[int] = set()  # objects that came from learner code (never snapshotted)
        self._learner_objects: list[Any] = []  # kept alive, so that their ids are never reused for grader objects
        self.ledger = _Ledger()
        self._fingerprints: dict[int, str] = {}
        self._callbacks: list[dict] = []
        self._last_args: dict[tuple, list] = {}  # the arguments of the last call of each grader object
        self.unverifiable = ""
        self.size = 0

    def _add(self, event: dict) -> None:
        if self.unverifiable:
            return
        self.size += 64 + sum(_nbytes(event.get(k)) for k in ("value", "replayed", "state"))
        if self.size > MAX_RECORD_BYTES:
            self.fail(f"the check's record is larger than {MAX_RECORD_BYTES // 2**20} MiB")
            return
        self.events.append(event)

    def fail(self, why: str) -> None:
        if not self.unverifiable:
            self.unverifiable, self.events, self._callbacks = why, [], []

    def _learner(self, obj: Any) -> None:
        self.learner_ids.add(id(obj))
        self._learner_objects.append(obj)

    def signature(self, fn: Any, error: str = "") -> None:
        self._learner(fn)
        self._add({"kind": "signature", "error": error})

    def prepare(self, args: tuple, kwargs: dict) -> tuple[tuple, dict, list[int]]:
        """The call's arguments as learner code gets them (proxies for grader objects), and the indices of
        the data among them to snapshot after the call."""
        watch: list[int] = []

        def one(value):
            if id(value) in self.learner_ids:
                return value
            first = not self.ledger.seen(value)
            try:
                kind, index = self.ledger.note(value)
                if first and kind not in (None, "proxy"):  # only changes from here on are recorded
                    self._fingerprints[index] = _fingerprint(value, kind)
            except Unverifiable as err:
                self.fail(str(err))
                return value
            except Exception as err:  # noqa: BLE001 - an object the grader cannot read: not replayable
                self.fail(f"the state of a {type(value).__name__} could not be read ({type(err).__name__})")
                return value
            if kind is None:
                return value
            if kind == "proxy":
                return _Proxy(self, index, value)
            watch.append(index)
            return value

        args = tuple(one(v) for v in args)
        kwargs = {k: one(v) for k, v in kwargs.items()}
        return args, kwargs, watch

    def callback(self, target: int, path: tuple, op: str, args: tuple, kwargs: dict) -> None:
        """Learner code called (or set an attribute of) a grader object it got as a proxy."""
        if self.unverifiable:
            return
        try:
            args, kwargs = freeze(list(args)), freeze(kwargs)
            # An array argument that changed in a few entries since the last call is recorded as those entries
            # (an MC control loop hands its environment the policy at every one of 200,000 episodes).
            key = (target, path, op)
            last, self._last_args[key] = self._last_args.get(key, []), args
            args = Delta.packed(args, last)
            self._callbacks.append({"target": target, "path": list(path), "op": op, "args": args, "kwargs": kwargs})
            self.size += 64 + _nbytes(args) + _nbytes(kwargs)
        except TypeError as err:
            self.fail(f"learner code passed a {err} to {'.'.join(('grader object', *path))}, which cannot be recorded")
        if self.size > MAX_RECORD_BYTES:
            self.fail(f"the check's record is larger than {MAX_RECORD_BYTES // 2**20} MiB")

    def _changes(self, watch: list[int]) -> dict:
        """Snapshots of the data that changed: this call's arguments, and every network or optimizer
        handed over so far (learner code may keep one and change it later, e.g. in loss.backward())."""
        changed = {}
        tracked = self.ledger.tracked
        indices = set(watch) | {i for i, (_, kind) in enumerate(tracked) if kind == "stateful"}
        for index in sorted(indices):
            obj, kind = tracked[index]
            fingerprint = _fingerprint(obj, kind)
            if self._fingerprints.get(index) != fingerprint:
                self._fingerprints[index] = fingerprint
                changed[str(index)] = snapshot(obj, kind)
        return changed

    def _finish_call(self, data: dict, watch: list[int]) -> None:
        callbacks, self._callbacks = self._callbacks, []
        if self.unverifiable:
            return
        try:
            data["state"] = self._changes(watch)
        except Exception as err:
            self.fail(f"a state could not be recorded ({type(err).__name__}: {err})")
            return
        self._add({"kind": "call", "callbacks": callbacks, **data})

    def returned(self, value: Any, watch: list[int], recorder=None) -> None:
        if self.unverifiable:
            return
        if recorder is not None:
            try:
                data = {"replayed": freeze(recorder(value))}
            except Exception as err:  # the learner's output could not be recorded: the replay will say so
                data = {"unrecordable": f"{type(err).__name__}: {err}"}
        else:
            try:
                data = {"value": freeze(value)}
            except TypeError:
                self._learner(value)
                data = {"opaque": type(value).__name__}
        self._finish_call(data, watch)

    def raised(self, message: str, watch: list[int]) -> None:
        self._finish_call({"raised": message}, watch)

    def to_dict(self) -> dict:
        """The record as JSON-able data: the copies taken during the check are encoded now, after it."""
        events = []
        for event in self.events:
            event = dict(event)
            for key in ("value", "replayed"):
                if key in event:
                    event[key] = encode(event[key])
            if "state" in event:
                event["state"] = {k: encode(v) for k, v in event["state"].items()}
            if "callbacks" in event:
                event["callbacks"] = [dict(cb, args=encode(cb["args"]), kwargs=encode(cb["kwargs"]))
                                      for cb in event["callbacks"]]
            events.append(event)
        return {"events": events, "unverifiable": self.unverifiable}


def recording_enabled() -> bool:
    """Record only under the grader (which names a results file), never in a learner's own session."""
    from autograder.protocol import RESULTS_ENV

    return bool(os.environ.get(RESULTS_ENV)) and _REPLAY is None


# ------------------------------------------------------------------------------- replaying (the grader)


class StandIn:
    """Where the learner's object was: usable only as Check.signature's and Check.call's target (a function,
    a class, an instance whose methods are called through Check.call). Anything else cannot be replayed."""

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str) -> "StandIn":
        if attr.startswith("__"):
            raise AttributeError(attr)
        return StandIn(f"{self._name}.{attr}")

    def _refuse(self, *args, **kwargs):
        raise Unverifiable(f"the check uses {self._name} other than through Check.call")

    __call__ = __iter__ = __len__ = __getitem__ = __bool__ = __array__ = __float__ = __int__ = _refuse
    __setattr__ = _refuse

    @property
    def __class__(self):  # isinstance(stand_in, nn.Module) would say False: it cannot say anything
        raise Unverifiable(f"the check inspects {object.__getattribute__(self, '_name')}, which only the kernel has")

    def __repr__(self) -> str:
        return f"<{self._name}>"


class Replay:
    """The events of one recorded check, consumed by the grader's re-run of that check."""

    def __init__(self, record: dict):
        self.check_id = record.get("check", "")
        self.events = collections.deque(record.get("replay", {}).get("events", []))
        self.ledger = _Ledger()
        self._last_args: dict[tuple, list] = {}

    def _next(self, kind: str) -> dict:
        if not self.events:
            raise ReplayMismatch(f"{self.check_id}: the kernel's record ends before the check does")
        event = self.events.popleft()
        if event.get("kind") != kind:
            raise ReplayMismatch(f"{self.check_id}: the record has a {event.get('kind')} where the check makes a "
                                 f"{kind}")
        return event

    def signature(self) -> str:
        return self._next("signature").get("error", "")

    def _perform(self, callbacks: list[dict]) -> None:
        """What learner code did to the grader's objects, done again to this process's objects."""
        for cb in callbacks:
            if cb["target"] >= len(self.ledger.handles):
                raise ReplayMismatch(f"{self.check_id}: the record calls an object the check never handed over")
            obj = self.ledger.handles[cb["target"]]
            for name in cb["path"]:
                obj = getattr(obj, name)
            args, kwargs = decode(cb["args"]), decode(cb["kwargs"])
            if not isinstance(args, list):
                raise ReplayMismatch(f"{self.check_id}: a recorded call's arguments are not a list")
            key = (cb["target"], tuple(cb["path"]), cb["op"])
            args = self._last_args[key] = Delta.unpacked(args, self._last_args.get(key, []))
            args = [a.copy() if type(a) is np.ndarray else a for a in args]  # the next Delta applies to ours
            try:
                if cb["op"] == "setattr":
                    setattr(obj, *args)
                else:
                    obj(*args, **kwargs)
            except Exception:  # noqa: BLE001 - learner code saw this error in the kernel too, and carried on
                pass

    def call(self, args: tuple, kwargs: dict, replay=None) -> tuple[str, Any]:
        """('raised', message) or ('value', the value), after performing the recorded callbacks and restoring
        the recorded states."""
        if replay is None:  # the same bookkeeping as Recording.prepare, on the grader's own objects
            for value in (*args, *kwargs.values()):
                if type(value) is not StandIn:
                    self.ledger.note(value)
        event = self._next("call")
        self._perform(event.get("callbacks", []))
        for index, data in event.get("state", {}).items():
            i = int(index)
            if i >= len(self.ledger.tracked):
                raise ReplayMismatch(f"{self.check_id}: the record changes an object the check never handed over")
            obj, kind = self.ledger.tracked[i]
            restore(obj, kind, decode(data))
        if "raised" in event:
            return "raised", str(event["raised"])
        if "unrecordable" in event:
            return "raised", f"the output could not be recorded: {event['unrecordable']}"
        if "replayed" in event:
            if replay is None:
                raise ReplayMismatch(f"{self.check_id}: the record has a replayed call where the check has none")
            try:
                return "value", replay(decode(event["replayed"]))
            except Exception as err:  # what the kernel recorded cannot be replayed: the learner's output is at fault
                return "raised", f"what your code did could not be replayed by the grader ({type(err).__name__}: {err})"
        if "opaque" in event:
            return "value", StandIn(f"(a {event['opaque']} returned by learner code)")
        return "value", decode(event.get("value"))

    def finish(self) -> None:
        if self.events:
            raise ReplayMismatch(f"{self.check_id}: the kernel's record has {len(self.events)} more event(s) than "
                                 "the check makes")


class _Session:
    def __init__(self, records: list[dict]):
        self.records = list(records)

    def next_check(self, check_id: str) -> Replay:
        if not self.records:
            raise ReplayMismatch(f"{check_id} ran in the grader but left no record in the kernel")
        record = self.records.pop(0)
        if record.get("check") != check_id:
            raise ReplayMismatch(f"the kernel recorded {record.get('check')!r} where the cell runs {check_id!r}")
        if record.get("replay", {}).get("unverifiable"):
            raise Unverifiable(record["replay"]["unverifiable"])
        if "replay" not in record:
            raise ReplayMismatch(f"{check_id}: the kernel's record has no events")
        return Replay(record)


_REPLAY: _Session | None = None


def session() -> _Session | None:
    """The replay in progress in this process (the grader's), or None."""
    return _REPLAY


@contextmanager
def _replaying(records: list[dict], env: dict):
    global _REPLAY
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: v for k, v in env.items() if v is not None})
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
    _REPLAY = _Session(records)
    try:
        yield _REPLAY
    finally:
        _REPLAY = None
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------------------- a grade cell


@dataclass
class Verification:
    """The grader's verdict on one grade cell.

    status: "verified" (the replay passed), "failed" (the replay failed: the cell scores 0 whatever the kernel
    said), "kernel" (the grader could not replay it; the kernel's outcome stands), or "none" (no check ran).
    """

    status: str
    reason: str = ""

    @property
    def overrules(self) -> bool:
        return self.status == "failed"


REGISTRY = Path(__file__).parent / "replayable.json"


@lru_cache(maxsize=1)
def _registry() -> dict:
    return json.loads(REGISTRY.read_text()) if REGISTRY.exists() else {"checks": [], "calls": {}}


def replayable() -> frozenset[str]:
    """The checks the grader replays on the course's own solutions (autograder/replayable.json, made by
    `python -m autograder.replay`). For these, a record that cannot be replayed is not the grader's limit but a
    changed or forged record, so the cell fails; the other checks' grades are the kernel's."""
    return frozenset(_registry()["checks"])


def _called(source: str) -> list[str]:
    """The check functions a grade cell calls, as 'chNN.name' (from its source)."""
    return [f"{call.func.value.id}.{call.func.attr}" for call in _check_calls(source)]


def expected_records(source: str) -> set[str]:
    """The replayable checks a grade cell must leave records of (a kernel that leaves none decides nothing)."""
    calls = _registry().get("calls", {})
    return {check_id for name in _called(source) for check_id in calls.get(name, [])}


def _check_module(name: str):
    """The grader's check module a grade cell names (`ch01` -> autograder.checks.ch01), or None."""
    return importlib.import_module(f"autograder.checks.{name}") if re.fullmatch(r"ch\d\d", name) else None


def _check_calls(source: str) -> list[ast.Call]:
    """The cell's calls of check functions: statements `chNN.name(learner_name, ..., key=constant)`.

    Only these run in the grader's process: a cell's source is the instructor's under nbgrader, but
    `python -m autograder check` takes a notebook as it is, and nothing else in it may run outside the
    sandbox. Other statements (an instructor's hidden asserts) ran in the kernel only."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    calls = []
    for stmt in tree.body:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name) and not call.func.attr.startswith("_")
                and _check_module(call.func.value.id) is not None
                and all(isinstance(a, (ast.Name, ast.Constant)) for a in call.args)
                and all(k.arg and isinstance(k.value, ast.Constant) for k in call.keywords)):
            calls.append(call)
    return calls


def verify_cell(source: str, records: list[dict], *, hidden_file: str | None = None) -> Verification:
    """Replay the check calls of the grade cell `source` in this process against the kernel's `records` of
    it, and say whether the grader confirms the cell."""
    from autograder.protocol import HIDDEN_ENV, PLOTS_ENV, RESULTS_ENV, CheckFailed

    missing = sorted(expected_records(source) - {r.get("check") for r in records})
    if missing:
        return Verification("failed", f"your kernel left no record of {missing[0]}, which the grader replays: the "
                                      "check did not run there, or its record was removed")
    if not any(r.get("check") for r in records):
        return Verification("none")
    known = sorted({r.get("check") for r in records} & replayable())
    env = {RESULTS_ENV: None, PLOTS_ENV: None, HIDDEN_ENV: str(hidden_file) if hidden_file else None,
           "MPLBACKEND": "Agg"}
    with _replaying(records, env) as replay_session:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                for call in _check_calls(source):
                    check = getattr(_check_module(call.func.value.id), call.func.attr)
                    args = [StandIn(a.id) if isinstance(a, ast.Name) else a.value for a in call.args]
                    check(*args, **{k.arg: k.value.value for k in call.keywords})
            if replay_session.records:
                extra = len(replay_session.records)
                raise ReplayMismatch(f"the kernel recorded {extra} check(s) the cell does not run")
        except ReplayMismatch as err:
            return Verification("failed", f"the check's record in your kernel does not match the check ({err})")
        except CheckFailed as err:
            lines = [line.strip() for line in str(err).splitlines()[:2]]  # the check's title and its failed case
            return Verification("failed", ": ".join(lines) if lines else "the check failed")
        except (Unverifiable, Exception) as err:  # noqa: BLE001 - the grader could not follow the record
            why = str(err) if isinstance(err, Unverifiable) else f"the replay raised {type(err).__name__}: {err}"
            if known:  # the grader replays this check on every correct solution: a record it cannot follow is forged
                return Verification("failed", f"{known[0]} is replayed by the grader, but the record your kernel "
                                              f"made of it cannot be ({why})")
            return Verification("kernel", why)
    return Verification("verified")


# --------------------------------------------------------------------------- which checks are replayable


def survey(chapter: str, out=print, only: set[str] | None = None) -> list[tuple[str, str, str, float, list[str]]]:
    """Run a chapter's solution grade cells in this process as a kernel under the grader would (recording),
    replay each, and return (check ids, status, reason, seconds, check functions called) per grade cell
    (only those whose grade_id is in `only`, when given)."""
    import tempfile

    import nbformat

    from autograder.protocol import RESULTS_ENV, CheckFailed

    root = Path(__file__).resolve().parent.parent
    nb = nbformat.read(root / "solutions" / chapter / f"{chapter}.ipynb", as_version=4)
    namespace: dict = {"__name__": f"solution_{chapter}"}
    rows = []
    saved = os.environ.get(RESULTS_ENV)
    with tempfile.TemporaryDirectory() as tmp:
        for i, cell in enumerate(nb.cells):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.cell_type != "code":
                continue
            if not meta.get("grade"):
                if meta.get("solution") or meta.get("grade_id") == "setup":
                    exec(compile(cell.source, f"<{chapter}:{meta.get('grade_id')}>", "exec"), namespace)
                continue
            if only is not None and meta.get("grade_id") not in only:
                continue
            path = Path(tmp) / f"{i}.jsonl"
            os.environ[RESULTS_ENV] = str(path)
            start = time.perf_counter()
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(cell.source, "<grade cell>", "exec"), namespace)
            except CheckFailed as err:
                raise RuntimeError(f"{chapter} {meta['grade_id']}: the solution fails its check: {err}") from None
            finally:
                os.environ.pop(RESULTS_ENV, None)
            records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
            verdict = verify_cell(cell.source, records)
            ids = ",".join(r["check"] for r in records)
            rows.append((ids, verdict.status, verdict.reason, time.perf_counter() - start, _called(cell.source)))
            out(f"{chapter} {ids}: {verdict.status} {verdict.reason[:160]} ({rows[-1][3]:.1f} s)")
    if saved is not None:
        os.environ[RESULTS_ENV] = saved
    return rows


def main(argv: list[str] | None = None) -> int:
    """Regenerate autograder/replayable.json from every chapter's solution (about 15 minutes on 2 cores), or
    only the entries of the chapters named (`python -m autograder.replay 08_dqn 11_ppo`)."""
    chapters = argv if argv else sorted(p.name for p in (Path(__file__).resolve().parent.parent / "solutions").iterdir()
                                        if p.is_dir())
    verified, kernel, calls = [], {}, {}
    if argv:  # keep the other chapters' entries
        surveyed = tuple(f"ch{chapter[:2]}." for chapter in chapters)
        old = json.loads(REGISTRY.read_text()) if REGISTRY.exists() else {}
        verified = [c for c in old.get("checks", []) if not c.startswith(surveyed)]
        kernel = {c: why for c, why in old.get("decided_in_the_kernel", {}).items() if not c.startswith(surveyed)}
        calls = {c: ids for c, ids in old.get("calls", {}).items() if not c.startswith(surveyed)}
    for chapter in chapters:
        for ids, status, reason, _, called in survey(chapter):
            if status == "failed":
                raise SystemExit(f"error: the replay fails the solution of {chapter} ({ids}): {reason}")
            for check_id in ids.split(","):
                (verified.append(check_id) if status == "verified" else kernel.__setitem__(check_id, reason))
            if status == "verified":
                for name in called:
                    calls[name] = ids.split(",")
    REGISTRY.write_text(json.dumps({
        "command": "python -m autograder.replay",
        "about": "checks the grader replays in its own process on every chapter's solution (checks), the check "
                 "functions whose grade cells must leave their records (calls), and the checks decided in the "
                 "kernel with the reason",
        "checks": sorted(verified), "calls": dict(sorted(calls.items())),
        "decided_in_the_kernel": dict(sorted(kernel.items())),
    }, indent=1) + "\n")
    print(f"{len(verified)} checks replayed by the grader, {len(kernel)} decided in the kernel: {REGISTRY}")
    return 0


if __name__ == "__main__":
    # Through the package's module, not this __main__ copy: the checks look for the replay session there.
    from autograder.replay import main as _main

    sys.exit(_main(sys.argv[1:]))
