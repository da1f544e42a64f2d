"""`snnlab bench simulator`: structure of the JSON and the internal consistency of its numbers."""

import json

import pytest

from snnlab.bench import BENCHMARKS
from snnlab.cli import main


def test_bench_simulator_quick(capsys, tmp_path):
    assert BENCHMARKS["simulator"] == "snnlab.bench.simulator"
    out = tmp_path / "sim.json"
    assert main(["bench", "simulator", "--quick", "--output", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    bench = printed["simulator"]
    assert bench["T"] == 4 and 1 <= bench["network"]["mean_steps"] <= 4
    batch = bench["batch"]
    assert batch["events_per_second"] == pytest.approx(batch["synaptic_events"] / batch["seconds"])
    pvn = bench["python_vs_numba"]
    assert pvn["numba_over_python"] == pytest.approx(pvn["numba_events_per_second"] / pvn["python_events_per_second"])
    assert pvn["synaptic_events"] > 0
    assert set(bench["targets"]) == {"one_inference_under_1s", "numba_faster_than_python"}
    for target in bench["targets"].values():
        assert isinstance(target["met"], bool)


def test_bench_simulator_rejects_bad_options(capsys):
    assert main(["bench", "simulator", "--T", "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().err
