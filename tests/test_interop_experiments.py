"""The appendix's helpers: the assumed-dt sweep, the round-trip report and the figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from interop_cases import DT, drive, lif, lin  # noqa: E402
from snnlab.interop import from_nir, to_nir  # noqa: E402
from snnlab.interop.experiments import assumed_dt_sweep, round_trip_report, without_recorded_dt  # noqa: E402
from snnlab.neurons import IFNode  # noqa: E402
from snnlab.viz.interop import graph_table, plot_agreement, plot_dt_sweep  # noqa: E402


def net(decay_input: bool = True):
    torch.manual_seed(0)
    return nn.Sequential(lin(4, 6), lif(tau=2.0, v_reset=0.0), lin(6, 3),
                         lif(tau=4.0, decay_input=decay_input, v_reset=0.0)).eval()


def test_assumed_dt_sweep_scales_tau_and_keeps_the_graph():
    graph = to_nir(net(), dt=DT, input_shape=(4,))
    x, y = drive((4,), 6, 10, scale=3.0), torch.arange(10) % 3
    rows = assumed_dt_sweep(graph, x, y, [DT, DT / 10])
    assert [r["tau_steps"] for r in rows] == [{"1": 2.0, "3": 4.0}, {"1": 20.0, "3": 40.0}]
    assert rows[0]["spikes_per_sample"]["1"] > rows[1]["spikes_per_sample"]["1"]  # slower leak, weaker drive
    expected = float((from_nir(graph)(x).mean(0).argmax(-1) == y).float().mean())
    assert rows[0]["accuracy"] == expected
    assert float(graph.metadata["dt"]) == DT and "dt" not in without_recorded_dt(graph).metadata


def test_assumed_dt_sweep_reports_readings_that_are_refused():
    graph = to_nir(nn.Sequential(lin(4, 3), IFNode(step_mode="m")), dt=DT, input_shape=(4,))
    rows = assumed_dt_sweep(graph, drive((4,), 3, 2), torch.zeros(2, dtype=torch.long), [DT / 10])
    assert rows[0]["accuracy"] is None and "written for dt = 1/r = 0.001 s" in rows[0]["error"]


def test_round_trip_report_counts_differences():
    model = net(decay_input=False)
    x = drive((4,), 6, 5, scale=3.0)
    rows = round_trip_report(model, from_nir(to_nir(model, dt=DT, input_shape=(4,))), x)
    assert [r["layer"] for r in rows] == ["1", "3", "output"]
    assert all(r["places that differ"] == 0 for r in rows) and rows[0]["spikes"] > 0
    other = net(decay_input=False)
    with torch.no_grad():
        other[2].weight.zero_()  # a different network: the report must see it
    rows = round_trip_report(other, from_nir(to_nir(model, dt=DT, input_shape=(4,))), x)
    assert rows[0]["places that differ"] == 0 and rows[1]["places that differ"] > 0


def test_figures_and_graph_table():
    graph = to_nir(net(), dt=DT, input_shape=(4,))
    table = graph_table(graph)
    assert table.column("node") == list(graph.nodes) and "tau 0.002" in table.column("parameters")[2]
    fig, axes = plt.subplots(1, 3)
    rows = assumed_dt_sweep(graph, drive((4,), 4, 3), torch.zeros(3, dtype=torch.long), [DT / 2, DT])
    plot_dt_sweep(axes[:2], rows, recorded_dt=DT)
    assert len(axes[0].lines) == 3  # two layers and the marker of the recorded dt
    a, b = np.arange(6.0), np.arange(6.0) + np.array([0, 0, 0.5, 0, 0, 0])
    assert plot_agreement(axes[2], a, b) == 0.5
    plt.close(fig)
