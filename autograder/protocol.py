"""The check protocol every chapter's checks follow.

A check is a function `autograder.checks.chNN.<name>(learner_fn, ...)` called from a test cell.
It runs the learner's code on cases, compares with rlcore or a reference, prints one friendly
line when everything passes, and otherwise raises `CheckFailed` naming the smallest failing case,
the numbers and a hint. The rules that keep nbgrader's scoring honest:

- nothing is written to stderr (nbgrader scores any stderr in a grade cell as a failure): warnings
  raised by learner code are silenced, and text it prints to stderr is echoed to stdout;
- the learner's code is called through `Check.call`, which turns every way it can go wrong (wrong
  signature, an exception, NaN, a wrong shape, running past its time budget) into a message that
  says what happened and what to do, instead of a traceback from inside the grader;
- each check records its result (as one JSON line) when AUTOGRADER_RESULTS names a file, and saves
  its plots when AUTOGRADER_PLOTS names a directory: that is how `python -m autograder check`
  collects results from the notebook kernel;
- a check never returns a value: a bare number at the end of a test cell would be read by nbgrader
  as partial credit.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from autograder import replay as replay_mod  # Check.call's `replay` argument keeps the plain name
from autograder.stats import Verdict

RESULTS_ENV = "AUTOGRADER_RESULTS"
PLOTS_ENV = "AUTOGRADER_PLOTS"
HIDDEN_ENV = "AUTOGRADER_HIDDEN"
# A factor on every curve check's CPU budget (autograder.deeprl), for a grading machine slower than the course's
# 2-core reference or one whose cores are shared with other gradings.
CPU_SCALE_ENV = "AUTOGRADER_CPU_SCALE"


class CheckFailed(AssertionError):
    """A check did not pass. The message is the whole story; no grader traceback is needed."""


class LearnerCodeError(CheckFailed):
    """The learner's code could not be evaluated: it raised, hung, or returned the wrong thing."""


class _Timeout(BaseException):
    """Raised inside learner code by the alarm; BaseException so `except Exception` cannot eat it."""


# --------------------------------------------------------------------------------------------
# Describing values in messages
# --------------------------------------------------------------------------------------------


def describe(value: Any) -> str:
    """A short description of a value for messages: arrays by shape and dtype, scalars as is."""
    if type(value) is replay_mod.StandIn:  # in the grader's replay: the learner's object is the kernel's
        return repr(value)
    if isinstance(value, np.ndarray):
        if value.size <= 6:
            return f"array({np.array2string(value, precision=4, separator=', ')})"
        return f"array of shape {value.shape} ({value.dtype})"
    if isinstance(value, np.random.Generator):
        return "a numpy Generator"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _learner_frame(tb) -> str:
    """The innermost traceback line that is in the learner's own code (a notebook cell or a file
    outside the grader, rlcore and site-packages), as 'line N: source'."""
    ours = (str(Path(__file__).parent), str(Path(__file__).parent.parent / "rlcore"))
    found = ""
    for frame in traceback.extract_tb(tb):
        name = frame.filename
        if name.startswith(ours) or "site-packages" in name or "/lib/python" in name:
            continue
        found = f"line {frame.lineno}: {frame.line.strip()}" if frame.line else f"line {frame.lineno}"
    return found


# --------------------------------------------------------------------------------------------
# Time budget
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _time_budget(seconds: float | None):
    """Interrupt the body after `seconds` of wall time with _Timeout.

    Uses SIGALRM, which only the main thread can receive; elsewhere (a thread) the budget is not
    enforced, and the grader's per-cell timeout is the backstop.
    """
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    # An outer timer (pytest-timeout, a grader's own limit) must keep running: remember it and
    # give it back its remaining time afterwards. The sooner of the two fires first.
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    if 0 < outer_delay < seconds:
        signal.setitimer(signal.ITIMER_REAL, outer_delay)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:
            left = outer_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), outer_interval)


# --------------------------------------------------------------------------------------------
# Hidden grading parameters
# --------------------------------------------------------------------------------------------


