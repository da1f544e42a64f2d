"""One entry point for every data set snnlab knows: ``load_dataset(name, train=..., T=...)``.

Items are ``(x, y)``: ``x`` float32 ``[C, H, W]`` for static images, ``[T, 2, H, W]`` for event
frames (channel 0 OFF, channel 1 ON, tonic's polarity order); ``y`` an int class index. Static
images carry no time axis: a model repeats them over its own T (the "direct encoding" of SEW
ResNet, OTTT and MLF), so ``T`` is ignored for them.

=====================  ======  ===============================================================
name                   kind    what
=====================  ======  ===============================================================
``digits``             static  scikit-learn's 8x8 digits (embedded, no download)
``nmnist-emulated``    events  the digits seen by snnlab's emulated DVS camera, N-MNIST style
``nmnist-emulated-faint`` events  the same camera on a dim, noisy scene (preset ``faint``): one
                               frame is not enough, evidence accumulates over T = 8 frames
``cifar10``            static  CIFAR-10 via torchvision (needs the files on disk)
``cifar100``           static  CIFAR-100 via torchvision (needs the files on disk)
``dvsgesture``         events  IBM DVS Gesture via tonic (needs the files on disk)
``cifar10dvs``         events  CIFAR10-DVS via tonic (needs the files on disk)
``nmnist``             events  N-MNIST via tonic's reader (needs the files on disk)
=====================  ======  ===============================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch.utils.data import Dataset

from snnlab.checks import check_timesteps

__all__ = ["DATASETS", "load_dataset", "dataset_info", "DatasetSpec", "TRAIN_ONLY_OPTIONS", "split_options"]

TRAIN_ONLY_OPTIONS = ("augment", "rtd_T")
"""Options that shape the training split only (augmentation, random temporal deletion): a
training run leaves them off its test split (:func:`split_options`)."""


def split_options(options: dict[str, Any], *, train: bool) -> dict[str, Any]:
    """``options`` for the training split, or without the :data:`TRAIN_ONLY_OPTIONS` for the test split."""
    return dict(options) if train else {k: v for k, v in options.items() if k not in TRAIN_ONLY_OPTIONS}


def _check_values(options: dict[str, Any]) -> None:
    """Range and type checks of the options several data sets share (before anything is built)."""
    from snnlab.checks import check_bool, check_positive, check_seed

    if "augment" in options:
        check_bool("augment", options["augment"], allow_none=True)
    for name in ("time_window_ms", "denoise_us"):
        if options.get(name) is not None:
            check_positive(name, options[name])
    for name in ("seed", "camera_seed"):
        if name in options:
            check_seed(name, options[name])
    for name in ("rtd_T", "limit"):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be None or an int >= 1, got {value!r}.")


@dataclass(frozen=True)
class DatasetSpec:
    """How to build one data set and describe its items."""

    name: str
    description: str
    kind: str  # "static" | "events"
    num_classes: int
    build: Callable[..., Dataset]  # build(train=, T=, root=, **options)
    shape: Callable[..., tuple[int, ...]]  # shape(T=, **options) -> input_shape of one item
    default_T: int | None = None
    embedded: bool = False  # True: needs no files from the user
    options: dict[str, Any] = field(default_factory=dict)  # option name -> default, for docs
    # (augment None: on for the training split, off for the test split)
    extra_options: Callable[[], set[str]] | None = None  # further valid option names

    def valid_options(self) -> set[str]:
        return set(self.options) | (self.extra_options() if self.extra_options else set())

    def check_options(self, options: dict[str, Any]) -> None:
        unknown = set(options) - self.valid_options()
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)} for data set {self.name!r}; "
                             f"valid: {', '.join(sorted(self.valid_options()))}.")
        _check_values(options)


def _digits(train, T, root, **options):
    from snnlab.data.digits import DigitsDataset

    return DigitsDataset(train, **options)


def _digits_shape(T=None, size=8, channels=1, **_):
    return (channels, size, size)


def _emulated(preset):
    """build and shape of the emulated data set with camera preset ``preset``
    (:data:`snnlab.data.emulated.EMULATED_PRESETS`)."""

    def build(train, T, root, **options):
        from snnlab.data.emulated import EmulatedDigitsDataset

        return EmulatedDigitsDataset(train, preset=preset, T=T, root=root, **options)

    def shape(T=None, size=None, **_):
        from snnlab.data.emulated import EMULATED_SENSOR, emulated_preset

        p = emulated_preset(preset)
        side = (p.size or EMULATED_SENSOR) if size is None else size
        return (p.T if T is None else T, 2, side, side)

    return build, shape


def _emulated_extra_options() -> set[str]:
    from snnlab.data.dvs_camera import DVSParams, SaccadeParams

    return (set(DVSParams.__dataclass_fields__) | set(SaccadeParams.__dataclass_fields__)
            | {"camera_seed", "seed", "digit_px", "sensor_px", "limit", "progress"})


def _cifar(num_classes):
    def build(train, T, root, **options):
        from snnlab.data.real import cifar_dataset

        return cifar_dataset(num_classes, train=train, root=root, **options)

    return build


def _cifar_shape(T=None, **_):
    return (3, 32, 32)


def _dvs(name):
    def build(train, T, root, **options):
        from snnlab.data.real import dvs_dataset

        return dvs_dataset(name, train=train, T=T, root=root, **options)

    def shape(T=None, preset="mlf", **options):
        from snnlab.data.real import dvs_settings

        s = dvs_settings(name, T=T, preset=preset, **options)
        return (s.T, 2, s.size, s.size)

    return build, shape


def _nmnist(train, T, root, **options):
    from snnlab.data.nmnist import NMNISTDataset

    return NMNISTDataset(train, T=T, root=root, **options)


def _nmnist_shape(T=None, size=None, **_):
    from snnlab.data.nmnist import NMNIST_DEFAULT_T, NMNIST_SENSOR

    side = NMNIST_SENSOR[0] if size is None else size
    return (NMNIST_DEFAULT_T if T is None else T, 2, side, side)


_SPECS: dict[str, DatasetSpec] = {}


def _register(spec: DatasetSpec) -> None:
    _SPECS[spec.name] = spec


_register(DatasetSpec(
    "digits", "scikit-learn's handwritten digits, 8x8 grey (1,347 train / 450 test); embedded",
    "static", 10, _digits, _digits_shape, embedded=True,
    options={"size": 8, "channels": 1, "augment": None, "normalize": True, "max_degrees": 10.0}))
_register(DatasetSpec(
    "nmnist-emulated",
    "the digits recorded by snnlab's emulated DVS camera along N-MNIST's three saccades, "
    "34x34 events; generated from a seed and cached",
    "events", 10, *_emulated("default"), default_T=10, embedded=True,
    options={"size": 34, "time_window_ms": None, "denoise_us": None, "rtd_T": None},
    extra_options=_emulated_extra_options))
_register(DatasetSpec(
    "cifar10", "CIFAR-10, 32x32 RGB, 50,000 train / 10,000 test (torchvision files)",
    "static", 10, _cifar(10), _cifar_shape, options={"augment": None}))
_register(DatasetSpec(
    "cifar100", "CIFAR-100, 32x32 RGB, 50,000 train / 10,000 test (torchvision files)",
    "static", 100, _cifar(100), _cifar_shape, options={"augment": None}))
_register(DatasetSpec(
    "dvsgesture", "IBM DVS Gesture, 11 gestures, 128x128 events (tonic files); "
    "default preset 'mlf': 30 ms frames at 32x32, T=40",
    "events", 11, *_dvs("dvsgesture"), default_T=40,
    options={"preset": "mlf", "size": None, "time_window_ms": None, "rtd_T": None, "denoise_us": None}))
_register(DatasetSpec(
    "cifar10dvs", "CIFAR10-DVS, 10 classes, 128x128 events (tonic files), split 9000/1000 by "
    "a fixed seed; default preset 'mlf': 10 ms frames at 42x42, T=10",
    "events", 10, *_dvs("cifar10dvs"), default_T=10,
    options={"preset": "mlf", "size": None, "time_window_ms": None, "rtd_T": None, "denoise_us": None}))
_register(DatasetSpec(
    "nmnist", "N-MNIST (Orchard et al. 2015), MNIST digits recorded by an ATIS camera along three saccades, "
    "34x34 events, 60,000 train / 10,000 test (tonic's files); T=10 equal bins, as nmnist-emulated",
    "events", 10, _nmnist, _nmnist_shape, default_T=10,
    options={"size": 34, "time_window_ms": None, "denoise_us": None, "rtd_T": None,
             "first_saccade_only": False, "stabilize": False}))
_register(DatasetSpec(
    "nmnist-emulated-faint",
    "the emulated digits with camera preset 'faint': a dim, low-contrast scene, a less sensitive and "
    "noisier camera (black level 0.6, contrast threshold 0.3, 3 Hz/pixel noise), 8 frames of 17x17, "
    "so that one frame is not enough; generated and cached",
    "events", 10, *_emulated("faint"), default_T=8, embedded=True,
    options={"size": 17, "time_window_ms": None, "denoise_us": None, "rtd_T": None},
    extra_options=_emulated_extra_options))

#: Every data set name -> one-line description.
DATASETS: dict[str, str] = {name: spec.description for name, spec in _SPECS.items()}


def _spec(name: str) -> DatasetSpec:
    if not isinstance(name, str) or name not in _SPECS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(_SPECS)}.")
    return _SPECS[name]


def load_dataset(name: str, *, train: bool, T: int | None = None, root: str | None = None,
                 **options) -> Dataset:
    """Build data set ``name`` (see :data:`DATASETS`) for the train or test split.

    ``T``: number of frames for event data sets (default: the data set's, see
    :func:`dataset_info`); ignored for static images. ``root``: data root (default
    ``$SNNLAB_DATA`` or ``~/.cache/snnlab``). ``options`` go to the data set (e.g. ``size=32,
    channels=3`` for digits, ``preset="sew"`` for the DVS sets); unknown options raise a
    ``ValueError`` listing the valid ones.
    Missing real data raises :class:`~snnlab.data.paths.DataMissingError` saying where it was
    looked for and how to get it; nothing is downloaded.
    """
    spec = _spec(name)
    if not isinstance(train, bool):
        raise TypeError(f"train must be True or False, got {train!r}.")
    if T is not None:
        check_timesteps("T", T)
    spec.check_options(options)
    return spec.build(train, T, root, **options)


def dataset_info(name: str, *, T: int | None = None, **options) -> dict[str, Any]:
    """What ``load_dataset(name, T=T, **options)`` yields, without loading it:
    ``{"name", "description", "kind", "num_classes", "input_shape", "default_T", "embedded",
    "options", "valid_options"}``. ``input_shape`` is the shape of one ``x`` (for event sets ``[T, 2, H, W]``;
    with random temporal deletion the training items have ``rtd_T`` frames instead of ``T``)."""
    spec = _spec(name)
    if T is not None:
        check_timesteps("T", T)
    spec.check_options(options)
    return {
        "name": spec.name,
        "description": spec.description,
        "kind": spec.kind,
        "num_classes": spec.num_classes,
        "input_shape": tuple(spec.shape(T=T, **options)),
        "default_T": spec.default_T,
        "embedded": spec.embedded,
        "options": dict(spec.options),
        "valid_options": sorted(spec.valid_options()),
    }
