"""``snnlab bench neurons`` in quick mode: the JSON has every workload, baseline, ratio and target.

No timing assertions (timings depend on the machine and its load); only structure and sign.
"""

from __future__ import annotations

import argparse
import json
import math

import pytest

from snnlab.bench import BENCHMARKS
from snnlab.bench import neurons as bench


def _quick(**overrides) -> dict:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--quick"])
    for key, value in overrides.items():
        setattr(args, key, value)
    return bench.run(args)


def _positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def result() -> dict:
    return _quick()


def test_registered():
    assert BENCHMARKS["neurons"] == "snnlab.bench.neurons"


def test_quick_run_is_json_with_every_part(result):
    json.dumps(result)  # serialisable
    assert result["settings"]["quick"] is True
    assert set(result["libraries"]) == set(bench.LIBRARIES)
    for lib, entry in result["libraries"].items():
        assert entry["mapping"]
        assert entry["available"] or "reason" in entry  # a missing baseline says why
    measured = [lib for lib, e in result["libraries"].items() if e["available"]]
    assert "snnlab" in measured and "snnlab-torch" in measured

    a = result["workload_a"]
    for lib in measured:
        for phase in ("forward", "forward_backward"):
            timing = a["results"][lib][phase]
            assert _positive(timing["min_s"]) and timing["min_s"] <= timing["median_s"]
    for phase in ("forward", "forward_backward"):
        assert _positive(a["roofline"][phase]["min_s"])
        ratios = a["ratios"][phase]
        assert _positive(ratios["snnlab_over_roofline"])
        for lib in measured:
            if lib != "snnlab":
                assert _positive(ratios[f"{lib}_over_snnlab"])

    b = result["workload_b"]
    assert [int(n) for n in b["by_n"]] == b["sizes"]
    for entry in b["by_n"].values():
        for lib in measured:
            r = entry["results"][lib]
            for phase in ("forward", "backward", "forward_backward"):
                assert _positive(r[phase]["min_s"])
            assert r["saved_for_backward_bytes"] > 0
        for phase in ("forward", "backward", "forward_backward", "saved_for_backward_bytes"):
            for lib in measured:
                if lib != "snnlab":
                    assert _positive(entry["ratios"][phase][f"{lib}_over_snnlab"])
        for phase in ("forward", "backward", "forward_backward"):  # the shared Linear, timed alone
            assert _positive(entry["linear_only"][phase]["min_s"])

    c = result["workload_c_thread_team"]
    assert [row["neuron_steps"] for row in c["rows"]] == [4096, 65536]
    for row in c["rows"]:
        assert _positive(row["one_thread"]["min_s"]) and _positive(row["team"]["min_s"])
        assert row["team_speedup"] == pytest.approx(row["one_thread"]["min_s"] / row["team"]["min_s"])
    faster = [row["neuron_steps"] for row in c["rows"] if row["team_speedup"] > 1]
    assert c["smallest_size_where_team_is_faster"] == (min(faster) if faster else None)


def test_targets_are_evaluated(result):
    targets = result["targets"]
    assert "a_forward_backward_snnlab_over_roofline_at_most_2" in targets
    for key, t in targets.items():
        assert "met" in t or "skipped" in t, key
        if "met" in t:
            assert isinstance(t["met"], bool)
    assert any(k.startswith("b_n") for k in targets)
    for n in result["workload_b"]["by_n"]:  # the training step, and each phase on its own
        for suffix in ("", "_forward", "_backward"):
            assert f"b_n{n}_faster_than_every_baseline{suffix}" in targets


def test_same_dynamics_in_every_library(result):
    # every installed library's LIF reproduces snnlab's spikes on a check input
    for lib, agreement in result["spike_agreement_with_snnlab"].items():
        assert agreement > 0.999, lib


def test_missing_baseline_is_skipped_with_reason(monkeypatch):
    real = bench._availability

    def pretend_missing(lib):
        if lib == "norse":
            return {"available": False, "reason": "ModuleNotFoundError: No module named 'norse'"}
        return real(lib)

    monkeypatch.setattr(bench, "_availability", pretend_missing)
    out = _quick(workloads="a", libraries="snnlab,norse")
    assert out["libraries"]["norse"]["available"] is False
    assert "norse" in out["libraries"]["norse"]["reason"]
    assert "norse" not in out["workload_a"]["results"]


def test_peak_rss_child_reports_bytes():
    peak = bench.peak_rss_of_training_step("snnlab", 16, 4, 2)
    assert isinstance(peak, int) and peak >= 0


def test_schedule_orders():
    rounds = bench._schedule(["a", "b"], warmup=1, repeats=2, order="rounds")
    assert rounds == [("a", False), ("b", False), ("a", True), ("b", True), ("a", True), ("b", True)]
    blocks = bench._schedule(["a", "b"], warmup=1, repeats=2, order="blocks")
    assert blocks == [("a", False), ("a", True), ("a", True), ("b", False), ("b", True), ("b", True)]


def test_blocks_order_runs_and_is_recorded():
    out = _quick(workloads="a", libraries="snnlab,snnlab-torch", order="blocks")
    assert out["settings"]["order"] == "blocks"
    assert _positive(out["workload_a"]["ratios"]["forward_backward"]["snnlab-torch_over_snnlab"])


def test_bad_options_raise():
    with pytest.raises(ValueError, match="workload"):
        _quick(workloads="d")
    with pytest.raises(ValueError, match="order"):
        _quick(order="random")
    with pytest.raises(ValueError, match="c-sizes"):
        _quick(workloads="c", c_sizes="4")
    with pytest.raises(ValueError, match="library"):
        _quick(libraries="brian2")
