"""The "emulated neuromorphic digits" data set: every scikit-learn digit recorded by
:class:`~snnlab.data.dvs_camera.DVSCamera` along N-MNIST's three saccades (Orchard et al. 2015).

As in N-MNIST, a 28x28 digit (here the 8x8 digit upscaled bilinearly) moves inside a 34x34 pixel
window for 300 ms. Generation is deterministic given the configuration (camera seed for the
threshold mismatch, recording seed for the noise) and is cached on disk as one ``.npz`` file
under ``<root>/emulated/``, named by a hash of the configuration and written atomically, so a
changed parameter makes a new file and an interrupted run leaves none. The split is the digits'
fixed split (:func:`snnlab.data.digits.digits_split`).

Presets (:data:`EMULATED_PRESETS`, each registered as a data set name, see
:mod:`snnlab.data.registry`):

* ``default`` (``nmnist-emulated``): the camera as configured by :class:`DVSParams` (v2e's
  contrast threshold, a monitor's black level, little background noise), T = 10 frames of 34x34.
  Every frame holds hundreds of clean edge events: a single frame already shows the digit.
* ``faint`` (``nmnist-emulated-faint``): a dim, low-contrast scene seen by a less sensitive, noisier
  camera, so that evidence has to accumulate over time. The strokes are only 1/0.6 = 1.7 times
  brighter than the background (``dark_level=0.6``: a log-intensity step of 0.51 where the default's
  black level of 0.1 gives 2.30), the contrast threshold is 0.3 instead of 0.2, so an edge that
  crosses a pixel fires one or two events instead of about eleven, and the background activity is
  3 Hz per pixel instead of 0.5 Hz. The recording is cut into T = 8 frames and downsampled to
  17x17. A frame then holds about 70 events caused by the digit among about 130 noise events (35 %
  signal, against 98 % for ``default``; :func:`frame_signal_to_noise`), and a classifier that sees
  one frame does far worse than one that sees all eight (chapter 7 measures both, with a linear
  classifier and with spiking networks).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from snnlab.checks import check_positive_int, check_seed, check_timesteps
from snnlab.data.digits import digits_images, digits_split, resize_images
from snnlab.data.dvs_camera import EVENT_DTYPE, DVSCamera, DVSParams, SaccadeParams
from snnlab.data.frames import EventFramesDataset, EventsToFrames
from snnlab.data.paths import atomic_write, data_root
from snnlab.errors import CorruptFileError, SnnlabWarning
from snnlab.files import folder_lock, remove_orphaned_temporaries

__all__ = [
    "EMULATED_SENSOR",
    "EMULATED_DIGIT_PX",
    "EMULATED_DEFAULT_T",
    "EmulatedPreset",
    "EMULATED_PRESETS",
    "emulated_preset",
    "EmulatedConfig",
    "EmulatedRecordings",
    "generate_emulated_digits",
    "emulated_cache_path",
    "prepare_emulated_digits",
    "ensure_emulated_cache",
    "EmulatedDigitsDataset",
    "FrameSignalToNoise",
    "frame_signal_to_noise",
]

EMULATED_SENSOR = 34  # N-MNIST's window
EMULATED_DIGIT_PX = 28  # MNIST's digit size
EMULATED_DEFAULT_T = 10
_FORMAT = 1  # bump when the file layout or the emulator's output changes
PREPARE_LOCK = ".prepare.lock"
"""Lock file in ``<root>/emulated/``: one generation at a time (the lock is released when the process ends)."""


@dataclass(frozen=True)
class EmulatedConfig:
    """Everything that determines the emulated recordings (and so the cache file name)."""

    dvs: DVSParams = field(default_factory=DVSParams)
    saccades: SaccadeParams = field(default_factory=SaccadeParams)
    camera_seed: int = 0
    seed: int = 0
    digit_px: int = EMULATED_DIGIT_PX
    sensor_px: int = EMULATED_SENSOR
    limit: int | None = None  # only the first `limit` digits (scikit-learn order); for tests

    def __post_init__(self) -> None:
        check_seed("camera_seed", self.camera_seed)
        check_seed("seed", self.seed)
        check_positive_int("digit_px", self.digit_px)
        check_positive_int("sensor_px", self.sensor_px)
        if self.limit is not None:
            check_positive_int("limit (the first N digits)", self.limit)

    def key(self) -> str:
        payload = json.dumps({"format": _FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:12]

    @classmethod
    def from_preset(cls, preset: str = "default", **options) -> "EmulatedConfig":
        """The configuration of preset ``preset`` (:data:`EMULATED_PRESETS`), with ``options``
        (as for :meth:`from_options`) overriding its camera settings."""
        return cls.from_options(**{**emulated_preset(preset).camera, **options})

    @classmethod
    def from_options(cls, **options) -> "EmulatedConfig":
        """Build from flat keyword options: any DVSParams or SaccadeParams field, plus
        ``camera_seed``, ``seed``, ``digit_px``, ``sensor_px``, ``limit``."""
        dvs_fields = set(DVSParams.__dataclass_fields__)
        sac_fields = set(SaccadeParams.__dataclass_fields__)
        own = {"camera_seed", "seed", "digit_px", "sensor_px", "limit"}
        unknown = set(options) - dvs_fields - sac_fields - own
        if unknown:
            valid = ", ".join(sorted(dvs_fields | sac_fields | own))
            raise ValueError(f"unknown emulated-camera option(s) {sorted(unknown)}; valid: {valid}.")
        return cls(dvs=DVSParams(**{k: v for k, v in options.items() if k in dvs_fields}),
                   saccades=SaccadeParams(**{k: v for k, v in options.items() if k in sac_fields}),
                   **{k: v for k, v in options.items() if k in own})


@dataclass(frozen=True)
class EmulatedPreset:
    """A named setting of the emulated data set: camera options (any :class:`DVSParams` or
    :class:`SaccadeParams` field, see :meth:`EmulatedConfig.from_options`) and the default framing
    (``T`` frames of ``size`` x ``size``; ``size=None``: the 34x34 sensor)."""

    name: str
    description: str
    camera: dict = field(default_factory=dict)
    T: int = EMULATED_DEFAULT_T
    size: int | None = None

    @property
    def dataset_name(self) -> str:
        """Its name in :func:`snnlab.data.load_dataset`: ``nmnist-emulated`` for ``default``,
        ``nmnist-emulated-<name>`` for the others."""
        return "nmnist-emulated" if self.name == "default" else f"nmnist-emulated-{self.name}"


EMULATED_PRESETS: dict[str, EmulatedPreset] = {
    "default": EmulatedPreset(
        "default", "the camera as configured by DVSParams (contrast threshold 0.2, black level 0.1, "
        "0.5 Hz/pixel background activity), T=10 frames of 34x34"),
    "faint": EmulatedPreset(
        "faint", "a dim, low-contrast scene, a less sensitive and noisier camera (black level 0.6, "
        "contrast threshold 0.3, 3 Hz/pixel background activity), T=8 frames of 17x17: one frame is "
        "not enough, evidence accumulates over time",
        camera={"dark_level": 0.6, "contrast": 0.3, "noise_rate_hz": 3.0}, T=8, size=17),
}
"""Preset name -> :class:`EmulatedPreset` (see the module docstring for why ``faint`` is set as it is)."""


def emulated_preset(name: str) -> EmulatedPreset:
    """The preset called ``name``; an unknown name raises a ``ValueError`` listing the presets."""
    if not isinstance(name, str) or name not in EMULATED_PRESETS:
        raise ValueError(f"unknown emulated-camera preset {name!r}; presets: {', '.join(EMULATED_PRESETS)}.")
    return EMULATED_PRESETS[name]


@dataclass
class EmulatedRecordings:
    """All recordings, concatenated: events of recording i are ``x[o[i]:o[i+1]]`` etc. with
    ``o = offsets``; ``labels[i]`` its class, ``digit_index[i]`` its index in ``load_digits``."""

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    p: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    digit_index: np.ndarray
    sensor_size: tuple[int, int, int]

    def __len__(self) -> int:
        return len(self.labels)

    def events(self, i: int) -> np.ndarray:
        """Recording ``i`` as tonic's structured event array."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        ev = np.empty(b - a, EVENT_DTYPE)
        ev["x"], ev["y"], ev["t"], ev["p"] = self.x[a:b], self.y[a:b], self.t[a:b], self.p[a:b]
        return ev

    def save(self, path: Path) -> None:
        """Write an ``.npz`` (zip of ``.npy`` arrays, deflate level 1: about as small as numpy's
        default level and several times faster), atomically."""
        arrays = {"x": self.x, "y": self.y, "t": self.t, "p": self.p, "offsets": self.offsets,
                  "labels": self.labels, "digit_index": self.digit_index,
                  "sensor_size": np.asarray(self.sensor_size)}

        def write(tmp: Path) -> None:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                for name, array in arrays.items():
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, np.ascontiguousarray(array))

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> "EmulatedRecordings":
        """Read a cache file written by :meth:`save`; a truncated, garbage or inconsistent file
        raises :class:`~snnlab.errors.CorruptFileError` naming it."""
        path = Path(path)
        expected = "an emulated-digits cache (an .npz written by snnlab data prepare)"
        fix = ("Delete it, or run `snnlab data prepare nmnist-emulated --force` (with the same options); "
               "EmulatedDigitsDataset rebuilds a damaged cache by itself.")
        try:
            with np.load(path, allow_pickle=False) as f:
                rec = cls(x=f["x"], y=f["y"], t=f["t"], p=f["p"], offsets=f["offsets"],
                          labels=f["labels"], digit_index=f["digit_index"],
                          sensor_size=tuple(int(s) for s in f["sensor_size"]))
        except Exception as error:  # noqa: BLE001 - zip, npy and key errors all mean a damaged file
            raise CorruptFileError.describe(path, expected, fix, error) from error
        n_events = len(rec.x)
        consistent = (len(rec.offsets) == len(rec.labels) + 1 and len(rec.digit_index) == len(rec.labels)
                      and all(len(a) == n_events for a in (rec.y, rec.t, rec.p))
                      and (len(rec.offsets) == 0 or (int(rec.offsets[0]) == 0 and int(rec.offsets[-1]) == n_events))
                      and len(rec.sensor_size) == 3)
        if not consistent:
            raise CorruptFileError.describe(path, expected, fix, "inconsistent: its arrays do not agree in length")
        return rec


