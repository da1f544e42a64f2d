"""Figures of the MLF chapter: the explorer's frame draws what the analysis computes."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from snnlab.models.ds_resnet import ds_resnet_small
from snnlab.surrogate import Rectangular
from snnlab.viz.dormant import draw_dormant_explorer, mlf_levels, plot_dormant_bars, plot_level_windows


def test_mlf_levels():
    assert mlf_levels(0.6) == (0.6, 1.6, 2.6)
    assert mlf_levels(1.0, K=2, spacing=0.5) == (1.0, 1.5)


def test_plot_level_windows_shades_each_level():
    fig = Figure()
    ax = fig.subplots()
    plot_level_windows(ax, (0.6, 1.6, 2.6), Rectangular(1.0), potentials=torch.randn(100))
    assert len(ax.collections) == 3 and len(fig.axes) == 2


def test_explorer_frame_bars_are_the_dormant_fractions():
    def build(thresholds, width):
        torch.manual_seed(0)
        return ds_resnet_small(num_classes=10, input_shape=(1, 8, 8), thresholds=thresholds, surrogate_width=width)

    x = torch.rand(2, 8, 1, 8, 8) * 2
    fig = Figure()
    results = draw_dormant_explorer(fig, 0.6, 1.0, inputs=x, build=build)
    assert len(results) == 2
    bars_ax = fig.axes[-1] if len(fig.axes) == 2 else fig.axes[1]
    heights = [p.get_height() for p in bars_ax.patches]
    expected = [l.dormant_fraction for layers in results.values() for l in layers]
    np.testing.assert_allclose(sorted(heights), sorted(expected))
    # a second bar chart from the same results gives the same bars
    ax = Figure().subplots()
    plot_dormant_bars(ax, results)
    np.testing.assert_allclose([p.get_height() for p in ax.patches], expected)
