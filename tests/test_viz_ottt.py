"""Figures of the OTTT chapter: neuron spikes, trace explorer frame, memory and bar plots."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from matplotlib.figure import Figure

from snnlab.viz.ottt import draw_presynaptic_trace, ottt_neuron_spikes, plot_layer_bars, plot_memory_vs_T


def test_ottt_neuron_spikes_match_the_hand_count():
    # λ = 0.5, V_th = 1, soft reset, input 0.6: spikes at steps 2 and 5 (0-based)
    s = ottt_neuron_spikes(torch.full((6, 1), 0.6), tau=2.0, v_threshold=1.0)
    assert s[:, 0].tolist() == [0, 0, 1, 0, 0, 1]
    with pytest.raises(ValueError, match="tau"):
        ottt_neuron_spikes(torch.ones(3, 1), tau=1.0, v_threshold=1.0)
    with pytest.raises(ValueError, match="v_threshold"):
        ottt_neuron_spikes(torch.ones(3, 1), tau=2.0, v_threshold=0.0)


def test_draw_presynaptic_trace_plots_one_trace_per_neuron():
    fig = Figure()
    x = torch.rand(12, 3) * 1.5
    draw_presynaptic_trace(fig, 2.0, 1.0, x=x)
    ax0, ax1 = fig.axes
    assert len(ax1.lines) == 3 + 1  # three traces and the 1/(1-λ) line
    trace0 = ax1.lines[0].get_ydata()
    s = ottt_neuron_spikes(x, 2.0, 1.0)[:, 0]
    expected = [float(sum(0.5 ** (t - k) * s[k] for k in range(t + 1))) for t in range(12)]
    assert list(trace0) == pytest.approx(expected)


def test_memory_and_bar_plots():
    rows = [{"method": m, "T": t, "saved_bytes": b * t, "rss_increase_bytes": 2**20}
            for m, b in (("bptt", 2**20), ("ottt_a", 0)) for t in (1, 2, 4)]
    fig = Figure()
    axes = fig.subplots(1, 2)
    plot_memory_vs_T(axes, rows)
    assert len(axes[0].lines) == 2 and list(axes[0].lines[0].get_ydata()) == [1.0, 2.0, 4.0]
    with pytest.raises(ValueError, match="no rows"):
        plot_memory_vs_T(Figure().subplots(1, 2), rows, methods=["sltt"])
    ax = Figure().subplots()
    plot_layer_bars(ax, {"a": [1, 2], "b": [3, 4]}, ["l1", "l2"])
    assert len(ax.patches) == 4
    with pytest.raises(ValueError, match="2 layers"):
        plot_layer_bars(ax, {"a": [1]}, ["l1", "l2"])
    with pytest.raises(ValueError, match="at least one"):
        plot_layer_bars(ax, {}, ["l1"])
