"""snnlab.viz.Findings: numbers written for prose, and the three verdicts' wording.

Every expected string is written out by hand (what a reader should see), not rebuilt from the
formatting code."""

import math

import pytest

from snnlab.analysis.ottt import seed_gap
from snnlab.viz import Findings

M = "\u2212"  # the minus sign findings use


@pytest.mark.parametrize(
    "args, kwargs, expected",
    [
        ((0.0921,), {}, "0.0921"),
        ((0.09214,), {}, "0.0921"),
        ((1797,), {}, "1,797"),
        ((1797.4,), {"digits": 5}, "1,797.4"),
        ((70000,), {}, "70,000"),
        ((-0.25,), {}, f"{M}0.250"),
        ((0.25,), {"signed": True}, "+0.250"),
        ((-0.0001,), {"decimals": 1}, "0.0"),  # no "-0.0"
        ((0.741,), {"percent": True}, "74.1 %"),
        ((0.7412,), {"percent": True, "decimals": 2}, "74.12 %"),
        ((12.46,), {"unit": "ms"}, "12.5 ms"),
        ((2.314,), {"unit": "x"}, "\u00d72.31"),
        ((1.234e-5,), {}, f"1.23 \u00d7 10\u207b\u2075"),
        ((-4e-4,), {"digits": 2}, f"{M}4.0 \u00d7 10\u207b\u2074"),
        ((9.996e-4,), {"digits": 3}, f"1.00 \u00d7 10\u207b\u00b3"),
        ((2.5e8,), {}, "2.50 \u00d7 10\u2078"),
        ((0.092,), {"digits": None}, "0.092"),
        ((93.52,), {"digits": None}, "93.52"),
        ((2.0,), {"digits": None}, "2"),
        ((1e-30,), {"digits": None}, "1 \u00d7 10\u207b\u00b3\u2070"),
        ((0,), {}, "0.00"),
    ],
)
def test_num(args, kwargs, expected):
    assert Findings.num(*args, **kwargs) == expected


def test_num_rejects_what_is_not_a_finite_number():
    with pytest.raises(TypeError, match="number"):
        Findings.num("12")
    with pytest.raises(ValueError, match="finite"):
        Findings.num(math.nan)


@pytest.mark.parametrize(
    "args, kwargs, expected",
    [
        ((74.1234, 1.3456), {"n": 5, "unit": "%"}, "74.1 \u00b1 1.3 % (5 seeds)"),
        ((0.741234, 0.013456), {"n": 5, "percent": True}, "74.1 \u00b1 1.3 % (5 seeds)"),
        ((74.1234, 0.05678), {"n": 3, "unit": "%"}, "74.123 \u00b1 0.057 % (3 seeds)"),
        ((92.78, 0.34), {"n": 1, "unit": "%", "what": "runs"}, "92.78 \u00b1 0.34 % (1 run)"),
        ((-1.26, 2.9), {"signed": True, "unit": "points"}, f"{M}1.3 \u00b1 2.9 points"),
        ((12.0, 0.0), {}, "12.0 \u00b1 0"),
    ],
)
def test_estimate_rounds_the_mean_to_what_the_interval_resolves(args, kwargs, expected):
    assert Findings.estimate(*args, **kwargs) == expected


def test_compare_agrees_within_tolerance_and_says_by_how_much_when_not():
    f = Findings().compare("σ'(0 − V_th)", 0.0921, 0.092, tol=5e-4).compare("latency", 0.5, 0.288, tol=0.01)
    assert f.records[0].ok and not f.records[1].ok
    assert f.records[0].text == "**σ'(0 − V_th):** 0.0921 here against the paper's 0.092: agrees (within \u00b10.0005)."
    assert f.records[1].text == ("**latency:** 0.500 here against the paper's 0.288: does not agree "
                                 "(off by +0.212, tolerance \u00b10.01).")
    relative = Findings().compare("ratio", 0.16, 0.159, tol=0.05, relative=True, source="the patent")
    assert relative.records[0].text == "**ratio:** 0.160 here against the patent's 0.159: agrees (within \u00b15 %)."
    percent = Findings().compare("accuracy", 0.9123, 0.9352, tol=0.01, percent=True)
    assert percent.records[0].text == ("**accuracy:** 91.2 % here against the paper's 93.52 %: does not agree "
                                       f"(off by {M}2.29 %, tolerance \u00b11 %).")


def test_gap_is_resolved_only_when_the_interval_excludes_zero():
    f = Findings()
    f.gap("OTTT_A − BPTT", 1.2, 2.9, n=4, paper=0.74)
    f.gap("OTTT_O − BPTT", -3.1, 1.0, n=4, paper=0.74)
    f.gap("batch 1 − batch 16", 0.4, 0.4, n=4)  # on the boundary: zero is inside
    assert [r.ok for r in f.records] == [False, True, False]
    assert f.records[0].text == ("**OTTT_A − BPTT:** +1.2 \u00b1 2.9 points (95 % interval, 4 seeds): "
                                 "does not resolve at this budget (the paper: +0.74 points).")
    assert f.records[1].text == (f"**OTTT_O − BPTT:** {M}3.1 \u00b1 1.0 points (95 % interval, 4 seeds): "
                                 "resolved, with the opposite sign to the paper's +0.74 points.")


def test_gap_reads_a_seed_gap():
    gap = seed_gap([90.0, 91.0, 92.0, 91.0], [95.0, 96.0, 97.0, 96.0])  # +5 points, tight
    f = Findings().gap("b − a", gap, None, n=4, unit="points")
    assert f.records[0].ok
    assert f.records[0].values["half_width"] == pytest.approx(gap.threshold)
    assert f.records[0].text.startswith("**b − a:** +5.0 \u00b1 1.")


def test_claim_add_and_rendering():
    f = Findings("What this run shows:")
    f.claim("Fig. 5", "SEW AND goes silent in the deep blocks", True, evidence="firing rate 0.000 at block 50")
    f.claim("Fig. 6", "the gradient decays towards the input", False,
            otherwise="the gradient grows towards the input", why="The residual branch carries gradient too")
    f.add("A free note with $T = 4$ math")
    markdown = f._repr_markdown_()
    assert markdown == (
        "What this run shows:\n\n"
        "* **Fig. 5:** SEW AND goes silent in the deep blocks: holds here (firing rate 0.000 at block 50).\n"
        "* **Fig. 6:** the gradient grows towards the input: does not hold here. The residual branch carries "
        "gradient too.\n"
        "* A free note with $T = 4$ math.")
    assert "**" not in str(f) and str(f).count("\u2022") == 3
    assert f["Fig. 5"].ok and not f["Fig. 6"].ok
    with pytest.raises(KeyError, match="Fig. 7"):
        f["Fig. 7"]


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="tol"):
        Findings().compare("x", 1, 1, tol=-1)
    with pytest.raises(ValueError, match="half_width"):
        Findings().gap("x", 1, -0.5)
    with pytest.raises(ValueError, match="nothing to show"):
        Findings()._repr_markdown_()


def test_an_explanation_ending_in_a_full_stop_gets_one_full_stop():
    f = Findings().claim("x", "a statement", True, why="Because it is so.")
    assert f.records[0].text == "**x:** a statement: holds here. Because it is so."
