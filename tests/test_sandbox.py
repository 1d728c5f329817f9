"""The sandboxed kernel (autograder/sandbox.py) against hostile notebooks, with real kernels.

Each case runs a small notebook through `execute_notebook(..., sandbox=...)` and reads the recorded
grade and reason. The bubblewrap cases are skipped (with the reason) where bwrap cannot run; `make test`
installs it on Debian when it can.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest

from autograder.runner import execute_notebook
from autograder import sandbox
from autograder.sandbox import (UNPRIVILEGED_BASE_UID, Limits, Sandbox, bwrap_works, describe_mode, lease_slot,
                                processes_of, slot_uid, sweep)

ROOT = Path(__file__).resolve().parent.parent
needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap is not installed or cannot make namespaces")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's slot users are used when grading as root")
pytestmark = pytest.mark.notebooks


def notebook(tmp_path: Path, cells: dict[str, str]) -> Path:
    nb = nbformat.v4.new_notebook()
    for grade_id, source in cells.items():
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "points": 1, "solution": False,
                                     "locked": True, "schema_version": 3}
        nb.cells.append(cell)
    path = tmp_path / "submission.ipynb"
    nbformat.write(nb, path)
    return path


def run(tmp_path: Path, cells: dict[str, str], *, mode: str = "bwrap", hidden=(), limits=Limits(), timeout=60,
        slot: int = 0, leased: bool = False):
    scratch, sockets = tmp_path / "scratch", tmp_path / "sockets"
    scratch.mkdir(parents=True)
    sockets.mkdir()
    box = Sandbox(str(scratch), str(sockets), hidden=tuple(str(h) for h in hidden), limits=limits, mode=mode,
                  slot=slot, leased=leased)
    result = execute_notebook(notebook(tmp_path, cells), sandbox=box, cell_timeout=timeout)
    return {c.grade_id: c for c in result.cells}, result


def test_describe_mode_says_what_this_machine_gets():
    line = describe_mode()
    assert ("bubblewrap sandbox" in line) == bwrap_works()
    assert "network is NOT blocked" in line or bwrap_works()


@needs_bwrap
def test_a_hostile_notebook_reaches_nothing_it_should_not(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_API_TOKEN", "do-not-leak")
    instructor = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="instructor-"))
    (instructor / "gradebook.db").write_text("grades")
    try:
        cells, result = run(tmp_path, {
            "env": "import os; assert 'GRADER_API_TOKEN' not in os.environ, 'token leaked'; print(os.environ['HOME'])",
            "net": "import socket; s = socket.socket(); s.settimeout(3); assert s.connect_ex(('1.1.1.1', 80)) != 0",
            "hidden": f"open({str(instructor / 'gradebook.db')!r}).read()",
            "course": f"open({str(ROOT / 'README.md')!r}, 'a').write('x')",
            "scratch": "open('answer.txt', 'w').write('ok'); print('written')",
            "imports": "import numpy, torch, gymnasium, autograder.checks.ch00; print('imports ok')",
        }, hidden=[instructor])
    finally:
        (instructor / "gradebook.db").unlink()
        instructor.rmdir()
    assert cells["env"].passed and str(tmp_path / "scratch") in cells["env"].output
    assert cells["net"].passed
    assert not cells["hidden"].passed and "No such file" in cells["hidden"].output
    assert not cells["course"].passed and ("Read-only" in cells["course"].output or "Permission" in cells["course"].output)
    assert cells["scratch"].passed and (tmp_path / "scratch" / "answer.txt").read_text() == "ok"
    assert cells["imports"].passed
    assert result.error == ""


@needs_bwrap
@needs_root
def test_process_limit_stops_a_fork_bomb(tmp_path):
    cells, _ = run(tmp_path, {
        "bomb": ("import os, time\nn = 0\ntry:\n    while n < 2000:\n        if os.fork() == 0:\n"
                 "            time.sleep(20)\n            os._exit(0)\n        n += 1\nexcept OSError:\n"
                 "    print('refused after', n)\nassert n < 2000"),
        "after": "print('still grading')",
    }, limits=Limits(processes=96), slot=7)
    assert cells["bomb"].passed and "refused after" in cells["bomb"].output
    assert cells["after"].passed
    # The children sleep 20 s; none may be left once the grader is done with the kernel (the slot, 7 unless
    # another grader on this machine holds it, is swept before execute_notebook returns).
    uid = slot_uid(sandbox.kernel_slots[-1])
    assert processes_of(uid) == [], "processes of the sandbox outlived it"


@needs_bwrap
@needs_root
def test_the_next_kernel_in_a_fork_bombs_slot_starts(tmp_path):
    # A bomb's copies fill its uid's process count (RLIMIT_NPROC, threads included) and die only some time
    # after its kernel: the slot must be clear before it takes the next kernel, as a classroom worker's is.
    lease = lease_slot(8)
    try:
        bomb, _ = run(tmp_path / "bomb", {"bomb": "import os\nwhile True:\n    os.fork()"}, slot=lease.slot,
                      leased=True)
        left = processes_of(lease.uid)
        after, result = run(tmp_path / "next", {"next": "import numpy, torch\nprint('started')"}, slot=lease.slot,
                            leased=True)
    finally:
        lease.release()
    assert not bomb["bomb"].passed and "BlockingIOError" in bomb["bomb"].output
    assert left == []
    assert sandbox.kernel_slots[-2:] == [lease.slot, lease.slot]
    assert after["next"].passed and "started" in after["next"].output and result.error == ""


@needs_root
@pytest.mark.skipif(shutil.which("perl") is None, reason="the fork bomb is a perl one-liner")
def test_sweep_kills_what_escaped_the_kernel_and_outruns_a_fork_bomb():
    # Processes of the slot's uid in their own sessions, outside any namespace, forking without end at the uid's
    # process limit: all are killed, and sweep returns once /proc shows none.
    lease = lease_slot(9)
    try:
        bomb = subprocess.Popen(
            ["/bin/sh", "-c", "setsid sleep 300 & exec perl -e 'select(undef, undef, undef, 0.01), fork while 1'"],
            user=lease.uid, group=lease.uid, extra_groups=[], start_new_session=True, cwd="/",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NPROC, (60, 60)))
        threading.Thread(target=bomb.wait, daemon=True).start()  # it is this process's child: reap it
        deadline = time.monotonic() + 30
        while len(processes_of(lease.uid)) < 60 and time.monotonic() < deadline:
            time.sleep(0.1)
        running = len(processes_of(lease.uid))
        start = time.monotonic()
        problem = sweep(lease.uid, timeout=60)
        seconds = time.monotonic() - start
        left = processes_of(lease.uid)
    finally:
        lease.release()
    assert running == 60 and problem == "" and left == []
    assert seconds < 30


def test_sweep_never_targets_root_or_the_graders_own_uid():
    for uid in {0, os.getuid(), os.geteuid(), UNPRIVILEGED_BASE_UID - 1}:
        with pytest.raises((ValueError, PermissionError)):
            sweep(uid)


@needs_root
def test_a_slot_is_leased_to_one_grading_process_at_a_time():
    lease = lease_slot(300)
    try:
        other = subprocess.run([sys.executable, "-c", "from autograder.sandbox import lease_slot\n"
                                f"print(lease_slot({lease.slot}).slot)"],
                               capture_output=True, text=True, cwd=ROOT, timeout=120)
        second = lease_slot(lease.slot)  # another kernel of this process
        second.release()
    finally:
        lease.release()
    assert other.returncode == 0, other.stderr
    assert int(other.stdout) != lease.slot and second.slot != lease.slot


@needs_bwrap
def test_a_loop_that_ignores_interrupts_is_killed_and_later_cells_say_why(tmp_path):
    start = time.perf_counter()
    cells, result = run(tmp_path, {
        "first": "print('fine')",
        "stuck": "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(600)",
        "later": "print('never runs')",
    }, timeout=5)
    assert time.perf_counter() - start < 90
    assert cells["first"].passed
    assert not cells["stuck"].passed and "did not finish within 5 s" in cells["stuck"].output
    assert not cells["later"].passed and "later cells were not run" in cells["later"].output
    assert "kernel was stopped" in result.error


@pytest.mark.parametrize("mode", ["rlimit", pytest.param("bwrap", marks=needs_bwrap)])
def test_memory_bomb_and_kernel_death_are_graded_with_a_reason(tmp_path, mode):
    cells, result = run(tmp_path, {
        "bomb": "x = bytearray(8 * 2**30)",
        "survives": "print('after the bomb')",
        "exit": "import os; os._exit(3)",
        "orphan": "print('never runs')",
    }, mode=mode, limits=Limits(memory_bytes=2 * 2**30))
    assert not cells["bomb"].passed and "MemoryError" in cells["bomb"].output
    assert cells["survives"].passed
    assert not cells["exit"].passed and "kernel died" in cells["exit"].output
    assert not cells["orphan"].passed and "kernel died" in cells["orphan"].output
    assert len(cells) == 4


def test_a_kernel_that_breaks_its_channel_keeps_the_grades_before(tmp_path):
    """A kernel whose messages fail their signature check (what a fork bomb's copies writing into the kernel's
    sockets do; here the kernel signs with a wrong key) loses the cells from there on, with the reason, and
    keeps the grades of the cells before: the submission is still graded."""
    cells, result = run(tmp_path, {
        "first": "print('fine')",
        "forged": "get_ipython().kernel.session.key = b'not-the-key'\nprint('signed with the wrong key')",
        "later": "print('never runs')",
    }, mode="rlimit", timeout=20)
    assert cells["first"].passed
    assert not cells["forged"].passed and "lost its connection to the kernel" in cells["forged"].output
    assert "Signature" in cells["forged"].output
    assert not cells["later"].passed and "later cells were not run" in cells["later"].output


def test_rlimit_mode_clears_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_API_TOKEN", "do-not-leak")
    cells, _ = run(tmp_path, {"env": "import os; assert 'GRADER_API_TOKEN' not in os.environ"}, mode="rlimit")
    assert cells["env"].passed


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="sandbox mode must be"):
        Sandbox("/tmp", "/tmp", mode="docker").prefix()


def test_the_command_line_grades_a_solution_in_the_sandbox():
    out = subprocess.run([sys.executable, "-m", "autograder", "check", "--sandbox",
                          str(ROOT / "solutions" / "00_rl_loop" / "00_rl_loop.ipynb")],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "sandbox" in out.stdout and "Score: 6/6" in out.stdout
