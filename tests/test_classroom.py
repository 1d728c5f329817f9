"""The instructor's classroom driver against adversarial submissions (autograder/classroom.py).

One real nbgrader course is built from the course's own notebooks, a class of submissions is collected and
graded in one run (2 workers, real sandboxed kernels), and every case must end with a recorded grade and a
clear reason, without touching the other students. The course has two assignments:

    tiny            the first two graded pieces of 01_bandits (argmax with random ties, epsilon-greedy),
                    with a hidden test added, so each submission runs in seconds
    10_actor_critic the real chapter, for the fake learning curve and the wrong-assignment case
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sqlite3
import threading
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder import classroom
from autograder.sandbox import bwrap_works

ROOT = Path(__file__).resolve().parent.parent
SECRET_ENV = "CLASSROOM_TEST_SECRET"
SECRET_VALUE = "s3cr3t-token-of-the-grader"
HIDDEN_MARKER = "HIDDEN-TEST-MARKER-7141"
TIMEOUT = 20  # seconds per cell: the tiny checks take about a second; the margin is for a loaded CI machine

# Never explores: the epsilon-greedy check fails, the argmax check (which it does not touch) passes.
WRONG_EPS = "def epsilon_greedy(Q, epsilon, rng):\n    return argmax_random_ties(Q, rng)\n"
FAKE_CURVE = (
    "def train_a2c(envs, seed, total_timesteps, log):\n"
    "    envs.reset(seed=seed)\n"
    "    for step in range(0, total_timesteps, 1000):\n"
    "        log(step, {'charts/episodic_return': 500.0})\n"
    "    print('mean return of the last 100 episodes: 500.0')\n")


def _tiny_source(dest: Path) -> None:
    src = nbformat.read(ROOT / "solutions/01_bandits/01_bandits.ipynb", as_version=4)
    keep = [c for c in src.cells[:8]]
    test = next(c for c in keep if c.id == "cell-04-check_argmax_random_ties")
    test.source += f"\n### BEGIN HIDDEN TESTS\nassert True  # {HIDDEN_MARKER}\n### END HIDDEN TESTS"
    src.cells = keep
    (dest / "tiny").mkdir(parents=True)
    nbformat.write(src, dest / "tiny" / "tiny.ipynb")
    import shutil

    shutil.copytree(ROOT / "solutions/10_actor_critic", dest / "10_actor_critic")


def _submission(course: Path, assignment: str, edit=None):
    """The released notebook with the solution cells filled in from the source, then `edit(cells)`."""
    name = "tiny" if assignment == "tiny" else assignment
    release = nbformat.read(course / "release" / assignment / f"{name}.ipynb", as_version=4)
    source = nbformat.read(course / "source" / assignment / f"{name}.ipynb", as_version=4)
    solutions = {c.id: c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in release.cells:
        if cell.id in solutions:
            cell.source = solutions[cell.id]
    if edit:
        edit(release.cells)
    return release


def _cell(cells, cell_id):
    return next(c for c in cells if c.id == cell_id)


def _set(cell_id, text, prepend=False):
    def edit(cells):
        cell = _cell(cells, cell_id)
        cell.source = text + "\n" + cell.source if prepend else text
    return edit


def _chain(*edits):
    def edit(cells):
        for e in edits:
            e(cells)
    return edit


ARGMAX, EPS, EPS_TEST = "cell-03-argmax_random_ties", "cell-06-epsilon_greedy", "cell-07-check_epsilon_greedy"


def _cases(course: Path, listener_port: int) -> dict:
    """student id -> notebook (NotebookNode) or raw bytes."""
    gradebook = course / "gradebook.db"
    source_nb = course / "source" / "tiny" / "tiny.ipynb"
    cases = {
        "correct": _submission(course, "tiny"),
        "wrong": _submission(course, "tiny", _set(EPS, WRONG_EPS)),
        "warnings": _submission(course, "tiny", _chain(
            _set(ARGMAX, "import warnings, sys\nwarnings.warn('a warning at import time')\n"
                         "print('debug output on stderr', file=sys.stderr)", prepend=True),
            _set(EPS, "import warnings\nwarnings.simplefilter('always')\n", prepend=True))),
        "test_replaced": _submission(course, "tiny", _chain(
            _set(EPS, WRONG_EPS), _set(EPS_TEST, "print('all good')"))),
        "grade_deleted": _submission(course, "tiny", _chain(
            _set(EPS, WRONG_EPS), lambda cells: cells.remove(_cell(cells, EPS_TEST)))),
        "infinite_loop": _submission(course, "tiny", _set(ARGMAX, "while True:\n    pass", prepend=True)),
        "sigint_ignored": _submission(course, "tiny", _set(
            ARGMAX, "import ctypes, signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nctypes.CDLL(None).pause()",
            prepend=True)),
        "kernel_exit": _submission(course, "tiny", _set(EPS, "import os\nos._exit(3)", prepend=True)),
        "memory_bomb": _submission(course, "tiny", _set(
            ARGMAX, "hog = []\nwhile True:\n    hog.append(bytearray(256 * 2**20))", prepend=True)),
        # Its copies fill the slot user's process count; grader_patched is graded next in the same slot.
        "fork_bomb": _submission(course, "tiny", _set(
            ARGMAX, "import os\nwhile True:\n    os.fork()", prepend=True)),
        "read_hidden": _submission(course, "tiny", _set(ARGMAX, (
            "for p in [%r, %r]:\n"
            "    try:\n        print(open(p, 'rb').read()[:100000])\n"
            "    except Exception as e:\n        print('could not read', p, type(e).__name__)\n")
            % (str(source_nb), str(gradebook)), prepend=True)),
        "write_gradebook": _submission(course, "tiny", _set(ARGMAX, (
            "import sqlite3\n"
            "try:\n"
            "    db = sqlite3.connect(%r)\n"
            "    db.execute('update grade set auto_score = 100'); db.commit(); print('gradebook written')\n"
            "except Exception as e:\n    print('could not write the gradebook', type(e).__name__)\n")
            % str(gradebook), prepend=True)),
        "network": _submission(course, "tiny", _set(ARGMAX, (
            "import socket\n"
            "try:\n"
            "    s = socket.create_connection(('127.0.0.1', %d), timeout=3); s.sendall(b'leak'); s.close()\n"
            "    print('connected')\n"
            "except Exception as e:\n    print('no connection', type(e).__name__)\n") % listener_port,
            prepend=True)),
        "print_env": _submission(course, "tiny", _set(ARGMAX, "import os\nprint(dict(os.environ))", prepend=True)),
        "allclose_patched": _submission(course, "tiny", _chain(_set(EPS, WRONG_EPS), _set(
            EPS, "np.allclose = lambda *a, **k: True\nnp.array_equal = lambda *a, **k: True\n"
                    "np.isclose = lambda a, b, *x, **k: np.ones(np.broadcast(a, b).shape, bool)", prepend=True))),
        "grader_patched": _submission(course, "tiny", _chain(_set(EPS, WRONG_EPS), _set(
            EPS, "import autograder.protocol as p\np.Check.expect = lambda self, passed, name, detail='': True",
            prepend=True))),
        "not_json": b"{ this is not a notebook",
        "empty": nbformat.v4.new_notebook(),
        "wrong_assignment": _submission(course, "10_actor_critic"),
    }
    return cases


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("classroom")
    course, sources = base / "course", base / "sources"
    _tiny_source(sources)
    roster = base / "roster.csv"
    roster.write_text("id,first_name,last_name,email\ncorrect,Ada,Lovelace,ada@example.org\n")
    classroom.init_course(course, ["tiny", "10_actor_critic"], roster=roster, sources=sources)

    received = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                received.append(conn.recv(100))
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    cases = _cases(course, server.getsockname()[1])
    # Delivered as an LMS (Canvas) zip: student_userid_submissionid_filename.
    archive = base / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, (student, nb) in enumerate(cases.items()):
            data = nb if isinstance(nb, bytes) else nbformat.writes(nb).encode()
            zf.writestr(f"{student.replace('_', '-')}_{1000 + i}_{5000 + i}_tiny.ipynb", data)
    gradebook_before = (course / "gradebook.db").stat().st_mtime
    collected = classroom.collect(course, "tiny", archive)

    os.environ[SECRET_ENV] = SECRET_VALUE
    try:
        result = classroom.grade(course, "tiny", workers=2, timeout=TIMEOUT, memory_gb=1, progress=False)
    finally:
        del os.environ[SECRET_ENV]
        stop.set()
        thread.join()
        server.close()
    rows = {r["student"].replace("-", "_"): r for r in result.rows}

    # A learning curve the learner reports instead of earning: graded on the real chapter 10.
    fake = base / "fake"
    (fake / "fake-curve").mkdir(parents=True)
    nbformat.write(_submission(course, "10_actor_critic", _set("cell-15-train_a2c", FAKE_CURVE)),
                   fake / "fake-curve" / "10_actor_critic.ipynb")
    classroom.collect(course, "10_actor_critic", fake)
    rows["fake_curve"] = classroom.grade(course, "10_actor_critic", workers=1, progress=False).rows[0]
    return {"course": course, "rows": rows, "collected": collected, "received": received, "result": result,
            "gradebook_before": gradebook_before}


def _results(graded, student) -> dict:
    assignment = "10_actor_critic" if student == "fake_curve" else "tiny"
    path = graded["course"] / "results" / assignment / student.replace("_", "-") / "results.json"
    return json.loads(path.read_text())


def _outputs(graded, student) -> str:
    """Every output of the graded notebook and the results file: what the learner and instructor see."""
    text = json.dumps(_results(graded, student))
    nb = graded["course"] / "autograded" / student.replace("_", "-") / "tiny" / "tiny.ipynb"
    if nb.exists():
        for cell in nbformat.read(nb, as_version=4).cells:
            text += json.dumps(cell.get("outputs", []))
    return text


def _cells(graded, student) -> dict:
    return {t["name"]: (t["score"], t["output"]) for t in _results(graded, student)["tests"]}


pytestmark = pytest.mark.notebooks


def test_every_submission_has_a_grade_and_a_reason(graded):
    assert len(graded["collected"]) == 19
    assert set(graded["rows"]) - {"fake_curve"} == {c.student.replace("-", "_") for c in graded["collected"]}
    for student, row in graded["rows"].items():
        assert row["max_score"] == (12.0 if student == "fake_curve" else 2.0), student
        if row["score"] < row["max_score"]:
            assert row["reason"].strip(), f"{student} lost points without a reason"
    with open(graded["course"] / "exports" / "tiny_grades.csv") as f:
        exported = {r["student"].replace("-", "_"): r for r in csv.DictReader(f)}
    assert set(exported) == set(graded["rows"]) - {"fake_curve"}
    with open(graded["course"] / "exports" / "gradebook.csv") as f:
        in_gradebook = {r["student_id"].replace("-", "_") for r in csv.DictReader(f) if r["assignment"] == "tiny"}
    assert set(graded["rows"]) - {"fake_curve"} <= in_gradebook  # nbgrader lists every student of the course


def test_correct_and_wrong(graded):
    rows = graded["rows"]
    assert rows["correct"]["score"] == 2
    assert rows["wrong"]["score"] == 1
    assert "epsilon" in rows["wrong"]["reason"]
    assert (graded["course"] / "feedback" / "correct" / "tiny" / "tiny.html").is_file()


def test_warnings_do_not_cost_points(graded):
    assert graded["rows"]["warnings"]["score"] == 2


def test_replaced_or_deleted_test_cell_is_restored(graded):
    for student in ("test_replaced", "grade_deleted"):
        assert graded["rows"][student]["score"] == 1, student
        score, output = _cells(graded, student)["check_epsilon_greedy"]
        assert score == 0 and "epsilon" in output, (student, output)


@pytest.mark.parametrize("student, words", [
    ("infinite_loop", "did not finish within"),
    ("sigint_ignored", "did not finish within"),
    ("kernel_exit", "kernel died"),
])
def test_runaway_code_is_stopped_with_a_reason(graded, student, words):
    row = graded["rows"][student]
    assert row["score"] < 2
    assert words in json.dumps(_results(graded, student)), row


def test_kernel_death_keeps_the_cells_before_it(graded):
    cells = _cells(graded, "kernel_exit")
    assert cells["check_argmax_random_ties"][0] == 1  # graded before the kernel died
    assert cells["check_epsilon_greedy"][0] == 0 and "kernel died" in cells["check_epsilon_greedy"][1]


@pytest.mark.parametrize("student, words", [("memory_bomb", "MemoryError"), ("fork_bomb", "")])
def test_resource_bombs_fail_only_themselves(graded, student, words):
    row = graded["rows"][student]
    assert row["score"] < 2 and row["reason"]
    assert words in row["reason"]
    assert graded["rows"]["correct"]["score"] == 2


def test_the_submission_after_a_fork_bomb_in_its_slot_gets_its_grade(graded):
    # The bomb's copies are killed, and gone, before its slot (its uid) takes the next submission.
    rows = {r["student"]: r for r in graded["result"].rows}
    slot = rows["fork-bomb"]["slot"]
    assert slot is not None and rows["correct"]["slot"] != slot
    queue = sorted(s for s, r in rows.items() if r["slot"] == slot)  # a worker grades its queue in name order
    assert queue[queue.index("fork-bomb") + 1] == "grader-patched", queue
    report = _results(graded, "grader_patched")
    assert report["output"] == "1 of 2 checks passed", report["output"]  # the kernel started and ran every cell
    assert "kernel died" not in json.dumps(report) and "kernel_info" not in json.dumps(report)
    assert [(t["name"], t["score"]) for t in report["tests"]] == [
        ("check_argmax_random_ties", 1.0), ("check_epsilon_greedy", 0.0)]  # its normal grade (see below)
    assert rows["grader-patched"]["score"] == 1


def test_a_reported_curve_is_not_a_learned_one(graded):
    row = graded["rows"]["fake_curve"]
    assert row["score"] == 7  # every piece is right; the curve check alone fails
    score, output = _cells(graded, "fake_curve")["check_train_a2c"]
    assert score == 0 and "episode" in output, output


@pytest.mark.skipif(not bwrap_works(), reason="file hiding needs bubblewrap (the rlimit fallback relies on "
                                              "file permissions, tested in tests/test_sandbox.py)")
def test_hidden_tests_and_gradebook_are_out_of_reach(graded):
    text = _outputs(graded, "read_hidden")
    assert "could not read" in text
    assert HIDDEN_MARKER not in text and "SQLite format" not in text
    assert "gradebook written" not in _outputs(graded, "write_gradebook")
    # The gradebook still holds the grades the grader computed.
    with sqlite3.connect(graded["course"] / "gradebook.db") as db:
        scores = [s for (s,) in db.execute("select auto_score from grade")]
    assert 100 not in scores


@pytest.mark.skipif(not bwrap_works(), reason="the network is blocked only by bubblewrap's network namespace")
def test_no_network(graded):
    assert graded["received"] == []
    assert "no connection" in _outputs(graded, "network")


def test_grader_environment_is_not_visible(graded):
    assert SECRET_VALUE not in _outputs(graded, "print_env")
    assert graded["rows"]["print_env"]["score"] == 2


def test_unreadable_submissions_are_recorded(graded):
    rows = graded["rows"]
    assert rows["not_json"]["score"] == 0 and "not a readable notebook" in rows["not_json"]["reason"]
    assert rows["empty"]["score"] == 0 and "empty notebook" in rows["empty"]["reason"]
    assert rows["wrong_assignment"]["score"] == 0
    assert "10_actor_critic" in rows["wrong_assignment"]["reason"]


def test_monkeypatched_numpy_does_not_change_a_grade(graded):
    assert graded["rows"]["allclose_patched"]["score"] == 1


def test_patched_checks_cannot_change_a_grade(graded):
    # The kernel passes the patched check; the grader's replay of it, in its own process, does not.
    assert graded["rows"]["grader_patched"]["score"] == 1
    report = _results(graded, "grader_patched")
    eps = next(t for t in report["tests"] if t["name"] == "check_epsilon_greedy")
    assert eps["score"] == 0 and eps["extra_data"]["decided_by"] == "grader"
    assert "the grader's own run of this check failed" in eps["output"]


def test_every_grade_of_a_correct_submission_is_decided_by_the_grader(graded):
    report = _results(graded, "correct")
    assert [(t["extra_data"]["decided_by"], t["score"]) for t in report["tests"]] == [("grader", 1.0), ("grader", 1.0)]


def test_class_report_groups_the_failures(graded):
    from autograder import analytics

    page = analytics.class_report(graded["course"], "tiny")
    summary = json.loads((page.parent / "report.json").read_text())
    causes = {d["cause"]: set(d["who"]) for d in summary["diagnoses"]}
    stopped = next(who for cause, who in causes.items() if "did not finish within" in cause)
    assert {"infinite-loop", "sigint-ignored"} <= stopped
    never_explores = next(who for cause, who in causes.items() if cause.startswith("ch01.epsilon_greedy: failed case"))
    assert {"wrong", "test-replaced", "grade-deleted", "allclose-patched"} <= never_explores
    assert "the notebook: the submission is an empty notebook (it has no cells)" in causes
    assert summary["full_marks"] == sum(r["score"] == 2 for s, r in graded["rows"].items() if s != "fake_curve")
    assert summary["overruled"] == {"check_epsilon_greedy": ["grader-patched"]}  # the kernel said pass
    assert summary["decided_by"]["grader"] >= 2 * 6  # correct, warnings, read-hidden, write-gradebook, ...


def test_a_grading_directory_around_the_course_code_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="contains the course repository"):
        classroom.init_course(ROOT.parent, ["01_bandits"])
