"""The emulated DVS camera (snnlab.data.dvs_camera): the pixel model's behaviour, exactly where it
can be computed by hand, and statistically for noise and mismatch."""

from __future__ import annotations

import numpy as np
import pytest
import tonic

from snnlab.data.digits import digits_images, resize_images
from snnlab.data.dvs_camera import (
    EVENT_DTYPE, DVSCamera, DVSParams, SaccadeParams, dvs_events_kernel, saccade_path,
)

QUIET = DVSParams(noise_rate_hz=0.0)


def _digit(size: int = 28, index: int = 0) -> np.ndarray:
    import torch

    images, _ = digits_images(None)
    return resize_images(torch.from_numpy(images[index:index + 1])[:, None], size)[0, 0].numpy()


def _kernel(log_frames, times, c_on, c_off, refractory=0.0):
    S, H, W = log_frames.shape
    out = [np.empty(1000, np.int16), np.empty(1000, np.int16), np.empty(1000, np.int64),
           np.empty(1000, np.bool_)]
    n = dvs_events_kernel(np.asarray(log_frames, np.float32), np.asarray(times, np.float64),
                          np.full((H, W), c_on, np.float32), np.full((H, W), c_off, np.float32),
                          float(refractory), *out)
    return n, [a[:n] for a in out]


def test_event_dtype_is_tonics():
    assert EVENT_DTYPE == tonic.io.events_struct


def test_linear_ramp_crosses_at_interpolated_times():
    # L rises linearly by 1.0 over 1000 us with C = 0.25: ON events at 250, 500, 750, 1000 us.
    n, (x, y, t, p) = _kernel(np.array([0.0, 1.0]).reshape(2, 1, 1), [0.0, 1000.0], 0.25, 0.25)
    assert n == 4
    assert t.tolist() == [250, 500, 750, 1000]
    assert p.all() and (x == 0).all() and (y == 0).all()
    # falling: OFF events
    n, (_, _, t, p) = _kernel(np.array([0.0, -0.6]).reshape(2, 1, 1), [0.0, 600.0], 0.25, 0.2)
    assert n == 3 and t.tolist() == [200, 400, 600] and not p.any()


def test_refractory_period_holds_pixel_in_reset():
    # Same ramp with 300 us refractory: event at 250, blind until 550 (reference reset to
    # L(550) = 0.55), next crossing at 0.80 -> 800 us, then blind past the end.
    n, (_, _, t, _) = _kernel(np.array([0.0, 1.0]).reshape(2, 1, 1), [0.0, 1000.0], 0.25, 0.25, 300.0)
    assert t.tolist() == [250, 800]


def test_kernel_reports_overflow():
    S = 3
    frames = np.linspace(0, 50, S).reshape(S, 1, 1)
    out = [np.empty(2, np.int16), np.empty(2, np.int16), np.empty(2, np.int64), np.empty(2, np.bool_)]
    assert dvs_events_kernel(frames.astype(np.float32), np.arange(S, dtype=np.float64),
                             np.full((1, 1), 0.1, np.float32), np.full((1, 1), 0.1, np.float32),
                             0.0, *out) == -1


def test_static_image_without_motion_gives_no_events_except_noise():
    image = _digit(16)
    frames = np.repeat(image[None], 51, axis=0)
    times = np.arange(51) * 2000.0  # 100 ms
    assert len(DVSCamera(16, 16, QUIET).record_frames(frames, times)) == 0
    rate = 50.0
    events = DVSCamera(16, 16, DVSParams(noise_rate_hz=rate)).record_frames(frames, times, seed=3)
    expected = rate * 0.1 * 16 * 16  # Poisson mean: rate x duration x pixels = 128
    assert abs(len(events) - expected) < 5 * np.sqrt(expected)
    assert 0.3 < events["p"].mean() < 0.7  # noise has random polarity
    assert events["t"].min() >= 0 and events["t"].max() <= 100_000


def test_brightening_a_region_gives_on_events_there_only():
    frames = np.full((11, 20, 20), 0.2, np.float32)
    frames[5:, 4:9, 10:16] = 0.9  # a patch brightens between the 5th and 6th sample
    events = DVSCamera(20, 20, QUIET, seed=1).record_frames(frames, np.arange(11) * 1000.0)
    assert len(events) > 0
    assert events["p"].all()  # ON only
    assert events["y"].min() >= 4 and events["y"].max() <= 8
    assert events["x"].min() >= 10 and events["x"].max() <= 15
    assert ((events["t"] > 4000) & (events["t"] <= 5000)).all()
    # every pixel of the patch fired: the log step is far above one threshold
    assert len(set(zip(events["x"].tolist(), events["y"].tolist()))) == 5 * 6
    # darkening it again gives OFF events
    back = np.concatenate([frames, np.full((5, 20, 20), 0.2, np.float32)])
    events = DVSCamera(20, 20, QUIET, seed=1).record_frames(back, np.arange(16) * 1000.0)
    assert (~events["p"][events["t"] > 10_000]).all() and (~events["p"]).sum() > 0


