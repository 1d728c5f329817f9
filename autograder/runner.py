"""Execute a notebook headlessly and turn its check cells into grades.

The notebook runs in its own Jupyter kernel (a separate process), one cell at a time, so every
check record (the JSON lines written by `autograder.protocol.Check`) is attributed to the cell that
produced it. A grade cell (nbgrader metadata `grade: true`) scores its points when it finishes
without an error, as nbgrader scores it. Whatever goes wrong (an error, a timeout, a dead kernel),
each grade cell still ends with a score and a reason: nothing is lost.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from autograder.protocol import HIDDEN_ENV, PLOTS_ENV, RESULTS_ENV

if TYPE_CHECKING:
    from autograder.replay import Verification
    from autograder.sandbox import Sandbox

DEFAULT_CELL_TIMEOUT = 600  # seconds; RL checks run experiments, nbgrader's default of 30 s is too short


@dataclass
class CellResult:
    """One graded cell: its nbgrader id, points, outcome and the text a learner should read."""

    grade_id: str
    index: int
    max_score: float
    passed: bool
    output: str
    seconds: float
    checks: list[dict] = field(default_factory=list)
    # Who decided the grade: "verified" (the grader's replay agreed), "failed" (the replay failed the cell),
    # "kernel" (not replayable: the kernel's outcome stands, with `verification` saying why), "none" (no check).
    verified: str = "none"
    verification: str = ""

    @property
    def score(self) -> float:
        return self.max_score if self.passed else 0.0


@dataclass
class NotebookResult:
    path: str
    cells: list[CellResult]
    seconds: float
    error: str = ""  # a notebook-level problem (unreadable file, dead kernel), if any

    @property
    def passed(self) -> bool:
        return bool(self.cells) and all(c.passed for c in self.cells) and not self.error

    @property
    def score(self) -> float:
        return sum(c.score for c in self.cells)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.cells)

    def gradescope(self) -> dict:
        """The result in the shape of Gradescope's results.json."""
        tests = [{
            "name": c.grade_id,
            "number": str(i + 1),
            "score": c.score,
            "max_score": c.max_score,
            "status": "passed" if c.passed else "failed",
            "output": c.output,
            "extra_data": {"seconds": round(c.seconds, 3), "checks": c.checks, "decided_by": _decided_by(c),
                           "verification": c.verification},
        } for i, c in enumerate(self.cells)]
        return {
            "score": self.score,
            "max_score": self.max_score,
            "execution_time": round(self.seconds, 3),
            "output": self.error or f"{sum(c.passed for c in self.cells)} of {len(self.cells)} checks passed",
            "tests": tests,
        }

    def to_dict(self) -> dict:
        return asdict(self)


def _decided_by(cell: CellResult) -> str:
    return {"verified": "grader", "failed": "grader", "kernel": "kernel"}.get(cell.verified, "kernel")


def _without_replay(records: list[dict]) -> list[dict]:
    """Check records as results keep them: the replay's events are the grader's working data, not feedback."""
    return [{k: v for k, v in r.items() if k != "replay"} for r in records]


def _grade_info(cell) -> tuple[bool, str, float]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")), str(meta.get("grade_id", "")), float(meta.get("points", 0) or 0)


def _cell_text(cell) -> tuple[str, bool]:
    """The text of a cell's outputs (stdout, stderr, error message) and whether it errored."""
    parts, errored = [], False
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text if out.name == "stdout" else f"[stderr] {out.text}")
        elif out.output_type == "error":
            errored = True
            parts.append(f"{out.ename}: {out.evalue}")
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts).strip(), errored


def _error_name(cell) -> str:
    """'MemoryError: ...' of a cell's first error output."""
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            return f"{out.ename}: {str(out.evalue)[:150]}".rstrip(": ")
    return "an error"


MAX_RECORDS_BYTES = 512 * 2**20  # one cell's check records; a kernel that writes more has its records ignored


