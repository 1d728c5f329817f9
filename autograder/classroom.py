"""Grade a whole class with nbgrader, every submission in the grading sandbox.

    python -m autograder classroom init COURSE --assignments 01_bandits 08_dqn [--roster students.csv]
    python -m autograder classroom collect COURSE 01_bandits SUBMISSIONS.zip   # or a directory
    python -m autograder classroom grade COURSE 01_bandits [--workers 2] [--hidden seeds.json]
    python -m autograder classroom report COURSE 01_bandits

COURSE is an ordinary nbgrader course directory (source/, release/, submitted/, autograded/, feedback/,
gradebook.db, nbgrader_config.py), so formgrader and the nbgrader command line work on it too. What this
driver adds to `nbgrader autograde`:

- the kernel runs in `autograder.sandbox` (the course directory, with the gradebook and the other
  submissions, is hidden from it); `SandboxedExecute` replaces nbgrader's Execute preprocessor, also when
  the instructor runs `nbgrader autograde` by hand in this course;
- a cell that times out is stopped and the kernel with it, a kernel that dies leaves the cells after it
  failed with the reason (nbgrader alone would time out cell after cell, or drop the submission);
- submissions that cannot be run (not a notebook, empty, another assignment's notebook) are recorded with
  a zero and the reason instead of stopping the run;
- submissions are graded in parallel, one sandbox slot per worker: when grading as root, the run leases its
  slots (their kernels' uids) so that no other grader on the machine uses them meanwhile, and after every
  submission the slot's processes are killed (a fork bomb's copies too) before the slot takes the next;
- every submission gets a Gradescope-style results/ASSIGNMENT/STUDENT/results.json with the reason of
  every lost point, the feedback plots next to nbgrader's HTML feedback, and the grades go to
  exports/ASSIGNMENT_grades.csv (one row per student, one column per graded cell, and the reasons) and to
  nbgrader's own gradebook export, exports/gradebook.csv.

Submissions come from a directory (DIR/STUDENT/NOTEBOOK.ipynb or DIR/STUDENT.ipynb) or from an LMS
download (a zip, or its unpacked folder) whose file names carry the student: Canvas names files
`student_userid_submissionid_name.ipynb` (the default pattern); pass --pattern for another LMS.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from nbgrader.preprocessors import Execute
from traitlets import Bool, Int, Unicode
from traitlets.config import Config

from autograder.runner import DEFAULT_CELL_TIMEOUT, run_notebook

ROOT = Path(__file__).resolve().parent.parent  # the course repository (solutions/ holds the sources)
COURSE_ID = "deep-rl-from-scratch"
CANVAS_PATTERN = r"^(?P<student_id>[A-Za-z0-9.\-]+?)_(?:LATE_|late_)?\d+_\d+_(?P<file_id>.+)$"
"""Canvas's "Download submissions": lastfirst_12345_67890_original-name.ipynb."""

# nbgrader creates and upgrades the gradebook by running its `alembic` script: it must be found on PATH
# even when this interpreter was started by its full path without activating the environment.
_bin = str(Path(sys.executable).parent)
if _bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")


# ------------------------------------------------------------------------------------------ the sandbox


