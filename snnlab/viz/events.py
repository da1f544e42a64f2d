"""Figures for the event-camera chapter: a digit and its saccades, the event stream as an x-y-t
scatter and as frames, event rates, and the contrast-threshold explorer."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from matplotlib.figure import Figure

from snnlab.data.dvs_camera import DVSCamera, DVSParams, SaccadeParams, saccade_path

__all__ = [
    "ON_COLOR",
    "OFF_COLOR",
    "plot_saccades",
    "plot_events_xyt",
    "plot_event_rate",
    "plot_frames",
    "event_image",
    "draw_contrast_explorer",
]

ON_COLOR, OFF_COLOR = "C3", "C0"


def plot_saccades(ax, image: np.ndarray, saccades: SaccadeParams, sensor_px: int, offset: float) -> None:
    """The sensor window with the image at its starting place and the path of the image's centre
    along the three saccades, corners labelled with their time."""
    h, w = image.shape
    canvas = np.zeros((sensor_px, sensor_px))
    top = int(round(offset))
    canvas[top:top + h, top:top + w] = image[: sensor_px - top, : sensor_px - top]
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, extent=(-0.5, sensor_px - 0.5, sensor_px - 0.5, -0.5))
    t = np.linspace(0, saccades.duration_us, 301)
    dx, dy = saccade_path(t, saccades.travel_px, saccades.saccade_us)
    cx, cy = offset + (w - 1) / 2 + dx, offset + (h - 1) / 2 + dy
    ax.plot(cx, cy, color="C1", lw=2)
    corners = np.arange(3) * saccades.saccade_us
    kx, ky = saccade_path(corners, saccades.travel_px, saccades.saccade_us)
    shifts = [(-34, -12), (-14, -14), (6, -12)]  # start (top left), bottom, top right
    for k, (x, y) in enumerate(zip(kx, ky)):
        ax.annotate(f"{corners[k] / 1000:.0f} ms", (offset + (w - 1) / 2 + x, offset + (h - 1) / 2 + y),
                    color="C1", fontsize=9, xytext=shifts[k], textcoords="offset points")
    ax.set_title(f"{sensor_px}x{sensor_px} window, path of the centre")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_events_xyt(ax, events: np.ndarray, sensor_size, *, max_events: int = 6000, seed: int = 0) -> int:
    """x-y-t scatter on a 3-D axis (time in ms along the first axis), ON red, OFF blue. Draws a
    random subset of at most ``max_events`` events; returns how many were drawn."""
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(events), size=min(max_events, len(events)), replace=False))
    ev = events[keep]
    for polarity, color, label in ((True, ON_COLOR, "ON"), (False, OFF_COLOR, "OFF")):
        sel = ev["p"] == polarity
        ax.scatter(ev["t"][sel] / 1000, ev["x"][sel], ev["y"][sel], s=0.6, color=color,
                   label=label, depthshade=False)
    ax.set_xlabel("t (ms)")
    ax.set_ylabel("x")
    ax.set_zlabel("y")
    end_ms = float(events["t"].max()) / 1000 if len(events) else 1.0
    ax.set_xticks(np.linspace(0, end_ms, 4).round(-1))
    ax.set_ylim(0, sensor_size[0])
    ax.set_zlim(sensor_size[1], 0)
    ax.legend(loc="upper left", fontsize=9, markerscale=8)
    return len(ev)


def plot_event_rate(ax, events: np.ndarray, *, bin_ms: float = 5.0, duration_ms: float | None = None) -> None:
    """ON and OFF events per bin over time."""
    end = (events["t"].max() / 1000 if len(events) else 1.0) if duration_ms is None else duration_ms
    bins = np.arange(0, end + bin_ms, bin_ms)
    for polarity, color, label in ((True, ON_COLOR, "ON"), (False, OFF_COLOR, "OFF")):
        sel = events["p"] == polarity
        ax.hist(events["t"][sel] / 1000, bins=bins, histtype="step", color=color, label=label)
    ax.set_xlabel("t (ms)")
    ax.set_ylabel(f"events per {bin_ms:g} ms")
    ax.legend(fontsize=9)


def event_image(events: np.ndarray, sensor_size) -> np.ndarray:
    """ON minus OFF event count per pixel, ``[H, W]``."""
    image = np.zeros((sensor_size[1], sensor_size[0]))
    np.add.at(image, (events["y"], events["x"]), np.where(events["p"], 1.0, -1.0))
    return image


def plot_frames(fig: Figure, frames, *, ncols: int | None = None, frame_ms: float | None = None) -> None:
    """Small multiples of frames ``[T, 2, H, W]``: ON minus OFF count per pixel (red ON, blue
    OFF), one panel per frame, one shared colour scale."""
    frames = np.asarray(frames)
    T = frames.shape[0]
    ncols = ncols or T
    nrows = int(np.ceil(T / ncols))
    diff = frames[:, 1] - frames[:, 0]
    vmax = max(1.0, float(np.abs(diff).max()))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= T:
            ax.axis("off")
            continue
        ax.imshow(diff[k], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        label = f"frame {k}" if frame_ms is None else f"{k * frame_ms:.0f}-{(k + 1) * frame_ms:.0f} ms"
        ax.set_title(label, fontsize=9)


def draw_contrast_explorer(fig: Figure, contrast: float, *, image: np.ndarray, contrasts, mean_counts,
                           params: DVSParams = DVSParams(), saccades: SaccadeParams = SaccadeParams(),
                           sensor_px: int = 34, offset: float = 0.0, camera_seed: int = 0) -> None:
    """One digit recorded at contrast threshold ``contrast``: events per pixel, the event rate over
    time, and the mean event count against C (from ``contrasts``/``mean_counts``,
    log-log, with a 1/C line through the middle point) with this C marked."""
    camera = DVSCamera(sensor_px, sensor_px, replace(params, contrast=float(contrast)), seed=camera_seed)
    events = camera.record_saccades(image, saccades, seed=0, offset=(offset, offset))
    ax_img, ax_rate, ax_count = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.4, 1.2]})
    total = np.zeros((sensor_px, sensor_px))
    np.add.at(total, (events["y"], events["x"]), 1.0)
    ax_img.imshow(total, cmap="magma")
    ax_img.set_title(f"C = {contrast:g}: {len(events)} events\n(events per pixel, max {int(total.max())})", fontsize=9)
    ax_img.set_xticks([])
    ax_img.set_yticks([])
    plot_event_rate(ax_rate, events, duration_ms=saccades.duration_us / 1000)
    ax_rate.set_title("event rate over the three saccades", fontsize=9)
    contrasts = np.asarray(contrasts, dtype=float)
    mean_counts = np.asarray(mean_counts, dtype=float)
    ax_count.loglog(contrasts, mean_counts, "o-", color="k", ms=4, label="measured (mean)")
    mid = len(contrasts) // 2
    ax_count.loglog(contrasts, mean_counts[mid] * contrasts[mid] / contrasts, "--", color="0.6", label="∝ 1/C")
    ax_count.axvline(contrast, color="C1", lw=1.5)
    ax_count.set_xticks(contrasts[::2], [f"{c:g}" for c in contrasts[::2]])
    ax_count.set_xticks([], minor=True)
    ax_count.set_xlabel("contrast threshold C")
    ax_count.set_ylabel("events per recording")
    ax_count.legend(fontsize=9)
    ax_count.set_title("event count vs C", fontsize=9)
