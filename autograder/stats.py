"""The matching rules that decide whether a learner's result reproduces a reference.

Each rule returns a `Verdict`: pass or fail, the learner's estimate, the interval it had to land in,
and one sentence with the numbers. Which rule fits which result (shared/references, section 6):

- `exact`: deterministic answers (dynamic programming, a return computed by hand): |x - ref| <= tol.
- `equivalence`: cheap stochastic tabular experiments with many runs (the bandit testbed).
  A two-sided test: the learner's mean must lie in ref +- (margin + z * SE), where SE combines
  the standard error of the learner's runs and of the reference's runs. `margin` absorbs harmless
  implementation variants (tie-breaking, baseline definitions); z = 3 makes a correct solution
  fail well under 1% of the time (calibrated by simulation, see autograder/calibration).
- `non_inferiority`: deep RL with a few seeds. "Not significantly different" passes almost anything
  with n = 3, so the rule is one-sided: the t lower confidence bound of the seed mean must reach
  ref - delta.
- `success_count`: tasks with a score cap (CartPole's 500): at least m of n seeds reach a threshold.
- `iqm` and `stratified_bootstrap_ci`: aggregates across tasks (Agarwal et al. 2021).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats as _scipy_stats


@dataclass(frozen=True)
class Verdict:
    """The outcome of one rule on one metric.

    estimate: the learner's value (a mean, or a count). [low, high]: where it had to be to pass
    (high = inf for one-sided rules). reference: the value it was compared with.
    """

    passed: bool
    rule: str
    metric: str
    estimate: float
    reference: float
    low: float
    high: float
    detail: str
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("estimate", "reference", "low", "high"):
            # Strict JSON has no Infinity or NaN: a one-sided bound is written as null.
            d[key] = float(d[key]) if np.isfinite(d[key]) else None
        return d


def _finite_1d(values, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=float).reshape(-1)
    if x.size == 0:
        raise ValueError(f"{name}: no values to test")
    if not np.all(np.isfinite(x)):
        bad = int((~np.isfinite(x)).sum())
        raise ValueError(f"{name}: {bad} of {x.size} values are NaN or infinite")
    return x


def exact(actual, expected, *, atol: float, metric: str = "value") -> Verdict:
    """Pass when every |actual - expected| <= atol. Reports the largest deviation."""
    a = np.asarray(actual, dtype=float)
    e = np.asarray(expected, dtype=float)
    if a.shape != e.shape:
        return Verdict(False, "exact", metric, np.nan, np.nan, -atol, atol,
                       f"{metric}: shape {a.shape}, expected {e.shape}")
    if a.size == 0:
        return Verdict(True, "exact", metric, np.nan, np.nan, -atol, atol, f"{metric}: empty, nothing to compare")
    with np.errstate(invalid="ignore"):
        err = np.abs(a - e)
    err = np.where(a == e, 0.0, err)  # equal infinities match
    err = np.where(np.isnan(err), np.inf, err)  # NaN never matches
    worst = int(err.argmax())
    max_err = float(err.max())
    passed = max_err <= atol
    index = tuple(int(i) for i in np.unravel_index(worst, e.shape))
    where = f" at index {index}" if e.ndim else ""
    detail = (f"{metric}: largest error {max_err:.3g}{where} (got {a.flat[worst]:.6g}, "
              f"expected {e.flat[worst]:.6g}); tolerance {atol:g}")
    return Verdict(passed, "exact", metric, float(a.flat[worst]), float(e.flat[worst]), -atol, atol, detail,
                   {"max_abs_error": max_err})


def equivalence(
    samples,
    *,
    ref_mean: float,
    ref_se: float,
    margin: float,
    z: float = 3.0,
    metric: str = "value",
) -> Verdict:
    """Two-sided equivalence of the learner's mean with a reference mean.

    samples: one value per independent run, [n] (n large: a normal approximation is used).
    ref_se: standard error of the reference mean (its per-run SD / sqrt(its number of runs)).
    margin: the implementation tolerance, in the metric's units.

    Pass when |mean(samples) - ref_mean| <= margin + z * sqrt(SE_learner^2 + ref_se^2).
    """
    x = _finite_1d(samples, metric)
    if x.size < 2:
        raise ValueError(f"{metric}: equivalence needs at least 2 runs, got {x.size}")
    mean = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(x.size))
    half_width = margin + z * float(np.hypot(se, ref_se))
    low, high = ref_mean - half_width, ref_mean + half_width
    passed = low <= mean <= high
    detail = (f"{metric}: {mean:.4g} over {x.size} runs (SE {se:.2g}); reference {ref_mean:.4g}; "
              f"pass range [{low:.4g}, {high:.4g}]")
    return Verdict(passed, "equivalence", metric, mean, ref_mean, low, high, detail,
                   {"n": int(x.size), "se": se, "ref_se": float(ref_se), "margin": float(margin), "z": z})


def equivalence_to(samples, entry: dict, *, margin: float, z: float = 3.0, metric: str = "value") -> Verdict:
    """`equivalence` against a reference entry as stored in autograder/references: {"mean": its mean,
    "sd": the SD of one run, "n": its number of runs}; the reference's SE is sd / sqrt(n)."""
    return equivalence(samples, ref_mean=entry["mean"], ref_se=entry["sd"] / np.sqrt(entry["n"]), margin=margin,
                       z=z, metric=metric)