class SandboxedExecute(Execute):
    """nbgrader's Execute preprocessor, with the kernel inside `autograder.sandbox`.

    The notebook runs in a scratch copy of the submission's directory; the course directory is hidden from
    the kernel. The check records and plots land in results/ASSIGNMENT/STUDENT/ (results.json, plots/).
    A grade cell that timed out or never ran (the kernel died or was stopped) gets an error output with the
    reason, which nbgrader's SaveAutoGrades scores as 0.
    """

    sandbox_mode = Unicode("auto", help="'bwrap', 'rlimit' or 'auto' (bwrap when it works)").tag(config=True)
    slot = Int(0, help="sandbox slot: its kernel runs as uid 61000 + slot when grading as root").tag(config=True)
    slot_leased = Bool(False, help="the grading run holds the slot's lease (else each kernel leases the first free "
                       "slot from `slot` on)").tag(config=True)
    hidden_file = Unicode("", help="instructor JSON with hidden seeds (kept outside the course repo)").tag(config=True)
    results_dir = Unicode("", help="where results/ASSIGNMENT/STUDENT/results.json go (default COURSE/results)"
                          ).tag(config=True)
    cpu_seconds = Int(1200, help="CPU seconds for the whole notebook").tag(config=True)
    memory_gb = Int(6, help="RLIMIT_DATA of the kernel, GiB").tag(config=True)

    def preprocess(self, nb, resources, km=None):
        from autograder.sandbox import Limits, Sandbox

        info = resources.get("nbgrader", {})
        student, assignment = info.get("student", "student"), info.get("assignment", "assignment")
        workdir = Path(resources.get("metadata", {}).get("path") or ".").resolve()
        course = _course_of(workdir)
        out = Path(self.results_dir) if self.results_dir else course / "results"
        out = out / assignment / student
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        with tempfile.TemporaryDirectory(prefix="classroom-") as tmp:
            scratch, sockets = Path(tmp) / "scratch", Path(tmp) / "sockets"
            shutil.copytree(workdir, scratch, ignore=shutil.ignore_patterns("*.ipynb"))
            sockets.mkdir()
            box = Sandbox(str(scratch), str(sockets), hidden=(str(course),),
                          readable=(str(Path(self.hidden_file).resolve()),) if self.hidden_file else (),
                          limits=Limits(cpu_seconds=self.cpu_seconds, memory_bytes=self.memory_gb * 2**30),
                          mode=self.sandbox_mode, slot=self.slot, leased=self.slot_leased)
            result = run_notebook(nb, f"{student}/{assignment}", cell_timeout=self.timeout or DEFAULT_CELL_TIMEOUT,
                                  plots_dir=out / "plots", hidden_file=self.hidden_file or None, sandbox=box)
        report = result.gradescope()
        report.update(student=student, assignment=assignment, graded_at=_now())
        (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
        return nb, resources


def _course_of(workdir: Path) -> Path:
    """COURSE from COURSE/autograded/STUDENT/ASSIGNMENT."""
    return workdir.parent.parent.parent if workdir.parent.parent.name == "autograded" else workdir.parent


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------ the course


def nbgrader_config(root: Path, *, slot: int = 0, timeout: int = DEFAULT_CELL_TIMEOUT, hidden: str = "",
                    mode: str = "auto", memory_gb: int = 6, slot_leased: bool = False) -> Config:
    """The configuration nbgrader's API runs with in this course (the same as COURSE/nbgrader_config.py,
    plus the per-worker sandbox slot)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)

    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.db_url = _db_url(root)
    c.OverwriteCells.add_missing_cells = True
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError(\"Write your solution "
                                            "here, then run the check cell below.\")"}
    c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    c.Autograde.autograde_preprocessors = [SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor,
                                           LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    c.Execute.timeout = timeout
    c.SandboxedExecute.timeout = timeout
    c.SandboxedExecute.slot = slot
    c.SandboxedExecute.slot_leased = slot_leased
    c.SandboxedExecute.hidden_file = hidden
    c.SandboxedExecute.sandbox_mode = mode
    c.SandboxedExecute.memory_gb = memory_gb
    # Learner feedback must not show the hidden tests, and nbgrader must not stop on output length.
    c.LimitOutput.max_lines = 2000
    return c


CONFIG_FILE = '''"""nbgrader configuration of a course graded by `python -m autograder classroom` (see its --help).

`nbgrader autograde` run by hand here uses the same sandboxed execution.
"""
c = get_config()  # noqa: F821
from autograder.classroom import nbgrader_config  # noqa: E402
from pathlib import Path  # noqa: E402

c.merge(nbgrader_config(Path(__file__).resolve().parent))
'''


def api_for(root: Path, **kwargs):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = nbgrader_config(root, **kwargs)
    return NbGraderAPI(CourseDirectory(config=config), config=config)


def gradebook(root: Path):
    from nbgrader.api import Gradebook

    return Gradebook(_db_url(root), COURSE_ID)


def _db_url(root: Path) -> str:
    # Parallel workers write the same SQLite gradebook; wait up to a minute for its lock (the default is 5 s).
    return f"sqlite:///{Path(root) / 'gradebook.db'}?timeout=60"


def init_course(root: Path, assignments: list[str], roster: Path | None = None, sources: Path = ROOT / "solutions"
                ) -> None:
    """Create (or update) the course at `root`: the assignments' sources from `sources` (the course's
    solutions/), released with nbgrader (which records their grade cells in the gradebook), and the students
    of `roster`."""
    root = Path(root).resolve()
    _check_course_location(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG_FILE)
    known = sorted(p.name for p in Path(sources).iterdir() if p.is_dir())
    for name in assignments:
        if name not in known:
            raise SystemExit(f"error: no assignment {name!r}; the course's assignments are: {', '.join(known)}")
        dest = root / "source" / name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(Path(sources) / name, dest)
        api = api_for(root)
        with gradebook(root) as gb:
            gb.update_or_create_assignment(name)
        out = api.generate_assignment(name, force=True)
        if not out["success"]:
            raise SystemExit(f"error: nbgrader could not release {name}:\n{out['log']}")
        print(f"assignment {name}: source and release ready")
    if roster:
        print(f"{import_students(root, roster)} students imported from {roster}")


def _check_course_location(root: Path) -> None:
    """The sandbox hides the whole course directory from the kernel, so it must not hold the course's code or
    the Python environment the kernel runs."""
    for needed, what in ((ROOT, "the course repository"), (Path(sys.prefix).resolve(), "the Python environment")):
        if root == needed or root in needed.parents:
            raise SystemExit(f"error: the grading directory {root} contains {what} ({needed}); the sandbox hides the "
                             "grading directory from student code, which would hide it too. Use a directory outside "
                             f"it, e.g. {Path.home() / 'grading'}.")


def import_students(root: Path, roster: Path) -> int:
    """Add the students of a CSV with columns id[,first_name,last_name,email] (nbgrader's format)."""
    with open(roster, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "id" not in rows[0]:
        raise SystemExit(f"error: {roster} needs a header row with an 'id' column (and optionally first_name, "
                         "last_name, email), one student per row.")
    with gradebook(root) as gb:
        for row in rows:
            extra = {k: row[k] for k in ("first_name", "last_name", "email") if row.get(k)}
            gb.update_or_create_student(row["id"].strip(), **extra)
    return len(rows)


# ------------------------------------------------------------------------------------------ collecting


@dataclass
class Collected:
    student: str
    source: str
    note: str = ""


def _safe_extract(archive: Path, dest: Path) -> None:
    """Unzip, refusing entries that would land outside `dest` (absolute paths, '..')."""
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            target = (dest / member.filename).resolve()
            if dest.resolve() not in target.parents and target != dest.resolve():
                continue
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            stamp = datetime(*member.date_time).timestamp()
            os.utime(target, (stamp, stamp))


def _student_of(path: Path, base: Path, pattern: re.Pattern) -> str | None:
    rel = path.relative_to(base)
    if len(rel.parts) >= 2:  # DIR/STUDENT/anything.ipynb
        return rel.parts[0]
    from nbgrader.plugins import FileNameCollectorPlugin

    plugin = FileNameCollectorPlugin(named_regexp=pattern.pattern)
    found = plugin.collect(path.name)  # the pattern describes the file name, not its folder
    if found and found.get("student_id"):
        return found["student_id"]
    return path.stem  # DIR/STUDENT.ipynb


def collect(root: Path, assignment: str, source: Path, pattern: str = CANVAS_PATTERN) -> list[Collected]:
    """Copy submissions into COURSE/submitted/STUDENT/ASSIGNMENT/NOTEBOOK.ipynb (with nbgrader's
    timestamp.txt, from the file's time). A student with several files keeps the newest."""
    root, source = Path(root).resolve(), Path(source)
    if not source.exists():
        raise SystemExit(f"error: {source} does not exist; give a directory of notebooks or an LMS zip.")
    notebooks = sorted(p.name for p in (root / "source" / assignment).glob("*.ipynb"))
    if len(notebooks) != 1:
        raise SystemExit(f"error: assignment {assignment!r} is not in {root}/source (run `classroom init` first).")
    with tempfile.TemporaryDirectory(prefix="collect-") as tmp:
        base = source
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise SystemExit(f"error: {source} is a file but not a zip archive.")
            base = Path(tmp)
            _safe_extract(source, base)
        regex = re.compile(pattern)
        newest: dict[str, Path] = {}
        notes: dict[str, str] = {}
        for path in sorted(base.rglob("*.ipynb")):
            if ".ipynb_checkpoints" in path.parts or "__MACOSX" in path.parts:
                continue
            student = _student_of(path, base, regex)
            if not student or not re.fullmatch(r"[A-Za-z0-9_.@\-]+", student):
                notes[str(path)] = "no student id in its name"
                continue
            if student in newest:
                older = min(newest[student], path, key=lambda p: p.stat().st_mtime)
                notes[student] = f"several files; the newest was kept ({older.name} ignored)"
                if older is newest[student]:
                    newest[student] = path
            else:
                newest[student] = path
        collected = []
        for student, path in sorted(newest.items()):
            dest = root / "submitted" / student / assignment
            if dest.exists():
                shutil.rmtree(dest)
            dest.mkdir(parents=True)
            shutil.copy2(path, dest / notebooks[0])
            stamp = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
            (dest / "timestamp.txt").write_text(stamp.strftime("%Y-%m-%d %H:%M:%S.%f %Z"))
            collected.append(Collected(student, str(path.relative_to(base)), notes.get(student, "")))
        for where, why in notes.items():
            if where not in newest:
                print(f"skipped {where}: {why}")
    return collected


# ------------------------------------------------------------------------------------------ grading


def _grade_ids(nb) -> list[str]:
    return [c.metadata.get("nbgrader", {}).get("grade_id", "") for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")]


def precheck(root: Path, assignment: str, path: Path) -> str:
    """Why this submission cannot be graded by running it ('' when it can)."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:
        return f"the submission is not a readable notebook (is it valid JSON?): {str(err).splitlines()[0][:200]}"
    if not nb.cells:
        return "the submission is an empty notebook (it has no cells)"
    ours = set(_grade_ids(nbformat.read(next((root / "source" / assignment).glob("*.ipynb")), as_version=4)))
    theirs = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells} - {None, ""}
    if theirs and not theirs & ours:
        for other in sorted((root / "source").iterdir()):
            if other.name != assignment:
                src = next(other.glob("*.ipynb"), None)
                if src and theirs & {c.metadata.get("nbgrader", {}).get("grade_id")
                                     for c in nbformat.read(src, as_version=4).cells}:
                    return f"this is the notebook of assignment {other.name}, not {assignment}"
        return f"none of the notebook's cells belong to assignment {assignment}"
    return ""


def _autograde_one(root: str, assignment: str, student: str, slot: int, settings: dict) -> dict:
    """Worker: nbgrader autograde of one submission in sandbox `slot`. Never raises."""
    start = time.perf_counter()
    try:
        api = api_for(Path(root), slot=slot, **settings)
        for attempt in range(3):  # SQLite allows one writer at a time; a busy gradebook is retried
            out = api.autograde(assignment, student, force=True, create=True)
            if out["success"] or not re.search(r"locked|OperationalError", out.get("log", "")):
                break
            time.sleep(1 + attempt)
        return {"student": student, "success": out["success"], "log": out.get("log", "")[-20000:],
                "seconds": time.perf_counter() - start, "slot": slot}
    except Exception as err:  # the run must go on for the other students
        return {"student": student, "success": False, "log": f"{type(err).__name__}: {err}",
                "seconds": time.perf_counter() - start, "slot": slot}


def _zero(root: Path, assignment: str, student: str) -> None:
    """Record a submission that could not be run: every grade 0 in the gradebook."""
    with gradebook(root) as gb:
        gb.update_or_create_student(student)
        submission = gb.update_or_create_submission(assignment, student)
        for nb in submission.notebooks:
            for grade in nb.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gb.db.commit()


def _write_unrun_results(root: Path, assignment: str, student: str, reason: str) -> dict:
    src = nbformat.read(next((root / "source" / assignment).glob("*.ipynb")), as_version=4)
    tests = []
    for i, cell in enumerate(c for c in src.cells if c.metadata.get("nbgrader", {}).get("grade")):
        meta = cell.metadata["nbgrader"]
        tests.append({"name": meta["grade_id"], "number": str(i + 1), "score": 0.0,
                      "max_score": float(meta.get("points", 0)), "status": "failed", "output": reason,
                      "extra_data": {"seconds": 0.0, "checks": []}})
    report = {"score": 0.0, "max_score": sum(t["max_score"] for t in tests), "execution_time": 0.0,
              "output": reason, "tests": tests, "student": student, "assignment": assignment,
              "graded_at": _now()}
    out = root / "results" / assignment / student
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


@dataclass
class ClassResult:
    assignment: str
    rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def grade(root: Path, assignment: str, *, workers: int | None = None, timeout: int = DEFAULT_CELL_TIMEOUT,
          hidden: str = "", mode: str = "auto", memory_gb: int = 6, students: list[str] | None = None,
          feedback: bool = True, progress: bool = True) -> ClassResult:
    """Autograde every submission of `assignment` (in parallel), then feedback, CSV and results.json.

    timeout: seconds per cell; memory_gb: RLIMIT_DATA of each kernel; mode: the sandbox ('auto': bubblewrap
    when it works, else rlimits only); hidden: the instructor's JSON of hidden seeds."""
    settings = {"timeout": timeout, "hidden": hidden, "mode": mode, "memory_gb": memory_gb}
    root = Path(root).resolve()
    start = time.perf_counter()
    submitted = root / "submitted"
    found = sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir()) if submitted.is_dir() else []
    if students:
        missing = sorted(set(students) - set(found))
        if missing:
            raise SystemExit(f"error: no submission of {assignment} from {', '.join(missing)}.")
        found = list(students)
    if not found:
        raise SystemExit(f"error: no submissions of {assignment} in {submitted} (run `classroom collect` first).")
    notebook = next((root / "source" / assignment).glob("*.ipynb")).name
    reasons = {s: precheck(root, assignment, submitted / s / assignment / notebook) for s in found}
    runnable = [s for s in found if not reasons[s]]
    workers = max(1, min(workers or os.cpu_count() or 1, len(runnable) or 1))

    logs: dict[str, dict] = {}
    bar = _progress(len(found), f"grading {assignment}", progress)
    for s in found:
        if reasons[s]:
            _zero(root, assignment, s)
            _write_unrun_results(root, assignment, s, reasons[s])
            bar.update(1)
    # Each worker keeps one sandbox slot (its own unprivileged uid when grading as root, leased for the whole
    # run): the k-th runnable submission goes to worker k % workers, and a slot's next submission starts only
    # after its previous one finished and every process of its uid is gone.
    leases = _lease_slots(workers, mode)
    slots = [lease.slot for lease in leases] if leases else list(range(workers))
    settings["slot_leased"] = bool(leases)
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            queues = {slot: runnable[k::workers] for k, slot in enumerate(slots)}
            futures = {}
            for slot, queue in queues.items():
                if queue:
                    futures[pool.submit(_autograde_one, str(root), assignment, queue[0], slot, settings)] = (slot, 0)
            while futures:
                done = next(as_completed(futures))
                slot, index = futures.pop(done)
                out = done.result()
                logs[out["student"]] = out
                bar.update(1)
                if index + 1 < len(queues[slot]):
                    futures[pool.submit(_autograde_one, str(root), assignment, queues[slot][index + 1], slot,
                                        settings)] = (slot, index + 1)
    finally:
        for lease in leases:
            lease.release()
    bar.close()

    for s, out in logs.items():
        if not out["success"]:
            reasons[s] = "nbgrader could not grade this submission: " + _last_error(out["log"])
            _zero(root, assignment, s)
            _write_unrun_results(root, assignment, s, reasons[s])
    if feedback:
        _feedback(root, assignment, found)
    result = ClassResult(assignment, _rows(root, assignment, found, reasons, logs), time.perf_counter() - start)
    _export(root, assignment, result)
    return result


def _lease_slots(workers: int, mode: str) -> list:
    """The sandbox slots of a run's workers, leased for the whole run when the kernels run as the slots' users
    (grading as root), else none: the first free ones from slot 0."""
    from autograder.sandbox import Sandbox, lease_slot

    probe = Sandbox(tempfile.gettempdir(), tempfile.gettempdir(), mode=mode)
    if not probe.uses_slot_user():
        return []
    leases = []
    try:
        for _ in range(workers):
            leases.append(lease_slot(leases[-1].slot + 1 if leases else 0))
    except BaseException:
        for lease in leases:
            lease.release()
        raise
    return leases


def _last_error(log: str) -> str:
    """The exception behind a failed nbgrader run ('KeyError: ...'), else its last error line."""
    raised = re.findall(r"^\s*([A-Za-z0-9_.]*(?:Error|Exception)[A-Za-z0-9_.]*: .+)$", log, flags=re.M)
    lines = raised or [ln for ln in log.splitlines() if "ERROR" in ln] or log.strip().splitlines()[-1:] or ["no log"]
    return lines[-1].strip()[:300]


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="submission", disable=not enabled)


def _feedback(root: Path, assignment: str, students: list[str]) -> None:
    api = api_for(root)
    for s in students:
        api.generate_feedback(assignment, s, force=True)
        plots = root / "results" / assignment / s / "plots"
        dest = root / "feedback" / s / assignment
        if plots.is_dir() and dest.is_dir():
            for png in plots.glob("*.png"):
                shutil.copy(png, dest / png.name)


def _rows(root: Path, assignment: str, students: list[str], reasons: dict, logs: dict) -> list[dict]:
    rows = []
    with gradebook(root) as gb:
        for s in students:
            path = root / "results" / assignment / s / "results.json"
            report = json.loads(path.read_text()) if path.exists() else {"tests": [], "output": "no result"}
            try:
                sub = gb.find_submission(assignment, s)
                score, max_score = float(sub.score), float(sub.max_score)
            except Exception:
                score, max_score = 0.0, float(report.get("max_score", 0.0))
            failed = [t for t in report["tests"] if t["status"] != "passed"]
            rows.append({
                "student": s, "score": score, "max_score": max_score,
                "cells": {t["name"]: t["score"] for t in report["tests"]},
                "reason": reasons.get(s) or "; ".join(f"{t['name']}: {_first_line(t['output'])}" for t in failed),
                "seconds": round(logs.get(s, {}).get("seconds", 0.0), 1),
                "slot": logs.get(s, {}).get("slot"),  # the sandbox slot it was graded in (None: not run)
            })
    return rows


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    # The check's own failure line is the informative one ("✘ ch01.x failed: ..." then the case).
    return " ".join(lines[:2])[:300] if lines else "(no output)"


def _export(root: Path, assignment: str, result: ClassResult) -> None:
    exports = root / "exports"
    exports.mkdir(exist_ok=True)
    cells = sorted({c for r in result.rows for c in r["cells"]})
    with open(exports / f"{assignment}_grades.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "score", "max_score", *cells, "seconds", "reason"])
        for r in result.rows:
            writer.writerow([r["student"], r["score"], r["max_score"], *[r["cells"].get(c, 0.0) for c in cells],
                             r["seconds"], r["reason"]])
    from nbgrader.plugins import CsvExportPlugin

    with gradebook(root) as gb:
        CsvExportPlugin(to=str(exports / "gradebook.csv")).export(gb)


# ------------------------------------------------------------------------------------------ command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder classroom", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("init", help="create the course: sources, release, gradebook, students")
    p.add_argument("course")
    p.add_argument("--assignments", nargs="+", required=True, metavar="NAME", help="e.g. 01_bandits 08_dqn")
    p.add_argument("--roster", type=Path, help="CSV with columns id[,first_name,last_name,email]")
    p = sub.add_parser("students", help="import students from a CSV (id[,first_name,last_name,email])")
    p.add_argument("course")
    p.add_argument("roster", type=Path)
    p = sub.add_parser("collect", help="take submissions from a directory or an LMS zip")
    p.add_argument("course")
    p.add_argument("assignment")
    p.add_argument("source", type=Path)
    p.add_argument("--pattern", default=CANVAS_PATTERN,
                   help="regex with named groups student_id and file_id for LMS file names (default: Canvas)")
    p = sub.add_parser("grade", help="autograde every submission, then feedback, CSV and results.json")
    p.add_argument("course")
    p.add_argument("assignment")
    p.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: the number of cores)")
    p.add_argument("--timeout", type=int, default=DEFAULT_CELL_TIMEOUT, help="seconds per cell")
    p.add_argument("--hidden", default="", help="instructor JSON with hidden seeds")
    p.add_argument("--sandbox", default="auto", choices=["auto", "bwrap", "rlimit"])
    p.add_argument("--memory-gb", type=int, default=6, help="memory (RLIMIT_DATA) of each kernel, GiB")
    p.add_argument("--student", action="append", help="grade only this student (repeatable)")
    p.add_argument("--no-feedback", action="store_true")
    p = sub.add_parser("report", help="class report: scores per check, curves overlaid, common diagnoses")
    p.add_argument("course")
    p.add_argument("assignment")
    args = parser.parse_args(argv)
    root = Path(args.course).resolve()
    if args.action == "init":
        init_course(root, args.assignments, args.roster)
    elif args.action == "students":
        print(f"{import_students(root, args.roster)} students imported")
    elif args.action == "collect":
        for c in collect(root, args.assignment, args.source, args.pattern):
            print(f"{c.student:<20} <- {c.source}" + (f"   ({c.note})" if c.note else ""))
    elif args.action == "grade":
        if args.hidden and not Path(args.hidden).is_file():
            print(f"error: hidden seeds file {args.hidden} does not exist.")
            return 2
        result = grade(root, args.assignment, workers=args.workers, timeout=args.timeout, hidden=args.hidden,
                       mode=args.sandbox, memory_gb=args.memory_gb, students=args.student, feedback=not args.no_feedback)
        for r in result.rows:
            print(f"{r['student']:<20} {r['score']:>5g}/{r['max_score']:g}  {r['reason'][:100]}")
        print(f"{len(result.rows)} submissions graded in {result.seconds:.1f} s; "
              f"grades: {root / 'exports' / (args.assignment + '_grades.csv')}")
    elif args.action == "report":
        from autograder.analytics import class_report

        print(f"report: {class_report(root, args.assignment)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
