"""The check protocol (autograder.protocol): what a learner sees when a check passes or fails,
how learner code is called, what is recorded for `python -m autograder check`, and what a real
notebook kernel shows."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from autograder import stats
from autograder.protocol import (
    HIDDEN_ENV,
    PLOTS_ENV,
    RESULTS_ENV,
    Check,
    CheckFailed,
    LearnerCodeError,
    grading_seeds,
)

REPO = Path(__file__).resolve().parent.parent


def _fail_message(body) -> tuple[type, str]:
    """Run `body(check)` inside a Check and return the type and message of what it raised."""
    with pytest.raises(CheckFailed) as info:
        with Check("ch00.demo", "a demo check", hint="read the docstring again") as check:
            body(check)
    return info.type, str(info.value)


# --------------------------------------------------------------------------------------------
# Passing and failing
# --------------------------------------------------------------------------------------------


def test_passing_check_prints_one_line_and_nothing_on_stderr(capsys):
    with Check("ch00.demo", "a demo check") as check:
        check.expect(True, "first case")
        check.expect(1 + 1 == 2, "second case")
    out, err = capsys.readouterr()
    assert out == "✔ ch00.demo passed: a demo check (2 cases)\n"
    assert err == ""


def test_passing_check_prints_its_notes_under_the_line(capsys):
    with Check("ch00.demo", "a demo check") as check:
        check.expect(True, "only case")
        check.note("mean reward 1.55 (reference 1.54)")
    out, _ = capsys.readouterr()
    assert out.splitlines() == ["✔ ch00.demo passed: a demo check (1 cases)", "  mean reward 1.55 (reference 1.54)"]


def test_failing_case_reports_id_case_detail_and_hint(capsys):
    kind, msg = _fail_message(lambda c: c.expect(False, "epsilon = 0 is greedy", "chose arm 3, expected arm 7"))
    assert kind is CheckFailed
    assert "ch00.demo" in msg and "a demo check" in msg
    assert "epsilon = 0 is greedy: chose arm 3, expected arm 7" in msg
    assert "Hint: read the docstring again" in msg
    out, err = capsys.readouterr()
    assert "passed" not in out and err == ""


def test_cases_after_a_failed_expect_still_run_and_the_first_failure_is_reported():
    ran = []

    def body(check):
        check.expect(True, "case A")
        check.expect(False, "case B", "detail B")
        ran.append("after B")
        check.expect(False, "case C", "detail C")
        ran.append("after C")
        assert len(check.cases) == 3

    _, msg = _fail_message(body)
    assert ran == ["after B", "after C"]
    assert "case B: detail B" in msg
    assert "case C" not in msg and "detail C" not in msg


def test_count_of_cases_passed_before_the_failure_is_right():
    def body(check):
        check.expect(True, "a")
        check.expect(False, "b", "bd")
        check.expect(True, "c")

    _, msg = _fail_message(body)
    assert "2 of 3 cases passed before this one" not in msg


def test_require_stops_at_once():
    ran = []

    def body(check):
        check.expect(True, "shape")
        check.require(False, "returns an array", "got None")
        ran.append("after require")

    kind, msg = _fail_message(body)
    assert kind is CheckFailed
    assert ran == []
    assert "returns an array: got None" in msg
    assert "Hint: read the docstring again" in msg


def test_require_that_passes_lets_the_check_go_on(capsys):
    with Check("ch00.demo", "a demo check") as check:
        check.require(True, "first")
        check.expect(True, "second")
    assert "(2 cases)" in capsys.readouterr().out


def test_require_after_a_failed_expect_still_reports_the_first_failure():
    def body(check):
        check.expect(False, "first", "d1")
        check.require(False, "second", "d2")

    _, msg = _fail_message(body)
    assert "first: d1" in msg


def test_verdict_is_recorded_as_a_case():
    v = stats.success_count([500, 300, 200, 490, 100], threshold=475, min_successes=4, metric="last-100 return")

    def body(check):
        assert check.verdict(v) is False
        assert check.verdicts == [v]

    _, msg = _fail_message(body)
    # The case is named after the metric, and the detail does not repeat it.
    assert "last-100 return: 2 of 5 seeds reached 475; 4 needed" in msg
    assert "last-100 return: last-100 return" not in msg


def test_unexpected_exception_inside_the_check_becomes_check_failed():
    def body(check):
        check.expect(True, "fine")
        return 1 / 0  # a bug in the grader itself, not in learner code

    kind, msg = _fail_message(body)
    assert kind is CheckFailed
    assert "the check could not finish: ZeroDivisionError: division by zero" in msg
    assert "tell your instructor" in msg


def test_keyboard_interrupt_is_not_blamed_on_the_grader():
    with pytest.raises(KeyboardInterrupt):
        with Check("ch00.demo", "a demo check"):
            raise KeyboardInterrupt


# --------------------------------------------------------------------------------------------
# signature
# --------------------------------------------------------------------------------------------


def _learner_two_params(a, b):
    return a + b


def test_signature_accepts_a_matching_function():
    with Check("ch00.demo", "a demo check") as check:
        assert check.signature(_learner_two_params, "x", "y") is _learner_two_params
        check.expect(True, "ok")


@pytest.mark.parametrize("value", [None, 5, "fn", np.zeros(3)])
def test_signature_rejects_non_callables(value):
    kind, msg = _fail_message(lambda c: c.signature(value, "Q", "epsilon", "rng"))
    assert kind is LearnerCodeError
    assert "expected a function" in msg and "(Q, epsilon, rng)" in msg
    assert "no parentheses" in msg


def test_signature_message_for_none_does_not_invent_a_function_name():
    _, msg = _fail_message(lambda c: c.signature(None, "Q", "epsilon", "rng"))
    assert "NoneType(" not in msg


@pytest.mark.parametrize("params", [("Q", "epsilon", "rng"), ("Q",)])
def test_signature_shows_both_signatures_when_parameters_differ(params):
    kind, msg = _fail_message(lambda c: c.signature(_learner_two_params, *params))
    assert kind is LearnerCodeError
    assert "your function is _learner_two_params(a, b)" in msg
    assert f"the check calls it as _learner_two_params({', '.join(params)})" in msg


# --------------------------------------------------------------------------------------------
# call
# --------------------------------------------------------------------------------------------


def _not_written(x):
    raise NotImplementedError


def _learner_bug(x):
    scale = 2
    return x[scale]  # IndexError for short lists


LEARNER_BUG_LINE = _learner_bug.__code__.co_firstlineno + 2


def _infinite_loop():
    while True:
        pass


def _noisy(x):
    print("debug: x =", x, file=sys.stderr)
    warnings.warn("this is deprecated", DeprecationWarning)
    warnings.warn("something odd")
    np.log(np.zeros(2))  # numpy's divide-by-zero RuntimeWarning
    return x + 1


def test_call_returns_the_value():
    with Check("ch00.demo", "a demo check") as check:
        assert check.call(_learner_two_params, 2, b=3) == 5
        check.expect(True, "ok")


def test_call_not_implemented_says_not_written_yet():
    kind, msg = _fail_message(lambda c: c.call(_not_written, 1))
    assert kind is LearnerCodeError
    assert "_not_written is not written yet" in msg
    assert "NotImplementedError" in msg


def test_call_exception_names_the_type_and_the_learners_line():
    kind, msg = _fail_message(lambda c: c.call(_learner_bug, [1, 2]))
    assert kind is LearnerCodeError
    assert "_learner_bug([1, 2]) raised IndexError: list index out of range" in msg
    assert f"in your code, line {LEARNER_BUG_LINE}: return x[scale]" in msg
    assert "protocol.py" not in msg


def test_call_uses_what_to_describe_the_call():
    _, msg = _fail_message(lambda c: c.call(_learner_bug, [1], what="your agent's act()"))
    assert "your agent's act() raised IndexError" in msg


def test_call_infinite_loop_times_out_within_the_budget():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the time budget uses SIGALRM, which only the main thread receives")
    handler_before = signal.getsignal(signal.SIGALRM)
    start = time.perf_counter()
    kind, msg = _fail_message(lambda c: c.call(_infinite_loop, budget_s=0.5))
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0
    assert kind is LearnerCodeError
    assert "_infinite_loop() did not finish within 0.5 s" in msg
    assert "infinite loop" in msg
    # The alarm is switched off and the previous handler restored afterwards.
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0.0
    assert signal.getsignal(signal.SIGALRM) is handler_before


def test_call_keeps_an_enclosing_alarm():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGALRM needs the main thread")
    previous = signal.signal(signal.SIGALRM, lambda *a: None)
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    try:
        with Check("ch00.demo", "a demo check") as check:
            check.call(_learner_two_params, 1, 2, budget_s=1.0)
            check.expect(True, "ok")
        remaining = signal.getitimer(signal.ITIMER_REAL)[0]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert remaining > 0


def test_call_without_budget_runs_to_the_end():
    with Check("ch00.demo", "a demo check") as check:
        assert check.call(time.sleep, 0.01, budget_s=None) is None
        check.expect(True, "ok")


def test_learner_stderr_and_warnings_never_reach_stderr(capfd):
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the check must silence warnings even so
        with Check("ch00.demo", "a demo check") as check:
            assert check.call(_noisy, 1) == 2
            check.expect(True, "ok")
    out, err = capfd.readouterr()
    assert err == ""
    assert "[_noisy wrote to stderr] debug: x = 1" in out
    assert "✔ ch00.demo passed" in out


def test_learner_stderr_before_a_failure_goes_to_stdout(capfd):
    def loud_failure(x):
        print("about to fail", file=sys.stderr)
        raise ValueError("bad x")

    kind, msg = _fail_message(lambda c: c.call(loud_failure, 0))
    out, err = capfd.readouterr()
    assert err == ""
    assert "about to fail" in out
    assert "raised ValueError: bad x" in msg


# --------------------------------------------------------------------------------------------
# array
# --------------------------------------------------------------------------------------------


def test_array_returns_a_validated_array():
    with Check("ch00.demo", "a demo check") as check:
        arr = check.array([1.0, 2.5], "f(x)", shape=(2,))
        assert isinstance(arr, np.ndarray) and arr.tolist() == [1.0, 2.5]
        ints = check.array(np.array([1.0, 3.0]), "act()", kind="int")
        assert ints.dtype == np.int64 and ints.tolist() == [1, 3]
        check.expect(True, "ok")


@pytest.mark.parametrize("value, kwargs, expected", [
    (None, {}, "f(x) returned None. Did you forget a `return` statement?"),
    (np.zeros((3, 2)), {"shape": (2, 3)}, "f(x) returned shape (3, 2); expected (2, 3)"),
    (np.array([1.0, np.nan, np.inf]), {}, "f(x) returned 2 NaN or infinite value(s) out of 3"),
    (np.array([0.0, 1.5]), {"kind": "int"}, "f(x) returned float64 values; expected integer indices"),
    (np.array(["a", "b"]), {}, "expected numbers"),
    ([[1.0, 2.0], [3.0]], {}, "which is not an array"),
    ({"a": 1}, {}, "expected a numeric array"),
])
def test_array_rejects_bad_values(value, kwargs, expected):
    kind, msg = _fail_message(lambda c: c.array(value, "f(x)", **kwargs))
    assert kind is LearnerCodeError
    assert expected in msg


def test_array_kind_bool_rejects_non_booleans():
    _fail_message(lambda c: c.array(np.array([0.3, 2.0]), "mask()", kind="bool"))


# --------------------------------------------------------------------------------------------
# Recording, plots, hidden seeds
# --------------------------------------------------------------------------------------------


def test_results_file_gets_one_json_line_per_check(monkeypatch, tmp_path, capsys):
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    v = stats.non_inferiority([480, 485, 490, 495, 500], ref_mean=490.0, delta=23.365, metric="return")

    with Check("ch00.good", "a passing check") as check:
        check.verdict(v)
        check.expect(True, "second case")
    with pytest.raises(CheckFailed):
        with Check("ch00.bad", "a failing check", hint="h") as check:
            check.expect(False, "bad case", "got 1")

    lines = results.read_text().splitlines()
    assert len(lines) == 2
    good, bad = (json.loads(line) for line in lines)
    for record in (good, bad):
        assert {"check", "passed", "message", "cases", "verdicts", "seconds"} <= set(record)
        assert isinstance(record["seconds"], float) and record["seconds"] >= 0
    assert good["check"] == "ch00.good" and good["passed"] is True
    assert good["message"].startswith("✔ ch00.good passed")
    assert [c["name"] for c in good["cases"]] == ["return", "second case"]
    assert good["verdicts"][0]["rule"] == "non_inferiority" and good["verdicts"][0]["passed"] is True
    assert bad["check"] == "ch00.bad" and bad["passed"] is False
    assert bad["message"] == "bad case: got 1"
    assert bad["cases"] == [{"name": "bad case", "passed": False, "detail": "got 1"}]
    assert bad["verdicts"] == []


def test_grader_error_is_recorded_too(monkeypatch, tmp_path):
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    with pytest.raises(CheckFailed):
        with Check("ch00.broken", "a broken check"):
            {}["missing"]
    (record,) = (json.loads(line) for line in results.read_text().splitlines())
    assert record["passed"] is False and "could not finish: KeyError" in record["message"]


def test_nothing_is_recorded_without_the_env_var(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Check("ch00.demo", "a demo check") as check:
        check.expect(True, "ok")
    assert list(tmp_path.iterdir()) == []


def test_plot_writes_a_png(monkeypatch, tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    plots = tmp_path / "plots"
    monkeypatch.setenv(PLOTS_ENV, str(plots))
    fig = Figure()
    fig.add_subplot().plot([0, 1, 2], [1, 0, 2])
    with Check("ch00.demo", "a demo check") as check:
        check.plot(fig, "x")
        check.expect(True, "ok")
    files = list(plots.glob("*.png"))
    assert len(files) == 1
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert check.plots == [str(files[0])]
    assert "ch00.demo" in files[0].name


def test_grading_seeds_visible_without_the_env_var():
    assert grading_seeds("ch01.curves", [0, 1, 2]) == ([0, 1, 2], False)


def test_grading_seeds_hidden_when_the_instructor_file_lists_the_check(monkeypatch, tmp_path):
    hidden = tmp_path / "hidden.json"
    hidden.write_text(json.dumps({"seeds": {"ch01.curves": [913, 27, "5"]}}))
    monkeypatch.setenv(HIDDEN_ENV, str(hidden))
    assert grading_seeds("ch01.curves", [0, 1, 2]) == ([913, 27, 5], True)
    assert grading_seeds("ch02.other", [0, 1]) == ([0, 1], False)


def test_grading_seeds_visible_when_the_instructor_file_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv(HIDDEN_ENV, str(tmp_path / "absent.json"))
    assert grading_seeds("ch01.curves", [4]) == ([4], False)


# --------------------------------------------------------------------------------------------
# A real notebook kernel
# --------------------------------------------------------------------------------------------

PASSING_CELL = """\
import autograder.checks
from autograder.protocol import Check
with Check("nb.pass", "a passing check") as check:
    check.expect(True, "fine")
