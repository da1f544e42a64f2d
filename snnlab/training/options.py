"""The options of a training run, in one record: :class:`TrainConfig`.

Every way of starting a run fills this record: keyword arguments of :func:`snnlab.training.train`,
the ``snnlab train`` flags (:func:`snnlab.training.cli.config_from_args`), or a saved record.
:meth:`TrainConfig.validate` checks every value at the boundary. The loop resolves what was left
open (``T`` from the data) and stores the resolved record in each checkpoint.

Each field says, in its metadata, what a resume may do with it (:data:`ON_RESUME`):

* ``"match"``: it changes the numbers (the model, the data, the optimiser, the seed, mixed
  precision, evaluation ...); ``--resume`` refuses a different value and lists every difference;
* ``"warn"``: it may change the last bits (the device); a resume warns;
* ``"free"``: it does not change what is computed (where files go, progress bars, when to
  checkpoint, how many epochs to plan: a longer plan continues the run).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snnlab.checks import (
    check_bool,
    check_choice,
    check_in_range,
    check_non_negative,
    check_positive,
    check_seed,
    check_timesteps,
)
from snnlab.errors import ResumeMismatch

__all__ = ["TrainConfig", "OPTIMIZERS", "SCHEDULES", "ON_RESUME", "resume_differences"]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "none")
ON_RESUME = ("match", "warn", "free")


def _option(default: Any = dataclasses.MISSING, *, resume: str = "match", factory=dataclasses.MISSING):
    assert resume in ON_RESUME
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"resume": resume})
    return field(default=default, metadata={"resume": resume})


@dataclass
class TrainConfig:
    """Everything a training run depends on (the CLI flags map one to one)."""

    model: str = _option("spiking_cnn")
    dataset: str = _option("digits")
    method: str = _option("bptt")
    loss: str = _option("tet")
    T: int | None = _option(None)
    """Timesteps. None: the event data set's own (its preset's T), or 4 for static images."""
    epochs: int = _option(10, resume="free")
    """A resume may plan more epochs (the cosine schedule stretches from there on)."""
    batch_size: int = _option(64)
    """Global batch: with N processes each takes batch_size / N."""
    optimizer: str = _option("sgd")
    lr: float = _option(0.1)
    momentum: float = _option(0.9)
    """SGD momentum, in [0, 1)."""
    weight_decay: float = _option(0.0)
    schedule: str = _option("cosine")
    """``cosine``: lr·(1 + cos(π·epoch/epochs))/2, set per epoch; ``none``: constant."""
    seed: int = _option(0)
    out_dir: str | None = _option(None, resume="free")
    """Where checkpoint.pt, metrics.csv and metrics.json go (None: nothing is written)."""
    resume: bool = _option(False, resume="free")
    """Continue from ``out_dir/checkpoint.pt``; an error if there is none."""
    resume_if_exists: bool = _option(False, resume="free")
    """Continue if ``out_dir`` holds a checkpoint, else start fresh (a job that may be preempted)."""
    overwrite: bool = _option(False, resume="free")
    """Start again in an ``out_dir`` that holds a run: its files move to ``out_dir/previous/<time>/``."""
    checkpoint_every: int | None = _option(None, resume="free")
    """Also checkpoint every this many batches inside an epoch (a ``kill -9`` loses at most that many)."""
    num_workers: int = _option(0)
    """DataLoader worker processes (they draw augmentations from their own generators)."""
    device: str = _option("auto", resume="warn")
    max_batches: int | None = _option(None)
    """Stop each epoch after this many batches (quick runs); None: the whole data set."""
    stop_after: int | None = _option(None, resume="free")
    """End this run after this many epochs of the ``epochs`` planned (the schedule still spans
    ``epochs``); resume later with ``resume=True``. None: run to ``epochs``."""
    evaluate: bool = _option(True)
    progress: bool = _option(True, resume="free")
    sync_bn: bool = _option(False)
    amp: bool = _option(False)
    """Automatic mixed precision: float16 autocast + GradScaler on CUDA, bfloat16 autocast on CPU."""
    data_root: str | None = _option(None, resume="free")
    tensorboard: bool = _option(False, resume="free")
    """Also write per-epoch scalars (loss, accuracy, lr, firing rate per layer, memory) to
    ``out_dir/tb/`` for TensorBoard (needs the ``tensorboard`` package: ``pip install snnlab[tensorboard]``)."""
    model_options: dict[str, Any] = _option(factory=dict)
    init_from: str | None = _option(None, resume="free")
    """A NIR graph (``.nir``) to start from instead of ``model``: the network is imported with
    :func:`snnlab.interop.model_from_nir` (``model_options`` go to it, e.g. ``dt`` for a graph that
    records none) and trained from the graph's weights. Its path may change between a run and its
    resume (the file may move); its contents may not (``init_from_sha256``)."""
    init_from_sha256: str | None = _option(None)
    """Filled in by the loop: the SHA-256 of the ``init_from`` file the run started from. A resume
    whose graph differs (another file, or the same path rewritten) is refused."""
    data_options: dict[str, Any] = _option(factory=dict)
    loss_options: dict[str, Any] = _option(factory=dict)
    method_options: dict[str, Any] = _option(factory=dict)

    def validate(self, *, custom_model: bool = False, custom_data: bool = False) -> "TrainConfig":
        """Raise a clear error for any bad setting (names list the valid choices). Nothing is built:
        this runs before the output folder is touched. ``custom_data``: the data sets are passed in,
        so ``dataset`` and ``data_options`` are not checked against the registry."""
        from snnlab.models import MODELS
        from snnlab.training.ddp import resolve_device
        from snnlab.training.losses import LOSSES
        from snnlab.training.methods import METHODS

        check_choice("method", self.method, METHODS)
        check_choice("loss", self.loss, LOSSES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        if self.init_from is not None:
            if not isinstance(self.init_from, (str, os.PathLike)):
                raise TypeError(f"init_from must be the path of a NIR graph (.nir), got {self.init_from!r}.")
            graph = Path(self.init_from)
            if graph.is_dir():
                raise ValueError(f"init_from {graph} is a folder; expected a NIR graph file (.nir), e.g. one "
                                 f"written by `snnlab export`.")
            if not graph.is_file():
                raise FileNotFoundError(f"init_from: no NIR file at {graph}; expected a .nir graph, e.g. one "
                                        f"written by `snnlab export`.")
            if custom_model:
                raise ValueError("init_from builds the network from the graph: do not pass a model as well.")
        if not custom_model and self.init_from is None and self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; valid names: {', '.join(sorted(MODELS))}.")
        if self.T is not None:
            check_timesteps("T", self.T)
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}.")
        for name in ("max_batches", "stop_after", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be None or an int >= 1, got {value!r}.")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {self.num_workers!r}.")
        check_positive("lr", self.lr)
        check_non_negative("weight_decay", self.weight_decay)
        check_in_range("momentum", self.momentum, 0.0, 1.0, high_open=True)
        check_seed("seed", self.seed)
        for name in ("resume", "resume_if_exists", "overwrite", "evaluate", "progress", "sync_bn", "amp", "tensorboard"):
            check_bool(name, getattr(self, name))
        for name in ("model_options", "data_options", "loss_options", "method_options"):
            if not isinstance(getattr(self, name), dict):
                raise TypeError(f"{name} must be a dict of option names to values, got {getattr(self, name)!r}.")
        if self.overwrite and (self.resume or self.resume_if_exists):
            raise ValueError("overwrite starts again and resume continues a run: choose one.")
        for name in ("resume", "resume_if_exists", "overwrite"):
            if getattr(self, name) and self.out_dir is None:
                raise ValueError(f"{name}=True needs out_dir (where the run is).")
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a string such as 'auto', 'cpu', 'cuda' or 'cuda:1', got {self.device!r}.")
        resolve_device(self.device)  # an unknown or unavailable device fails here, before any work
        if self.tensorboard:
            if self.out_dir is None:
                raise ValueError("tensorboard=True needs out_dir (the scalars go to out_dir/tb/).")
            try:
                from torch.utils.tensorboard import SummaryWriter  # noqa: F401
            except ImportError:
                raise ImportError("--tensorboard needs the tensorboard package: pip install 'snnlab[tensorboard]' "
                                  "(or pip install tensorboard).") from None
        if not custom_data:
            from snnlab.data import dataset_info

            dataset_info(self.dataset, T=self.T, **self.data_options)  # names and ranges of the data options
        return self

    def as_record(self) -> dict[str, Any]:
        """The options as a plain dict (what a checkpoint stores)."""
        return dataclasses.asdict(self)


def _canonical(value: Any) -> Any:
    """Tuples and lists compare equal (a config file gives lists where flags give tuples)."""
    if isinstance(value, (tuple, list)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    return value


def resume_differences(saved: dict[str, Any], cfg: TrainConfig, kind: str = "match") -> list[str]:
    """``"name: checkpoint X vs now Y"`` for every option of ``kind`` (see :data:`ON_RESUME`) that
    differs between a checkpoint's record ``saved`` and ``cfg``. An option the checkpoint predates
    is compared with its default (the behaviour of the snnlab that wrote it)."""
    diffs = []
    for f in dataclasses.fields(TrainConfig):
        if f.metadata.get("resume") != kind:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        before, now = saved.get(f.name, default), getattr(cfg, f.name)
        if _canonical(before) != _canonical(now):
            diffs.append(f"{f.name}: checkpoint {before!r} vs now {now!r}")
    return diffs


def check_resume(saved: dict[str, Any], cfg: TrainConfig, checkpoint) -> list[str]:
    """Raise :class:`~snnlab.errors.ResumeMismatch` listing every option that would change the
    numbers; return the differences that only warn."""
    diffs = resume_differences(saved, cfg, "match")
    if diffs:
        raise ResumeMismatch(
            f"cannot resume {checkpoint}: it was trained with other settings that change the numbers ("
            + "; ".join(diffs) + "). Resume with the checkpoint's settings, or start again with --overwrite, "
            "or use a new --out-dir.")
    return resume_differences(saved, cfg, "warn")
