"""Data for snnlab: embedded digits, an emulated DVS camera and its event data set, and loaders
for the papers' real data sets (CIFAR-10/100, DVS Gesture, CIFAR10-DVS).

Everyone else calls :func:`load_dataset` / :func:`dataset_info` (see :mod:`snnlab.data.registry`).
The registry (and torch) loads on first use of its names (:func:`snnlab.lazy.lazy_exports`).
"""

from snnlab.data.paths import DATA_ENV, DataMissingError, data_root
from snnlab.lazy import lazy_exports

__all__ = ["DATASETS", "load_dataset", "dataset_info", "data_root", "DataMissingError", "DATA_ENV"]

__getattr__ = lazy_exports(__name__, {name: "snnlab.data.registry"
                                      for name in ("DATASETS", "dataset_info", "load_dataset")})
