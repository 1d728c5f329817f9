"""Feedback a learner would rather look at than read: their curve against the reference band.

`curve_figure` draws the learner's curve (one line per seed or one averaged line) over the band
in which a correct implementation's curve falls, with the graded window shaded. Checks pass the
figure to `Check.plot`, which shows it in the notebook and saves it for the feedback report.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np


@dataclass
class Panel:
    """One panel of a feedback figure.

    x [T]; learner [T] or [S, T] (S seeds or curves); ref_mean, ref_low, ref_high [T] (the band).
    window: (first, last) x values of the graded window, shaded; passed: colours the learner's curve.
    """

    title: str
    ylabel: str
    x: np.ndarray
    learner: np.ndarray
    ref_mean: np.ndarray
    ref_low: np.ndarray
    ref_high: np.ndarray
    passed: bool
    window: tuple[float, float] | None = None
    anchor: tuple[float, str] | None = None  # a published value drawn as a dotted line, with its label
    xlabel: str = "step"
    learner_label: str = "your code"
    ref_label: str = "reference (rlcore), 99.7% band"


def curve_figure(panels: list[Panel], suptitle: str | None = None):
    """A row of panels; returns the matplotlib Figure (the caller shows or saves it)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    for ax, p in zip(axes[0], panels):
        ax.fill_between(p.x, p.ref_low, p.ref_high, color="0.75", alpha=0.7, lw=0, label=p.ref_label)
        ax.plot(p.x, p.ref_mean, color="0.35", lw=1.0)
        colour = "tab:green" if p.passed else "tab:red"
        learner = np.atleast_2d(p.learner)
        for i, curve in enumerate(learner):
            ax.plot(p.x, curve, color=colour, lw=1.2 if len(learner) == 1 else 0.8,
                    alpha=1.0 if len(learner) == 1 else 0.6, label=p.learner_label if i == 0 else None)
        if p.window is not None:
            ax.axvspan(*p.window, color="tab:blue", alpha=0.08, label="graded window")
        if p.anchor is not None:
            ax.axhline(p.anchor[0], color="tab:purple", ls=":", lw=1.2, label=p.anchor[1])
        ax.set_title(p.title + ("  ✔" if p.passed else "  ✘"), fontsize=10)
        ax.set_xlabel(p.xlabel)
        ax.set_ylabel(p.ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    fig.autograder_panels = panels  # Check.plot records the numbers for the class report
    return fig


def panel_record(p: Panel, points: int = 200) -> dict:
    """A panel's numbers, compact enough for a results file: the learner's mean curve and the reference
    band, at most `points` points (the class report overlays every learner's curve from these)."""
    x = np.asarray(p.x, dtype=float)
    keep = np.unique(np.linspace(0, len(x) - 1, min(points, len(x))).round().astype(int)) if len(x) else []
    learner = np.atleast_2d(np.asarray(p.learner, dtype=float)).mean(axis=0)

    def pick(a):
        return [round(float(v), 6) for v in np.asarray(a, dtype=float)[keep]]

    return {"title": p.title, "ylabel": p.ylabel, "xlabel": p.xlabel, "passed": bool(p.passed), "x": pick(x),
            "learner": pick(learner), "ref_mean": pick(p.ref_mean), "ref_low": pick(p.ref_low),
            "ref_high": pick(p.ref_high)}
