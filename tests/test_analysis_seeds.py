"""snnlab.analysis.seeds against SciPy's Student-t machinery and hand-worked cases."""

import math

import pytest
from scipy import stats

from snnlab.analysis.seeds import mean_interval, paired_gap, seed_gap, seed_summary


def test_mean_interval_matches_scipy_t_interval():
    values = [71.2, 74.0, 69.5, 73.1, 72.4]
    got = mean_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=sum(values) / 5, scale=stats.sem(values))
    assert got.n == 5
    assert got.low == pytest.approx(low, abs=1e-4)
    assert got.high == pytest.approx(high, abs=1e-4)


def test_mean_interval_hand_case_and_errors():
    # values 1, 2, 3: mean 2, s = 1, t(0.975, 2) = 4.302653 -> half width 4.302653 / sqrt(3)
    got = mean_interval([1.0, 2.0, 3.0])
    assert got.mean == 2.0 and got.std == pytest.approx(1.0)
    assert got.half_width == pytest.approx(4.302653 / math.sqrt(3), abs=1e-4)
    assert mean_interval([5.0, 5.0]).half_width == 0.0
    with pytest.raises(ValueError, match="at least two seeds"):
        mean_interval([1.0])
    with pytest.raises(ValueError, match="finite"):
        mean_interval([1.0, float("nan")])


def test_paired_gap_matches_scipy_ttest_rel():
    a = [80.1, 82.5, 79.9, 81.0, 83.2]
    b = [81.0, 83.9, 80.2, 82.4, 84.0]  # b is better on every seed by a varying margin
    got = paired_gap(a, b)
    res = stats.ttest_rel(b, a)
    assert got.difference == pytest.approx(sum(y - x for x, y in zip(a, b)) / 5)
    # resolved exactly when the paired test's p-value is below 5 %
    assert got.resolved == (res.pvalue < 0.05)
    assert got.difference / got.standard_error == pytest.approx(res.statistic, rel=1e-9)
    # the same numbers as independent samples do not resolve: the seeds' shared luck dominates
    assert not seed_gap(a, b).resolved and got.resolved


def test_paired_gap_needs_matching_seeds():
    with pytest.raises(ValueError, match="one result per seed"):
        paired_gap([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="two or more seeds"):
        paired_gap([1.0], [2.0])



@pytest.mark.parametrize("values,confidence", [([0.967, 0.956, 0.98, 0.98, 0.967], 0.95),
                                               ([0.1, 0.4], 0.9), ([3.0, 1.0, 2.0, 7.5], 0.99)])
def test_interval_matches_scipy(values, confidence):
    s = seed_summary(values, confidence)
    low, high = stats.t.interval(confidence, len(values) - 1, loc=stats.tmean(values), scale=stats.sem(values))
    assert s.low == pytest.approx(low, abs=1e-5) and s.high == pytest.approx(high, abs=1e-5)
    assert s.std == pytest.approx(stats.tstd(values)) and s.n == len(values)


def test_identical_results_have_a_zero_width_interval_and_format():
    s = seed_summary([0.5, 0.5, 0.5])
    assert s.half_width == 0 and s.low == s.high == 0.5
    assert s.format(100, unit=" %") == "50.0 ± 0.0 % (95 % interval over 3 seeds)"


@pytest.mark.parametrize("values,confidence,match", [([0.9], 0.95, "at least two seeds"),
                                                     ([0.9, float("nan")], 0.95, "finite"),
                                                     ([0.9, 0.8], 1.0, "confidence")])
def test_bad_input_raises_clear_errors(values, confidence, match):
    with pytest.raises(ValueError, match=match):
        seed_summary(values, confidence)


def test_position_of_an_interval_against_a_value_and_a_range():
    m = mean_interval([1.0, 2.0, 3.0])   # 2 ± 4.303 * 1 / sqrt(3) = 2 ± 2.484: [-0.484, 4.484]
    assert (m.low, m.high) == pytest.approx((2 - 2.4843, 2 + 2.4843), abs=1e-3)
    assert m.position(-1.0) == "above" and m.position(5.0) == "below"
    assert m.position(0.0) == "unresolved" and m.position(4.0) == "unresolved"
    assert m.position(-1.0, 5.0) == "inside"
    assert m.position(0.0, 5.0) == "unresolved"      # straddles the lower bound
    assert m.position(4.6, 9.0) == "below" and m.position(-9.0, -0.5) == "above"
    with pytest.raises(ValueError, match="low <= high"):
        m.position(2.0, 1.0)


def test_describe_and_verdict_put_the_position_in_words():
    m = mean_interval([1.0, 2.0, 3.0])   # [-0.484, 4.484]
    assert m.describe(0.0) == "straddles zero"
    assert m.verdict(0.0) == "does not resolve at this budget (straddles zero)"
    assert m.describe(-1.0) == "lies above the paper's value"
    assert m.verdict(-1.0, name="the bound") == "resolved: above the bound"
    assert m.describe(-1.0, 5.0) == "lies inside the paper's range"
    assert m.verdict(4.6, 9.0) == "resolved: below the paper's range"
    assert mean_interval([0.5, 0.6, 0.7]).verdict(0.0) == "resolved: above zero"
