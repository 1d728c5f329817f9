"""Run a learner's notebook kernel in a sandbox.

A submission is code the instructor did not write. Graded as is, it runs with the grader's user,
files and environment: it could read other students' work or the gradebook, send data out, or take
the machine down. The sandbox gives the kernel, and every process it starts:

    its own session and process group    killed as a whole when the grader stops it
    a cleared environment                 only PATH, LANG, HOME (= the scratch directory) and the grader's
                                          AUTOGRADER_* / plotting variables; no tokens or keys
    limits (setrlimit)                    CPU seconds (RLIMIT_CPU), data memory (RLIMIT_DATA, not
                                          RLIMIT_AS, which breaks CUDA's large virtual mappings), processes
                                          (RLIMIT_NPROC), file size (RLIMIT_FSIZE), no core dumps
    an unprivileged user                  when the grader runs as root, the kernel runs as a numbered user
                                          with no rights to the course files, so RLIMIT_NPROC applies

and, when bubblewrap (`bwrap`, Debian package `bubblewrap`) is installed and works:

    no network                            a new network namespace with only its own loopback
    a read-only view of the machine       / mounted read-only; the scratch directory (the submission's
                                          copy) and the kernel's socket directory are the only writable
                                          places; /tmp is private
    hidden paths                          replaced by empty directories (the instructor's course folder
                                          with the gradebook, the other submissions, the hidden seeds)
    its own PID namespace                 it cannot see or signal the grader's processes

Without bubblewrap (`mode="rlimit"`) the first list still applies, but the network is open and the
file view is the unprivileged user's: course files stay read-only through their permissions (when
the grader is root) and hidden paths must be unreadable to others (mode 0700). `python -m autograder
sandbox-check` prints which mode this machine gets.

The kernel talks to the grader over ZeroMQ on Unix sockets in a directory shared with the sandbox
(`transport="ipc"`), since a kernel without a network cannot reach the grader's TCP ports.

`python -m autograder.sandbox LIMITS_JSON -- COMMAND...` is the launcher the kernel manager runs: it
applies the limits and the user, clears the environment, and execs the command (inside bwrap when the
limits say so).

Sandbox slots. When the grader runs as root, the kernel of slot i runs as uid 61000 + i, and RLIMIT_NPROC
counts every process of that uid on the machine. Two rules keep one kernel from starving the next:

    one grading process per slot     a slot is leased (`lease_slot`: an flock on /run/autograder-slots/UID.lock)
                                     for as long as a kernel runs in it, so two graders on one machine (a class
                                     being graded, `check --sandbox`, the tests) never share a uid; a kernel
                                     asking for a leased slot takes the next free one
    nothing outlives its kernel      when a kernel ends, every process of its uid is killed and the grader waits
                                     until /proc shows none (`sweep`) before the slot is used again: the copies
                                     of a fork bomb otherwise hold the uid's process count, and the next kernel
                                     there cannot start
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import json
import logging
import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

KEEP_ENV = ("PATH", "LANG", "LC_ALL", "MPLBACKEND", "PYTHONWARNINGS", "PYTHONHASHSEED")
KEEP_PREFIXES = ("AUTOGRADER_",)
COURSE_ROOT = Path(__file__).resolve().parent.parent  # autograder/ and rlcore/ live here
UNPRIVILEGED_BASE_UID = 61000  # sandbox i runs as uid 61000 + i: its own process count for RLIMIT_NPROC
MAX_SLOTS = 1000  # uids 61000 to 61999
SLOT_LOCKS = Path("/run/autograder-slots")  # root's own directory of the slots' lock files
SWEEP_SECONDS = 30.0  # how long a sweep waits for a slot's processes to be gone
log = logging.getLogger(__name__)
kernel_slots: list[int] = []
"""The slot of every sandboxed kernel this process started, in order (for logs and tests)."""


@dataclass(frozen=True)
class Limits:
    """What one sandboxed kernel may use.

    cpu_seconds: CPU time of the kernel (over all its threads); past it the kernel is killed.
    memory_bytes: RLIMIT_DATA (heap and anonymous mappings); an allocation past it fails (MemoryError).
    processes: RLIMIT_NPROC for the sandbox's user (threads count too: torch, ZeroMQ and the kernel use ~20).
    file_bytes: the largest file the kernel may write.
    """

    cpu_seconds: int = 1200
    memory_bytes: int = 6 * 2**30
    processes: int = 128
    file_bytes: int = 512 * 2**20


@dataclass(frozen=True)
class Sandbox:
    """Where and how one kernel runs. mode: "bwrap", "rlimit" or "auto" (bwrap when it works)."""

    scratch: str
    sockets: str
    hidden: tuple[str, ...] = ()
    readable: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    mode: str = "auto"
    slot: int = 0
    leased: bool = False  # the caller holds this slot's lease (`lease_slot`) for several kernels in a row

    def resolved_mode(self) -> str:
        if self.mode not in ("auto", "bwrap", "rlimit"):
            raise ValueError(f"sandbox mode must be 'auto', 'bwrap' or 'rlimit', got {self.mode!r}")
        if self.mode == "auto":
            return "bwrap" if bwrap_works() else "rlimit"
        if self.mode == "bwrap" and not bwrap_works():
            raise RuntimeError("sandbox mode 'bwrap' was asked for, but bubblewrap is not installed or cannot create "
                               "namespaces here. Install it (Debian: apt-get install bubblewrap) or use mode 'rlimit'.")
        return self.mode

    def prefix(self) -> list[str]:
        """The argv prefix that runs a command in this sandbox."""
        spec = dict(asdict(self), mode=self.resolved_mode())
        return [sys.executable, "-m", "autograder.sandbox", json.dumps(spec), "--"]

    def uses_slot_user(self) -> bool:
        """Whether the kernel runs as the slot's uid: when grading as root, always with bwrap, and without it
        when that user can reach the interpreter and the sandbox's directories."""
        return _drops_privileges(self.resolved_mode(), self.scratch, self.sockets)


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """Whether bubblewrap is installed and can create the namespaces the sandbox uses."""
    if shutil.which("bwrap") is None:
        return False
    probe = ["bwrap", "--unshare-net", "--unshare-pid", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc",
             "--dev", "/dev", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _closed_ancestor(path: Path) -> Path | None:
    """The topmost ancestor of `path` that other users cannot enter (mode without o+x), if any."""
    for parent in reversed(path.resolve().parents):
        if parent != Path("/") and not parent.stat().st_mode & 0o001:
            return parent
    return None


def _interpreter_paths() -> list[Path]:
    """The Python installation(s) the kernel needs: the environment and the base interpreter."""
    return sorted({Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()})


def _bwrap_argv(spec: dict, command: list[str]) -> list[str]:
    # /tmp is private and world-writable (sticky), as a normal /tmp is.
    argv = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
            "--new-session", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--perms", "1777",
            "--tmpfs", "/tmp"]
    covered = {Path("/tmp")}  # directories replaced by an empty tmpfs so far

    def reach(path: Path, how: str) -> None:
        """Mount `path` (`how`: --ro-bind or --bind) so the unprivileged user can reach it: an empty,
        enterable directory replaces the first private ancestor (or /tmp), with only the path inside."""
        path = path.resolve()
        base = next((c for c in covered if c in path.parents), None)
        if base is None:
            base = _closed_ancestor(path)
            if base is not None:
                argv.extend(["--perms", "0755", "--tmpfs", str(base)])
                covered.add(base)
        if base is not None:
            for between in reversed(path.parents):
                if base in between.parents:
                    argv.extend(["--perms", "0755", "--dir", str(between)])
        argv.extend([how, str(path), str(path)])

    # The interpreter and the course's own packages must stay visible and enterable: one under a private
    # directory (pyenv in /root, mode 0700) or under /tmp (a checkout there) needs mounting back.
    for path in _interpreter_paths() + [COURSE_ROOT]:
        if _closed_ancestor(path) is not None or Path("/tmp") in path.resolve().parents:
            reach(path, "--ro-bind")
    for path in spec["hidden"]:
        if Path(path).is_dir():
            argv += ["--tmpfs", path]
        elif Path(path).exists():
            argv += ["--ro-bind", "/dev/null", path]
    for path in spec["readable"]:  # files the grader needs the kernel to read inside a hidden directory
        reach(Path(path), "--ro-bind")
    reach(Path(spec["scratch"]), "--bind")
    reach(Path(spec["sockets"]), "--bind")
    return argv + ["--chdir", spec["scratch"]] + command


