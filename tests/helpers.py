"""Test helpers shared by the chapter tests."""

from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def chapters() -> list[str]:
    """Chapter ids that have a solution notebook, e.g. ["00_rl_loop", "01_bandits"]."""
    return sorted(p.parent.name for p in (ROOT / "solutions").glob("*/*.ipynb"))


def solution_path(chapter: str) -> Path:
    return ROOT / "solutions" / chapter / f"{chapter}.ipynb"


def solution_namespace(chapter: str) -> dict:
    """Execute the setup and solution cells of a chapter's solution notebook (not its test cells)
    and return the resulting namespace, so tests exercise exactly the code the notebook ships."""
    nb = nbformat.read(solution_path(chapter), as_version=4)
    namespace: dict = {"__name__": f"solution_{chapter}"}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and not meta.get("grade") and (meta.get("solution") or meta.get("grade_id") == "setup"):
            exec(compile(cell.source, f"<{chapter}:{meta.get('grade_id')}>", "exec"), namespace)
    return namespace
