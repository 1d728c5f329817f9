"""Load test of the classroom driver: a class of synthetic submissions of chapters 01 and 08, graded in one run.

    python benchmarks/classroom_load.py [--ch01 60] [--ch08 40] [--workers 2] [--course /tmp/classroom-load]

Submissions are built from the course's own notebooks: correct ones (the solution), buggy ones (the solution
with one planted bug from tests/planted, appended to the piece's cell so it replaces the learner's function),
and adversarial ones (an infinite loop, a kernel that exits, a memory bomb, a fork bomb, reading the gradebook,
printing the environment, patched numpy, a reported instead of earned learning curve, a file that is not a
notebook, an empty notebook, another assignment's notebook). They reach the driver as an LMS (Canvas) zip.

Reports wall time, CPU time, the peak resident memory of the whole process tree (driver, workers, kernels;
sampled every 0.5 s: a sum of RSS, which counts pages shared between processes once per process), the machine's
load average during the run, the grade distribution, and who decided the graded cells (results.json's
`extra_data.decided_by`: the grader's replay or the kernel; cells the grader's replay overruled), and writes
benchmarks/results/classroom_load.json.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import platform
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import nbformat
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder import classroom  # noqa: E402
from tests.planted import ch01 as planted01  # noqa: E402
from tests.planted import ch08 as planted08  # noqa: E402

PRELUDE = {
    "01_bandits": "import numpy as np\nfrom rlcore.tabular import bandits as ref\n",
    "08_dqn": ("import numpy as np\nimport torch\nimport torch.nn.functional as F\nfrom rlcore import dqn as ref\n"
               "from rlcore.buffers import ReplayBuffer as RefBuffer\n"),
}


def _bugs(chapter: str) -> list[tuple[str, str, object]]:
    """(check name, description, planted function or class) for the pieces a notebook cell defines."""
    if chapter == "01_bandits":
        return [(name, desc, fn) for name, variants in planted01.UNIT_BUGS.items() for desc, fn in variants]
    return [(name, desc, args[0]) for name, variants in planted08.BUGS.items() if name != "train_dqn"
            for desc, args in variants if inspect.getmodule(args[0]) is planted08]


def _solution(chapter: str):
    release = nbformat.read(ROOT / "exercises" / chapter / f"{chapter}.ipynb", as_version=4)
    source = nbformat.read(ROOT / "solutions" / chapter / f"{chapter}.ipynb", as_version=4)
    solved = {c.id: c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in release.cells:
        if cell.id in solved:
            cell.source = solved[cell.id]
    return release


def _with(nb, cell_suffix: str, text: str, prepend: bool = False):
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)  # a copy
    cell = next(c for c in nb.cells if c.id.endswith("-" + cell_suffix))
    cell.source = text + "\n" + cell.source if prepend else cell.source + "\n\n" + text
    return nb


def _buggy(chapter: str, name: str, bug) -> nbformat.NotebookNode:
    code = PRELUDE[chapter] + inspect.getsource(bug) + f"\n{name} = {bug.__name__}\n"
    return _with(_solution(chapter), name, code)


ADVERSARIAL = {
    "infinite-loop": ("while True:\n    pass", True),
    "kernel-exit": ("import os\nos._exit(1)", True),
    "memory-bomb": ("hog = []\nwhile True:\n    hog.append(bytearray(256 * 2**20))", True),
    "fork-bomb": ("import os\nwhile True:\n    os.fork()", True),
    "reads-gradebook": ("try:\n    print(open({gradebook!r}, 'rb').read()[:200])\nexcept Exception as e:\n"
                        "    print('blocked', type(e).__name__)", True),
    "prints-env": ("import os\nprint(dict(os.environ))", True),
    "patches-numpy": ("np.allclose = lambda *a, **k: True\nnp.array_equal = lambda *a, **k: True", True),
}
FAKE_CURVE = ("def train_dqn(envs, seed, total_timesteps, log):\n    envs.reset(seed=seed)\n"
              "    for step in range(0, total_timesteps, 1000):\n        log(step, {'charts/episodic_return': 500.0})\n")


def build_class(chapter: str, n: int, course: Path) -> dict[str, bytes]:
    """student id -> file contents: 40% correct, 40% buggy, 20% adversarial (in that order, cycled)."""
    first_piece = "argmax_random_ties" if chapter == "01_bandits" else "linear_schedule"
    bugs = _bugs(chapter)
    n_adv = max(1, round(0.2 * n))
    n_correct = round(0.4 * n)
    n_buggy = n - n_adv - n_correct
    files = {}
    for i in range(n_correct):
        files[f"correct{i:02d}"] = nbformat.writes(_solution(chapter)).encode()
    for i in range(n_buggy):
        name, _, bug = bugs[i % len(bugs)]
        files[f"buggy{i:02d}"] = nbformat.writes(_buggy(chapter, name, bug)).encode()
    kinds = list(ADVERSARIAL) + ["not-json", "empty", "wrong-assignment"]
    if chapter == "08_dqn":  # the cheap cases first: a runaway loop costs a whole cell timeout of a long notebook
        kinds = ["fake-curve", "not-json", "empty", "wrong-assignment"] + [k for k in ADVERSARIAL if "loop" not in k
                                                                          and "fork" not in k] + ["infinite-loop"]
    other = "08_dqn" if chapter == "01_bandits" else "01_bandits"
    for i in range(n_adv):
        kind = kinds[i % len(kinds)]
        if kind == "not-json":
            data = b'{"cells": [ this is not JSON'
        elif kind == "empty":
            data = nbformat.writes(nbformat.v4.new_notebook()).encode()
        elif kind == "wrong-assignment":
            data = nbformat.writes(_solution(other)).encode()
        elif kind == "fake-curve":
            data = nbformat.writes(_with(_solution(chapter), "train_dqn", FAKE_CURVE)).encode()
        else:
            text, prepend = ADVERSARIAL[kind]
            text = text.format(gradebook=str(course / "gradebook.db"))
            data = nbformat.writes(_with(_solution(chapter), first_piece, text, prepend)).encode()
        files[f"{kind}{i:02d}"] = data
    return files


class PeakMemory:
    """Peak resident memory of this process and all its descendants, sampled every `every` seconds, and
    their CPU time (each process's last sample, so a process's final half second may be missed).

    The peak is a sum of RSS: a page shared by several processes (a fork bomb's copies of its kernel, the
    libraries every kernel maps) counts once per process, so it overstates the memory really in use."""

    def __init__(self, every: float = 0.5):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self.cpu: dict[tuple[int, float], float] = {}
        self.load: list[float] = []  # the machine's 1-minute load average, every sample
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me] + me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                    times = p.cpu_times()
                    self.cpu[(p.pid, p.create_time())] = times.user + times.system
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.load.append(os.getloadavg()[0])
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ch01", type=int, default=60, help="submissions of 01_bandits")
    parser.add_argument("--ch08", type=int, default=40, help="submissions of 08_dqn")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--course", type=Path, default=Path("/tmp/classroom-load"))
    parser.add_argument("--timeout-ch01", type=int, default=60, help="seconds per cell for 01_bandits")
    parser.add_argument("--timeout-ch08", type=int, default=600, help="seconds per cell for 08_dqn")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "classroom_load.json")
    args = parser.parse_args(argv)
    import shutil

    if args.course.exists():
        shutil.rmtree(args.course)
    classroom.init_course(args.course, ["01_bandits", "08_dqn"])
    chapters = {c: (n, t) for c, n, t in [("01_bandits", args.ch01, args.timeout_ch01),
                                          ("08_dqn", args.ch08, args.timeout_ch08)] if n > 0}
    for chapter, (n, _) in chapters.items():
        archive = args.course.parent / f"{args.course.name}-{chapter}.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for i, (student, data) in enumerate(build_class(chapter, n, args.course).items()):
                zf.writestr(f"{student}_{100 + i}_{900 + i}_{chapter}.ipynb", data)
        classroom.collect(args.course, chapter, archive)

    source = _source()
    load_before = os.getloadavg()
    wall0, cpu0 = time.perf_counter(), psutil.Process().cpu_times()
    per_chapter = {}
    with PeakMemory() as memory:
        for chapter, (n, timeout) in chapters.items():
            start = time.perf_counter()
            result = classroom.grade(args.course, chapter, workers=args.workers, timeout=timeout)
            scores = [r["score"] for r in result.rows]
            per_chapter[chapter] = {
                "submissions": len(result.rows), "wall_s": round(time.perf_counter() - start, 1),
                "max_score": result.rows[0]["max_score"],
                "full_marks": sum(r["score"] == r["max_score"] for r in result.rows),
                "zero": sum(s == 0 for s in scores), "mean_score": round(sum(scores) / len(scores), 2),
                "by_kind": _by_kind(result.rows),
                **_deciders(args.course, chapter, result.rows),
            }
    wall = time.perf_counter() - wall0
    report = {
        "command": "python benchmarks/classroom_load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "source": dict(source, code_changed_during_run=_source()["code_diff_sha1"] != source["code_diff_sha1"]),
        "machine": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                    "platform": platform.platform(), "load_average_before": load_before,
                    "load_average_after": os.getloadavg(),
                    "load_average_1min_during": {"mean": round(sum(memory.load) / max(1, len(memory.load)), 2),
                                                 "max": round(max(memory.load, default=0.0), 2)}},
        "workers": args.workers, "submissions": sum(c["submissions"] for c in per_chapter.values()),
        "wall_s": round(wall, 1),
        "cpu_s_all_processes": round(sum(memory.cpu.values()) - sum(cpu0[:2]), 1),
        "peak_memory_gib": round(memory.peak / 2**30, 2),
        "chapters": per_chapter,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


def _source() -> dict:
    """The commit the grader ran from, the files that differed from it, and a digest of those differences in
    the code the grader and the kernels import (to tell whether it changed during the run)."""
    def git(*args):
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else ""
    return {"commit": git("rev-parse", "HEAD"),
            "modified_files": [line.split(maxsplit=1)[1] for line in
                               git("status", "--porcelain", "--untracked-files=no").splitlines()],
            "code_diff_sha1": hashlib.sha1(git("diff", "HEAD", "--", "autograder", "rlcore").encode()).hexdigest()}


def _deciders(course: Path, chapter: str, rows: list[dict]) -> dict:
    """Who decided the graded cells (results.json), passed or failed: `decided_by` counts ('grader': the
    grader's replay; 'kernel': the learner's kernel, for a check the grader does not replay or a cell that failed
    there, since a failure is not replayed; 'not run': the driver recorded zeros without a graded run), the
    reasons given for the kernel's decisions, and the cells the grader's replay failed although the kernel
    passed them."""
    decided: dict[str, dict[str, int]] = {}
    kernel_reasons: dict[str, int] = {}
    overruled: dict[str, list[str]] = {}
    for r in rows:
        path = course / "results" / chapter / r["student"] / "results.json"
        tests = json.loads(path.read_text())["tests"] if path.exists() else []
        for t in tests:
            extra = t.get("extra_data", {})
            who = extra.get("decided_by", "not run")
            counts = decided.setdefault(who, {"passed": 0, "failed": 0})
            counts["passed" if t["status"] == "passed" else "failed"] += 1
            if who == "kernel" and extra.get("verification"):
                reason = f"{t['name']}: {extra['verification'][:120]}"
                kernel_reasons[reason] = kernel_reasons.get(reason, 0) + 1
            if "the grader's own run of this check failed" in t.get("output", ""):
                overruled.setdefault(t["name"], []).append(r["student"])
    return {"decided_by": dict(sorted(decided.items())),
            "kernel_decided_because": dict(sorted(kernel_reasons.items(), key=lambda kv: -kv[1])),
            "overruled_by_the_grader": {name: sorted(who) for name, who in sorted(overruled.items())}}


def _by_kind(rows: list[dict]) -> dict:
    """Mean score and count per kind of submission (the student id without its number)."""
    kinds: dict[str, list[float]] = {}
    for r in rows:
        kinds.setdefault(r["student"].rstrip("0123456789"), []).append(r["score"])
    return {k: {"n": len(v), "mean_score": round(sum(v) / len(v), 2)} for k, v in sorted(kinds.items())}


if __name__ == "__main__":
    sys.exit(main())