def _apply_limits(limits: dict) -> None:
    for name, value in (("RLIMIT_CPU", limits["cpu_seconds"]), ("RLIMIT_DATA", limits["memory_bytes"]),
                        ("RLIMIT_NPROC", limits["processes"]), ("RLIMIT_FSIZE", limits["file_bytes"]),
                        ("RLIMIT_CORE", 0)):
        resource.setrlimit(getattr(resource, name), (value, value))


def _clean_env(scratch: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k in KEEP_ENV or k.startswith(KEEP_PREFIXES)}
    env["HOME"] = scratch
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    env["MPLCONFIGDIR"] = str(Path(scratch) / ".matplotlib")
    env["IPYTHONDIR"] = str(Path(scratch) / ".ipython")
    return env


def slot_uid(slot: int) -> int:
    """The unprivileged uid the kernel of sandbox slot `slot` runs as (when grading as root)."""
    if not 0 <= slot < MAX_SLOTS:
        raise ValueError(f"sandbox slot must be in [0, {MAX_SLOTS}), got {slot}")
    return UNPRIVILEGED_BASE_UID + slot


def _sandbox_uid(spec: dict) -> int:
    return slot_uid(int(spec.get("slot", 0)))


def _drops_privileges(mode: str, scratch: str, sockets: str) -> bool:
    if os.geteuid() != 0:
        return False
    if mode == "bwrap":
        return True
    needed = _interpreter_paths() + [Path(scratch), Path(sockets)]
    return all(_closed_ancestor(p) is None for p in needed)


