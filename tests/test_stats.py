"""The matching rules of autograder.stats on synthetic data with known answers, and their error
rates by simulation (fixed seeds, a few seconds in all).

Hand computations are written out next to each assertion so that a reader can check them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from autograder import stats
from autograder.stats import Verdict

# --------------------------------------------------------------------------------------------
# exact
# --------------------------------------------------------------------------------------------


def test_exact_within_tolerance_passes():
    v = stats.exact([1.0, 2.0, 3.0], [1.0, 2.005, 3.0], atol=1e-2, metric="V")
    assert isinstance(v, Verdict)
    assert v.passed and v.rule == "exact" and v.metric == "V"
    assert v.extra["max_abs_error"] == pytest.approx(0.005)
    # The worst entry is reported, with its index.
    assert v.estimate == 2.0 and v.reference == 2.005
    assert "at index" in v.detail and "tolerance 0.01" in v.detail


def test_exact_outside_tolerance_fails_and_names_the_worst_entry():
    actual = np.array([[0.0, 1.0], [2.0, 3.5]])
    expected = np.array([[0.0, 1.01], [2.0, 3.0]])
    v = stats.exact(actual, expected, atol=1e-2)
    assert not v.passed
    assert v.extra["max_abs_error"] == pytest.approx(0.5)
    assert (v.estimate, v.reference) == (3.5, 3.0)
    assert "at index" in v.detail and "got 3.5, expected 3" in v.detail


def test_exact_detail_shows_a_plain_index():
    v = stats.exact(np.array([[0.0, 1.0], [2.0, 3.5]]), np.array([[0.0, 1.0], [2.0, 3.0]]), atol=1e-2)
    assert "at index (1, 1)" in v.detail


def test_exact_tolerance_is_inclusive():
    assert stats.exact(1.5, 1.0, atol=0.5).passed  # |1.5 - 1.0| = 0.5 exactly
    assert not stats.exact(1.5, 1.0, atol=np.nextafter(0.5, 0.0)).passed


def test_exact_scalar():
    v = stats.exact(0.1 + 0.2, 0.3, atol=1e-12)
    assert v.passed and "index" not in v.detail


def test_exact_shape_mismatch_fails():
    v = stats.exact(np.zeros(3), np.zeros((3, 1)), atol=1.0)
    assert not v.passed
    assert "shape (3,)" in v.detail and "(3, 1)" in v.detail


@pytest.mark.parametrize("actual, expected", [([1.0, np.nan], [1.0, 2.0]), ([1.0, 2.0], [1.0, np.nan]),
                                              ([np.nan], [np.nan]), ([np.inf], [1e308])])
def test_exact_nan_or_inf_fails(actual, expected):
    # inf - inf warns "invalid value" (checks run the rules under np.errstate(all="ignore")).
    with np.errstate(invalid="ignore"):
        v = stats.exact(actual, expected, atol=1e9)
    assert not v.passed
    assert v.extra["max_abs_error"] == math.inf


def test_exact_empty_arrays_do_not_crash():
    v = stats.exact([], [], atol=1.0)
    assert v.passed


# --------------------------------------------------------------------------------------------
# equivalence
# --------------------------------------------------------------------------------------------


def test_equivalence_pass_range_by_hand():
    # samples 1..5: mean 3, sample variance 2.5, SE = sqrt(2.5 / 5) = sqrt(0.5)
    # combined SE = sqrt(0.5 + 0.5^2) = sqrt(0.75); half width = 0.2 + 3 * sqrt(0.75) = 2.798076...
    samples = [1.0, 2.0, 3.0, 4.0, 5.0]
    half = 0.2 + 3.0 * math.sqrt(0.75)
    v = stats.equivalence(samples, ref_mean=4.0, ref_se=0.5, margin=0.2, z=3.0, metric="reward")
    assert v.passed and v.rule == "equivalence"
    assert v.estimate == pytest.approx(3.0)
    assert v.low == pytest.approx(4.0 - half) and v.high == pytest.approx(4.0 + half)
    assert v.extra["se"] == pytest.approx(math.sqrt(0.5))
    assert v.extra["n"] == 5
    # Reference 6: the pass range starts at 6 - 2.798 = 3.202 > 3: fail.
    v = stats.equivalence(samples, ref_mean=6.0, ref_se=0.5, margin=0.2, z=3.0)
    assert not v.passed and v.low == pytest.approx(6.0 - half)
    # And on the other side: reference 0 -> range ends at 2.798 < 3: fail.
    assert not stats.equivalence(samples, ref_mean=0.0, ref_se=0.5, margin=0.2).passed


def test_equivalence_mean_exactly_on_the_boundary_passes():
    # [0, 2]: mean 1, SD sqrt(2), SE = sqrt(2) / sqrt(2) = 1 exactly in floating point.
    # ref_se 0, margin 0.5, z 2 -> half width 2.5 exactly.
    samples = [0.0, 2.0]
    low_edge = stats.equivalence(samples, ref_mean=3.5, ref_se=0.0, margin=0.5, z=2.0)
    assert low_edge.low == 1.0 == low_edge.estimate and low_edge.passed
    high_edge = stats.equivalence(samples, ref_mean=-1.5, ref_se=0.0, margin=0.5, z=2.0)
    assert high_edge.high == 1.0 == high_edge.estimate and high_edge.passed
    # One ulp further out fails.
    assert not stats.equivalence(samples, ref_mean=np.nextafter(3.5, 4.0), ref_se=0.0, margin=0.5, z=2.0).passed
    assert not stats.equivalence(samples, ref_mean=np.nextafter(-1.5, -2.0), ref_se=0.0, margin=0.5, z=2.0).passed


@pytest.mark.parametrize("bad", [[1.0, np.nan, 2.0], [1.0, np.inf], [-np.inf, 0.0]])
def test_equivalence_rejects_nan_and_inf(bad):
    with pytest.raises(ValueError, match="NaN or infinite"):
        stats.equivalence(bad, ref_mean=1.0, ref_se=0.1, margin=0.0)


def test_equivalence_needs_two_runs():
    with pytest.raises(ValueError):
        stats.equivalence([1.0], ref_mean=1.0, ref_se=0.1, margin=0.0)
    with pytest.raises(ValueError):
        stats.equivalence([], ref_mean=1.0, ref_se=0.1, margin=0.0)


def test_equivalence_false_failure_rate_by_simulation():
    """A correct learner (its runs from the reference distribution) with n = 2000 runs, against a
    reference mean that is itself estimated from 2000 runs: with margin 0 and z = 3 the two-sided
    failure rate is 2 * Phi(-3) = 0.27%. Over 2000 simulated checks it must stay under 1%."""
    rng = np.random.default_rng(20240601)
    mu, sigma, n, n_ref, sims = 1.55, 1.0, 2000, 2000, 2000
    ref_se = sigma / math.sqrt(n_ref)
    failures = 0
    for _ in range(sims):
        ref_mean = mu + ref_se * rng.standard_normal()
        samples = rng.normal(mu, sigma, size=n)
        failures += not stats.equivalence(samples, ref_mean=ref_mean, ref_se=ref_se, margin=0.0, z=3.0).passed
    rate = failures / sims
    assert rate < 0.01, f"false-failure rate {rate:.2%}"


def test_equivalence_detects_a_real_difference():
    # A learner off by 10 combined SEs fails essentially always.
    rng = np.random.default_rng(7)
    n, sigma, ref_se = 2000, 1.0, 1.0 / math.sqrt(2000)
    shift = 10 * math.hypot(sigma / math.sqrt(n), ref_se)
    passes = sum(stats.equivalence(rng.normal(shift, sigma, n), ref_mean=0.0, ref_se=ref_se, margin=0.0).passed
                 for _ in range(200))
    assert passes == 0


# --------------------------------------------------------------------------------------------
# non-inferiority
# --------------------------------------------------------------------------------------------

FIVE_SEEDS = [12.0, 15.0, 11.0, 14.0, 13.0]  # mean 13, SD sqrt(2.5), SE sqrt(0.5)


def test_non_inferiority_t_lower_bound_by_hand():
    t_crit = sps.t.ppf(0.95, df=4)  # 2.1318...
    lower = 13.0 - t_crit * math.sqrt(0.5)  # 11.4926
    assert lower == pytest.approx(11.492556680937678)
    # threshold 14 - 2.6 = 11.4 <= 11.4926: pass
    v = stats.non_inferiority(FIVE_SEEDS, ref_mean=14.0, delta=2.6, metric="return")
    assert v.passed and v.rule == "non_inferiority"
    assert v.estimate == pytest.approx(13.0)
    assert v.extra["lower_bound"] == pytest.approx(lower)
    assert v.extra["t_crit"] == pytest.approx(t_crit)
    assert v.low == pytest.approx(11.4) and v.high == math.inf
    # threshold 14 - 2.5 = 11.5 > 11.4926: fail, although the mean (13) is well above 11.5
    v = stats.non_inferiority(FIVE_SEEDS, ref_mean=14.0, delta=2.5)
    assert not v.passed and v.low == pytest.approx(11.5)


def test_non_inferiority_confidence_level_changes_the_quantile():
    v = stats.non_inferiority(FIVE_SEEDS, ref_mean=14.0, delta=2.5, confidence=0.90)
    assert v.extra["t_crit"] == pytest.approx(sps.t.ppf(0.90, df=4))
    assert v.passed  # 13 - 1.5332 * 0.7071 = 11.916 >= 11.5


def test_non_inferiority_identical_seeds_use_the_mean():
    v = stats.non_inferiority([500.0] * 5, ref_mean=490.0, delta=23.365)
    assert v.passed and v.extra["lower_bound"] == 500.0
    v = stats.non_inferiority([466.0] * 5, ref_mean=490.0, delta=23.365)
    assert not v.passed and v.extra["lower_bound"] == 466.0


def test_non_inferiority_input_validation():
    with pytest.raises(ValueError):
        stats.non_inferiority([480.0], ref_mean=490.0, delta=20.0)
    with pytest.raises(ValueError, match="NaN"):
        stats.non_inferiority([480.0, np.nan, 470.0], ref_mean=490.0, delta=20.0)


def test_noninferiority_delta_section_6_worked_example():
    # CartPole PPO 500k: mu_ref 490.0, sigma_ref 7.5, mu_random 22.7
    # delta = max(2 * 7.5, 0.05 * (490.0 - 22.7)) = max(15, 23.365) = 23.365 ("about 23.4")
    delta = stats.noninferiority_delta(490.0, 7.5, 22.7)
    assert delta == pytest.approx(23.365)
    assert round(delta, 1) == 23.4
    # threshold 490 - 23.365 = 466.635 (section 6 says "about 466.7")
    v = stats.non_inferiority([480.0, 485.0, 490.0, 495.0, 500.0], ref_mean=490.0, delta=delta)
    assert v.low == pytest.approx(466.635)
    assert v.low == pytest.approx(466.7, abs=0.1)
    assert v.passed  # 490 - 2.132 * 3.536 = 482.5 >= 466.6


def test_noninferiority_delta_uses_twice_the_sd_when_larger():
    assert stats.noninferiority_delta(100.0, 10.0, 90.0) == pytest.approx(20.0)  # max(20, 0.5)


def test_population_to_sample_sd_three_seeds():
    assert stats.population_to_sample_sd(1.0, 3) == pytest.approx(1.224744871, rel=1e-9)  # sqrt(3/2)
    assert stats.population_to_sample_sd(10.0, 3) == pytest.approx(12.247, abs=1e-3)
    # It is exactly the ratio numpy's two SD conventions give on 3 values.
    x = np.array([3.0, 7.0, 11.0])
    assert stats.population_to_sample_sd(x.std(ddof=0), 3) == pytest.approx(x.std(ddof=1))


def _non_inferiority_failure_rate(rng, true_mean, *, ref_mean, sigma, delta, n=5, sims=4000) -> float:
    draws = rng.normal(true_mean, sigma, size=(sims, n))
    failures = sum(not stats.non_inferiority(row, ref_mean=ref_mean, delta=delta).passed for row in draws)
    return failures / sims


def test_non_inferiority_false_failure_rate_by_simulation():
    """A correct learner: 5 seeds from the reference distribution N(490, 7.5), delta = 2 sigma (the
    section-6 rule when 2 SD is the larger term). The false-failure rate is P(noncentral t with
    df 4 and nc = delta * sqrt(n) / sigma < t_0.95) = 2.5%; the simulation must land in [2%, 9%]
    and agree with that value within 4 binomial SEs."""
    rng = np.random.default_rng(12345)
    ref_mean, sigma, n, sims = 490.0, 7.5, 5, 4000
    delta = stats.noninferiority_delta(ref_mean, sigma, random_mean=480.0)
    assert delta == pytest.approx(2 * sigma)
    rate = _non_inferiority_failure_rate(rng, ref_mean, ref_mean=ref_mean, sigma=sigma, delta=delta, sims=sims)
    expected = sps.nct.cdf(sps.t.ppf(0.95, n - 1), n - 1, delta * math.sqrt(n) / sigma)
    assert 0.02 <= rate <= 0.09, f"false-failure rate {rate:.2%}"
    assert abs(rate - expected) < 4 * math.sqrt(expected * (1 - expected) / sims), (rate, expected)


def test_non_inferiority_size_is_five_percent_at_the_margin():
    """A learner whose true mean sits exactly at the margin (ref - delta) passes 5% of the time:
    that is what the 95% lower bound guarantees."""
    rng = np.random.default_rng(54321)
    ref_mean, sigma, delta, sims = 490.0, 7.5, 15.0, 4000
    fail = _non_inferiority_failure_rate(rng, ref_mean - delta, ref_mean=ref_mean, sigma=sigma, delta=delta, sims=sims)
    pass_rate = 1 - fail
    assert 0.035 <= pass_rate <= 0.065, f"pass rate at the margin {pass_rate:.2%}"


def test_non_inferiority_detects_a_shift_of_three_deltas():
    rng = np.random.default_rng(999)
    ref_mean, sigma, delta = 490.0, 7.5, 15.0
    fail = _non_inferiority_failure_rate(rng, ref_mean - 3 * delta, ref_mean=ref_mean, sigma=sigma,
                                         delta=delta, sims=4000)
    assert fail > 0.99, f"failure rate {fail:.2%}"


# --------------------------------------------------------------------------------------------
# success count
# --------------------------------------------------------------------------------------------


def test_success_count_four_of_five_passes():
    v = stats.success_count([480.0, 500.0, 475.0, 490.0, 300.0], threshold=475.0, min_successes=4)
    assert v.passed and v.rule == "success_count"
    assert v.estimate == 4.0 and v.low == 4.0  # 475 itself counts as reaching the threshold
    assert v.extra["n"] == 5 and v.extra["values"][4] == 300.0
    assert "4 of 5 seeds" in v.detail


def test_success_count_three_of_five_fails():
    v = stats.success_count([480.0, 500.0, 474.9, 490.0, 300.0], threshold=475.0, min_successes=4)
    assert not v.passed and v.estimate == 3.0
    assert "3 of 5 seeds" in v.detail


def test_success_count_rejects_nan():
    with pytest.raises(ValueError):
        stats.success_count([500.0, np.nan], threshold=475.0, min_successes=1)


# --------------------------------------------------------------------------------------------
# IQM and the stratified bootstrap
# --------------------------------------------------------------------------------------------


def test_iqm_eight_values_by_hand():
    # sorted: -50 1 | 3 4 5 7 | 10 100 -> drop 2 each side -> mean(3, 4, 5, 7) = 4.75
    assert stats.iqm([10.0, 1.0, 7.0, 3.0, 100.0, 5.0, -50.0, 4.0]) == pytest.approx(4.75)


def test_iqm_ten_values_by_hand():
    # 25% of 10 = 2.5 -> scipy drops 2 each side: mean(3..8) = 5.5
    assert stats.iqm(np.arange(1.0, 11.0)) == pytest.approx(5.5)


@pytest.mark.parametrize("shape", [(37,), (8, 5), (3, 4, 2)])
def test_iqm_matches_scipy_trim_mean(shape):
    x = np.random.default_rng(3).standard_normal(shape) * 10
    assert stats.iqm(x) == pytest.approx(sps.trim_mean(x, 0.25, axis=None))


def test_iqm_rejects_nan():
    with pytest.raises(ValueError):
        stats.iqm([1.0, np.nan, 2.0, 3.0])


def test_stratified_bootstrap_ci_contains_the_true_iqm():
    # The IQM of N(10, 1) is 10 (symmetric distribution).
    scores = np.random.default_rng(1).normal(10.0, 1.0, size=(1000, 2))
    low, high = stats.stratified_bootstrap_ci(scores, reps=500, rng=np.random.default_rng(2))
    assert low < 10.0 < high
    assert low <= stats.iqm(scores) <= high
    assert high - low < 0.2  # SE of the IQM over 2000 values is about 0.025


def test_stratified_bootstrap_ci_is_deterministic_for_a_fixed_rng():
    scores = np.random.default_rng(5).normal(size=(20, 3))
    a = stats.stratified_bootstrap_ci(scores, reps=300, rng=np.random.default_rng(11))
    b = stats.stratified_bootstrap_ci(scores, reps=300, rng=np.random.default_rng(11))
    c = stats.stratified_bootstrap_ci(scores, reps=300, rng=np.random.default_rng(12))
    assert a == b
    assert a != c
    assert a[0] < a[1]


def test_stratified_bootstrap_resamples_within_each_task():
    # Task 0 scores all 0, task 1 all 1: a stratified resample always has n zeros and n ones, so
    # the mean is 0.5 in every replicate. (Pooled resampling would spread it.)
    scores = np.column_stack([np.zeros(10), np.ones(10)])
    low, high = stats.stratified_bootstrap_ci(scores, statistic=np.mean, reps=200, rng=np.random.default_rng(0))
    assert low == high == 0.5


def test_stratified_bootstrap_accepts_one_task_as_1d():
    x = np.random.default_rng(8).normal(size=50)
    a = stats.stratified_bootstrap_ci(x, reps=200, rng=np.random.default_rng(4))
    b = stats.stratified_bootstrap_ci(x[:, None], reps=200, rng=np.random.default_rng(4))
    assert a == b


def test_verdict_to_dict_is_json_friendly():
    import json

    d = stats.non_inferiority(FIVE_SEEDS, ref_mean=14.0, delta=2.5).to_dict()
    assert set(d) >= {"passed", "rule", "metric", "estimate", "reference", "low", "high", "detail", "extra"}
    assert all(type(d[k]) is float for k in ("estimate", "reference", "low"))
    # A one-sided rule has no upper bound: strict JSON has no Infinity, so it is written as null.
    assert d["high"] is None
    assert json.loads(json.dumps(d, allow_nan=False))["high"] is None


def test_exact_equal_infinities_match():
    # UCB scores untried arms +inf: an expected +inf is met by an actual +inf.
    assert stats.exact([np.inf, 1.0], [np.inf, 1.0], atol=1e-9).passed


def test_equivalence_to_reads_a_reference_entry():
    """equivalence_to(samples, {"mean", "sd", "n"}) is equivalence with ref_se = sd / sqrt(n)."""
    x = np.random.default_rng(4).normal(1.0, 0.5, size=200)
    entry = {"mean": 1.02, "sd": 0.5, "n": 10_000}
    got = stats.equivalence_to(x, entry, margin=0.01, z=3.0, metric="m")
    want = stats.equivalence(x, ref_mean=1.02, ref_se=0.005, margin=0.01, z=3.0, metric="m")
    assert got.to_dict() == want.to_dict()
    far = stats.equivalence_to(x + 1.0, entry, margin=0.01, metric="m")
    assert not far.passed