def grading_seeds(check_id: str, visible: list[int]) -> tuple[list[int], bool]:
    """Seeds for a stochastic check: the visible ones from the exercise, or, when the instructor
    file named by AUTOGRADER_HIDDEN exists and lists this check, the hidden ones.

    The instructor file is JSON: {"seeds": {"ch01.epsilon_greedy_curves": [913, 27, ...]}}.
    It lives outside the public repository, so learners cannot tune to the hidden seeds.
    Returns (seeds, hidden).
    """
    path = os.environ.get(HIDDEN_ENV)
    if path and Path(path).is_file():
        seeds = json.loads(Path(path).read_text()).get("seeds", {}).get(check_id)
        if seeds:
            return [int(s) for s in seeds], True
    return list(visible), False


# --------------------------------------------------------------------------------------------
# The Check object
# --------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    passed: bool
    detail: str


@dataclass
class Check:
    """One graded check. Use as a context manager:

        with Check("ch01.epsilon_greedy", "epsilon-greedy action selection", hint=...) as check:
            fn = check.signature(fn, "Q", "epsilon", "rng")
            actions = check.call(fn, Q, 0.0, rng)
            check.expect(np.array_equal(actions, expected), "greedy when epsilon = 0", "...")

    On leaving the block it prints a summary, records the result, and raises CheckFailed with
    the first failing case (cases are added smallest first, so that is the smallest failing case).
    """

    check_id: str
    title: str
    hint: str = ""
    cases: list[Case] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)
    curves: list[dict] = field(default_factory=list)
    # True, or why the grader cannot re-run this check on the kernel's record (a speed measured in the kernel):
    # its grade is then decided in the kernel, and results say so.
    replayable: bool | str = True
    _replay = None  # the grader's replay of this check (autograder/replay.py), set on entering
    _recording = None  # the kernel's record of this check, set on entering under the grader

    # -- entering and leaving -------------------------------------------------------------

    def __enter__(self) -> "Check":
        self._start = time.perf_counter()
        # Under the grader the kernel records every crossing into learner code; in the grader's process the
        # same check is re-run on that record (autograder/replay.py).
        session = replay_mod.session()
        self._replay = session.next_check(self.check_id) if session else None
        self._recording = replay_mod.Recording() if replay_mod.recording_enabled() and self.replayable is True else None
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        self._errstate = np.errstate(all="ignore")
        self._errstate.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._errstate.__exit__(None, None, None)
        self._warnings.__exit__(None, None, None)
        if exc_type is not None and issubclass(exc_type, (replay_mod.Unverifiable, replay_mod.ReplayMismatch)):
            return False  # the grader's replay could not follow the record: verify_cell reports it
        if self._replay is not None and exc_type is None and all(c.passed for c in self.cases):
            self._replay.finish()  # a check that passes in the grader must have used the whole record
        if exc_type is not None and not issubclass(exc_type, Exception):
            return False  # KeyboardInterrupt (the learner or a cell timeout stopped it): not a grade
        first_failed = next((c for c in self.cases if not c.passed), None)
        if exc_type is not None and not issubclass(exc_type, CheckFailed):
            # A bug in the check itself or an unexpected failure: still record and explain it.
            message = (f"the check could not finish: {exc_type.__name__}: {exc}. "
                       "If your code looks right, tell your instructor; this is a grader problem.")
            self._record(False, message)
            raise CheckFailed(self._format_failure(message)) from None
        if exc_type is not None:
            # An earlier failing case is the smaller one: report it rather than what stopped the check.
            message = f"{first_failed.name}: {first_failed.detail}" if first_failed else str(exc)
            self._record(False, message)
            raise type(exc)(self._format_failure(message)) from None
        if first_failed:
            message = f"{first_failed.name}: {first_failed.detail}"
            self._record(False, message)
            raise CheckFailed(self._format_failure(message)) from None
        passed_line = f"✔ {self.check_id} passed: {self.title} ({len(self.cases)} cases)"
        print(passed_line)
        for note in self.notes:
            print("  " + note)
        self._record(True, passed_line)
        return False

    def _format_failure(self, message: str) -> str:
        lines = [f"✘ {self.check_id} failed: {self.title}", "  " + message.replace("\n", "\n  ")]
        first = next((i for i, c in enumerate(self.cases) if not c.passed), len(self.cases))
        if first:
            lines.append(f"  ({first} case{'s' if first > 1 else ''} passed before this one)")
        for d in self.diagnosis:
            lines.append("  Diagnosis: " + d)
        if self.hint:
            lines.append("  Hint: " + self.hint)
        return "\n".join(lines)

    def _record(self, passed: bool, message: str) -> None:
        path = os.environ.get(RESULTS_ENV)
        if not path:
            return
        record = {
            "check": self.check_id,
            "title": self.title,
            "passed": passed,
            "message": message,
            "hint": self.hint,
            "diagnosis": self.diagnosis,
            "cases": [c.__dict__ for c in self.cases],
            "verdicts": [v.to_dict() for v in self.verdicts],
            "plots": self.plots,
            "curves": self.curves,
            "seconds": round(time.perf_counter() - self._start, 3),
        }
        if self._recording is not None:
            record["replay"] = self._recording.to_dict()
            record["cell"] = _execution_count()
        elif self.replayable is not True and os.environ.get(RESULTS_ENV):
            record["replay"] = {"events": [], "unverifiable": str(self.replayable)}
            record["cell"] = _execution_count()
        with open(path, "a") as f:
            f.write(json.dumps(record, default=float) + "\n")

    # -- inspecting and calling the learner's code ----------------------------------------------

    def signature(self, fn: Any, *params: str, keywords: tuple[str, ...] = ()) -> Callable:
        """Check that `fn` is a function that accepts the parameters `params` positionally (and `keywords` by
        keyword)."""
        if self._replay is not None:
            error = self._replay.signature()
            if error:
                raise LearnerCodeError(error)
            return fn
        try:
            checked = self._signature(fn, *params, keywords=keywords)
        except LearnerCodeError as err:
            if self._recording is not None:
                self._recording.signature(fn, str(err))
            raise
        if self._recording is not None:
            self._recording.signature(fn)
        return checked

    def _signature(self, fn: Any, *params: str, keywords: tuple[str, ...] = ()) -> Callable:
        shown = ", ".join([*params, *(f"{k}=..." for k in keywords)])
        if fn is None or not callable(fn):
            raise LearnerCodeError(
                f"expected a function taking ({shown}), got {describe(fn)}. "
                "Pass the function itself (no parentheses) to the check, and run its cell first."
            )
        name = getattr(fn, "__name__", type(fn).__name__)
        wanted = f"{name}({shown})"
        try:
            inspect.signature(fn).bind(*params, **{k: k for k in keywords})
        except TypeError:
            got = f"{name}{inspect.signature(fn)}"
            raise LearnerCodeError(
                f"your function is {got}, but the check calls it as {wanted}. "
                "Keep the signature given in the exercise."
            ) from None
        except ValueError:
            pass  # builtins without a signature: let the call decide
        return fn

    def call(self, fn: Callable, *args, budget_s: float | None = 10.0, what: str | None = None,
             record: Callable | None = None, replay: Callable | None = None, **kwargs):
        """Call learner code and return its result, turning every failure into LearnerCodeError.

        budget_s: wall-clock seconds before the call is interrupted (None: no limit).
        what: how to describe the call in messages (default: name(args)).
        record, replay: for a call whose result the grader must compute itself (an experiment that runs the
        learner's agent): `record(result)` gives, in the kernel, plain data of what the learner did (its actions),
        and `replay(data)` re-runs the experiment on it in the grader's process (autograder/replay.py).
        """
        return self._cross(fn, args, kwargs, budget_s, what, record, replay, follow=True)

    def inspect(self, question: Callable, *learner_objects, what: str) -> Any:
        """The answer (plain data) of `question(*learner_objects)`, a grader function that looks at objects only the
        learner's kernel has (is this a class? has this object a method `add`?), or does housekeeping on them
        (closing the learner's environments).

        It runs where those objects are, like a call of learner code, and its answer is recorded like one: in the
        grader's replay the check gets the kernel's answer, and judges what follows on the grader's side."""
        return self._cross(question, learner_objects, {}, 10.0, what, None, None, follow=False)

    def _cross(self, fn: Callable, args: tuple, kwargs: dict, budget_s: float | None, what: str | None,
               record: Callable | None, replay: Callable | None, follow: bool):
        """One crossing into the kernel's side: run (and, under the grader, record) it, or in the grader's replay
        take its recorded outcome. follow: the arguments are the grader's objects, whose use by learner code is
        followed (proxies, state changes); not for the learner's own objects (Check.inspect)."""
        if self._replay is not None:
            outcome, value = self._replay.call(args if follow else (), kwargs if follow else {}, replay)
            if outcome == "raised":
                raise LearnerCodeError(value)
            return value
        if self._recording is None:
            return self._call(fn, args, kwargs, budget_s, what)
        if what is None:  # messages name the grader's objects, not the proxies learner code gets
            what = _what(fn, args, kwargs)
        if budget_s is not None:  # recording costs learner code time it must not be failed for
            budget_s *= replay_mod.RECORDING_SLACK
        watch: list[int] = []
        if follow and record is None:  # a recorded-and-replayed experiment is re-run whole: nothing to watch
            args, kwargs, watch = self._recording.prepare(args, kwargs)
        try:
            value = self._call(fn, args, kwargs, budget_s, what)
        except CheckFailed as err:
            self._recording.raised(str(err), watch)
            raise
        self._recording.returned(value, watch, record)
        return value

    def grad(self, out: Any, wrt: list, weights: Any = None, *, what: str = "backward()") -> list[np.ndarray]:
        """d sum(weights * out) / d x (d sum(out) / d x without weights) for each leaf tensor x in `wrt`, as float64
        arrays, zeros where `out` does not depend on x.

        `out` is the learner's result: autograd runs back through the learner's computation, whose graph exists
        only in the kernel where it ran. So this is a call like Check.call, recorded like one, and in the grader's
        replay the check judges the gradients the kernel recorded. A check differentiates a learner's result only
        this way (or through a recorded call such as `check.call(loss.backward)`): the grader's copy has no graph."""
        return list(self.call(gradients, out, weights, *wrt, what=what))

    def _call(self, fn: Callable, args: tuple, kwargs: dict, budget_s: float | None, what: str | None):
        name = getattr(fn, "__name__", type(fn).__name__)
        if what is None:
            what = _what(fn, args, kwargs)
        captured = io.StringIO()
        try:
            with _time_budget(budget_s), contextlib.redirect_stderr(captured):
                return fn(*args, **kwargs)
        except _Timeout:
            raise LearnerCodeError(
                f"{what} did not finish within {budget_s:g} s. Look for an infinite loop, or a Python "
                "loop over runs or steps that should be an array operation."
            ) from None
        except NotImplementedError:
            raise LearnerCodeError(
                f"{name} is not written yet (it raises NotImplementedError). Replace the "
                "`raise NotImplementedError` line in its cell with your code, run that cell, then this one."
            ) from None
        except CheckFailed:
            raise
        except Exception as err:  # learner code can raise anything; report it, never crash the check
            where = _learner_frame(err.__traceback__)
            where = f"\n  in your code, {where}" if where else ""
            raise LearnerCodeError(f"{what} raised {type(err).__name__}: {err}{where}") from None
        finally:
            text = captured.getvalue()
            if text:
                # Learner code wrote to stderr (a warning or a debug print). Show it on stdout:
                # nbgrader would zero the cell for any stderr output.
                print(f"[{name} wrote to stderr] " + text.rstrip()[:2000])

    def array(self, value: Any, what: str, *, shape: tuple | None = None, kind: str = "float") -> np.ndarray:
        """Validate a value the learner returned and return it as an ndarray.

        kind: "float" (finite real numbers), "int" (integer indices) or "bool".
        """
        if value is None:
            raise LearnerCodeError(f"{what} returned None. Did you forget a `return` statement?")
        try:
            arr = np.asarray(value)
        except Exception:
            raise LearnerCodeError(f"{what} returned {describe(value)}, which is not an array.") from None
        if arr.dtype == object:
            raise LearnerCodeError(f"{what} returned {describe(value)}; expected a numeric array.")
        if shape is not None and arr.shape != tuple(shape):
            raise LearnerCodeError(f"{what} returned shape {arr.shape}; expected {tuple(shape)}.")
        if kind in ("float", "int") and not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
            raise LearnerCodeError(f"{what} returned {arr.dtype} values; expected numbers.")
        if np.issubdtype(arr.dtype, np.number) and not np.all(np.isfinite(arr)):
            bad = int((~np.isfinite(arr)).sum())
            raise LearnerCodeError(
                f"{what} returned {bad} NaN or infinite value(s) out of {arr.size}. "
                "Look for a division by zero or the log of zero."
            )
        if kind == "bool" and arr.dtype != bool:
            if not (np.issubdtype(arr.dtype, np.number) and np.all((arr == 0) | (arr == 1))):
                raise LearnerCodeError(f"{what} returned {arr.dtype} values; expected True/False.")
            arr = arr.astype(bool)
        if kind == "int":
            if not np.issubdtype(arr.dtype, np.integer):
                if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
                    arr = arr.astype(np.int64)
                else:
                    raise LearnerCodeError(f"{what} returned {arr.dtype} values; expected integer indices.")
        return arr

    # -- recording outcomes ------------------------------------------------------------------

    def expect(self, passed: bool, name: str, detail: str = "") -> bool:
        """Record one case. Later cases still run, so the summary counts all of them."""
        self.cases.append(Case(name, bool(passed), detail))
        return bool(passed)

    def require(self, passed: bool, name: str, detail: str = "") -> None:
        """Record one case and stop the check at once if it failed (later cases would only
        repeat the same failure, or cannot run without this one)."""
        if not self.expect(passed, name, detail):
            raise CheckFailed(f"{name}: {detail}")

    def verdict(self, verdict: Verdict, name: str | None = None) -> bool:
        """Record a statistical verdict as a case."""
        self.verdicts.append(verdict)
        name = name or verdict.metric
        return self.expect(verdict.passed, name, verdict.detail.removeprefix(f"{name}: "))

    def note(self, text: str) -> None:
        """A line printed under the summary when the check passes (the numbers behind it)."""
        self.notes.append(text)

    def plot(self, fig, name: str) -> None:
        """Show a figure in the notebook and save it for the feedback when AUTOGRADER_PLOTS is set."""
        if hasattr(fig, "autograder_panels"):
            from autograder.feedback import panel_record

            self.curves += [dict(panel_record(p), plot=name) for p in fig.autograder_panels]
        directory = os.environ.get(PLOTS_ENV)
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.check_id}.{name}") + ".png"
            path = Path(directory) / safe
            fig.savefig(path, dpi=110, bbox_inches="tight")
            self.plots.append(str(path))
        if _in_notebook():
            from IPython.display import display

            display(fig)
        import matplotlib.pyplot as plt

        plt.close(fig)


