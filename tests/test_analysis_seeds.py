"""snnlab.analysis.seeds: the mean over seeds and its Student-t interval, against scipy."""

import pytest
from scipy import stats

from snnlab.analysis.seeds import seed_summary


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