def non_inferiority(
    seed_values,
    *,
    ref_mean: float,
    delta: float,
    confidence: float = 0.95,
    metric: str = "value",
) -> Verdict:
    """One-sided non-inferiority over a few seeds.

    seed_values: one score per seed, [n], n >= 2. Pass when the one-sided t lower confidence
    bound of the seed mean is >= ref_mean - delta. With identical seeds (SD 0) the bound is the mean.
    """
    x = _finite_1d(seed_values, metric)
    if x.size < 2:
        raise ValueError(f"{metric}: non-inferiority needs at least 2 seeds, got {x.size}")
    mean = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(x.size))
    t_crit = float(_scipy_stats.t.ppf(confidence, df=x.size - 1))
    lower = mean - t_crit * se
    threshold = ref_mean - delta
    passed = lower >= threshold
    detail = (f"{metric}: mean {mean:.4g} over {x.size} seeds, {confidence:.0%} lower bound {lower:.4g}; "
              f"needs >= {threshold:.4g} (reference {ref_mean:.4g} - {delta:.4g})")
    return Verdict(passed, "non_inferiority", metric, mean, ref_mean, threshold, np.inf, detail,
                   {"n": int(x.size), "lower_bound": lower, "t_crit": t_crit})


def noninferiority_delta(ref_mean: float, ref_sd: float, random_mean: float) -> float:
    """The margin of section 6.4: max(2 * sample SD of the reference, 5% of the reference's
    improvement over a random policy)."""
    return max(2.0 * ref_sd, 0.05 * (ref_mean - random_mean))


def population_to_sample_sd(sd_pop: float, n: int) -> float:
    """CleanRL reports np.std (ddof=0) over n seeds; the sample SD is sd * sqrt(n / (n - 1))."""
    return sd_pop * np.sqrt(n / (n - 1))


def success_count(seed_values, *, threshold: float, min_successes: int, metric: str = "value") -> Verdict:
    """Pass when at least `min_successes` seeds reach `threshold` (for capped scores)."""
    x = _finite_1d(seed_values, metric)
    successes = int((x >= threshold).sum())
    passed = successes >= min_successes
    detail = f"{metric}: {successes} of {x.size} seeds reached {threshold:g}; {min_successes} needed"
    return Verdict(passed, "success_count", metric, float(successes), float(min_successes),
                   float(min_successes), np.inf, detail, {"n": int(x.size), "values": x.tolist()})


def iqm(scores) -> float:
    """Interquartile mean: the mean of the middle 50% of all values (25% trimmed each side)."""
    x = np.sort(_finite_1d(scores, "scores"))
    return float(_scipy_stats.trim_mean(x, 0.25))


def stratified_bootstrap_ci(
    scores,
    statistic=iqm,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Percentile bootstrap CI of `statistic`, resampling runs within each task (stratified).

    scores [n_runs, n_tasks]. Each replicate draws n_runs runs with replacement separately for
    every task, then applies `statistic` to the whole resampled matrix.
    """
    s = np.asarray(scores, dtype=float)
    if s.ndim == 1:
        s = s[:, None]
    n_runs, n_tasks = s.shape
    idx = rng.integers(n_runs, size=(reps, n_runs, n_tasks))  # [B, n, m]
    resampled = np.take_along_axis(s[None], idx, axis=1)  # [B, n, m]
    values = np.array([statistic(r) for r in resampled])
    tail = (1 - confidence) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))