def _read_new_records(path: Path, offset: int) -> tuple[list[dict], int]:
    if not path.exists():
        return [], offset
    if path.stat().st_size - offset > MAX_RECORDS_BYTES:  # never load a flood into the grader's memory
        return [], path.stat().st_size
    with open(path) as f:
        f.seek(offset)
        text = f.read()
        offset = f.tell()
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:  # a line the kernel's code mangled: not a record (a replayed check then misses it)
            continue
    return [r for r in records if isinstance(r, dict) and "check" in r], offset


def execute_notebook(path: str | Path, *, workdir: str | Path | None = None, **options) -> NotebookResult:
    """Run every cell of the notebook at `path` in a fresh kernel and grade its grade cells.

    Notebooks without nbgrader grade cells are graded by their check records instead (each
    `Check` in the notebook becomes one test worth 1 point). The options are `run_notebook`'s
    (cell_timeout, plots_dir, hidden_file, progress, sandbox); the working directory defaults to the
    notebook's folder. A file that is not a notebook gives a result with the reason, not an exception.
    """
    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # not JSON, not a notebook: still a result with a reason
        return NotebookResult(str(path), [], 0.0, f"could not read {path.name} as a notebook: {err}")
    return run_notebook(nb, str(path), workdir=workdir or path.parent, **options)


def _verify(cell, records: list[dict], hidden_file) -> "Verification":
    """The grader's replay of a grade cell that passed in the kernel."""
    from autograder.replay import verify_cell

    return verify_cell(cell.source, records, hidden_file=str(Path(hidden_file).resolve()) if hidden_file else None)


def _mark_failed(cell, reason: str) -> None:
    """Give a cell an error output, so that nbgrader (which scores a grade cell by the absence of an
    error) scores a cell that timed out or never ran as failed, with the reason."""
    cell.setdefault("outputs", []).append(nbformat.v4.new_output(
        "error", ename="NotGraded", evalue=reason, traceback=[f"NotGraded: {reason}"]))


