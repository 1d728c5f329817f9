"""The class report (autograder/analytics.py) on results files with known contents."""

from __future__ import annotations

import json

import pytest

from autograder import analytics


def _curve(passed: bool, level: float) -> dict:
    return {"title": "CartPole-v1", "ylabel": "return", "xlabel": "step", "passed": passed, "x": [0, 1, 2],
            "learner": [level, level, level], "ref_mean": [1, 2, 3], "ref_low": [0, 1, 2], "ref_high": [2, 3, 4]}


def _result(student: str, a2c_ok: bool, gae_ok: bool, diagnosis: list[str] = (), output: str = "") -> dict:
    def test(name, ok, record):
        return {"name": name, "score": 2.0 if ok else 0.0, "max_score": 2.0, "status": "passed" if ok else "failed",
                "output": "" if ok else (output or "✘ failed"), "extra_data": {"checks": [record] if record else []}}

    curve = {"check": "ch10.train_a2c", "passed": a2c_ok, "message": "", "diagnosis": list(diagnosis),
             "cases": [{"name": "mean return", "passed": a2c_ok, "detail": ""}], "curves": [_curve(a2c_ok, 3 if a2c_ok else 0)]}
    gae = {"check": "ch10.compute_gae", "passed": gae_ok, "message": "lambda and gamma swapped", "diagnosis": [],
           "cases": [{"name": "one step, hand computed", "passed": gae_ok, "detail": "expected 1.5, got 1.2"}],
           "curves": []}
    tests = [test("check_compute_gae", gae_ok, gae), test("check_train_a2c", a2c_ok, curve)]
    return {"score": sum(t["score"] for t in tests), "max_score": 4.0, "output": "", "tests": tests}


@pytest.fixture
def course(tmp_path):
    results = {
        "ana": _result("ana", True, True),
        "ben": _result("ben", False, True, ["policy entropy collapsed early. See section 5", "KL exploded. See 6"]),
        "cho": _result("cho", False, False, ["policy entropy collapsed early. See section 5"]),
        "dev": _result("dev", True, False),
    }
    for student, r in results.items():
        (tmp_path / "results" / "10_actor_critic" / student).mkdir(parents=True)
        (tmp_path / "results" / "10_actor_critic" / student / "results.json").write_text(json.dumps(r))
    # A notebook that could not be run: the same reason on every cell, counted once.
    unreadable = {"score": 0.0, "max_score": 4.0, "output": "the submission is an empty notebook (it has no cells)",
                  "tests": [{"name": n, "score": 0.0, "max_score": 2.0, "status": "failed",
                             "output": "the submission is an empty notebook (it has no cells)", "extra_data": {}}
                            for n in ("check_compute_gae", "check_train_a2c")]}
    (tmp_path / "results" / "10_actor_critic" / "eve").mkdir()
    (tmp_path / "results" / "10_actor_critic" / "eve" / "results.json").write_text(json.dumps(unreadable))
    return tmp_path


def test_summary_counts(course):
    s = analytics.summarize(analytics.load_results(course, "10_actor_critic"))
    assert s["learners"] == 5 and s["max_score"] == 4.0 and s["full_marks"] == 1
    assert s["scores"] == {"ana": 4.0, "ben": 2.0, "cho": 0.0, "dev": 2.0, "eve": 0.0}
    assert s["pass_rate"] == {"check_compute_gae": 0.4, "check_train_a2c": 0.4}
    causes = {d["cause"]: d["who"] for d in s["diagnoses"]}
    assert causes["ch10.train_a2c: policy entropy collapsed early"] == ["ben", "cho"]
    assert causes["ch10.train_a2c: KL exploded"] == ["ben"]
    assert causes["ch10.compute_gae: failed case 'one step, hand computed'"] == ["cho", "dev"]
    assert causes["the notebook: the submission is an empty notebook (it has no cells)"] == ["eve"]
    assert s["diagnoses"][0]["learners"] == 2  # most common first
    curves = s["curves"]["ch10.train_a2c: CartPole-v1"]
    assert sorted((c["student"], c["passed"]) for c in curves) == [("ana", True), ("ben", False), ("cho", False),
                                                                   ("dev", True)]


def test_report_page(course):
    page = analytics.class_report(course, "10_actor_critic")
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 2  # scores + one curve panel
    assert "policy entropy collapsed early" in text and "4 learners: 2 passed" in text
    assert json.loads((page.parent / "report.json").read_text())["learners"] == 5


def test_no_results_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="grade the assignment first"):
        analytics.class_report(tmp_path, "01_bandits")