@pytest.mark.parametrize("sigma", [0.0, 0.03])
def test_event_count_rises_as_contrast_threshold_falls(sigma):
    image = _digit(28)
    counts = [len(DVSCamera(34, 34, DVSParams(contrast=c, mismatch_sigma=sigma, noise_rate_hz=0.0))
                  .record_saccades(image, offset=(0.0, 0.0))) for c in (0.4, 0.3, 0.2, 0.15, 0.1)]
    assert all(a < b for a, b in zip(counts, counts[1:])), counts
    assert counts[0] > 0


def test_generation_is_deterministic_for_a_seed():
    image = _digit(28, index=5)
    a = DVSCamera(34, 34, seed=7).record_saccades(image, seed=(1, 2))
    b = DVSCamera(34, 34, seed=7).record_saccades(image, seed=(1, 2))
    assert np.array_equal(a, b)
    c = DVSCamera(34, 34, seed=7).record_saccades(image, seed=(1, 3))  # other noise
    d = DVSCamera(34, 34, seed=8).record_saccades(image, seed=(1, 2))  # other chip
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_saccade_output_format_and_timing():
    sac = SaccadeParams(travel_px=4.0, saccade_us=50_000, step_us=500)
    cam = DVSCamera(34, 30, DVSParams(refractory_us=2000.0), seed=0)
    events = cam.record_saccades(_digit(24), sac, seed=0, offset=(2.0, 1.0))
    assert events.dtype == EVENT_DTYPE and cam.sensor_size == (34, 30, 2)
    assert np.all(np.diff(events["t"]) >= 0)  # sorted by time
    assert events["t"].min() >= 0 and events["t"].max() <= sac.duration_us == 150_000
    assert events["x"].max() < 34 and events["y"].max() < 30 and events["x"].min() >= 0
    assert events["p"].any() and (~events["p"]).any()
    # refractory period: signal events of one pixel are >= 2 ms apart (noise is independent, so
    # check with noise off)
    quiet = DVSCamera(34, 30, DVSParams(refractory_us=2000.0, noise_rate_hz=0.0), seed=0)
    ev = quiet.record_saccades(_digit(24), sac, seed=0, offset=(2.0, 1.0))
    key = ev["y"].astype(np.int64) * 34 + ev["x"]
    order = np.lexsort((ev["t"], key))
    same = key[order][1:] == key[order][:-1]
    gaps = np.diff(ev["t"][order])[same]
    assert gaps.min() >= 2000 - 1  # rounding of timestamps to whole microseconds


def test_saccade_path_is_n_mnist_triangle():
    t = np.array([0, 50_000, 100_000, 200_000, 300_000, 400_000])
    dx, dy = saccade_path(t, 6.0, 100_000)
    assert np.allclose(dx, [0, 1.5, 3, 6, 0, 0]) and np.allclose(dy, [0, 3, 6, 0, 0, 0])


def test_threshold_mismatch_statistics():
    cam = DVSCamera(100, 100, DVSParams(contrast=0.2, mismatch_sigma=0.03), seed=0)
    assert abs(cam.thr_on.mean() - 0.2) < 0.002 and abs(cam.thr_on.std() - 0.03) < 0.002
    assert not np.array_equal(cam.thr_on, cam.thr_off)
    flat = DVSCamera(10, 10, DVSParams(contrast=0.2, mismatch_sigma=0.0))
    assert np.all(flat.thr_on == np.float32(0.2))


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="contrast"):
        DVSParams(contrast=0.0)
    with pytest.raises(ValueError, match="dark_level"):
        DVSParams(dark_level=1.5)
    cam = DVSCamera(8, 8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cam.record_saccades(np.full((8, 8), 2.0))
    with pytest.raises(ValueError, match="shape"):
        cam.record_frames(np.zeros((3, 4, 4)), np.arange(3.0))
    with pytest.raises(ValueError, match="increasing"):
        cam.record_frames(np.zeros((3, 8, 8)), np.array([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="seed"):
        cam.record_frames(np.zeros((2, 8, 8)), np.arange(2.0), seed=-1)
    with pytest.raises(ValueError, match="width"):
        DVSCamera(0, 8)