def run_notebook(
    nb,
    label: str,
    *,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    plots_dir: str | Path | None = None,
    hidden_file: str | Path | None = None,
    workdir: str | Path | None = None,
    progress=None,
    sandbox: "Sandbox | None" = None,
    verify: bool = True,
) -> NotebookResult:
    """Execute a notebook already in memory (an nbformat NotebookNode) in place and grade it: afterwards its
    cells hold their outputs, and a grade cell that timed out or never ran holds an error output saying why.
    `label` names the notebook in the result. `progress(i, n, cell)` is called before each cell when given.

    sandbox: run the kernel in this `autograder.sandbox.Sandbox` (untrusted submissions): the notebook's
    working directory is then the sandbox's scratch directory, and plots are copied out of it afterwards.

    verify: replay every grade cell's check calls in this process on what the kernel recorded
    (`autograder.replay.verify_cell`); a cell passes only if it passed in the kernel and its replay passes.
    Only the cell's calls of check functions run here, never other code in it.
    """
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autograder-") as tmp:
        records_file = Path(tmp) / "records.jsonl"
        env = dict(os.environ)
        env[RESULTS_ENV] = str(records_file)
        env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
        env["PYTHONWARNINGS"] = "ignore"
        if plots_dir:
            Path(plots_dir).mkdir(parents=True, exist_ok=True)
            env[PLOTS_ENV] = str(Path(plots_dir).resolve())
        if hidden_file:
            env[HIDDEN_ENV] = str(Path(hidden_file).resolve())
        kwargs = {}
        if sandbox is not None:
            from autograder.sandbox import kernel_manager

            # The kernel may write only its scratch and socket directories: records go to the socket
            # directory, plots to the scratch directory (copied out below).
            records_file = Path(sandbox.sockets) / "records.jsonl"
            env[RESULTS_ENV] = str(records_file)
            if plots_dir:
                env[PLOTS_ENV] = str(Path(sandbox.scratch) / ".plots")
            kwargs["km"] = kernel_manager(sandbox)
            workdir = sandbox.scratch
        client = NotebookClient(
            nb, timeout=cell_timeout, allow_errors=True, kernel_name="python3",
            resources={"metadata": {"path": str(workdir or Path.cwd())}}, **kwargs,
        )
        results, offset, error, earlier = [], 0, "", ""
        graded_cells = [i for i, c in enumerate(nb.cells) if _grade_info(c)[0]]
        launch = {}
        if sandbox is not None:  # the kernel's own console chatter goes to a log, not the grader's terminal
            kernel_log = open(Path(sandbox.sockets) / "kernel.log", "ab")
            launch = {"stdout": kernel_log, "stderr": kernel_log}
        with client.setup_kernel(env=env, **launch):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                is_grade, grade_id, points = _grade_info(cell)
                if progress:
                    progress(index, len(nb.cells), cell)
                cell_start = time.perf_counter()
                try:
                    client.execute_cell(cell, index)
                    text, errored = _cell_text(cell)
                except CellTimeoutError:
                    # The kernel may ignore the interrupt (a C loop, SIGINT ignored): stop it as a whole, and
                    # say why the cells after this one have no result.
                    error = (f"cell {index} did not finish within {cell_timeout} s; the kernel was stopped, so "
                             "later cells were not run")
                    text, errored = f"this cell did not finish within {cell_timeout} s and was stopped", True
                    _mark_failed(cell, text)
                    client.shutdown_kernel = "immediate"
                except DeadKernelError:
                    error = f"the kernel died while running cell {index}; later cells were not run"
                    text, errored = error, True
                    _mark_failed(cell, error)
                except Exception as err:  # noqa: BLE001 - the channel to the kernel broke: keep the grades so far
                    # Seen with a fork bomb: a copy of the kernel wrote into the kernel's sockets, and a message
                    # failed its signature check ("Invalid Signature"). The kernel cannot be trusted any more.
                    error = (f"the grader lost its connection to the kernel while running cell {index} "
                             f"({type(err).__name__}: {err}); later cells were not run")
                    text, errored = error, True
                    _mark_failed(cell, error)
                    client.shutdown_kernel = "immediate"
                records, offset = _read_new_records(records_file, offset)
                if errored and not is_grade:
                    earlier = f"cell {index} raised {_error_name(cell)}"
                if is_grade and errored and earlier and "NotGraded" not in text:
                    # A NameError here usually comes from an earlier cell that failed: say which.
                    text += f"\n(earlier, {earlier})"
                if is_grade:
                    verdict = _verify(cell, records, hidden_file) if verify and not errored else None
                    if verdict is not None and verdict.overrules:
                        reason = f"the grader's own run of this check failed: {verdict.reason}"
                        _mark_failed(cell, reason)
                        text, errored = f"{text}\n{reason}".strip(), True
                    results.append(CellResult(grade_id or f"cell {index}", index, points, not errored, text,
                                              time.perf_counter() - cell_start, _without_replay(records),
                                              verdict.status if verdict else "none",
                                              verdict.reason if verdict else ""))
                elif not graded_cells:
                    results += [CellResult(str(r["check"]), index, 1.0, r.get("passed") is True,
                                           str(r.get("message", "")), float(r.get("seconds") or 0.0), [r])
                                for r in _without_replay(records)]
                if error:
                    break
            if sandbox is not None:
                from autograder.sandbox import kill_kernel_tree

                client.shutdown_kernel = "immediate"
                kill_kernel_tree(client.km)
                kernel_log.close()
        if sandbox is not None and plots_dir and (Path(sandbox.scratch) / ".plots").is_dir():
            for png in (Path(sandbox.scratch) / ".plots").glob("*.png"):
                shutil.copy(png, Path(plots_dir) / png.name)
            for r in results:
                for record in r.checks:
                    record["plots"] = [str(Path(plots_dir) / Path(p).name) for p in record.get("plots", [])]
        if error:  # grade cells after the kernel died still get a score, with the reason
            done = {c.index for c in results}
            for index in graded_cells:
                if index not in done:
                    _, grade_id, points = _grade_info(nb.cells[index])
                    _mark_failed(nb.cells[index], error)
                    results.append(CellResult(grade_id, index, points, False, error, 0.0))
    return NotebookResult(label, results, time.perf_counter() - start, error)