def _drop_to(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def launch(spec: dict, command: list[str]) -> None:
    """Apply the sandbox to this process and exec `command` (never returns).

    As root the kernel ends up as a numbered unprivileged user, so that RLIMIT_NPROC applies (root ignores
    it). With bwrap that drop happens inside the sandbox, after bwrap (still root) has made its mounts.
    """
    scratch = spec["scratch"]
    try:
        os.setsid()  # its own session and process group: the grader kills the group
    except PermissionError:
        pass  # already a session leader (the kernel manager started it in a new session)
    as_root = os.geteuid() == 0
    if as_root:
        uid = _sandbox_uid(spec)
        for path in (scratch, spec["sockets"]):
            for root, dirs, files in os.walk(path):
                for name in [root] + [os.path.join(root, n) for n in dirs + files]:
                    os.chown(name, uid, uid)
    _apply_limits(spec["limits"])
    os.chdir(scratch)
    env = _clean_env(scratch)
    if spec["mode"] == "bwrap":
        inner = [sys.executable, "-m", "autograder.sandbox", "--inside", json.dumps(spec), "--"] if as_root else []
        argv = _bwrap_argv(spec, inner + command)
    else:
        # Without bwrap the numbered user must reach the interpreter and its directories itself; if it
        # cannot (an interpreter in a private home), the kernel stays root and RLIMIT_NPROC does not bind.
        if _drops_privileges("rlimit", scratch, spec["sockets"]):
            _drop_to(_sandbox_uid(spec))
        argv = command
    os.execvpe(argv[0], argv, env)


def launch_inside(spec: dict, command: list[str]) -> None:
    """Second stage inside bwrap (started as root): become the numbered user, then exec the kernel."""
    _drop_to(_sandbox_uid(spec))
    os.execvp(command[0], command)


def kernel_manager(sandbox: Sandbox, kernel_name: str = "python3"):
    """A jupyter_client AsyncKernelManager (what nbclient drives) whose kernel starts inside `sandbox` and
    talks over Unix sockets.

    When the kernel runs as a slot's user, the manager leases the slot (the next free one if another grader
    holds it; not when `sandbox.leased`), and once the kernel is stopped (`kill_kernel_tree`, or the manager's
    cleanup) it sweeps the slot's uid and gives the slot back."""
    from jupyter_client import AsyncKernelManager

    sandbox.resolved_mode()  # a mode this machine cannot provide fails here, before any kernel starts

    class SandboxedKernelManager(AsyncKernelManager):
        slot_lease: SlotLease | None = None
        sandbox_slot: int | None = None  # the slot its kernel runs in, once started as the slot's user

        def format_kernel_cmd(self, extra_arguments=None):
            box = sandbox
            if sandbox.uses_slot_user():
                if not sandbox.leased and self.slot_lease is None:
                    self.slot_lease = lease_slot(sandbox.slot)
                box = dataclasses.replace(sandbox, slot=self.slot_lease.slot if self.slot_lease else sandbox.slot)
                if sandbox.leased and processes_of(slot_uid(box.slot)):
                    # The caller's lease makes them its own: a kernel of its that was never swept.
                    problem = sweep(slot_uid(box.slot))
                    if problem:
                        log.warning("sandbox slot %d, before its next kernel: %s", box.slot, problem)
                self.sandbox_slot = box.slot
                kernel_slots.append(box.slot)
            return box.prefix() + super().format_kernel_cmd(extra_arguments)

        def end_sandbox(self) -> str:
            """After the kernel was stopped: sweep its slot's uid, then give back the slot this manager leased.
            A slot whose processes cannot be cleared stays leased (set aside), so no later kernel of this
            process uses it. Returns why the sweep failed ('' when it did not)."""
            if self.sandbox_slot is None:
                return ""
            slot, self.sandbox_slot = self.sandbox_slot, None
            problem = sweep(slot_uid(slot))
            lease, self.slot_lease = self.slot_lease, None
            if problem:
                log.warning("sandbox slot %d: %s%s", slot, problem,
                            "; the slot is set aside while this process runs" if lease else
                            "; the next kernel in this slot may fail to start")
                if lease:
                    _set_aside.append(lease)
            elif lease:
                lease.release()
            return problem

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:
                self.end_sandbox()

        cleanup_resources = _async_cleanup_resources  # what nbclient calls when a kernel fails to start

    sockets = Path(sandbox.sockets)
    return SandboxedKernelManager(kernel_name=kernel_name, transport="ipc", ip=str(sockets / "kernel"),
                                  connection_file=str(sockets / "kernel.json"))


# ------------------------------------------------------------------------------------------ slots


class SlotLease:
    """This process's exclusive use of sandbox slot `slot` (uid 61000 + slot) among the grading processes of
    the machine: an advisory lock (flock) on its lock file, held until `release()` or the process ends."""

    def __init__(self, slot: int, fd: int):
        self.slot, self._fd = slot, fd

    @property
    def uid(self) -> int:
        return slot_uid(self.slot)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    __del__ = release

    def __repr__(self) -> str:
        return f"SlotLease(slot={self.slot}, uid={self.uid}, held={self._fd is not None})"


_set_aside: list[SlotLease] = []  # slots whose processes could not be cleared, kept locked


def _lock_dir() -> Path:
    """The directory of the slots' lock files: root's own (a sandboxed user must not create or hold them)."""
    directory = SLOT_LOCKS
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
    except OSError:  # no writable /run: the temporary directory (outside the sandbox's private /tmp)
        directory = Path(tempfile.gettempdir()) / "autograder-slots"
        directory.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise RuntimeError(f"{directory} holds the sandbox slots' locks and must be a directory owned by root that "
                           "no one else can write; remove it and grade again.")
    return directory


def lease_slot(preferred: int = 0) -> SlotLease:
    """Lease the first free sandbox slot from `preferred` on (wrapping around; grading as root only).

    A slot is free when no other process holds its lock and no process runs as its uid (one that does was
    not started under a lease, so it is not this grader's to kill); a uid that is an account in the password
    database is never used."""
    if os.geteuid() != 0:
        raise RuntimeError("sandbox slots are leased only when grading as root (the kernel then runs as the "
                           "slot's uid)")
    directory = _lock_dir()
    for slot in [*range(preferred, MAX_SLOTS), *range(0, preferred)]:
        uid = slot_uid(slot)
        fd = os.open(directory / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if _is_account(uid) or processes_of(uid):
            os.close(fd)
            continue
        return SlotLease(slot, fd)
    raise RuntimeError(f"no free sandbox slot: all {MAX_SLOTS} (uids {UNPRIVILEGED_BASE_UID} to "
                       f"{UNPRIVILEGED_BASE_UID + MAX_SLOTS - 1}) are leased or have processes")


def _is_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def processes_of(uid: int) -> list[str]:
    """'PID NAME (STATE)' of every process whose real, effective or saved uid is `uid` (zombies included:
    they count for RLIMIT_NPROC until they are reaped)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{entry}/status").read_text().splitlines()
                          if ":" in line)
        except OSError:
            continue  # gone meanwhile
        if uid in [int(u) for u in fields.get("Uid", "").split()[:3]]:
            found.append(f"{entry} {fields.get('Name', '?').strip()} ({fields.get('State', '?').strip()})")
    return found


def sweep(uid: int, timeout: float = SWEEP_SECONDS) -> str:
    """Kill every process of sandbox user `uid` and wait until /proc shows none. Returns '' when the uid is
    clear, else why not (what was left after `timeout` seconds).

    A child of this process becomes `uid` and sends SIGKILL to every process it may signal (kill(-1)), again
    and again, until /proc shows no process of the uid but itself: a process of the same uid can signal all
    of them wherever they run (another session, a PID namespace), and a fork bomb cannot outrun it, since its
    forks are bounded by the uid's RLIMIT_NPROC and a process with SIGKILL pending forks no more. kill(-1)'s
    own result cannot tell when they are gone: Linux reports success whenever any other process exists, even
    one it may not signal. Only a grader running as root sweeps, and never uid 0, its own uid, a uid below
    the sandbox range or an account in the password database."""
    if os.geteuid() != 0:
        raise PermissionError("only a grader running as root sweeps a sandbox slot's processes")
    if uid < UNPRIVILEGED_BASE_UID or uid in (0, os.getuid(), os.geteuid()):
        raise ValueError(f"uid {uid} is not a sandbox slot's user; its processes are not swept")
    if _is_account(uid):
        return f"uid {uid} is an account in the password database; its processes were not killed"
    deadline = time.monotonic() + timeout
    left = processes_of(uid)
    if not left:
        return ""
    killer = os.fork()
    if killer == 0:  # plain system calls only: this is a fork of a process with threads
        code = 3  # could not become the uid
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            code = 0
            while time.monotonic() < deadline:
                os.kill(-1, signal.SIGKILL)
                time.sleep(0.005)
        finally:
            os._exit(code)
    status = None
    try:
        while time.monotonic() < deadline:
            left = [p for p in processes_of(uid) if int(p.split()[0]) != killer]
            if not left:  # zombies included: they hold the uid's process count until reaped
                break
            pid, code = os.waitpid(killer, os.WNOHANG)
            if pid:  # the killer ended: it could not become the uid, or its time is up
                status = ("the process that kills them could not become that uid" if
                          os.waitstatus_to_exitcode(code) == 3 else f"{timeout:g} s after they were sent SIGKILL")
                break
            time.sleep(0.02)
    finally:
        if status is None:
            os.kill(killer, signal.SIGKILL)
            os.waitpid(killer, 0)  # reaped at once: the killer is a process of the uid too
    left = processes_of(uid)
    if left:
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        why = status or f"{timeout:g} s after they were sent SIGKILL"
        return f"{len(left)} processes of uid {uid} were still there, {why} ({shown})"
    return ""


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), deepest last."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                todo.append(child)
    return found


def kill_kernel_tree(km) -> None:
    """SIGKILL a sandboxed kernel and everything it started, and sweep its slot's uid.

    A PID namespace outlives its kernel while other processes in it still run (bwrap's init waits for them
    all), so a submission's background children would go on after grading; kill them all by hand. Their
    deaths take a moment (a fork bomb's copies): the sweep returns once no process of the slot's uid is
    left, so the slot's next kernel has the uid's whole process count.
    """
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is not None:
        for pid in [process.pid] + _descendants(process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    end = getattr(km, "end_sandbox", None)
    if end is not None:
        end()


def describe_mode() -> str:
    """One line for instructors: what this machine's sandbox does."""
    if bwrap_works():
        return ("bubblewrap sandbox: no network, read-only file view, private /tmp and PID namespace, cleared "
                "environment, CPU / memory / process limits" + (", unprivileged user" if os.geteuid() == 0 else ""))
    why = "bwrap is not installed" if shutil.which("bwrap") is None else "bwrap cannot create namespaces here"
    return (f"rlimit-only sandbox ({why}; Debian: apt-get install bubblewrap): cleared environment, own process "
            "group, CPU / memory / process limits" + (", unprivileged user" if os.geteuid() == 0 else "")
            + "; the network is NOT blocked")


if __name__ == "__main__":
    args = sys.argv[1:]
    inside = args[:1] == ["--inside"]
    args = args[1:] if inside else args
    if len(args) < 3 or args[1] != "--":
        sys.exit("usage: python -m autograder.sandbox [--inside] SPEC_JSON -- COMMAND...")
    (launch_inside if inside else launch)(json.loads(args[0]), args[2:])
