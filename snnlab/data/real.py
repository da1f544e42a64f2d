"""Loaders for the papers' real data sets, for users who have the files: CIFAR-10/100 through
torchvision, DVS Gesture and CIFAR10-DVS through tonic, with the papers' preprocessing.

Nothing here downloads. The library classes are subclassed so that a missing file raises
:class:`~snnlab.data.paths.DataMissingError` (naming the data set, the folder looked in and where to
get the files) instead of starting a download that would hang on an offline machine. Loading
checks that the files are present; ``snnlab data verify`` (:func:`verify_dataset`) additionally
checks the published MD5 sums.

Preprocessing (the papers' settings, as presets; every field can be overridden):

- CIFAR-10/100, training: random crop 32 with zero padding 4, horizontal flip, per-channel
  normalisation (the recipe of SEW ResNet, OTTT, MLF and ATSN); test: normalisation only.
- DVS Gesture (128x128, 11 classes, tonic's train/test split by subject):
  ``mlf``: frames of 30 ms at 32x32, T=40 (Qu, Li, Liu 2024, Sec. 4.1);
  ``sew``: T=16 equal time bins at 128x128, random temporal deletion to 12 frames for training
  (Fang et al. 2021, Sec. 5.3).
- CIFAR10-DVS (128x128, 10 classes, 1,000 recordings each, no official split): split 9000/1000,
  i.e. 900/100 per class, by a fixed seed (ATSN Sec. 4.1, OTTT);
  ``mlf``: frames of 10 ms at 42x42, T=10 (Qu, Li, Liu 2024, Sec. 4.1; read literally these frames
  cover only the first 100 ms of a ~1.3 s recording, which is what is implemented);
  ``ottt``: T=10 equal time bins at 48x48 (Xiao et al., OTTT);
  ``sew``: T=16 equal time bins at 128x128 (Fang et al. 2021).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from snnlab.checks import check_bool, check_choice, check_timesteps
from snnlab.data.frames import EventFramesDataset, EventsToFrames
from snnlab.data.paths import DataMissingError, data_root
from snnlab.errors import CorruptFileError

__all__ = [
    "CIFAR_STATS",
    "cifar_dataset",
    "cifar_folder",
    "DVS_PRESETS",
    "DVSSettings",
    "dvs_settings",
    "dvs_dataset",
    "dvs_folder",
    "cifar10dvs_split",
    "CIFAR10DVS_SPLIT_SEED",
    "verify_dataset",
    "REAL_DATASETS",
    "check_cifar_file",
    "check_dvsgesture_npy",
    "check_aedat4",
]

REAL_DATASETS = ("cifar10", "cifar100", "dvsgesture", "cifar10dvs", "nmnist")

# Per-channel mean and std of the training images (computed on the training sets; the values used
# by the papers' code bases).
CIFAR_STATS = {
    10: ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    100: ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

_HOW_TO_GET = {
    "cifar10": ("run `snnlab data fetch cifar10`, or download "
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it into "
                "{root}/cifar10/ (giving {root}/cifar10/cifar-10-batches-py/), or on a machine with "
                "internet run torchvision.datasets.CIFAR10('{root}/cifar10', download=True)."),
    "cifar100": ("run `snnlab data fetch cifar100`, or download "
                 "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and extract it into "
                 "{root}/cifar100/ (giving {root}/cifar100/cifar-100-python/), or on a machine with "
                 "internet run torchvision.datasets.CIFAR100('{root}/cifar100', download=True)."),
    "dvsgesture": ("run `snnlab data fetch dvsgesture`, or get ibmGestureTrain.tar.gz and "
                   "ibmGestureTest.tar.gz (tonic's preprocessed copy, "
                   "https://figshare.com/ndownloader/files/38022171 and .../38020584) and "
                   "extract both into {root}/DVSGesture/, or on a machine with internet run "
                   "tonic.datasets.DVSGesture('{root}', train=True) and train=False."),
    "cifar10dvs": ("run `snnlab data fetch cifar10dvs`, or get CIFAR10DVS.zip (tonic's copy, "
                   "https://figshare.com/ndownloader/files/38023437) and extract it and the ten "
                   "per-class zips into {root}/CIFAR10DVS/ (giving "
                   "{root}/CIFAR10DVS/airplane/*.aedat4 ...), or on a machine with internet run "
                   "tonic.datasets.CIFAR10DVS('{root}'). Reading .aedat4 needs `pip install aedat`."),
}


def _missing(name: str, looked_in: Path, root: Path) -> DataMissingError:
    return DataMissingError(name, looked_in, "To get it: " + _HOW_TO_GET[name].format(root=root))


# ----------------------------------------------------------------------------- CIFAR


def cifar_folder(num_classes: int, root: str | os.PathLike | None = None) -> Path:
    """Where CIFAR-``num_classes`` is looked for: ``<root>/cifar10/cifar-10-batches-py`` or
    ``<root>/cifar100/cifar-100-python`` (torchvision's folder names)."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = {10: CIFAR10, 100: CIFAR100}[num_classes]
    return data_root(root) / f"cifar{num_classes}" / cls.base_folder


def _cifar_filenames(cls) -> list[str]:
    """The files torchvision's CIFAR class reads: the batches and the meta file."""
    return [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]


def _offline_cifar_class(num_classes: int):
    """A torchvision CIFAR class that never downloads and checks presence, not MD5, on load."""
    from torchvision.datasets import CIFAR10, CIFAR100

    base = {10: CIFAR10, 100: CIFAR100}[num_classes]

    class OfflineCIFAR(base):
        def _check_integrity(self) -> bool:
            folder = Path(self.root, self.base_folder)
            return all((folder / n).is_file() for n in _cifar_filenames(self))

        def _load_meta(self) -> None:
            path = Path(self.root, self.base_folder, self.meta["filename"])
            check_cifar_file(path, num_classes, meta=True)
            with open(path, "rb") as infile:
                data = pickle.load(infile, encoding="latin1")
            self.classes = data[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

        def download(self) -> None:  # pragma: no cover - guarded by the presence check
            raise RuntimeError("snnlab never downloads; see snnlab.data.real.")

    OfflineCIFAR.__name__ = base.__name__
    return OfflineCIFAR


_CIFAR_FIX = {10: "Re-extract cifar-10-python.tar.gz into {root}/cifar10/ (`snnlab data verify cifar10` checks "
                   "every file's MD5 sum).",
              100: "Re-extract cifar-100-python.tar.gz into {root}/cifar100/ (`snnlab data verify cifar100` "
                   "checks every file's MD5 sum)."}


def check_cifar_file(path: Path, num_classes: int, *, meta: bool, root: Path | None = None) -> None:
    """Raise :class:`~snnlab.errors.CorruptFileError` unless ``path`` is a CIFAR batch (a pickled
    dict with ``data`` uint8 [N, 3072] and N labels) or, with ``meta``, the label-names file."""
    label_key = "labels" if num_classes == 10 else "fine_labels"
    expected = ("CIFAR's pickled meta file (a dict with the label names)" if meta else
                f"a CIFAR-{num_classes} batch: a pickled dict with 'data' (uint8 [N, 3072]) and '{label_key}'")
    fix = _CIFAR_FIX[num_classes].format(root=root if root is not None else path.parent.parent.parent)
    try:
        with open(path, "rb") as infile:
            entry = pickle.load(infile, encoding="latin1")
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise CorruptFileError.describe(path, expected, fix, error) from error
    if not isinstance(entry, dict):
        raise CorruptFileError.describe(path, expected, fix, f"a pickle of a {type(entry).__name__}")
    if meta:
        if not any(k in entry for k in ("label_names", "fine_label_names")):
            raise CorruptFileError.describe(path, expected, fix, f"no label names among keys {sorted(entry)[:6]}")
        return
    data, labels = entry.get("data"), entry.get(label_key)
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        shape = getattr(data, "shape", None)
        raise CorruptFileError.describe(path, expected, fix, f"'data' is {type(data).__name__} {shape}")
    if labels is None or len(labels) != len(data):
        raise CorruptFileError.describe(
            path, expected, fix, f"{len(data)} images but {None if labels is None else len(labels)} labels")


def _cifar_transform(num_classes: int, augment: bool):
    from torchvision import transforms as T

    mean, std = CIFAR_STATS[num_classes]
    steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []
    return T.Compose(steps + [T.ToTensor(), T.Normalize(mean, std)])


def cifar_dataset(num_classes: int, *, train: bool, root: str | None = None,
                  augment: bool | None = None) -> Dataset:
    """CIFAR-10 or CIFAR-100 from ``<root>/cifar10`` / ``<root>/cifar100`` through torchvision;
    items ``(float32 [3, 32, 32], int)``. ``augment`` (default: on for train): random crop 32
    with padding 4 and horizontal flip, then per-channel normalisation."""
    check_choice("num_classes", num_classes, (10, 100))
    name = f"cifar{num_classes}"
    folder = cifar_folder(num_classes, root)
    cls = _offline_cifar_class(num_classes)
    if not all((folder / filename).is_file() for filename in _cifar_filenames(cls)):
        raise _missing(name, folder, data_root(root))
    augment = train if check_bool("augment", augment, allow_none=True) is None else augment
    try:
        return cls(str(folder.parent), train=train, transform=_cifar_transform(num_classes, augment),
                   download=False)
    except CorruptFileError:
        raise
    except Exception as error:  # noqa: BLE001 - find the damaged file and name it
        lists = (cls.train_list if train else cls.test_list)
        for filename, _ in lists:
            check_cifar_file(folder / filename, num_classes, meta=False, root=data_root(root))
        check_cifar_file(folder / cls.meta["filename"], num_classes, meta=True, root=data_root(root))
        raise CorruptFileError(f"{folder}: torchvision could not read the CIFAR-{num_classes} files ({error}). "
                               + _CIFAR_FIX[num_classes].format(root=data_root(root)), folder) from error


# ----------------------------------------------------------------------------- DVS presets


@dataclass(frozen=True)
class DVSSettings:
    """Frame settings for a DVS data set: T frames of side ``size``; ``time_window_ms`` frames
    of fixed length (else T equal bins over the recording); ``rtd_T`` frames kept in training by
    random temporal deletion (None: off); ``denoise_us`` tonic Denoise filter time (None: off)."""

    T: int
    size: int
    time_window_ms: float | None = None
    rtd_T: int | None = None
    denoise_us: float | None = None


DVS_PRESETS: dict[str, dict[str, DVSSettings]] = {
    "dvsgesture": {
        "mlf": DVSSettings(T=40, size=32, time_window_ms=30.0),
        "sew": DVSSettings(T=16, size=128, rtd_T=12),
    },
    "cifar10dvs": {
        "mlf": DVSSettings(T=10, size=42, time_window_ms=10.0),
        "ottt": DVSSettings(T=10, size=48),
        "sew": DVSSettings(T=16, size=128),
    },
}
_UNSET: Any = object()


def dvs_settings(name: str, *, T: int | None = None, preset: str = "mlf", size: int | None = None,
                 time_window_ms: float | None = _UNSET, rtd_T: int | None = _UNSET,
                 denoise_us: float | None = _UNSET) -> DVSSettings:
    """The preset's settings with the given fields overridden (``time_window_ms=None``
    explicitly switches to T equal bins; ``rtd_T=None`` switches deletion off)."""
    check_choice("DVS data set", name, DVS_PRESETS)
    check_choice(f"{name} preset", preset, DVS_PRESETS[name])
    s = DVS_PRESETS[name][preset]
    changes: dict[str, Any] = {}
    if T is not None:
        changes["T"] = check_timesteps("T", T)
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 128:
            raise ValueError(f"size must be an int in [1, 128] (the sensor is 128x128), got {size!r}.")
        changes["size"] = size
    if time_window_ms is not _UNSET:
        changes["time_window_ms"] = time_window_ms
    if rtd_T is not _UNSET:
        changes["rtd_T"] = rtd_T
    if denoise_us is not _UNSET:
        changes["denoise_us"] = denoise_us
    s = replace(s, **changes)
    if s.rtd_T is not None and (check_timesteps("rtd_T", s.rtd_T) > s.T):
        raise ValueError(f"rtd_T={s.rtd_T} must be <= T={s.T}.")
    return s


def dvs_folder(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where a DVS data set is looked for: ``<root>/DVSGesture`` or ``<root>/CIFAR10DVS``
    (tonic's folder names)."""
    return data_root(root) / {"dvsgesture": "DVSGesture", "cifar10dvs": "CIFAR10DVS"}[name]


# ----------------------------------------------------------------------------- tonic classes


def _sort_by_path(dataset, fields: tuple[str, ...]) -> None:
    """Order a tonic data set's recordings by file path. tonic lists them in ``os.walk`` order,
    which depends on the file system; sorting makes indices, and so the seeded CIFAR10-DVS split,
    the same on every machine."""
    order = sorted(range(len(dataset.data)), key=lambda i: dataset.data[i])
    for name in fields:
        values = getattr(dataset, name)
        setattr(dataset, name, [values[i] for i in order])


_DVSGESTURE_EXPECTED = "a DVS Gesture recording: a .npy array [N, 4] of x, y, p, t (tonic's preprocessed files)"


def _dvsgesture_fix(path: Path) -> str:
    return (f"Re-extract ibmGestureTrain.tar.gz / ibmGestureTest.tar.gz into {Path(path).parents[2]} "
            f"(`snnlab data verify dvsgesture` checks every recording).")


def check_dvsgesture_npy(path: str | os.PathLike) -> None:
    """Raise :class:`~snnlab.errors.CorruptFileError` unless ``path`` is a complete ``.npy`` array
    [N, 4] (reads the header and compares the file size with it; the data is not read)."""
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as error:  # noqa: BLE001 - a bad header or a file shorter than its header says
        detail = "truncated: shorter than its .npy header says" if "length" in str(error) else error
        raise CorruptFileError.describe(path, _DVSGESTURE_EXPECTED, _dvsgesture_fix(path), detail) from error
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[1] != 4:
        raise CorruptFileError.describe(path, _DVSGESTURE_EXPECTED, _dvsgesture_fix(path),
                                        f"an array of shape {getattr(array, 'shape', None)}")


def _dvsgesture_class():
    import tonic.datasets

    class DVSGesture(tonic.datasets.DVSGesture):
        """tonic's DVSGesture, checking the extracted folder (not the archive) and never
        downloading. Same class name, so tonic's folder ``<save_to>/DVSGesture`` is kept. Every
        recording's header and size are checked when the data set is built (a truncated file is
        named before training, not in the middle of an epoch)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            _sort_by_path(self, ("data", "targets", "users", "lighting"))
            for path in self.data:
                check_dvsgesture_npy(path)

        def __getitem__(self, index):
            try:
                return super().__getitem__(index)
            except (OSError, ValueError, EOFError) as error:
                raise CorruptFileError.describe(self.data[index], _DVSGESTURE_EXPECTED,
                                                _dvsgesture_fix(self.data[index]), error) from error

        def _check_exists(self) -> bool:
            return any(Path(self.location_on_system, self.folder_name).glob("*/*.npy"))

        def download(self) -> None:
            raise _missing("dvsgesture", Path(self.location_on_system, self.folder_name),
                           Path(self.location_on_system).parent)

    return DVSGesture


AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"
_AEDAT4_EXPECTED = "a CIFAR10-DVS recording in AEDAT 4.0 (header '#!AER-DAT4.0', then packets)"


def _aedat4_fix(path: Path) -> str:
    return (f"Extract that class's zip from CIFAR10DVS.zip again into {Path(path).parents[1]} "
            f"(`snnlab data verify cifar10dvs` checks every recording).")


def check_aedat4(path: str | os.PathLike) -> None:
    """Raise :class:`~snnlab.errors.CorruptFileError` unless ``path`` has the structure of an
    AEDAT 4.0 file: the magic line, a 32-bit header length and that many bytes of ``IOHeader``
    flatbuffer (``compression``, ``dataTablePosition`` = -1 when absent, ``infoNode``), then
    packets of an 8-byte header (uint32 stream id, uint32 size) and their body, none of them running
    past the data table or the end of the file. Packets are not decompressed (the ``aedat``
    decoder does that when the recording is read)."""
    import struct

    path = Path(path)

    def bad(detail: str) -> CorruptFileError:
        return CorruptFileError.describe(path, _AEDAT4_EXPECTED, _aedat4_fix(path), detail)

    size = path.stat().st_size
    with open(path, "rb") as infile:
        if infile.read(len(AEDAT4_MAGIC)) != AEDAT4_MAGIC:
            raise bad("no AEDAT 4.0 magic line at the start")
        raw = infile.read(4)
        if len(raw) < 4:
            raise bad("truncated inside the header")
        (header_len,) = struct.unpack("<I", raw)
        header = infile.read(header_len)
        if len(header) < header_len or header_len < 8:
            raise bad(f"truncated: the header should take {header_len} bytes")
        table_pos = -1
        (root,) = struct.unpack_from("<I", header, 0)
        if root + 4 <= header_len:
            (vt_back,) = struct.unpack_from("<i", header, root)
            vtable = root - vt_back
            if 0 <= vtable and vtable + 4 <= header_len:
                vt_size, _ = struct.unpack_from("<HH", header, vtable)
                if vt_size >= 8 and vtable + 8 <= header_len:  # field 1: dataTablePosition (int64)
                    (field,) = struct.unpack_from("<H", header, vtable + 6)
                    if field and root + field + 8 <= header_len:
                        (table_pos,) = struct.unpack_from("<q", header, root + field)
        else:
            raise bad("the header's flatbuffer points outside the header")
        end = size
        if table_pos >= 0:
            if table_pos > size:
                raise bad(f"truncated: the data table should start at byte {table_pos} of a {size}-byte file")
            end = table_pos
        position = len(AEDAT4_MAGIC) + 4 + header_len
        while position < end:
            packet = infile.read(8)
            if len(packet) < 8 or position + 8 > end:
                raise bad(f"truncated inside the packet header at byte {position}")
            _, body = struct.unpack("<II", packet)  # stream id, body size
            if position + 8 + body > end:
                raise bad(f"truncated: the packet at byte {position} needs {body} bytes, "
                          f"{end - position - 8} remain")
            position += 8 + body
            infile.seek(position)


def read_aedat4(path: str) -> np.ndarray:
    """Read a CIFAR10-DVS ``.aedat4`` file with tonic (needs the ``aedat`` package). The file's
    structure is checked first (:func:`check_aedat4`), and a decoder failure names the file."""
    if os.path.exists(path):
        check_aedat4(path)
    try:
        import aedat  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "reading CIFAR10-DVS .aedat4 files needs the `aedat` package: pip install aedat"
        ) from error
    from tonic.io import read_aedat4 as tonic_read_aedat4

    try:
        return tonic_read_aedat4(path)
    except Exception as error:  # noqa: BLE001 - the Rust decoder raises plain exceptions
        raise CorruptFileError.describe(path, _AEDAT4_EXPECTED, _aedat4_fix(Path(path)), error) from error


def _cifar10dvs_class():
    import tonic.datasets

    class CIFAR10DVS(tonic.datasets.CIFAR10DVS):
        """tonic's CIFAR10DVS, checking the extracted class folders and never downloading."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            _sort_by_path(self, ("data", "targets"))

        def _check_exists(self) -> bool:
            return any(Path(self.location_on_system).glob("*/*.aedat4"))

        def download(self) -> None:
            raise _missing("cifar10dvs", Path(self.location_on_system),
                           Path(self.location_on_system).parent)

        def __getitem__(self, index):
            events = read_aedat4(self.data[index])
            events.dtype.names = ["t", "x", "y", "p"]
            return events, self.targets[index]

    return CIFAR10DVS


CIFAR10DVS_SPLIT_SEED = 0


def cifar10dvs_split(targets, train: bool, *, seed: int = CIFAR10DVS_SPLIT_SEED,
                     train_fraction: float = 0.9) -> np.ndarray:
    """Indices of CIFAR10-DVS's train or test split: within each class a seeded random
    permutation, the first 90 % train and the rest test (9000/1000 on the full set, 900/100 per
    class). CIFAR10-DVS has no official split; ATSN and OTTT use 9000/1000."""
    targets = np.asarray(targets)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(targets):
        members = np.flatnonzero(targets == label)
        members = members[rng.permutation(len(members))]
        n_train = int(round(train_fraction * len(members)))
        chosen.append(members[:n_train] if train else members[n_train:])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def dvs_dataset(name: str, *, train: bool, T: int | None = None, root: str | None = None,
                preset: str = "mlf", **overrides) -> Dataset:
    """DVS Gesture or CIFAR10-DVS through tonic, as ``(float32 [T, 2, size, size], int)`` items
    with the preset's preprocessing (see the module docstring). Random temporal deletion, when
    the settings ask for it, applies to the training split only."""
    s = dvs_settings(name, T=T, preset=preset, **overrides)
    folder = dvs_folder(name, root)
    root_path = data_root(root)
    if name == "dvsgesture":
        cls = _dvsgesture_class()
        split_folder = folder / ("ibmGestureTrain" if train else "ibmGestureTest")
        if not any(split_folder.glob("*/*.npy")):
            raise _missing(name, split_folder, root_path)
        events = cls(str(root_path), train=train)
        indices = None
    else:
        cls = _cifar10dvs_class()
        if not any(folder.glob("*/*.aedat4")):
            raise _missing(name, folder, root_path)
        events = cls(str(root_path))
        indices = cifar10dvs_split(events.targets, train)
    to_frames = EventsToFrames(
        events.sensor_size, s.T, size=s.size,
        time_window_us=None if s.time_window_ms is None else s.time_window_ms * 1000.0,
        denoise_us=s.denoise_us)
    dataset = EventFramesDataset(events, to_frames, rtd_T=s.rtd_T if train else None, indices=indices)
    dataset.settings = s
    dataset.classes = list(events.classes)
    return dataset


# ----------------------------------------------------------------------------- verify


def _md5(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as infile:
        for block in iter(lambda: infile.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_dataset(name: str, root: str | None = None, *, checksums: bool = True) -> dict[str, Any]:
    """Check a real data set in place. Returns ``{"name", "folder", "present", "ok", "files",
    "problems"}``: CIFAR files are checked against torchvision's published MD5 sums (when
    ``checksums``); DVS folders are counted (tonic publishes sums only for the archives, which
    may have been deleted after extraction; CIFAR10-DVS must hold 1,000 recordings per class)."""
    check_choice("real data set", name, REAL_DATASETS)
    problems: list[str] = []
    if name == "nmnist":
        from snnlab.data.nmnist import verify_nmnist

        status = verify_nmnist(root)
        return {"name": name, **status, "ok": status["present"] and not status["problems"]}
    if name in ("cifar10", "cifar100"):
        num_classes = int(name[5:])
        folder = cifar_folder(num_classes, root)
        cls = _offline_cifar_class(num_classes)
        expected = cls.train_list + cls.test_list + [[cls.meta["filename"], cls.meta["md5"]]]
        files = 0
        for filename, md5 in expected:
            path = folder / filename
            if not path.is_file():
                problems.append(f"missing {path}")
                continue
            files += 1
            if checksums and _md5(path) != md5:
                problems.append(f"MD5 mismatch for {path} (corrupted or not the official file)")
        present = files > 0
    else:
        folder = dvs_folder(name, root)
        if name == "dvsgesture":
            counts = {split: len(list((folder / split).glob("*/*.npy")))
                      for split in ("ibmGestureTrain", "ibmGestureTest")}
            files = sum(counts.values())
            for split, n in counts.items():
                if n == 0:
                    problems.append(f"no recordings in {folder / split}")
            for path in sorted(folder.glob("*/*/*.npy")):
                try:
                    check_dvsgesture_npy(path)
                except CorruptFileError as error:
                    problems.append(str(error))
        else:
            classes = list(_cifar10dvs_class().classes)
            counts = {c: len(list((folder / c).glob("*.aedat4"))) for c in classes}
            files = sum(counts.values())
            for c, n in counts.items():
                if n != 1000:
                    problems.append(f"{folder / c}: {n} recordings (expected 1000)")
            for path in sorted(folder.glob("*/*.aedat4")):
                try:
                    check_aedat4(path)
                except CorruptFileError as error:
                    problems.append(str(error))
            try:
                import aedat  # noqa: F401
            except ImportError:
                problems.append("the `aedat` package is missing (pip install aedat)")
        present = files > 0
    return {"name": name, "folder": str(folder), "present": present,
            "ok": present and not problems, "files": files, "problems": problems}