"""

FAILING_CELL = """\
import sys, warnings
def noisy(x):
    print("debug", file=sys.stderr)
    warnings.warn("careful")
    return x
with Check("nb.fail", "a failing check", hint="look again") as check:
    check.call(noisy, 1)
    check.expect(False, "the case", "got 1, expected 2")
"""


@pytest.fixture(scope="module")
def executed_notebook():
    """Run a two-cell notebook in a real python3 kernel once; return (notebook, reply statuses)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(PASSING_CELL), nbformat.v4.new_code_cell(FAILING_CELL)]
    statuses = []
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", allow_errors=True, timeout=60,
        resources={"metadata": {"path": str(REPO)}},
        on_cell_executed=lambda **kw: statuses.append(kw["execute_reply"]["content"]["status"]),
    )
    with pytest.MonkeyPatch.context() as mp:
        for name in (RESULTS_ENV, PLOTS_ENV, HIDDEN_ENV):
            mp.delenv(name, raising=False)
        client.execute()
    return nb, statuses


@pytest.mark.notebooks
def test_notebook_kernel_runs_the_checks_without_stderr(executed_notebook):
    nb, statuses = executed_notebook
    passing, failing = nb.cells
    texts = [o.get("text", "") for o in passing.outputs if o.output_type == "stream"]
    assert any("✔ nb.pass passed" in t for t in texts), passing.outputs
    assert not [o for o in passing.outputs if o.output_type == "error"]
    # The kernel knows the second cell failed ...
    assert statuses == ["ok", "error"]
    # ... learner stderr was echoed on stdout, and no cell has a stderr stream (nbgrader's zero).
    assert any("[noisy wrote to stderr] debug" in o.get("text", "") for o in failing.outputs)
    for cell in nb.cells:
        streams = [o for o in cell.outputs if o.output_type == "stream"]
        assert all(o.name != "stderr" for o in streams), streams


@pytest.mark.notebooks
def test_notebook_kernel_failing_check_shows_its_message_alone(executed_notebook):
    nb, _ = executed_notebook
    failing = nb.cells[1]
    errors = [o for o in failing.outputs if o.output_type == "error"]
    assert len(errors) == 1, failing.outputs
    error = errors[0]
    assert error.ename == "CheckFailed"
    assert "the case: got 1, expected 2" in error.evalue
    assert isinstance(error.traceback, list) and error.traceback
    shown = "\n".join(error.traceback)
    assert "protocol.py" not in shown
    assert "nb.fail" in shown and "Hint: look again" in shown
