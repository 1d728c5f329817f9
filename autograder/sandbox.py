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
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

KEEP_ENV = ("PATH", "LANG", "LC_ALL", "MPLBACKEND", "PYTHONWARNINGS", "PYTHONHASHSEED")
KEEP_PREFIXES = ("AUTOGRADER_",)
COURSE_ROOT = Path(__file__).resolve().parent.parent  # autograder/ and rlcore/ live here
UNPRIVILEGED_BASE_UID = 61000  # sandbox i runs as uid 61000 + i: its own process count for RLIMIT_NPROC


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


def _sandbox_uid(spec: dict) -> int:
    return UNPRIVILEGED_BASE_UID + int(spec.get("slot", 0))


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
        needed = _interpreter_paths() + [Path(scratch), Path(spec["sockets"])]
        if as_root and all(_closed_ancestor(p) is None for p in needed):
            _drop_to(_sandbox_uid(spec))
        argv = command
    os.execvpe(argv[0], argv, env)


def launch_inside(spec: dict, command: list[str]) -> None:
    """Second stage inside bwrap (started as root): become the numbered user, then exec the kernel."""
    _drop_to(_sandbox_uid(spec))
    os.execvp(command[0], command)


def kernel_manager(sandbox: Sandbox, kernel_name: str = "python3"):
    """A jupyter_client AsyncKernelManager (what nbclient drives) whose kernel starts inside `sandbox` and
    talks over Unix sockets."""
    from jupyter_client import AsyncKernelManager

    prefix = sandbox.prefix()

    class SandboxedKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            return prefix + super().format_kernel_cmd(extra_arguments)

    sockets = Path(sandbox.sockets)
    return SandboxedKernelManager(kernel_name=kernel_name, transport="ipc", ip=str(sockets / "kernel"),
                                  connection_file=str(sockets / "kernel.json"))


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
    """SIGKILL a sandboxed kernel and everything it started.

    A PID namespace outlives its kernel while other processes in it still run (bwrap's init waits for them
    all), so a submission's background children would go on after grading; kill them all by hand.
    """
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is None:
        return
    for pid in [process.pid] + _descendants(process.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


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
