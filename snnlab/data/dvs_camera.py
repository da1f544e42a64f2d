"""An emulated DVS (dynamic vision sensor) camera that records a static image moved along
saccades, as the N-MNIST recordings did, and emits a real event stream.

Pixel model (Lichtsteiner, Posch, Delbruck, *A 128x128 120 dB 15 us latency asynchronous temporal
contrast vision sensor*, IEEE JSSC 2008; the emulator form of ESIM, Rebecq et al. 2018, and v2e,
Hu et al. 2021). Each pixel sees the log intensity :math:`L(t) = \\log I(t)` and remembers a
reference level :math:`L_{ref}`, the value at its last event. It emits

- an ON event when :math:`L(t) - L_{ref} \\ge C^{+}_{xy}`, an OFF event when
  :math:`L(t) - L_{ref} \\le -C^{-}_{xy}`, and moves :math:`L_{ref}` by the threshold;
- with per-pixel thresholds :math:`C^{\\pm}_{xy} \\sim \\mathcal{N}(C, \\sigma_C^2)` (threshold
  mismatch, drawn once per camera since it is a property of the chip; clipped at 0.01 as v2e does);
- no event for ``refractory_us`` after an event: the pixel is held in reset, so at the end of the
  refractory period its reference is the log intensity at that moment (ESIM's refined model,
  Weng et al.);
- background-activity noise: events at Poisson times with ``noise_rate_hz`` per pixel, random
  polarity, independent of the signal (v2e's shot-noise events, simplified).

Between two rendered samples the log intensity is interpolated linearly in time, and each event
gets the time at which the interpolated :math:`L(t)` crosses the level (ESIM, Sec. 3), so the
timestamps (microseconds) are finer than the sampling step.

Motion (Orchard et al., *Converting static image datasets to spiking neuromorphic datasets using
saccades*, Front. Neurosci. 2015): N-MNIST moved an ATIS camera in three ~100 ms saccades whose
path is a closed triangle, recording 28x28 MNIST digits onto a 34x34 pixel window. Here the image
itself is shifted (sub-pixel, bilinear) along the same triangle at constant speed within each
saccade: (0, 0) -> (A/2, A) -> (A, 0) -> (0, 0), with A the travel in pixels.

Output: tonic's structured event array (fields ``x``, ``y``, ``t`` in microseconds, ``p`` True
for ON; ``tonic.io.events_struct``) sorted by time, and the sensor size ``(W, H, 2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from snnlab.checks import check_non_negative, check_positive

__all__ = [
    "EVENT_DTYPE",
    "DVSParams",
    "SaccadeParams",
    "DVSCamera",
    "saccade_path",
    "render_log_frames",
    "dvs_events_kernel",
    "event_counts_vs_contrast",
]

# tonic's event record: x, y int16; t int64 (microseconds); p bool (True = ON).
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])


@dataclass(frozen=True)
class DVSParams:
    """Pixel parameters. Defaults: C = 0.2 and sigma_C = 0.03 are v2e's defaults for a DVS;
    a 1 ms refractory period and 0.5 Hz/pixel background activity are of the order reported for
    DVS128-class sensors (Lichtsteiner et al. 2008; Delbruck, Hu, He 2020 on v2e's noise)."""

    contrast: float = 0.2  # C, log-intensity step per event
    mismatch_sigma: float = 0.03  # sigma_C of the per-pixel thresholds
    refractory_us: float = 1000.0
    noise_rate_hz: float = 0.5  # background events per pixel per second
    dark_level: float = 0.1  # intensity of a black pixel relative to white (monitor black level)

    def __post_init__(self):
        check_positive("contrast", self.contrast)
        check_non_negative("mismatch_sigma", self.mismatch_sigma)
        check_non_negative("refractory_us", self.refractory_us)
        check_non_negative("noise_rate_hz", self.noise_rate_hz)
        check_positive("dark_level", self.dark_level)
        if self.dark_level >= 1:
            raise ValueError(f"dark_level must be < 1 (white is 1), got {self.dark_level}.")


@dataclass(frozen=True)
class SaccadeParams:
    """N-MNIST's motion: three saccades of ``saccade_us`` each (~100 ms, Orchard et al. 2015)
    along a triangle of ``travel_px`` pixels, rendered every ``step_us``."""

    travel_px: float = 6.0  # 34 - 28: the digit's travel in N-MNIST's 34x34 window
    saccade_us: int = 100_000
    step_us: int = 1000

    def __post_init__(self):
        check_non_negative("travel_px", self.travel_px)
        check_positive("saccade_us", self.saccade_us)
        check_positive("step_us", self.step_us)

    @property
    def duration_us(self) -> int:
        return 3 * int(self.saccade_us)


def saccade_path(t_us: np.ndarray, travel_px: float, saccade_us: float) -> tuple[np.ndarray, np.ndarray]:
    """Image offset (dx, dy) in pixels at times ``t_us``: constant speed along the triangle
    (0, 0) -> (A/2, A) -> (A, 0) -> (0, 0), one leg per saccade (Orchard et al. 2015)."""
    A = float(travel_px)
    corners = np.array([[0.0, 0.0], [A / 2, A], [A, 0.0], [0.0, 0.0]])
    u = np.clip(np.asarray(t_us, dtype=np.float64) / float(saccade_us), 0.0, 3.0)
    leg = np.minimum(u.astype(np.int64), 2)
    frac = (u - leg)[:, None]
    xy = corners[leg] * (1 - frac) + corners[leg + 1] * frac
    return xy[:, 0], xy[:, 1]


@numba.njit(cache=True, nogil=True)
def render_log_frames(image, dx, dy, height, width, dark_level):  # pragma: no cover - numba
    """Log intensity seen by a ``height`` x ``width`` sensor when ``image`` (float32 in [0, 1],
    placed at the sensor's top-left corner) is shifted by (dx[k], dy[k]): bilinear sampling,
    black outside the image, intensity ``dark + (1 - dark) * image``, returns float32
    [len(dx), height, width] of ``log(intensity)``."""
    n = dx.shape[0]
    ih, iw = image.shape
    out = np.empty((n, height, width), dtype=np.float32)
    for k in range(n):
        for r in range(height):
            sy = r - dy[k]
            y0 = int(np.floor(sy))
            fy = sy - y0
            for c in range(width):
                sx = c - dx[k]
                x0 = int(np.floor(sx))
                fx = sx - x0
                v = 0.0
                for oy in range(2):
                    yy = y0 + oy
                    if yy < 0 or yy >= ih:
                        continue
                    wy = fy if oy == 1 else 1.0 - fy
                    for ox in range(2):
                        xx = x0 + ox
                        if xx < 0 or xx >= iw:
                            continue
                        wx = fx if ox == 1 else 1.0 - fx
                        v += wy * wx * image[yy, xx]
                out[k, r, c] = np.log(dark_level + (1.0 - dark_level) * v)
    return out


@numba.njit(cache=True, nogil=True)
def dvs_events_kernel(log_frames, times_us, thr_on, thr_off, refractory_us,
                      out_x, out_y, out_t, out_p):  # pragma: no cover - numba
    """The DVS pixel model over float32 log-intensity samples [S, H, W] at ``times_us`` [S].
    Writes events into the preallocated ``out_*`` arrays, pixel by pixel (not time-sorted), and
    returns their number, or -1 if the arrays were too small (call again with larger ones)."""
    S, H, W = log_frames.shape
    capacity = out_x.shape[0]
    n = 0
    for y in range(H):
        for x in range(W):
            c_on = thr_on[y, x]
            c_off = thr_off[y, x]
            ref = log_frames[0, y, x]
            blind_until = times_us[0] - 1.0
            for k in range(S - 1):
                t0 = times_us[k]
                t1 = times_us[k + 1]
                L0 = log_frames[k, y, x]
                L1 = log_frames[k + 1, y, x]
                ts = t0
                Ls = L0
                while True:
                    if blind_until > ts:
                        # held in reset (refractory): the reference follows L until blind_until
                        if blind_until >= t1:
                            ref = L1
                            break
                        Ls = L0 + (L1 - L0) * (blind_until - t0) / (t1 - t0)
                        ts = blind_until
                        ref = Ls
                    if L1 - ref >= c_on:
                        level = ref + c_on
                        pol = True
                    elif ref - L1 >= c_off:
                        level = ref - c_off
                        pol = False
                    else:
                        break
                    # the moment the linearly interpolated L crosses the level (ESIM)
                    tc = ts + (level - Ls) / (L1 - Ls) * (t1 - ts)
                    if n >= capacity:
                        return -1
                    out_x[n] = x
                    out_y[n] = y
                    out_t[n] = np.int64(np.floor(tc + 0.5))
                    out_p[n] = pol
                    n += 1
                    ref = level
                    ts = tc
                    Ls = level
                    if refractory_us > 0.0:
                        blind_until = tc + refractory_us
    return n


def _seed_words(seed) -> list[int]:
    """A seed (an int >= 0 or a tuple of them) as a list of words for numpy's SeedSequence."""
    words = list(seed) if isinstance(seed, (tuple, list)) else [seed]
    for w in words:
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 0:
            raise ValueError(f"seed must be an int >= 0 or a tuple of them, got {seed!r}.")
    return [int(w) for w in words]


class DVSCamera:
    """An emulated DVS camera of ``width`` x ``height`` pixels.

    The per-pixel threshold mismatch is drawn once from ``seed`` (it is a property of the chip,
    the same for every recording); each recording's noise comes from the recording's own seed.
    ``record_frames`` turns intensity frames into events; ``record_saccades`` moves a static
    image along N-MNIST's saccades first. Deterministic given the seeds.
    """

    def __init__(self, width: int, height: int, params: DVSParams = DVSParams(), *, seed: int = 0):
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32767:
                raise ValueError(f"{name} must be an int in [1, 32767], got {value!r}.")
        if not isinstance(params, DVSParams):
            raise TypeError(f"params must be a DVSParams, got {type(params).__name__}.")
        self.width, self.height, self.params = width, height, params
        rng = np.random.default_rng([*_seed_words(seed), 0x5D5])
        shape = (height, width)
        self.thr_on = np.maximum(params.contrast + params.mismatch_sigma * rng.standard_normal(shape),
                                 0.01).astype(np.float32)
        self.thr_off = np.maximum(params.contrast + params.mismatch_sigma * rng.standard_normal(shape),
                                  0.01).astype(np.float32)

    @property
    def sensor_size(self) -> tuple[int, int, int]:
        """tonic's ``(W, H, P)``."""
        return (self.width, self.height, 2)

    def _log_frames_events(self, log_frames: np.ndarray, times_us: np.ndarray, seed) -> np.ndarray:
        S = log_frames.shape[0]
        capacity = max(1024, 4 * self.width * self.height)
        while True:
            xs = np.empty(capacity, np.int16)
            ys = np.empty(capacity, np.int16)
            ts = np.empty(capacity, np.int64)
            ps = np.empty(capacity, np.bool_)
            n = dvs_events_kernel(log_frames, times_us, self.thr_on, self.thr_off,
                                  float(self.params.refractory_us), xs, ys, ts, ps)
            if n >= 0:
                break
            capacity *= 4
        signal = np.empty(n, EVENT_DTYPE)
        signal["x"], signal["y"], signal["t"], signal["p"] = xs[:n], ys[:n], ts[:n], ps[:n]
        noise = self._noise(float(times_us[0]), float(times_us[S - 1]), seed)
        events = np.concatenate([signal, noise])
        order = np.lexsort((events["x"], events["y"], events["t"]))
        return events[order]

    def _noise(self, t_start: float, t_end: float, seed) -> np.ndarray:
        rate = self.params.noise_rate_hz
        duration_s = (t_end - t_start) * 1e-6
        rng = np.random.default_rng([*_seed_words(seed), 0xBA])
        counts = rng.poisson(rate * duration_s, size=self.width * self.height) if rate > 0 else \
            np.zeros(self.width * self.height, np.int64)
        total = int(counts.sum())
        noise = np.empty(total, EVENT_DTYPE)
        pixel = np.repeat(np.arange(self.width * self.height), counts)
        noise["x"] = pixel % self.width
        noise["y"] = pixel // self.width
        noise["t"] = np.floor(rng.uniform(t_start, t_end, size=total)).astype(np.int64)
        noise["p"] = rng.random(total) < 0.5
        return noise

    def record_frames(self, intensity: np.ndarray, times_us: np.ndarray, *, seed: int | tuple[int, ...] = 0) -> np.ndarray:
        """Events for a scene given as intensity frames [S, H, W] in [0, 1] (0 black, 1 white)
        sampled at increasing ``times_us`` [S]. The first frame sets every pixel's reference."""
        intensity = np.asarray(intensity, dtype=np.float32)
        times_us = np.asarray(times_us, dtype=np.float64)
        if intensity.ndim != 3 or intensity.shape[1:] != (self.height, self.width):
            raise ValueError(f"intensity must have shape [S, {self.height}, {self.width}], "
                             f"got {intensity.shape}.")
        if times_us.shape != (intensity.shape[0],) or intensity.shape[0] < 2:
            raise ValueError(f"times_us must have one time per frame (S >= 2), got shape "
                             f"{times_us.shape} for {intensity.shape[0]} frames.")
        if not np.all(np.diff(times_us) > 0):
            raise ValueError("times_us must be strictly increasing.")
        if not np.all(np.isfinite(intensity)) or intensity.min() < 0 or intensity.max() > 1:
            raise ValueError("intensity must be finite and lie in [0, 1] (0 black, 1 white).")
        dark = self.params.dark_level
        log_frames = np.log(dark + (1 - dark) * intensity).astype(np.float32)
        return self._log_frames_events(np.ascontiguousarray(log_frames), times_us, seed)

    def record_saccades(self, image: np.ndarray, saccades: SaccadeParams = SaccadeParams(), *,
                        seed: int | tuple[int, ...] = 0, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """Events for a static ``image`` (float [h, w] in [0, 1], bright strokes on black) placed
        at ``offset`` (x, y) pixels from the sensor's top-left corner and moved along N-MNIST's
        three saccades; timestamps from 0 to ``saccades.duration_us``."""
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 2:
            raise ValueError(f"image must be a 2-D grey image [h, w], got shape {image.shape}.")
        if not np.all(np.isfinite(image)) or image.min() < 0 or image.max() > 1:
            raise ValueError("image must be finite and lie in [0, 1] (0 black, 1 white).")
        times = np.arange(0, saccades.duration_us + 1, saccades.step_us, dtype=np.float64)
        dx, dy = saccade_path(times, saccades.travel_px, saccades.saccade_us)
        log_frames = render_log_frames(np.ascontiguousarray(image), dx + offset[0], dy + offset[1],
                                       self.height, self.width, float(self.params.dark_level))
        return self._log_frames_events(log_frames, times, seed)


def event_counts_vs_contrast(images, contrasts, *, params: DVSParams = DVSParams(),
                             saccades: SaccadeParams = SaccadeParams(), sensor_px: int = 34,
                             offset: tuple[float, float] = (0.0, 0.0), camera_seed: int = 0,
                             seed: int = 0) -> np.ndarray:
    """Number of events per recording, ``[len(contrasts), len(images)]``: each image recorded
    along the saccades by a camera whose contrast threshold C is each of ``contrasts`` (other
    pixel parameters from ``params``; same chip seed and noise seeds for every C, so only C
    changes). Expectation for an ideal pixel: count ~ sum |Delta L| / C, i.e. proportional to 1/C."""
    from dataclasses import replace

    counts = np.zeros((len(contrasts), len(images)), dtype=np.int64)
    for a, contrast in enumerate(contrasts):
        camera = DVSCamera(sensor_px, sensor_px, replace(params, contrast=float(contrast)), seed=camera_seed)
        for b, image in enumerate(images):
            counts[a, b] = len(camera.record_saccades(image, saccades, seed=(seed, b), offset=offset))
    return counts
