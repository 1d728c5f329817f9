"""`make exercises`: generate exercises/ from solutions/ with nbgrader, one chapter at a time.

    python -m autograder.release            # every chapter in solutions/
    python -m autograder.release 01_bandits # one chapter

Runs `nbgrader generate_assignment CHAPTER --no-db --force` in the repository root, where
nbgrader_config.py makes solutions/ the source and exercises/ the release directory. The output
is byte-identical for the same source, so the tests can demand that exercises/ is in sync.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def chapters() -> list[str]:
    return sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir() and p.name[:2].isdigit())


def generate(chapter: str, root: Path = ROOT) -> None:
    """Regenerate exercises/CHAPTER from solutions/CHAPTER (raises CalledProcessError on failure)."""
    subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", chapter, "--no-db", "--force", "--log-level=WARN"],
        cwd=root, check=True,
    )


def main(argv: list[str]) -> int:
    names = argv or chapters()
    unknown = [n for n in names if n not in chapters()]
    if unknown:
        print(f"error: no chapter {', '.join(unknown)} in solutions/; chapters are: {', '.join(chapters())}")
        return 2
    for name in names:
        generate(name)
        print(f"exercises/{name} generated from solutions/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
