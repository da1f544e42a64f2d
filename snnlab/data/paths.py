"""Where snnlab keeps and looks for data, and the error it raises when data is missing.

One root holds everything: the emulated event data set snnlab generates (its on-disk cache) and
the real data sets a user copies in. The root is, in order of precedence, the ``root=`` argument,
the ``SNNLAB_DATA`` environment variable, or ``~/.cache/snnlab``.

Expected layout under the root (folder names are the ones torchvision and tonic use, so an
existing download can be moved or symlinked in as it is)::

    <root>/cifar10/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}
    <root>/cifar100/cifar-100-python/{train,test,meta}
    <root>/DVSGesture/ibmGestureTrain/user01_fluorescent/0.npy ...   (tonic's layout)
    <root>/DVSGesture/ibmGestureTest/user24_fluorescent/0.npy ...
    <root>/CIFAR10DVS/airplane/*.aedat4 ... <root>/CIFAR10DVS/truck/*.aedat4  (tonic's layout)
    <root>/NMNIST/Train/0/*.bin ... <root>/NMNIST/Test/9/*.bin             (tonic's layout)
    <root>/downloads/                                                   (snnlab data fetch's archives)
    <root>/emulated/nmnist-emulated-<hash>.npz                          (written by snnlab)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from snnlab import files
from snnlab.errors import SnnlabError

__all__ = ["DATA_ENV", "DEFAULT_ROOT", "data_root", "DataMissingError", "atomic_write"]

DATA_ENV = "SNNLAB_DATA"
DEFAULT_ROOT = Path("~/.cache/snnlab")


class DataMissingError(SnnlabError, FileNotFoundError):
    """A data set is not on disk. The message names the data set, where it was looked for and
    how to get it. A ``FileNotFoundError``; the CLI prints it as one line (exit code 2)."""

    exit_code = 2

    def __init__(self, dataset: str, looked_in: Path | str, how_to_get: str):
        self.dataset = dataset
        self.looked_in = Path(looked_in)
        super().__init__(
            f"data set {dataset!r} not found: looked in {self.looked_in}. {how_to_get} "
            f"(snnlab never downloads on its own; the data root is the root= argument, else "
            f"${DATA_ENV}, else {DEFAULT_ROOT}.)"
        )


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$SNNLAB_DATA``, else ``~/.cache/snnlab``."""
    if root is None:
        root = os.environ.get(DATA_ENV) or DEFAULT_ROOT
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike), got {type(root).__name__}.")
    return Path(root).expanduser()


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Write a file atomically: ``write(tmp)`` fills a temporary file in the same folder, which
    is then renamed over ``path`` with the user's permissions (:func:`snnlab.files.atomic_write`).
    A reader never sees a half-written file, and an interrupted write leaves no file behind (only
    the old one, if there was one)."""
    return files.atomic_write(path, write, binary_handle=False)