def gradients(out: Any, weights: Any, *wrt: Any) -> tuple[np.ndarray, ...]:
    """d sum(weights * out) / d x for each tensor x in `wrt` (weights None: d sum(out) / d x), as float64
    arrays, zeros where `out` does not depend on x. `out` [any shape]; `weights` broadcast against it."""
    import torch

    total = out.sum() if weights is None else (out.double() * torch.as_tensor(weights).double()).sum()
    grads = torch.autograd.grad(total, list(wrt), allow_unused=True)
    return tuple(np.zeros(tuple(x.shape)) if g is None else g.detach().double().numpy() for g, x in zip(grads, wrt))


def _what(fn: Callable, args: tuple, kwargs: dict) -> str:
    """How a call is named in messages: name(arguments described)."""
    name = getattr(fn, "__name__", type(fn).__name__)
    shown = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(shown)})"


def _execution_count() -> int | None:
    """The number of the notebook cell being run (In [n]), which attributes a record to its cell."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return getattr(shell, "execution_count", None) if shell else None


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return bool(shell) and type(shell).__name__ == "ZMQInteractiveShell"


def _show_check_failure(shell, etype, evalue, tb, tb_offset=None):
    """IPython handler for CheckFailed: show the message alone, not the grader's stack.

    IPython's wrapper around a custom handler does not display what the handler returns, so the
    handler sends the error output itself. The cell ends with that error output, which is what
    nbgrader reads to score the cell as failed."""
    stb = [f"{etype.__name__}: {evalue}"]
    shell._showtraceback(etype, evalue, stb)
    return stb


def install_notebook_handler() -> None:
    """Register `_show_check_failure` in the running IPython kernel, if there is one."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((CheckFailed,), _show_check_failure)
