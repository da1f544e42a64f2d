"""`snnlab bench simulator`: its JSON, its timing helper and its targets, each against an independent value."""

import json

import pytest

from snnlab.bench import BENCHMARKS
from snnlab.bench import simulator as bench
from snnlab.cli import main


def test_bench_simulator_quick(capsys, tmp_path):
    assert BENCHMARKS["simulator"] == "snnlab.bench.simulator"
    out = tmp_path / "sim.json"
    assert main(["bench", "simulator", "--quick", "--output", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    result = printed["simulator"]
    assert result["T"] == 4 and 1 <= result["network"]["mean_steps"] <= 4
    pvn = result["python_vs_numba"]
    # like for like: the pure-Python loop and the Numba loop simulated the same synaptic events
    assert pvn["synaptic_events"] == pvn["python_synaptic_events"] > 0
    # the chapter's network has fewer synaptic events per inference than its dense bound: every
    # input pixel and every spike of every step reaching its whole fan-out (8x8 input, conv 8 -> 16, T = 4)
    dense = 4 * (64 * 9 * 8 + 8 * 4 * 4 * 9 * 16 + 16 * 2 * 2 * 10)
    assert 0 < result["network"]["synaptic_events_per_inference"] <= dense
    assert set(result["targets"]) == {"one_inference_under_1s", "numba_faster_than_python"}


def test_median_seconds_reads_the_clock_around_each_call():
    ticks = iter([0.0, 3.0, 10.0, 11.0, 20.0, 25.0])   # calls take 3, 1 and 5 seconds
    calls = []
    assert bench._median_seconds(lambda: calls.append(1), 3, clock=lambda: next(ticks)) == 3.0
    assert len(calls) == 3


@pytest.mark.parametrize("one,ratio,met", [(0.999, 1.01, (True, True)), (1.0, 1.0, (False, False)),
                                           (2.5, 218.0, (False, True)), (0.0073, 0.5, (True, False))])
def test_targets_at_their_boundaries(one, ratio, met):
    goals = bench.targets(one, ratio)
    assert (goals["one_inference_under_1s"]["met"], goals["numba_faster_than_python"]["met"]) == met
    assert goals["one_inference_under_1s"]["value"] == one


def test_bench_simulator_rejects_bad_options(capsys):
    assert main(["bench", "simulator", "--T", "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().err
