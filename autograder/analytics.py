"""The class report of one assignment, from the results.json of every graded submission.

    python -m autograder classroom report COURSE ASSIGNMENT   ->  COURSE/reports/ASSIGNMENT/report.html

What an instructor looks at after grading, on one page (self-contained HTML, figures embedded):
- the distribution of total scores, and the pass rate of every graded cell;
- every learner's curve overlaid on the reference band, one panel per curve check (from the numbers the
  checks record with their feedback plots), passing curves green, failing ones red;
- the most common failure diagnoses (a check's diagnosis when it gave one, else the case that failed, or
  why the notebook could not be run), with how many learners and who.
The numbers behind it are in report.json next to it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def load_results(course: Path, assignment: str) -> dict[str, dict]:
    """student -> results.json of every graded submission of `assignment`."""
    base = Path(course) / "results" / assignment
    if not base.is_dir():
        raise SystemExit(f"error: no results in {base}; grade the assignment first (`classroom grade`).")
    found = {p.parent.name: json.loads(p.read_text()) for p in sorted(base.glob("*/results.json"))}
    if not found:
        raise SystemExit(f"error: no results.json in {base}; grade the assignment first (`classroom grade`).")
    return found


def _failure_causes(result: dict) -> list[str]:
    """Why this submission lost points, as short labels that group well across a class."""
    causes = []
    failed_tests = [t for t in result.get("tests", []) if t["status"] != "passed"]
    if failed_tests and result.get("output") and all(t["output"] == result["output"] for t in failed_tests):
        return [f"the notebook: {_short(result['output'])}"]  # it could not be run at all
    for test in result.get("tests", []):
        if test["status"] == "passed":
            continue
        records = test.get("extra_data", {}).get("checks", [])
        failed = [r for r in records if not r.get("passed")]
        if failed:
            for r in failed:
                if r.get("diagnosis"):
                    causes += [f"{r['check']}: {d.split('. ')[0]}" for d in r["diagnosis"]]
                else:
                    case = next((c["name"] for c in r.get("cases", []) if not c["passed"]), None)
                    causes.append(f"{r['check']}: " + (f"failed case '{case}'" if case else _short(r["message"])))
        else:  # no check record: the cell raised before its check ran, timed out, or the kernel died
            causes.append(f"{test['name']}: {_short(test['output'])}")
    return causes


def _short(text: str) -> str:
    """A failure message without its numbers, so the same failure groups across learners."""
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip() and not ln.startswith("✘")), "")
    line = re.sub(r"cell \d+", "cell N", line)
    line = re.sub(r"(?<![\w.])-?\d+(\.\d+)?(e-?\d+)?(?!\w)", "#", line)
    return line[:140] or "(no output)"


def summarize(results: dict[str, dict]) -> dict:
    """The report's numbers: score distribution, pass rate per cell, curves per check, top diagnoses."""
    scores = {s: float(r.get("score", 0.0)) for s, r in results.items()}
    max_score = max((float(r.get("max_score", 0.0)) for r in results.values()), default=0.0)
    cells: dict[str, list[bool]] = defaultdict(list)
    curves: dict[str, list[dict]] = defaultdict(list)
    causes: dict[str, list[str]] = defaultdict(list)
    overruled: dict[str, list[str]] = defaultdict(list)  # passed in the kernel, failed by the grader's replay
    decided_by: dict[str, int] = defaultdict(int)
    for student, r in results.items():
        for test in r.get("tests", []):
            cells[test["name"]].append(test["status"] == "passed")
            decided_by[test.get("extra_data", {}).get("decided_by", "kernel")] += 1
            if "the grader's own run of this check failed" in test.get("output", ""):
                overruled[test["name"]].append(student)
            for record in test.get("extra_data", {}).get("checks", []):
                for curve in record.get("curves", []):
                    curves[f"{record['check']}: {curve['title']}"].append(dict(curve, student=student))
        for cause in dict.fromkeys(_failure_causes(r)):  # one count per learner
            causes[cause].append(student)
    top = sorted(causes.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return {
        "learners": len(results),
        "max_score": max_score,
        "scores": scores,
        "mean_score": float(np.mean(list(scores.values()))) if scores else 0.0,
        "full_marks": sum(v == max_score for v in scores.values()),
        "pass_rate": {name: float(np.mean(v)) for name, v in cells.items()},
        "curves": dict(curves),
        "diagnoses": [{"cause": c, "learners": len(s), "who": sorted(s)} for c, s in top],
        "decided_by": dict(decided_by),
        "overruled": {name: sorted(who) for name, who in overruled.items()},
    }


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _score_figure(summary: dict):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    scores = list(summary["scores"].values())
    top = summary["max_score"] or 1.0
    left.hist(scores, bins=np.linspace(0, top, min(21, int(top) + 2) if top >= 1 else 11), color="tab:blue",
              edgecolor="white")
    left.set_xlabel(f"score (out of {top:g})")
    left.set_ylabel("learners")
    left.set_title(f"Scores of {summary['learners']} learners (mean {summary['mean_score']:.2f})")
    names = list(summary["pass_rate"])
    rates = [summary["pass_rate"][n] for n in names]
    right.barh(range(len(names)), rates, color=["tab:green" if r >= 0.5 else "tab:red" for r in rates])
    right.set_yticks(range(len(names)), [n.removeprefix("check_") for n in names], fontsize=8)
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.set_xlabel("fraction of learners passing")
    right.set_title("Pass rate per graded cell")
    fig.tight_layout()
    return fig


def _curve_figure(name: str, curves: list[dict]):
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ref = curves[0]
    ax.fill_between(ref["x"], ref["ref_low"], ref["ref_high"], color="0.75", alpha=0.7, lw=0, label="reference band")
    ax.plot(ref["x"], ref["ref_mean"], color="0.35", lw=1.0)
    for c in curves:
        ax.plot(c["x"], c["learner"], lw=0.9, alpha=0.7, color="tab:green" if c["passed"] else "tab:red")
    passed = sum(c["passed"] for c in curves)
    ax.set_title(f"{name}\n{len(curves)} learners: {passed} passed (green), {len(curves) - passed} failed (red)",
                 fontsize=9)
    ax.set_xlabel(ref.get("xlabel", "step"))
    ax.set_ylabel(ref.get("ylabel", ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def class_report(course: Path, assignment: str) -> Path:
    """Write COURSE/reports/ASSIGNMENT/report.html and report.json; returns the HTML's path."""
    course = Path(course)
    summary = summarize(load_results(course, assignment))
    out = course / "reports" / assignment
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(summary, indent=1) + "\n")
    parts = [f"<h1>{html.escape(assignment)}: class report</h1>",
             f"<p>{summary['learners']} learners graded; mean score {summary['mean_score']:.2f} of "
             f"{summary['max_score']:g}; {summary['full_marks']} with full marks.</p>",
             f"<img src='data:image/png;base64,{_png(_score_figure(summary))}'>",
             f"<p>Grades decided by the grader's replay: {summary['decided_by'].get('grader', 0)}; in the learner's "
             f"kernel only: {summary['decided_by'].get('kernel', 0)} (checks the grader cannot replay, or cells that "
             "failed there).</p>"]
    if summary["overruled"]:
        rows = "".join(f"<li>{html.escape(name)}: {html.escape(', '.join(who))}</li>"
                       for name, who in summary["overruled"].items())
        parts.append("<h2>Passed in the kernel, failed by the grader</h2><p>The check's outcome in these kernels "
                     "was not what the grader computed from their own outputs: look at these submissions.</p>"
                     f"<ul>{rows}</ul>")
    if summary["curves"]:
        parts.append("<h2>Learning curves, every learner</h2>")
        for name, curves in summary["curves"].items():
            passed = sum(c["passed"] for c in curves)
            parts.append(f"<p>{html.escape(name)}: {len(curves)} learners: {passed} passed, {len(curves) - passed} "
                         "failed</p>")
            parts.append(f"<img src='data:image/png;base64,{_png(_curve_figure(name, curves))}'>")
    parts.append("<h2>Most common failures</h2>")
    if summary["diagnoses"]:
        rows = "".join(f"<tr><td>{d['learners']}</td><td>{html.escape(d['cause'])}</td>"
                       f"<td>{html.escape(', '.join(d['who'][:12]))}{' ...' if len(d['who']) > 12 else ''}</td></tr>"
                       for d in summary["diagnoses"][:15])
        parts.append(f"<table border=1 cellpadding=4><tr><th>learners</th><th>cause</th><th>who</th></tr>{rows}"
                     "</table>")
    else:
        parts.append("<p>No failures.</p>")
    page = ("<!doctype html><meta charset='utf-8'><title>" + html.escape(assignment) + " class report</title>"
            "<body style='font-family: sans-serif; max-width: 1100px'>" + "\n".join(parts) + "</body>")
    (out / "report.html").write_text(page)
    return out / "report.html"
