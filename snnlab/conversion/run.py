"""A whole conversion run, as ``snnlab convert`` does it: train (or load) a ReLU ANN, convert it with
each requested neuron (SC-TTFS, TTFS, rate), optionally fine-tune thresholds and BN, fold BN, and
measure ANN and SNN accuracy, latency, spikes per image and the eq. 25 energy.

Every step calls the functions chapter 6 calls (:func:`~snnlab.conversion.train_ann`,
:func:`~snnlab.conversion.relu_preactivations`, :func:`~snnlab.conversion.initial_thresholds`,
:func:`~snnlab.conversion.convert`, :func:`~snnlab.conversion.fine_tune`,
:func:`~snnlab.conversion.fold_batchnorm`, :func:`~snnlab.conversion.evaluate_snn`,
:func:`~snnlab.conversion.energy`); this module only sequences them and keeps the run resumable.

**Resuming.** With ``out_dir`` every epoch of ANN training and of fine-tuning ends with an atomic
checkpoint (``ann.pt``, ``snn-<kind>.pt``: weights, optimiser, schedule, data order and RNG
states), and each finished conversion is recorded there. ``resume=True`` continues an interrupted
run from its last epoch and skips what is done; on CPU the result equals an uninterrupted run's.
The folder follows ``snnlab train``'s rules (:mod:`snnlab.training.rundir`): it is checked before
any work (a file, under a file, not writable, a full disk), one process at a time holds it (a lock
file), a folder that holds a run needs ``resume`` or ``overwrite`` (which moves the old files to
``out_dir/previous/<time>/``, deleting nothing), ``resume`` with nothing to resume is an error
unless ``resume_if_exists``, and a resume with settings that change the numbers is refused
(:class:`~snnlab.errors.ResumeMismatch`, listing every difference).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import Subset

from snnlab.checks import (
    check_bool,
    check_choice,
    check_in_range,
    check_non_negative,
    check_positive,
    check_positive_int,
    check_seed,
    check_timesteps,
)
from snnlab.conversion.pipeline import KINDS, PAPER_THRESHOLDS
from snnlab.training.restore import CONVERT_ANN_FORMAT, CONVERT_SNN_FORMAT

__all__ = ["ConvertConfig", "run_conversion", "KIND_NAMES", "ANN_FILE", "RESULT_FILE", "RUN_FILES", "LOCK_NAME",
           "snn_file"]

ANN_FILE = "ann.pt"
RESULT_FILE = "result.json"
KIND_NAMES = {"sc-ttfs": "sc_ttfs", "sc_ttfs": "sc_ttfs", "ttfs": "ttfs", "rate": "rate"}
"""Accepted spellings of the conversion kinds (the CLI writes ``sc-ttfs``)."""
THRESHOLD_CHOICES = ("statistics",) + tuple(PAPER_THRESHOLDS)
LOCK_NAME = ".snnlab-convert.lock"


def snn_file(kind: str) -> str:
    return f"snn-{kind}.pt"


CHECKPOINT_FILES: tuple[str, ...] = (ANN_FILE,) + tuple(snn_file(k) for k in dict.fromkeys(KIND_NAMES.values()))
"""The files a resume continues from."""
RUN_FILES: tuple[str, ...] = CHECKPOINT_FILES + (RESULT_FILE,)
"""What a conversion run writes into its folder (``overwrite`` moves these aside)."""


@dataclass
class ConvertConfig:
    """Everything a conversion run depends on (``snnlab convert``'s flags map one to one)."""

    dataset: str = "digits"
    model: str = "digits_cnn"
    kinds: tuple[str, ...] = ("sc_ttfs",)
    T: int = 4
    """Window of each TTFS / SC-TTFS layer (latency = spiking layers x T); timesteps of rate coding."""
    rate_T: int | None = None
    """Timesteps of the rate conversion if different from ``T``."""
    thresholds: str = "statistics"
    """``statistics`` (from the ANN's activations, chapter 6) or a Table 1 key (``cifar10``, ``cifar100``)."""
    percentile: float = 99.9
    stats_images: int = 512
    max_samples: int = 50_000
    ann: str | None = None
    """A trained ANN to load (a previous run's ann.pt or a state_dict) instead of training one."""
    ann_epochs: int = 12
    ann_lr: float = 1e-2
    ann_batch_size: int = 64
    ann_weight_decay: float = 5e-4
    fine_tune_epochs: int = 0
    fine_tune_lr: float = 1e-5
    fine_tune_batch_size: int = 128
    train_bn: bool = True
    batch_size: int = 256
    """Evaluation batch size."""
    max_train: int | None = None
    max_test: int | None = None
    seed: int = 0
    device: str = "cpu"
    data_root: str | None = None
    out_dir: str | None = None
    resume: bool = False
    """Continue the run in ``out_dir``; an error if there is nothing to continue."""
    resume_if_exists: bool = False
    """Continue if ``out_dir`` holds a run, else start fresh (a job that may be preempted)."""
    overwrite: bool = False
    """Start again in an ``out_dir`` that holds a run: its files move to ``out_dir/previous/<time>/``."""
    progress: bool = True
    model_options: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "ConvertConfig":
        from snnlab.data import DATASETS
        from snnlab.models.ann import ANN_MODELS

        check_choice("model (a ReLU ANN from snnlab.models.ann)", self.model, ANN_MODELS)
        check_choice("dataset", self.dataset, DATASETS)
        if not self.kinds:
            raise ValueError("give at least one conversion kind: sc-ttfs, ttfs or rate.")
        kinds = []
        for kind in self.kinds:
            if kind not in KIND_NAMES:
                raise ValueError(f"unknown conversion kind {kind!r}; valid: sc-ttfs, ttfs, rate.")
            if KIND_NAMES[kind] in kinds:
                raise ValueError(f"conversion kind {kind!r} given twice.")
            kinds.append(KIND_NAMES[kind])
        self.kinds = tuple(kinds)
        check_timesteps("T", self.T)
        if self.rate_T is not None:
            check_timesteps("rate_T", self.rate_T)
        check_choice("thresholds", self.thresholds, THRESHOLD_CHOICES)
        check_in_range("percentile", self.percentile, 0.0, 100.0, low_open=True)
        for name in ("stats_images", "max_samples", "ann_epochs", "ann_batch_size", "fine_tune_batch_size",
                     "batch_size"):
            check_positive_int(name, getattr(self, name))
        if isinstance(self.fine_tune_epochs, bool) or not isinstance(self.fine_tune_epochs, int) \
                or self.fine_tune_epochs < 0:
            raise ValueError(f"fine_tune_epochs must be an int >= 0, got {self.fine_tune_epochs!r}.")
        for name in ("max_train", "max_test"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        for name in ("ann_lr", "fine_tune_lr"):
            check_positive(name, getattr(self, name))
        check_non_negative("ann_weight_decay", self.ann_weight_decay)
        check_seed("seed", self.seed)
        for name in ("train_bn", "resume", "resume_if_exists", "overwrite", "progress"):
            check_bool(name, getattr(self, name))
        for name in ("model_options", "data_options"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"{name} must be a dict of option names to values, got {getattr(self, name)!r}.")
        if self.ann is not None and not isinstance(self.ann, (str, os.PathLike)):
            raise TypeError(f"ann must be the path of a trained ANN, got {self.ann!r}.")
        from snnlab.training.ddp import resolve_device

        self.device = str(resolve_device(self.device))  # unknown or unavailable: a clear error, before any work
        if self.overwrite and (self.resume or self.resume_if_exists):
            raise ValueError("overwrite starts again and resume continues a run: choose one.")
        for name in ("resume", "resume_if_exists", "overwrite"):
            if getattr(self, name) and self.out_dir is None:
                raise ValueError(f"{name}=True needs out_dir (where the run is).")
        return self


# Settings a resumed run must share with what its files were made with.
_ANN_KEYS = ("dataset", "data_options", "model", "model_options", "ann", "ann_epochs", "ann_lr", "ann_batch_size",
             "ann_weight_decay", "seed", "max_train")
_SNN_KEYS = _ANN_KEYS + ("thresholds", "percentile", "stats_images", "max_samples", "fine_tune_epochs",
                         "fine_tune_lr", "fine_tune_batch_size", "train_bn", "max_test")


def _settings(cfg: ConvertConfig, keys) -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in keys}


def _check_same(path: Path, saved: dict, now: dict) -> None:
    from snnlab.errors import ResumeMismatch

    diffs = [f"{k}: {saved.get(k)!r} in the file, {v!r} now" for k, v in now.items() if saved.get(k) != v]
    if diffs:
        raise ResumeMismatch(f"cannot resume from {path}: it was made with other settings that change the numbers ("
                             + "; ".join(diffs) + "). Resume with the same settings, or start again with "
                             "--overwrite, or use another --out-dir.")


def _load_state(path: Path, fmt: str) -> dict:
    from snnlab.training.checkpoint import load_checkpoint

    what = "the ReLU ANN" if fmt == CONVERT_ANN_FORMAT else "a converted network"
    return load_checkpoint(path, format=fmt, keys=("format", "settings", "model"),
                           expected=f"{what} of a `snnlab convert` run (format {fmt!r})")


def _open_out_dir(cfg: ConvertConfig, held, log) -> tuple[Path | None, bool]:
    """Check, lock and open ``out_dir`` with ``snnlab train``'s rules; return it and whether the run resumes."""
    if cfg.out_dir is None:
        return None, False
    from snnlab.files import folder_lock
    from snnlab.training.rundir import check_out_dir, start_run

    out = check_out_dir(cfg.out_dir)
    held.enter_context(folder_lock(out / LOCK_NAME, wait=False, what=f"--out-dir {out}"))
    run = start_run(out, resume=cfg.resume, resume_if_exists=cfg.resume_if_exists, overwrite=cfg.overwrite,
                    run_files=RUN_FILES, checkpoints=CHECKPOINT_FILES)
    for note in run.notes:
        log(f"snnlab convert: {note}")
    return out, run.resume


def _load_data(cfg: ConvertConfig):
    from snnlab.conversion.pipeline import _as_tensors
    from snnlab.data import dataset_info, load_dataset
    from snnlab.data.registry import split_options

    info = dataset_info(cfg.dataset, **cfg.data_options)
    if info["kind"] != "static":
        raise ValueError(f"snnlab convert converts ANNs on static images (digits, cifar10, cifar100); "
                         f"{cfg.dataset!r} is an event data set.")
    common = dict(root=cfg.data_root, **cfg.data_options)
    train = load_dataset(cfg.dataset, train=True, **common)
    plain = {k: v for k, v in common.items() if k != "augment"}
    stats = load_dataset(cfg.dataset, train=True, augment=False, **plain)
    test = load_dataset(cfg.dataset, train=False, **split_options(common, train=False))  # no augmentation
    if cfg.max_train is not None:
        train = Subset(train, range(min(cfg.max_train, len(train))))
    if cfg.max_test is not None:
        test = Subset(test, range(min(cfg.max_test, len(test))))
    x_stats, _ = _as_tensors(Subset(stats, range(min(cfg.stats_images, len(stats)))))
    return train, _as_tensors(test), x_stats, info


def _build_ann(cfg: ConvertConfig, info: dict, sample: torch.Tensor):
    from snnlab.models.ann import ANN_MODELS

    c, h, w = info["input_shape"]
    options = {"num_classes": info["num_classes"], "in_channels": c, **cfg.model_options}
    if cfg.model == "vgg16":
        options.setdefault("input_size", h)
    try:
        ann = ANN_MODELS[cfg.model](**options)
    except TypeError as error:
        raise TypeError(f"bad options for ANN {cfg.model!r}: {error}") from None
    try:
        with torch.no_grad():
            ann.eval()(sample[:2])
    except RuntimeError as error:
        raise ValueError(f"ANN {cfg.model!r} does not fit {cfg.dataset!r} images of shape {(c, h, w)} "
                         f"({str(error).splitlines()[0]}); pick another --model or --data-option.") from None
    return ann


def _load_ann_weights(cfg: ConvertConfig, ann: torch.nn.Module) -> str:
    from snnlab.training.restore import checkpoint_kind, describe_kind, read_checkpoint

    path, state = read_checkpoint(cfg.ann, what="trained ANN")
    kind = checkpoint_kind(state)
    if kind == "convert_ann":
        saved = state["settings"]
        if not state.get("done"):
            raise ValueError(f"{path}: the ANN's training did not finish (epoch {state['fit']['epoch']} of "
                             f"{saved['ann_epochs']}); continue it with `snnlab convert --out-dir {path.parent} "
                             f"--resume` and the same settings.")
        for key in ("model", "dataset", "model_options"):
            if saved[key] != getattr(cfg, key):
                raise ValueError(f"{path} holds a {saved['model']!r} ANN for {saved['dataset']!r} with options "
                                 f"{saved['model_options']}; give the same --model, --dataset and --model-option.")
        weights = state["model"]
    elif kind == "state_dict":
        weights = state
    else:
        raise ValueError(f"{path} is {describe_kind(kind)}; --ann expects a ReLU ANN: the ann.pt of a "
                         f"`snnlab convert` run or a state_dict of snnlab.models.ann.{cfg.model}.")
    try:
        ann.load_state_dict(weights)
    except RuntimeError as error:
        raise ValueError(f"{path}: the weights do not fit ANN {cfg.model!r} ({str(error).splitlines()[0]}).") from None
    return str(path)


def _train_ann(cfg: ConvertConfig, ann, train, out: Path | None, log) -> dict:
    from snnlab.conversion.pipeline import train_ann
    from snnlab.training.checkpoint import save_checkpoint

    path = out / ANN_FILE if out is not None else None
    settings = _settings(cfg, _ANN_KEYS)
    resume_from = None
    if cfg.resume and path is not None and path.is_file():
        state = _load_state(path, CONVERT_ANN_FORMAT)
        _check_same(path, state["settings"], settings)
        ann.load_state_dict(state["model"])
        if state.get("done"):
            log(f"snnlab convert: ANN already trained ({path}).")
            return {"source": "trained", "epochs": cfg.ann_epochs, "history": state["fit"]["history"],
                    "resumed": True}
        resume_from = state["fit"]
        log(f"snnlab convert: resuming the ANN's training after epoch {resume_from['epoch']} of {cfg.ann_epochs}.")

    def save(fit_state: dict) -> None:
        if path is not None:
            save_checkpoint(path, {"format": CONVERT_ANN_FORMAT, "settings": settings, "model": ann.state_dict(),
                                   "fit": fit_state, "done": fit_state["epoch"] >= cfg.ann_epochs})

    history = train_ann(ann, train, epochs=cfg.ann_epochs, lr=cfg.ann_lr, batch_size=cfg.ann_batch_size,
                        weight_decay=cfg.ann_weight_decay, seed=cfg.seed, resume_from=resume_from, on_epoch=save,
                        progress=cfg.progress)
    return {"source": "trained", "epochs": cfg.ann_epochs, "history": history, "resumed": resume_from is not None}


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


def _thresholds_record(snn) -> list:
    if snn.kind == "rate":
        return [float(n.threshold) for n in snn.neurons]
    rows = []
    for n in snn.neurons:
        enc, cal = n.thresholds()
        row = {"encode": [enc.alpha, enc.beta, enc.k]}
        if cal is not None:
            row["calibrate"] = [cal.alpha, cal.beta, cal.k]
        rows.append(row)
    return rows


def _convert_kind(cfg: ConvertConfig, kind: str, ann, preacts, train, test, out: Path | None, log) -> dict:
    from snnlab.conversion.bn_folding import fold_batchnorm
    from snnlab.conversion.pipeline import convert, evaluate_snn, fine_tune, initial_thresholds
    from snnlab.training.checkpoint import save_checkpoint

    T = cfg.rate_T if kind == "rate" and cfg.rate_T is not None else cfg.T
    path = out / snn_file(kind) if out is not None else None
    settings = {**_settings(cfg, _SNN_KEYS), "kind": kind, "T": T}
    state = None
    if cfg.resume and path is not None and path.is_file():
        state = _load_state(path, CONVERT_SNN_FORMAT)
        _check_same(path, state["settings"], settings)
        if state.get("done"):
            log(f"snnlab convert: {kind} already converted ({path}).")
            return state["row"]
    start = time.perf_counter()
    preset = cfg.thresholds != "statistics" and kind != "rate"
    thresholds = cfg.thresholds if preset else initial_thresholds(kind, preacts, T, percentile=cfg.percentile,
                                                                  max_samples=cfg.max_samples)
    snn = convert(ann, kind, T=T, thresholds=thresholds).to(_device_of(ann))
    tune = cfg.fine_tune_epochs > 0 and kind != "rate"
    if state is not None:
        snn.load_state_dict(state["model"])
        before = state["before"]
        log(f"snnlab convert: resuming the {kind} fine-tuning after epoch {state['fit']['epoch']}.")
    else:
        before = evaluate_snn(snn, test, batch_size=cfg.batch_size) if tune else None
    history: list[dict] = []
    if tune:
        def save(fit_state: dict) -> None:
            if path is not None:
                save_checkpoint(path, {"format": CONVERT_SNN_FORMAT, "settings": settings, "model": snn.state_dict(),
                                       "fit": fit_state, "before": before, "done": False})

        history = fine_tune(snn, train, epochs=cfg.fine_tune_epochs, lr=cfg.fine_tune_lr,
                            batch_size=cfg.fine_tune_batch_size, train_bn=cfg.train_bn, seed=cfg.seed,
                            resume_from=None if state is None else state["fit"], on_epoch=save, progress=cfg.progress)
    folded = fold_batchnorm(snn)
    after = evaluate_snn(folded, test, batch_size=cfg.batch_size)
    row = {
        "kind": kind, "T": T, "latency": after["latency"], "spiking_layers": len(folded.neurons),
        "accuracy": after["accuracy"], "spikes_per_image": after["spikes_per_image"],
        "accuracy_before_fine_tune": before["accuracy"] if tune else None,
        "spikes_per_image_before_fine_tune": before["spikes_per_image"] if tune else None,
        "fine_tune": ({"epochs": cfg.fine_tune_epochs, "lr": cfg.fine_tune_lr, "optimizer": "adam",
                       "schedule": "cosine", "train_bn": cfg.train_bn, "history": history} if tune else None),
        "thresholds": {"initialised_from": ("paper Table 1 (" + cfg.thresholds + ")") if preset else
                       f"activation statistics ({cfg.percentile} percentile)",
                       "per_layer": _thresholds_record(folded)},
        "bn_folded": True,
        "seconds": time.perf_counter() - start,
    }
    if kind == "rate" and cfg.fine_tune_epochs:
        row["fine_tune"] = "skipped: the rate conversion has no trainable thresholds"
    if path is not None:
        save_checkpoint(path, {"format": CONVERT_SNN_FORMAT, "settings": settings, "model": folded.state_dict(),
                               "done": True, "row": row})
    return row


def _energy(rows: list[dict]) -> None:
    """Eq. 25 under both hardware tables, unnormalised and normalised by the maximum over the
    conversions of this run (the normalisation that reproduces the paper's claim, chapter 6)."""
    from snnlab.conversion.energy import HARDWARE, energy

    spikes = [max(r["spikes_per_image"], 1e-12) for r in rows]  # eq. 25 needs N > 0
    latency = [r["latency"] for r in rows]
    for hardware in HARDWARE:
        raw = energy(spikes, latency, hardware, "none")
        normalised = energy(spikes, latency, hardware, "max")
        for row, e_raw, e_max in zip(rows, raw, normalised):
            row.setdefault("energy_eq25", {})[hardware] = {"unnormalised": float(e_raw),
                                                           "max_normalised": float(e_max)}


def run_conversion(config: ConvertConfig | None = None, *, log: Callable[[str], None] = print,
                   **overrides) -> dict:
    """Run a conversion (see the module docstring) and return its JSON-ready result; with
    ``out_dir`` the result is also written to ``out_dir/result.json``."""
    from snnlab.conversion.energy import HARDWARE
    from snnlab.conversion.pipeline import accuracy, relu_preactivations
    from snnlab.training.checkpoint import atomic_write_text, seed_everything

    cfg = dataclasses.replace(config or ConvertConfig(), **overrides).validate()
    with contextlib.ExitStack() as held:
        out, resuming = _open_out_dir(cfg, held, log)
        return _run(dataclasses.replace(cfg, resume=resuming), out, log)


def _run(cfg: ConvertConfig, out: Path | None, log) -> dict:
    from snnlab.conversion.energy import HARDWARE
    from snnlab.conversion.pipeline import accuracy, relu_preactivations
    from snnlab.training.checkpoint import atomic_write_text, seed_everything

    device = torch.device(cfg.device)
    start = time.perf_counter()
    seed_everything(cfg.seed)
    train, test, x_stats, info = _load_data(cfg)
    ann = _build_ann(cfg, info, x_stats)
    if cfg.ann is not None:
        ann_record = {"source": _load_ann_weights(cfg, ann)}
        ann = ann.to(device)
    else:
        ann = ann.to(device)
        ann_record = _train_ann(cfg, ann, train, out, log)
    ann.eval()
    ann_record["accuracy"] = accuracy(ann, test, batch_size=cfg.batch_size)
    preacts = relu_preactivations(ann, x_stats)
    rows = [_convert_kind(cfg, kind, ann, preacts, train, test, out, log) for kind in cfg.kinds]
    _energy(rows)
    result = {
        "dataset": cfg.dataset, "model": cfg.model, "model_options": cfg.model_options,
        "samples": {"train": len(train), "test": len(test[1]), "statistics": len(x_stats)},
        "ann": ann_record,
        "snn": rows,
        "energy_eq25": {
            "formula": "SC-TTFS eq. 25: E = N * E_i + L * E_l (N spikes per image, L latency in steps)",
            "hardware_E_i_E_l": {k: list(v) for k, v in HARDWARE.items()},
            "max_normalised": "N and L each divided by their largest value among this run's conversions "
                              "(1.0 for every hardware when one kind is converted)",
        },
        "latency_note": "TTFS / SC-TTFS: spiking layers x T (each layer encodes for T steps after decoding); "
                        "rate coding: T",
        "config": dataclasses.asdict(cfg),
        "seconds": time.perf_counter() - start,
    }
    if out is not None:
        atomic_write_text(out / RESULT_FILE, json.dumps(result, indent=2, default=_json_default) + "\n")
    return result


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return float(value)
