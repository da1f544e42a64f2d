"""Figures of the conversion chapter: they draw what the library computes."""

import numpy as np
import torch
from matplotlib.figure import Figure

from snnlab.conversion import ThresholdParams, calibration_rule, codebook, conversion_error_parts
from snnlab.viz.conversion import (
    draw_error_explorer, plot_accuracy_vs_latency, plot_codebooks, plot_error_vs_T, plot_neuron_spikes,
)

V = torch.randn(5000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2


def test_error_explorer_bars_are_the_error_parts():
    fig = Figure()
    draw_error_explorer(fig, v=V, alpha=3.0, beta=0.0, k=0.5, T=4)
    ax_curves, ax_bars = fig.axes[0], fig.axes[1]
    enc = ThresholdParams(3.0, 0.0, 0.5)
    expected = [conversion_error_parts(V, 4, enc), conversion_error_parts(V, 4, enc, calibration_rule(enc))]
    tops = {}
    for patch in ax_bars.patches:
        x = round(patch.get_x() + patch.get_width() / 2)
        tops[x] = max(tops.get(x, 0.0), patch.get_y() + patch.get_height())
    np.testing.assert_allclose([tops[0], tops[1]], [e["total"] for e in expected], rtol=1e-9)
    labels = [line.get_label() for line in ax_curves.get_lines()]
    assert labels == ["ANN: ReLU(v)", "TTFS", "SC-TTFS"]
    # the SC-TTFS transfer curve never lies above the ReLU (both spikes subtract from v)
    relu, ttfs, sc = (line.get_ydata() for line in ax_curves.get_lines())
    assert np.all(sc <= relu + 1e-12) and np.all(sc >= ttfs - 1e-12)


def test_codebook_rows_show_every_reachable_value():
    fig = Figure()
    ax = fig.subplots()
    enc = ThresholdParams(2.0, 0.0, 0.6)
    settings = {"TTFS": (enc, None), "SC": (enc, calibration_rule(enc))}
    plot_codebooks(ax, 5, settings)
    counts = [len(line.get_xdata()) for line in ax.get_lines()]
    assert counts == [len(codebook(5, *settings[name])) for name in settings]


def test_other_figures_draw():
    fig = Figure()
    ax = fig.subplots()
    enc = ThresholdParams(2.0, 0.0, 0.6)
    plot_neuron_spikes(ax, [0.05, 1.0, 5.0], 6, enc, calibration_rule(enc))
    assert len(ax.get_legend().get_texts()) == 5
    fig = Figure()
    axes = fig.subplots(1, 2)
    rows = [{"method": m, "T": T, "clip_below": 0.1, "quantisation": 0.2, "clip_above": 0.0}
            for m in ("TTFS", "SC-TTFS") for T in (2, 4)]
    plot_error_vs_T(axes, rows)
    assert [a.get_title() for a in axes] == ["TTFS", "SC-TTFS"]
    fig = Figure()
    ax = fig.subplots()
    plot_accuracy_vs_latency(ax, [{"method": "A", "latency": 4, "accuracy": 0.5},
                                  {"method": "A", "latency": 2, "accuracy": 0.25}], 0.9)
    xs, ys = ax.get_lines()[0].get_data()
    assert list(xs) == [2, 4] and list(ys) == [25.0, 50.0]


def test_error_explorer_never_cuts_a_bar_off():
    """Chapter 6's explorer once fixed its y-limit from one setting, cutting off the bars of
    others: a limit that is too low is raised, and error_explorer_ylim fits every frame."""
    from snnlab.viz.conversion import error_explorer_ylim

    grid = {"alphas": [1.0, 6.0], "betas": [0.0], "ks": [0.25, 1.0], "Ts": [2, 8]}
    ylim = error_explorer_ylim(V, **grid)
    for alpha in grid["alphas"]:
        for k in grid["ks"]:
            for T in grid["Ts"]:
                for limit in (ylim, 1e-3):  # the shared limit, and one far too low
                    fig = Figure()
                    draw_error_explorer(fig, v=V, alpha=alpha, beta=0.0, k=k, T=T, ylim=limit)
                    bars = fig.axes[1]
                    top = max(p.get_y() + p.get_height() for p in bars.patches)
                    assert top <= bars.get_ylim()[1]
                    if limit == ylim:
                        assert bars.get_ylim()[1] == ylim
