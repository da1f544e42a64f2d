"""Figures and helpers of the event-camera chapter: snnlab.viz.events, event_counts_vs_contrast,
dataset_arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from snnlab.data.arrays import dataset_arrays
from snnlab.data.dvs_camera import EVENT_DTYPE, DVSCamera, DVSParams, SaccadeParams, event_counts_vs_contrast
from snnlab.viz.events import (
    draw_contrast_explorer, event_image, plot_event_rate, plot_events_xyt, plot_frames, plot_saccades,
)


def _events():
    ev = np.zeros(5, EVENT_DTYPE)
    ev["x"], ev["y"] = [0, 1, 1, 2, 2], [0, 0, 0, 1, 1]
    ev["t"] = [0, 1000, 2000, 8000, 9000]
    ev["p"] = [True, True, False, False, False]
    return ev


def test_event_image_is_on_minus_off():
    image = event_image(_events(), (3, 2, 2))
    assert image.shape == (2, 3)
    assert image.tolist() == [[1, 0, 0], [0, 0, -2]]


def test_event_counts_vs_contrast_shape_and_monotonicity():
    image = np.zeros((8, 8), np.float32)
    image[2:6, 3:5] = 1.0
    sac = SaccadeParams(travel_px=2.0, saccade_us=20_000, step_us=1000)
    counts = event_counts_vs_contrast([image, image[::-1]], [0.1, 0.2, 0.4], saccades=sac, sensor_px=12,
                                      params=DVSParams(noise_rate_hz=0.0), offset=(1.0, 1.0))
    assert counts.shape == (3, 2) and counts.dtype == np.int64
    assert np.all(counts[0] > counts[1]) and np.all(counts[1] > counts[2])
    one = DVSCamera(12, 12, DVSParams(contrast=0.2, noise_rate_hz=0.0), seed=0)
    assert counts[1, 0] == len(one.record_saccades(image, sac, seed=(0, 0), offset=(1.0, 1.0)))


def test_plots_draw_what_they_say():
    ev = _events()
    fig = Figure()
    ax = fig.add_subplot(projection="3d")
    assert plot_events_xyt(ax, ev, (3, 2, 2), max_events=4) == 4
    assert sum(len(c.get_offsets()) for c in ax.collections) == 4
    fig = Figure()
    ax = fig.add_subplot()
    plot_event_rate(ax, ev, bin_ms=5.0)
    on, off = (patch.get_path().vertices[:, 1].max() for patch in ax.patches)
    assert (on, off) == (2, 2)  # ON: two in 0-5 ms; OFF: one in 0-5 ms, two in 5-10 ms
    fig = Figure()
    frames = torch.zeros(5, 2, 4, 4)
    frames[2, 1, 0, 0] = 3
    plot_frames(fig, frames, ncols=3)
    axes = fig.axes
    assert len(axes) == 6 and not axes[5].axison
    assert axes[2].images[0].get_array()[0, 0] == 3
    fig = Figure()
    plot_saccades(fig.add_subplot(), np.ones((6, 6)), SaccadeParams(travel_px=2.0), 10, 1.0)
    assert len(fig.axes[0].lines) == 1 and len(fig.axes[0].texts) == 3


def test_contrast_explorer_draws_three_panels():
    image = np.zeros((10, 10), np.float32)
    image[3:7, 3:7] = 1.0
    fig = Figure()
    draw_contrast_explorer(fig, 0.2, image=image, contrasts=[0.1, 0.2, 0.4], mean_counts=[40, 20, 10],
                           params=DVSParams(noise_rate_hz=0.0), sensor_px=14, offset=1.0,
                           saccades=SaccadeParams(travel_px=2.0, saccade_us=10_000))
    assert len(fig.axes) == 3
    assert "events" in fig.axes[0].get_title()


def test_dataset_arrays_stacks_items():
    data = [(torch.full((2, 3), float(i)), i % 2) for i in range(5)]
    X, y = dataset_arrays(data)
    assert X.shape == (5, 2, 3) and y.tolist() == [0, 1, 0, 1, 0] and y.dtype == torch.int64
    X, _ = dataset_arrays(data, limit=2)
    assert X.shape[0] == 2
    with pytest.raises(ValueError, match="empty"):
        dataset_arrays([])