def generate_emulated_digits(config: EmulatedConfig = EmulatedConfig(), *, progress: bool = False,
                             workers: int | None = None) -> EmulatedRecordings:
    """Record every digit (or the first ``config.limit``) with one camera; recording i uses
    noise seed ``(config.seed, i)``. ``workers`` threads (default: one per CPU core). Returns the
    recordings in memory (no caching)."""
    from tqdm.auto import tqdm

    images, labels = digits_images(None)
    if config.limit is not None:
        images, labels = images[: config.limit], labels[: config.limit]
    if config.digit_px > config.sensor_px:
        raise ValueError(f"digit_px={config.digit_px} must be <= sensor_px={config.sensor_px}.")
    big = resize_images(torch.from_numpy(images)[:, None], config.digit_px)[:, 0].numpy()
    camera = DVSCamera(config.sensor_px, config.sensor_px, config.dvs, seed=config.camera_seed)
    # Centre the triangle's bounding box (travel A in x and y) in the window, as N-MNIST's
    # 34x34 crop holds the 28x28 digit over its whole path.
    margin = (config.sensor_px - config.digit_px - config.saccades.travel_px) / 2
    parts: list[np.ndarray | None] = [None] * len(big)

    def record(i: int) -> int:
        parts[i] = camera.record_saccades(big[i], config.saccades, seed=(config.seed, i),
                                          offset=(margin, margin))
        return i

    # The Numba kernels release the GIL, so threads share the cores; each recording depends only
    # on its own seed, so the result does not depend on the number of workers or their order.
    workers = max(1, min(workers if workers is not None else (os.cpu_count() or 1), len(big) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in tqdm(pool.map(record, range(len(big))), total=len(big), desc="emulating DVS recordings",
                      unit="digit", disable=not progress):
            pass
    counts = np.array([len(ev) for ev in parts], dtype=np.int64)
    events = np.concatenate(parts) if parts else np.empty(0, EVENT_DTYPE)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return EmulatedRecordings(
        x=events["x"].astype(np.uint8), y=events["y"].astype(np.uint8),
        t=events["t"].astype(np.uint32), p=events["p"].astype(bool), offsets=offsets,
        labels=labels.astype(np.int64), digit_index=np.arange(len(labels)),
        sensor_size=camera.sensor_size)


def emulated_cache_path(config: EmulatedConfig = EmulatedConfig(), root: str | None = None) -> Path:
    """``<root>/emulated/nmnist-emulated-<config hash>.npz``."""
    return data_root(root) / "emulated" / f"nmnist-emulated-{config.key()}.npz"


def prepare_emulated_digits(config: EmulatedConfig = EmulatedConfig(), root: str | None = None, *,
                            progress: bool = True, force: bool = False) -> Path:
    """Generate the recordings into the cache unless a file for this configuration exists
    (``force`` regenerates). Returns the cache path.

    A lock file in the cache folder (:data:`PREPARE_LOCK`) makes concurrent calls, in threads or
    in processes (two ``snnlab data prepare`` at once), do the work once: the second waits for the
    first and finds the file. The temporary files a killed generation left are removed.
    """
    return ensure_emulated_cache(config, root, progress=progress, force=force)[0]


def ensure_emulated_cache(config: EmulatedConfig, root=None, *, progress: bool = True,
                          force: bool = False) -> tuple[Path, bool]:
    """:func:`prepare_emulated_digits` returning ``(cache path, whether this call generated it)``."""
    path = emulated_cache_path(config, root)
    if not force and path.is_file():
        return path, False
    with folder_lock(path.parent / PREPARE_LOCK, wait=True):
        remove_orphaned_temporaries(path.parent, (path.name,))
        if force or not path.is_file():  # another process may have made it while we waited
            generate_emulated_digits(config, progress=progress).save(path)
            return path, True
    return path, False


class EmulatedDigitsDataset(Dataset):
    """The emulated N-MNIST-style digits as ``(float32 [T, 2, size, size], int)`` items.

    Parameters:
        train: the digits' fixed train (1,347) or test (450) split.
        preset: a name of :data:`EMULATED_PRESETS` (``"default"`` or ``"faint"``): its camera
            options and its default ``T`` and ``size``.
        T: frames per recording (default: the preset's, 10 for ``default``, 8 for ``faint``).
        root: data root for the cache.
        size: frame side after ``tonic.transforms.Downsample`` (default: the preset's; 34, the
            sensor, for ``default``).
        time_window_ms: fixed-length frames from the first event (else T equal bins).
        denoise_us: ``tonic.transforms.Denoise`` filter time (None: off).
        rtd_T: random temporal deletion to ``rtd_T`` frames, training split only.
        progress: show a progress bar if the recordings have to be generated.
        **camera: emulator options (``contrast``, ``noise_rate_hz``, ``seed`` ..., see
            :meth:`EmulatedConfig.from_options`), overriding the preset's; each distinct setting
            has its own cache file.

    ``dataset.recordings`` holds all recordings; ``dataset.events(i)`` the raw events of item i.
    """

    def __init__(self, train: bool, *, preset: str = "default", T: int | None = None, root: str | None = None,
                 size: int | None = None, time_window_ms: float | None = None,
                 denoise_us: float | None = None, rtd_T: int | None = None,
                 progress: bool = True, **camera):
        self.train = bool(train)
        self.preset = emulated_preset(preset)
        self.config = EmulatedConfig.from_preset(preset, **camera)
        self.T = self.preset.T if T is None else check_timesteps("T", T)
        size = self.preset.size if size is None else size
        self.path = prepare_emulated_digits(self.config, root, progress=progress)
        try:
            self.recordings = EmulatedRecordings.load(self.path)
        except CorruptFileError as error:  # a damaged cache (a full disk, a copy cut short): rebuild it
            import warnings

            warnings.warn(f"{error}; rebuilding it.", SnnlabWarning, stacklevel=2)
            self.path = prepare_emulated_digits(self.config, root, progress=progress, force=True)
            self.recordings = EmulatedRecordings.load(self.path)
        split = digits_split(self.train)
        self.indices = split[split < len(self.recordings)]
        self.to_frames = EventsToFrames(
            self.recordings.sensor_size, self.T, size=size,
            time_window_us=None if time_window_ms is None else time_window_ms * 1000.0,
            denoise_us=denoise_us)
        self._frames = EventFramesDataset(_RecordingEvents(self.recordings), self.to_frames,
                                          rtd_T=rtd_T if self.train else None, indices=self.indices)
        self.classes = [str(d) for d in range(10)]
        self.sensor_size = self.recordings.sensor_size

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self._frames[index]

    def events(self, index: int) -> np.ndarray:
        """Raw events (tonic structured array) of item ``index``."""
        return self.recordings.events(int(self.indices[index]))

    def label(self, index: int) -> int:
        return int(self.recordings.labels[int(self.indices[index])])


class _RecordingEvents:
    """Adapter: recordings as a sequence of ``(events, label)``."""

    def __init__(self, recordings: EmulatedRecordings):
        self.recordings = recordings

    def __len__(self) -> int:
        return len(self.recordings)

    def __getitem__(self, i: int):
        return self.recordings.events(i), int(self.recordings.labels[i])


@dataclass(frozen=True)
class FrameSignalToNoise:
    """Events in one frame of a recording cut into ``T`` frames (:func:`frame_signal_to_noise`)."""

    T: int
    signal_per_frame: float
    """Mean events the scene causes per frame (the same recordings with the noise switched off)."""
    noise_per_frame: float
    """Mean background-activity events per frame (their Poisson mean: rate x pixels x duration / T)."""

    @property
    def snr(self) -> float:
        """Signal events over the noise count's standard deviation (Poisson: the square root of its
        mean). It falls as ``1/sqrt(T)`` when a recording is cut into more frames."""
        return self.signal_per_frame / self.noise_per_frame ** 0.5 if self.noise_per_frame > 0 else float("inf")

    @property
    def signal_fraction(self) -> float:
        """The share of a frame's events that the scene caused."""
        total = self.signal_per_frame + self.noise_per_frame
        return self.signal_per_frame / total if total > 0 else 0.0


def frame_signal_to_noise(config: EmulatedConfig = EmulatedConfig(), T: int = EMULATED_DEFAULT_T, *,
                          digits: int = 50) -> FrameSignalToNoise:
    """How much of one frame is signal: the first ``digits`` digits recorded by ``config``'s camera
    with its background activity switched off (the same chip and seeds, so exactly the events the
    scene causes), against the background activity's expected count, both per frame of a
    recording cut into ``T`` equal bins.

    >>> faint = frame_signal_to_noise(EmulatedConfig.from_preset("faint"), T=8)   # doctest: +SKIP
    >>> faint.snr < frame_signal_to_noise().snr                                   # doctest: +SKIP
    True
    """
    from dataclasses import replace

    T = check_timesteps("T", T)
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 1:
        raise ValueError(f"digits must be an int >= 1, got {digits!r}.")
    limit = digits if config.limit is None else min(digits, config.limit)
    quiet = replace(config, dvs=replace(config.dvs, noise_rate_hz=0.0), limit=limit)
    recordings = generate_emulated_digits(quiet)
    signal = float(np.diff(recordings.offsets).mean())
    duration_s = config.saccades.duration_us * 1e-6
    noise = config.dvs.noise_rate_hz * config.sensor_px ** 2 * duration_s
    return FrameSignalToNoise(T, signal / T, noise / T)
