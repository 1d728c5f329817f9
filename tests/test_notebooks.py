"""Every chapter's notebooks, end to end, with real Jupyter kernels and real nbgrader.

- exercises/ is exactly what `nbgrader generate_assignment` makes from solutions/ (never hand-edited);
- a solution notebook passes every check under nbgrader's own Validator, with nothing on stderr and no
  bare value in a grade cell (one execution per solution: the deep-RL chapters train for minutes);
- nbgrader's Validator, inverted, sees every test cell of the blank exercise fail;
- a blank exercise fails every check *cleanly*: each grade cell ends with the check's own message;
- every lesson in course/ executes without an error.
"""

from __future__ import annotations

import filecmp
import json
import shutil

import nbformat
import pytest
from nbclient import NotebookClient
from traitlets.config import Config

from autograder import release
from autograder.runner import execute_notebook
from tests.helpers import ROOT, chapters, solution_path

pytestmark = pytest.mark.notebooks
CHAPTERS = chapters()


def _nbgrader_config() -> Config:
    c = Config()
    c.Execute.timeout = 600
    c.ExecutePreprocessor.timeout = 600
    return c


def test_there_are_chapters():
    assert {"00_rl_loop", "01_bandits"} <= set(CHAPTERS)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_exercise_is_in_sync_with_solution(chapter, tmp_path):
    """Regenerate the exercise in a scratch copy and compare bytes with the committed one."""
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(ROOT / "solutions" / chapter, tmp_path / "solutions" / chapter)
    release.generate(chapter, root=tmp_path)
    fresh, committed = tmp_path / "exercises" / chapter, ROOT / "exercises" / chapter
    names = sorted(p.name for p in fresh.iterdir())
    assert names == sorted(p.name for p in committed.iterdir()), "files differ: run `make exercises`"
    match, mismatch, errors = filecmp.cmpfiles(fresh, committed, names, shallow=False)
    assert not mismatch and not errors, f"exercises/{chapter} is out of sync with solutions/: run `make exercises` ({mismatch})"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solution_passes_under_nbgrader(chapter, tmp_path, monkeypatch, shared_cores):
    """One execution per solution (the deep-RL chapters train for minutes), by nbgrader's own Validator:
    no failing test cell; each grade cell printed its check's pass line; nothing on stderr, which nbgrader
    scores as a failure; and no bare value at the end of a grade cell, which it reads as partial credit.
    The kernel records its checks as it does under the grader, and each grade cell's replay in this process
    (autograder/replay.py) must confirm it or say why it cannot be replayed: never fail a correct solution."""
    from nbgrader.validator import Validator

    from autograder.protocol import RESULTS_ENV
    from autograder.replay import replayable, verify_cell

    records_file = tmp_path / "records.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(records_file))

    class Capturing(Validator):
        def _preprocess(self, nb):
            self.executed = super()._preprocess(nb)
            return self.executed

    validator = Capturing(config=_nbgrader_config())
    results = validator.validate(str(solution_path(chapter)))
    assert not results.get("failed"), results.get("failed")
    graded = [c for c in validator.executed.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    assert graded, "no grade cells found"
    for cell in graded:
        gid = cell.metadata.nbgrader.grade_id
        kinds = [(o.output_type, o.get("name")) for o in cell.outputs]
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert ("stream", "stderr") not in kinds, f"{gid} wrote to stderr"
        assert all(kind != "execute_result" for kind, _ in kinds), f"{gid} ends in a bare value"
        assert "✔" in text and "passed" in text, f"{gid} did not run a check that passed:\n{text}"

    records = [json.loads(line) for line in records_file.read_text().splitlines()]
    # A record names the kernel's execution count during its cell, which may run one ahead of the count
    # nbclient shows for the cell: align them on the first grade cell.
    offset = min(r["cell"] for r in records) - graded[0].execution_count
    for cell in graded:
        mine = [r for r in records if r.get("cell") == cell.execution_count + offset]
        verdict = verify_cell(cell.source, mine)
        gid = cell.metadata.nbgrader.grade_id
        assert verdict.status in ("verified", "kernel"), f"{gid}: {verdict}"
        # The registry of replayed checks is in step with what the grader can replay (python -m autograder.replay).
        listed = {r["check"] for r in mine} & replayable()
        assert bool(listed) == (verdict.status == "verified"), f"{gid}: {verdict}; autograder/replayable.json is stale"
    assert all(r.get("replay") for r in records), "a check ran without recording its replay"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_blank_exercise_fails_every_check_cleanly(chapter):
    exercise = ROOT / "exercises" / chapter / f"{chapter}.ipynb"
    result = execute_notebook(exercise)
    assert result.cells and not result.error
    for cell in result.cells:
        assert not cell.passed, f"{cell.grade_id} passes on a blank exercise"
        # Clean: the check itself ran and explained the failure (not a NameError in setup).
        assert cell.checks and "✘" in cell.output, f"{cell.grade_id} did not fail through its check:\n{cell.output}"

    from nbgrader.validator import Validator

    inverted = Validator(config=_nbgrader_config(), invert=True).validate(str(exercise))
    assert not inverted.get("passed"), f"nbgrader sees passing test cells: {inverted.get('passed')}"


@pytest.mark.parametrize("lesson", sorted(p.name for p in (ROOT / "course").glob("*.ipynb")))
def test_lesson_executes(lesson):
    path = ROOT / "course" / lesson
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
