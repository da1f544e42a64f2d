"""N-MNIST (Orchard et al. 2015), the recording snnlab's emulated event camera imitates, read
through tonic's reader (:class:`tonic.datasets.NMNIST`, binary ``.bin`` files).

Each recording is an ATIS sensor (34x34 window) watching an MNIST digit on a monitor while it
makes three saccades (about 100 ms each). A ``.bin`` file holds 5 bytes per event: x (byte 0), y
(byte 1), polarity (bit 7 of byte 2) and a 23-bit timestamp in microseconds (the rest of bytes
2-4, big-endian); y = 240 marks a timestamp overflow (+2^13 us). tonic's ``read_mnist_file``
decodes this; here the events come out with the emulated set's dtype
(:data:`snnlab.data.dvs_camera.EVENT_DTYPE`), so real and emulated recordings can be compared
field by field, and are framed by the same :class:`~snnlab.data.frames.EventsToFrames`.

Layout (tonic's, what ``snnlab data fetch nmnist`` extracts)::

    <root>/NMNIST/Train/<digit>/<id>.bin     60,000 recordings
    <root>/NMNIST/Test/<digit>/<id>.bin      10,000 recordings
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from snnlab.checks import check_timesteps
from snnlab.data.dvs_camera import EVENT_DTYPE
from snnlab.data.frames import EventFramesDataset, EventsToFrames
from snnlab.data.paths import DataMissingError, data_root

__all__ = ["NMNIST_SENSOR", "NMNIST_DEFAULT_T", "NMNIST_COUNTS", "nmnist_folder", "NMNISTDataset", "verify_nmnist",
           "recording_statistics", "nmnist_statistics"]

NMNIST_SENSOR = (34, 34, 2)
NMNIST_DEFAULT_T = 10
"""Frames per recording by default (as the emulated set's)."""
NMNIST_COUNTS = {"Train": 60_000, "Test": 10_000}
"""Recordings per split in the official release."""

_HOW_TO_GET = ("To get it: run `snnlab data fetch nmnist` (downloads the official train.zip and test.zip and "
               "checks their md5), or download them from https://www.garrickorchard.com/datasets/n-mnist and "
               "extract both into {root}/NMNIST/ (giving {root}/NMNIST/Train/0/*.bin ... and "
               "{root}/NMNIST/Test/...).")


def nmnist_folder(root: str | os.PathLike | None = None) -> Path:
    """Where N-MNIST is looked for: ``<root>/NMNIST`` (tonic's folder name)."""
    return data_root(root) / "NMNIST"


def _missing(looked_in: Path, root: Path) -> DataMissingError:
    return DataMissingError("nmnist", looked_in, _HOW_TO_GET.format(root=root))


def _split(train: bool) -> str:
    return "Train" if train else "Test"


def _nmnist_class():
    import tonic.datasets

    class NMNIST(tonic.datasets.NMNIST):
        """tonic's NMNIST, checking the extracted folder (not the archive), never downloading,
        and decoding into snnlab's event dtype. Same class name, so the folder is ``<save_to>/NMNIST``."""

        dtype = EVENT_DTYPE

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            order = sorted(range(len(self.data)), key=lambda i: self.data[i])  # file-system independent
            self.data = [self.data[i] for i in order]
            self.targets = [self.targets[i] for i in order]

        def _check_exists(self) -> bool:
            return any(Path(self.location_on_system, self.folder_name).glob("*/*.bin"))

        def download(self) -> None:
            raise _missing(Path(self.location_on_system, self.folder_name), Path(self.location_on_system).parent)

    return NMNIST


class NMNISTDataset(Dataset):
    """N-MNIST as ``(float32 [T, 2, size, size], int)`` items, framed like ``nmnist-emulated``.

    Parameters:
        train: the official train (60,000) or test (10,000) split.
        T: frames per recording (default 10).
        root: data root (default ``$SNNLAB_DATA`` or ``~/.cache/snnlab``).
        size: frame side after ``tonic.transforms.Downsample`` (default 34, the sensor).
        time_window_ms: fixed-length frames from the first event (else T equal bins).
        denoise_us: ``tonic.transforms.Denoise`` filter time (None: off).
        rtd_T: random temporal deletion to ``rtd_T`` frames, training split only.
        first_saccade_only: keep the events of the first saccade (t < 100 ms), tonic's option.
        stabilize: undo the saccades' motion (tonic's ``stabilize``, after the authors' code).

    ``dataset.events(i)`` returns the raw events of item i (fields x, y, t [us], p) and
    ``dataset.label(i)`` its digit.
    """

    def __init__(self, train: bool, *, T: int | None = None, root: str | None = None, size: int | None = None,
                 time_window_ms: float | None = None, denoise_us: float | None = None, rtd_T: int | None = None,
                 first_saccade_only: bool = False, stabilize: bool = False):
        self.train = bool(train)
        self.T = NMNIST_DEFAULT_T if T is None else check_timesteps("T", T)
        root_path = data_root(root)
        folder = nmnist_folder(root) / _split(self.train)
        if not any(folder.glob("*/*.bin")):
            raise _missing(folder, root_path)
        self.recordings = _nmnist_class()(str(root_path), train=self.train,
                                          first_saccade_only=bool(first_saccade_only), stabilize=bool(stabilize))
        self.sensor_size = NMNIST_SENSOR
        self.to_frames = EventsToFrames(
            NMNIST_SENSOR, self.T, size=size,
            time_window_us=None if time_window_ms is None else time_window_ms * 1000.0,
            denoise_us=denoise_us)
        self._frames = EventFramesDataset(self.recordings, self.to_frames, rtd_T=rtd_T if self.train else None)
        self.classes = [str(d) for d in range(10)]

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self._frames[index]

    def events(self, index: int) -> np.ndarray:
        """Raw events (structured array x, y, t [us], p) of item ``index``."""
        return self.recordings[int(index)][0]

    def label(self, index: int) -> int:
        return int(self.recordings.targets[int(index)])


def verify_nmnist(root: str | None = None) -> dict:
    """Check N-MNIST in place: ``{"folder", "present", "files", "problems"}`` (each split must hold its
    official number of recordings, :data:`NMNIST_COUNTS`)."""
    folder = nmnist_folder(root)
    problems, files = [], 0
    for split, expected in NMNIST_COUNTS.items():
        n = len(list((folder / split).glob("*/*.bin")))
        files += n
        if n != expected:
            problems.append(f"{folder / split}: {n} recordings (expected {expected})")
    return {"folder": str(folder), "present": files > 0, "files": files, "problems": problems}


def recording_statistics(recordings) -> dict:
    """What chapter 2's table compares between emulated and real recordings, from any sequence of
    event arrays (fields x, y, t [us], p): ``{"recordings", "window" (width, height: largest x and y
    plus one), "median_ms" (median time of a recording's last event), "events_mean" (events per
    recording), "on_fraction" (share of ON events over all events)}``."""
    n, width, height, last_ms, counts, on = 0, 0, 0, [], [], 0
    for events in recordings:
        events = np.asarray(events)
        if len(events) == 0:
            raise ValueError(f"recording {n} holds no events.")
        n += 1
        width, height = max(width, int(events["x"].max()) + 1), max(height, int(events["y"].max()) + 1)
        last_ms.append(float(events["t"].max()) / 1000.0)
        counts.append(len(events))
        on += int(np.count_nonzero(events["p"]))
    if n == 0:
        raise ValueError("recording_statistics needs at least one recording.")
    return {"recordings": n, "window": (width, height), "median_ms": float(np.median(last_ms)),
            "events_mean": float(np.mean(counts)), "on_fraction": on / float(sum(counts))}


def nmnist_statistics(root: str | None = None, *, train: bool = False, limit: int = 1000) -> dict | None:
    """:func:`recording_statistics` of ``limit`` N-MNIST recordings spread evenly over the split
    (every digit), or ``None`` when N-MNIST is not on disk (``snnlab data fetch nmnist``)."""
    folder = nmnist_folder(root) / _split(train)
    if not any(folder.glob("*/*.bin")):
        return None
    recordings = _nmnist_class()(str(data_root(root)), train=bool(train))
    picks = np.unique(np.linspace(0, len(recordings) - 1, min(int(limit), len(recordings))).astype(int))
    stats = recording_statistics(np.asarray(recordings[int(i)][0]) for i in picks)
    stats["of"] = len(recordings)
    return stats
