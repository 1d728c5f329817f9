"""Command line: `python -m autograder check NOTEBOOK.ipynb [--json FILE] [--plots DIR]`.

Executes the notebook headlessly in its own kernel, prints one line per check (and the message
of each failure), writes a Gradescope-shaped results file when asked, and exits 0 only when every
check passed (1 when a check failed, 2 when the notebook could not be run or had no checks).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from autograder.runner import DEFAULT_CELL_TIMEOUT, execute_notebook


def _check(args) -> int:
    path = Path(args.notebook)
    if not path.is_file():
        print(f"error: {path} does not exist. Give the path of a notebook (.ipynb), for example "
              "solutions/01_bandits/01_bandits.ipynb.")
        return 2

    def progress(index, total, cell):
        if args.verbose:
            print(f"  running cell {index + 1}/{total}", flush=True)

    print(f"Running {path} ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="autograder-sandbox-") as tmp:
        box = None
        if args.sandbox:
            from autograder.sandbox import Sandbox, describe_mode

            scratch, sockets = Path(tmp) / "scratch", Path(tmp) / "sockets"
            scratch.mkdir()
            sockets.mkdir()
            shutil.copy(path, scratch / path.name)  # the submission's own copy, the only writable place
            path = scratch / path.name
            readable = (str(Path(args.hidden).resolve()),) if args.hidden else ()
            box = Sandbox(str(scratch), str(sockets), readable=readable)
            print(f"  in a {describe_mode()}", flush=True)
        result = execute_notebook(path, cell_timeout=args.timeout, plots_dir=args.plots,
                                  hidden_file=args.hidden, progress=progress, sandbox=box)
    for cell in result.cells:
        mark = "✔" if cell.passed else "✘"
        print(f"{mark} {cell.grade_id:<36} {cell.score:g}/{cell.max_score:g}   ({cell.seconds:.1f} s)")
        if not cell.passed:
            print("    " + (cell.output or "(no output)").replace("\n", "\n    "))
    if result.error:
        print(f"error: {result.error}")
    if not result.cells and not result.error:
        print("error: no checks found. A graded notebook has nbgrader grade cells, or cells that call "
              "autograder.checks.")
    print(f"Score: {result.score:g}/{result.max_score:g} in {result.seconds:.1f} s")
    plots = sorted({p for c in result.cells for r in c.checks for p in r.get("plots", [])})
    if plots:
        print("Feedback plots: " + ", ".join(plots))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result.gradescope(), indent=1) + "\n")
        print(f"Results written to {args.json}")
    if result.error or not result.cells:
        return 2
    return 0 if result.passed else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["classroom"]:  # the instructor's driver has its own subcommands
        from autograder.classroom import main as classroom

        return classroom(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="execute a notebook and grade its checks")
    check.add_argument("notebook", help="the notebook to run, e.g. exercises/01_bandits/01_bandits.ipynb")
    check.add_argument("--json", metavar="FILE", help="write a Gradescope-style results.json here")
    check.add_argument("--plots", metavar="DIR", help="save the feedback plots into this directory")
    check.add_argument("--hidden", metavar="FILE", help="instructor file with hidden seeds (JSON)")
    check.add_argument("--timeout", type=int, default=DEFAULT_CELL_TIMEOUT, metavar="S",
                       help=f"seconds allowed per cell (default {DEFAULT_CELL_TIMEOUT})")
    check.add_argument("--sandbox", action="store_true",
                       help="run the kernel in the grading sandbox (for submissions you did not write)")
    check.add_argument("-v", "--verbose", action="store_true", help="print each cell as it runs")
    sub.add_parser("classroom", help="grade a whole class with nbgrader (python -m autograder classroom --help)")
    args = parser.parse_args(argv)
    return _check(args)


if __name__ == "__main__":
    sys.exit(main())
