"""The training loop: what ``snnlab train`` runs and what the chapters call.

``train(TrainConfig(...))`` (or ``train(model="spiking_cnn", dataset="digits", method="sltt", ...)``)
builds the data, model, loss, method, optimiser (SGD or Adam, weight decay) and cosine schedule,
then trains for ``epochs`` with a tqdm bar showing loss, accuracy and the bytes held for
backward; after every epoch it evaluates, appends a row to the history, writes
``metrics.csv`` / ``metrics.json`` and a checkpoint (atomically) into ``out_dir``.

Resuming: ``resume=True`` continues from ``out_dir/checkpoint.pt``. The checkpoint holds the
model, optimiser, schedule, every RNG state, the epoch and (after an interruption) the batch
reached and the running sums, and the sampler's order depends only on ``(seed, epoch)``. On CPU
with ``num_workers=0`` an interrupted-and-resumed run ends with exactly the weights of an
uninterrupted one (tested bit for bit); at epoch boundaries this holds with workers too, since
each epoch reseeds every generator from ``(seed, epoch, rank)``.

Ctrl-C (SIGINT) or SIGTERM: the current batch finishes, a checkpoint is written, and
``KeyboardInterrupt`` is raised; nothing trained is lost. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from snnlab.analysis.memory import MemoryMeter, peak_rss_bytes, reset_peak_rss
from snnlab.errors import NonFiniteLossError, ResumeMismatch, SnnlabError, SnnlabWarning
from snnlab.files import file_checksum, folder_lock
from snnlab.training.checkpoint import (
    atomic_write_text,
    capture_rng_state,
    derive_seed,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
)
from snnlab.training.ddp import (
    DistContext,
    EpochShardSampler,
    all_gather_objects,
    all_reduce_sums,
    any_rank,
    setup_distributed,
    teardown_distributed,
    wrap_ddp,
)
from snnlab.training.inputs import time_major
from snnlab.training.losses import build_loss
from snnlab.training.methods import MixedPrecision, build_method, unwrap
from snnlab.training.options import OPTIMIZERS, SCHEDULES, TrainConfig, check_resume
from snnlab.training.rundir import (
    CHECKPOINT_NAME,
    LOCK_NAME,
    METRICS_CSV,
    METRICS_JSON,
    TB_DIR,
    RunStart,
    check_free_space,
    check_out_dir,
    start_run,
)
from snnlab.training.state import reset_model

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate", "OPTIMIZERS", "SCHEDULES", "CHECKPOINT_NAME"]

@dataclass
class TrainResult:
    """What :func:`train` returns."""

    history: list[dict[str, Any]]
    """One row per epoch: epoch, train/test loss and accuracy, lr, seconds, memory."""
    model: nn.Module
    config: TrainConfig
    checkpoint: Path | None = None


class _StopRequest:
    """SIGINT/SIGTERM: finish the batch, checkpoint, stop. A second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._previous[sig] = signal.signal(sig, self._handler)
                except (ValueError, OSError):  # pragma: no cover - exotic hosts
                    pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


DEFAULT_STATIC_T = 4


def _resolve_data(cfg: TrainConfig, train_set, test_set):
    """Data sets, input kind ('static'/'events'), per-step input shape, number of classes and T."""
    info = None
    if train_set is None:
        from snnlab.data import dataset_info, load_dataset
        from snnlab.data.registry import split_options

        info = dataset_info(cfg.dataset, T=cfg.T, **cfg.data_options)
        T_data = cfg.T if info["kind"] == "events" else None
        train_set = load_dataset(cfg.dataset, train=True, T=T_data, root=cfg.data_root,
                                 **split_options(cfg.data_options, train=True))
        if test_set is None and cfg.evaluate:  # training-only options (augmentation) stay off the test set
            test_set = load_dataset(cfg.dataset, train=False, T=T_data, root=cfg.data_root,
                                    **split_options(cfg.data_options, train=False))
    x0, _ = train_set[0]
    if info is not None:
        kind, num_classes = info["kind"], info["num_classes"]
    else:
        kind = "events" if x0.dim() == 4 else "static"
        num_classes = cfg.model_options.get("num_classes")
    per_step = tuple(x0.shape[1:]) if kind == "events" else tuple(x0.shape)
    if cfg.T is not None:
        T = cfg.T
    elif kind == "events":  # the data set's T (not the training items', which RTD may shorten)
        T = int(info["input_shape"][0]) if info is not None else int(x0.shape[0])
    else:
        T = DEFAULT_STATIC_T
    return train_set, test_set, kind, per_step, num_classes, T


def _build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _build_schedule(cfg: TrainConfig, optimizer: torch.optim.Optimizer):
    """Cosine annealing to 0 over ``cfg.epochs``, in closed form (so a resume may extend ``epochs``)."""
    if cfg.schedule == "none":
        return None
    epochs = cfg.epochs
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: 0.5 * (1.0 + math.cos(math.pi * min(e, epochs) / epochs)))


def _build_precision(cfg: TrainConfig, device: torch.device) -> MixedPrecision:
    if not cfg.amp:
        return MixedPrecision()
    if device.type == "cuda":
        return MixedPrecision(torch.float16, torch.amp.GradScaler("cuda"))
    return MixedPrecision(torch.bfloat16)  # bfloat16 keeps float32's range: no loss scaling needed


def _loader(dataset: Dataset, sampler, batch_size: int, cfg: TrainConfig, ctx: DistContext, gen_seed: int):
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=cfg.num_workers,
                      pin_memory=ctx.device.type == "cuda", drop_last=False,
                      generator=torch.Generator().manual_seed(gen_seed),
                      persistent_workers=False)


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    *,
    T: int,
    kind: str = "static",
    loss_fn=None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    max_batches: int | None = None,
    ctx: DistContext | None = None,
) -> dict[str, float]:
    """Loss and accuracy of ``model`` on ``dataset`` (eval mode, no gradient, full sequences).

    Prediction follows the loss (``loss_fn.predict``; default: argmax of the mean output).
    Under DDP every rank evaluates its shard and the sums are all-reduced.
    """
    ctx = ctx or DistContext(device=torch.device(device))
    loss_fn = loss_fn or build_loss("tet")
    core = unwrap(model)
    was_training = core.training
    core.eval()
    sampler = EpochShardSampler(len(dataset), rank=ctx.rank, world_size=ctx.world_size, shuffle=False, pad=False)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    total_loss = correct = count = 0.0
    try:
        with torch.no_grad():
            for i, (x, y) in enumerate(loader):
                if max_batches is not None and i >= max_batches:
                    break
                x, y = x.to(ctx.device), y.to(ctx.device)
                reset_model(core)
                out = core(time_major(x, T, kind))
                total_loss += float(loss_fn(out, y)) * len(y)
                correct += float((loss_fn.predict(out) == y).sum())
                count += len(y)
    finally:
        core.train(was_training)
        reset_model(core)
    total_loss, correct, count = all_reduce_sums([total_loss, correct, count], ctx)
    return {"loss": total_loss / max(count, 1), "accuracy": correct / max(count, 1), "samples": int(count)}


def json_safe_row(row: dict[str, Any]) -> dict[str, Any]:
    """A metrics row as valid JSON: a NaN or infinite number becomes ``null`` and the row's
    ``"non_finite"`` says which and what it was (``{"test_loss": "inf"}``); JSON has no ``Infinity``."""
    out: dict[str, Any] = {}
    bad: dict[str, str] = dict(row.get("non_finite") or {})
    for key, value in row.items():
        if key == "non_finite":
            continue
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
            bad[key] = repr(value)
        else:
            out[key] = value
    out["non_finite"] = bad or None
    return out


def _write_metrics(out_dir: Path, history: list[dict[str, Any]]) -> None:
    rows = [json_safe_row(row) for row in history]  # rows from older checkpoints may lack "non_finite"
    atomic_write_text(out_dir / METRICS_JSON, json.dumps(rows, indent=2, allow_nan=False) + "\n")
    if rows:
        buf = io.StringIO()
        keys = list(rows[0].keys())
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows({k: ("" if v is None else json.dumps(v) if isinstance(v, dict) else v)
                          for k, v in row.items()} for row in rows)
        atomic_write_text(out_dir / METRICS_CSV, buf.getvalue())


def _write_config(out_dir: Path, cfg: TrainConfig, replay: dict[str, Any] | None, *, resumed: bool,
                  custom: list[str] = ()) -> None:
    """``out_dir/config.yaml`` for this run; a resume keeps what the file says the run replayed.
    ``custom``: the Python objects the run was given, which the file cannot rebuild (it says so)."""
    from snnlab.training.runconfig import CONFIG_NAME, write_run_config

    if replay is None and resumed and (out_dir / CONFIG_NAME).is_file():
        try:
            import yaml

            replay = (yaml.safe_load((out_dir / CONFIG_NAME).read_text()) or {}).get("replay")
        except Exception:  # noqa: BLE001 - the old file is only a record; it is rewritten below
            replay = None
    write_run_config(out_dir, cfg, replay, not_replayable=list(custom))


class _TensorBoard:
    """Per-epoch scalars in ``out_dir/tb/`` (``--tensorboard``): the epoch's metrics (loss, accuracy,
    lr, memory) and the firing rate of every spiking layer on a fixed probe batch (the first 64
    items of the test set, eval mode; the random-number state is restored, so training is unchanged).
    A resume purges the events of epochs after the checkpoint (``purge_step``)."""

    PROBE = 64
    SCALARS = {"train_loss": "loss/train", "test_loss": "loss/test", "train_accuracy": "accuracy/train",
               "test_accuracy": "accuracy/test", "lr": "lr", "seconds": "time/epoch_seconds",
               "rss_peak_bytes": "memory/rss_peak_bytes", "saved_bytes_peak": "memory/saved_for_backward_peak_bytes",
               "cuda_peak_bytes": "memory/cuda_peak_bytes"}

    def __init__(self, writer=None, dataset=None, cfg=None, kind=None, device=None):
        self.writer, self.dataset, self.cfg, self.kind, self.device = writer, dataset, cfg, kind, device
        self._probe = None

    @classmethod
    def open(cls, cfg, ctx, out_dir, start_epoch, dataset, kind) -> "_TensorBoard":
        if not (cfg.tensorboard and ctx.is_main and out_dir is not None):
            return cls()
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(out_dir / TB_DIR), purge_step=start_epoch + 1 if start_epoch else None)
        return cls(writer, dataset, cfg, kind, ctx.device)

    def __enter__(self) -> "_TensorBoard":
        return self

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.writer.close()

    def firing_rates(self, model: nn.Module) -> dict[str, float]:
        from snnlab.analysis.ottt import firing_rates

        if self._probe is None:
            n = min(self.PROBE, len(self.dataset))
            x = torch.stack([torch.as_tensor(self.dataset[i][0]) for i in range(n)])
            self._probe = time_major(x, self.cfg.T, self.kind).to(self.device)
        rng = capture_rng_state()
        try:
            return {layer.name: layer.rate for layer in firing_rates(model, self._probe)}
        finally:
            restore_rng_state(rng)

    def log(self, row: dict[str, Any], model: nn.Module) -> None:
        if self.writer is None:
            return
        step = row["epoch"]
        for key, tag in self.SCALARS.items():
            if isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool):
                self.writer.add_scalar(tag, row[key], step)
        for name, rate in self.firing_rates(model).items():
            self.writer.add_scalar(f"firing_rate/{name}", rate, step)
        self.writer.flush()


def train(
    config: TrainConfig | None = None,
    *,
    model: nn.Module | None = None,
    train_set: Dataset | None = None,
    test_set: Dataset | None = None,
    callbacks: list[Callable[[dict[str, Any]], None]] = (),
    replay: dict[str, Any] | None = None,
    **overrides,
) -> TrainResult:
    """Train a spiking network; return the per-epoch history and the trained model.

    ``config`` fields can be given as keyword arguments (``train(method="sltt", T=4)``). ``model``
    is a registry name or an ``nn.Module`` built in a notebook; data sets can be passed directly
    (``train_set=``, ``test_set=``); otherwise they come from the registries (``snnlab.models``, ``snnlab.data``).
    ``callbacks`` are called after every batch with a dict (epoch, batch, loss, accuracy, ...).
    With ``out_dir`` the run writes ``out_dir/config.yaml`` (:mod:`snnlab.training.runconfig`), which
    replays it; ``replay`` (``{"from": path, "overrides": {...}}``) is recorded there when the run
    is itself a replay.
    Under torchrun this runs DDP (see :mod:`snnlab.training.ddp`).

    Before any data or model is built, ``out_dir`` is checked (:func:`snnlab.training.rundir.check_out_dir`)
    and locked for this run, and the fresh-or-resume decision is taken (:func:`~snnlab.training.rundir.start_run`).
    """
    if isinstance(model, str):  # train(model="spiking_cnn"): a registry name, not a module
        overrides["model"], model = model, None
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model must be a registry name or an nn.Module, got {type(model).__name__}.")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        valid = ", ".join(f.name for f in dataclasses.fields(TrainConfig))
        raise TypeError(f"unknown training setting(s) {sorted(unknown)}; valid: {valid}.")
    cfg = dataclasses.replace(config or TrainConfig(), **overrides)
    cfg.validate(custom_model=model is not None, custom_data=train_set is not None)
    ctx = setup_distributed(cfg.device)
    try:
        with contextlib.ExitStack() as held:
            run = _open_run(cfg, ctx, held)
            return _train(cfg, ctx, run, model, train_set, test_set, list(callbacks), replay)
    finally:
        teardown_distributed(ctx)


def _open_run(cfg: TrainConfig, ctx: DistContext, held: contextlib.ExitStack) -> RunStart | None:
    """Check and lock ``out_dir`` and decide fresh or resume (rank 0 decides, every rank learns it)."""
    if cfg.out_dir is None:
        return None
    run, error = None, None
    if ctx.is_main:
        try:
            out_dir = check_out_dir(cfg.out_dir)
            held.enter_context(folder_lock(out_dir / LOCK_NAME, wait=False, what=f"--out-dir {out_dir}"))
            run = start_run(out_dir, resume=cfg.resume, resume_if_exists=cfg.resume_if_exists,
                            overwrite=cfg.overwrite)
        except Exception as exc:  # every rank must learn about it, or the others would wait forever
            error = exc
    if ctx.distributed:
        run, message = all_gather_objects((run, None if error is None else str(error)), ctx)[0]
        if message is not None and error is None:
            raise SnnlabError(f"rank 0 could not start the run: {message}")
    if error is not None:
        raise error
    if ctx.is_main:  # on stderr: stdout stays the run's JSON
        for note in run.notes:
            print(f"snnlab train: {note}", file=sys.stderr)
    return run


def _checkpoint_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """About how large a checkpoint of ``model`` and ``optimizer`` will be (SGD's momentum or Adam's
    two moments per trainable parameter), plus 1 MiB for the RNG states and the history."""
    tensors = sum(t.numel() * t.element_size() for t in model.state_dict().values() if torch.is_tensor(t))
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    per_param = 2 if isinstance(optimizer, torch.optim.Adam) else int(optimizer.defaults.get("momentum", 0) > 0)
    return tensors + per_param * trainable + 2**20


def _warn(message: str) -> None:
    warnings.warn(message, SnnlabWarning, stacklevel=3)


def _train(cfg, ctx, run, model, train_set, test_set, callbacks, replay=None) -> TrainResult:
    if cfg.batch_size % ctx.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} (global) must be divisible by the {ctx.world_size} processes.")
    local_batch = cfg.batch_size // ctx.world_size
    out_dir = run.out_dir if run is not None else None
    ckpt_path = out_dir / CHECKPOINT_NAME if out_dir is not None else None
    # a corrupt or foreign checkpoint fails here, before the data and the model are built
    state = load_checkpoint(ckpt_path, map_location="cpu") if run is not None and run.resume else None

    seed_everything(cfg.seed)
    # what config.yaml cannot rebuild: a network or data sets passed in as Python objects
    custom = [what for what, given in (("the model (an nn.Module)", model is not None and cfg.init_from is None),
                                       ("the training set", train_set is not None),
                                       ("the test set", test_set is not None)) if given]
    train_set, test_set, kind, per_step, num_classes, T = _resolve_data(cfg, train_set, test_set)
    # resolved: what the checkpoint records, a resume compares and the result reports
    digest = None if cfg.init_from is None else file_checksum(cfg.init_from, "sha256")
    if cfg.init_from_sha256 is not None and digest != cfg.init_from_sha256:  # e.g. a replayed config.yaml
        raise ResumeMismatch(f"init_from {cfg.init_from} is not the NIR graph this configuration was made with "
                             f"(its SHA-256 is {digest}, the configuration records {cfg.init_from_sha256}); "
                             f"give the original graph.")
    cfg = dataclasses.replace(cfg, T=T, device=ctx.device.type, init_from_sha256=digest)
    if state is not None:
        for diff in check_resume(state["config"], cfg, ckpt_path):
            _warn(f"resuming {ckpt_path} with another {diff}; the numbers may differ in the last bits.")
        saved_threads, threads = state.get("threads"), torch.get_num_threads()
        if saved_threads is not None and saved_threads != threads:
            _warn(f"the checkpoint was written with {saved_threads} torch thread(s), this process uses {threads}: "
                  f"sums may round differently (spiking_cnn's weights differ by ~1e-7 between 1 and 2 threads), "
                  f"so the resumed run may not match an uninterrupted one bit for bit. Set OMP_NUM_THREADS="
                  f"{saved_threads} (or torch.set_num_threads({saved_threads})) to match.")
    if model is None and cfg.init_from is not None:
        from snnlab.interop import model_from_nir

        model = model_from_nir(cfg.init_from, input_shape=per_step, num_classes=num_classes, **cfg.model_options)
    if model is None:
        from snnlab.models import build_model

        if num_classes is None:
            raise ValueError("with a custom data set, pass model_options={'num_classes': C} or a model.")
        opts = {k: v for k, v in cfg.model_options.items() if k != "num_classes"}
        model = build_model(cfg.model, num_classes=num_classes, input_shape=per_step, T=cfg.T, **opts)
    model = model.to(ctx.device)
    loss_fn = build_loss(cfg.loss, **cfg.loss_options)
    method = build_method(cfg.method, **cfg.method_options)
    method.check_loss(loss_fn)
    optimizer = _build_optimizer(cfg, model)
    scheduler = _build_schedule(cfg, optimizer)
    precision = _build_precision(cfg, ctx.device)
    if out_dir is not None and ctx.is_main:
        check_free_space(out_dir, int(1.1 * _checkpoint_bytes(model, optimizer)))
        _write_config(out_dir, cfg, replay, resumed=state is not None, custom=custom)

    history: list[dict[str, Any]] = []
    start_epoch, start_batch, partial = 0, 0, None
    resumed_rng = None
    last_saved: tuple[int, int] | None = None
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise ResumeMismatch(f"cannot resume {ckpt_path}: its weights do not fit this model "
                                 f"({str(error).splitlines()[0]}). Resume with the model it was trained with, "
                                 f"or start again with --overwrite.") from error
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
            # closed form: with more epochs than first planned, the cosine stretches from here on
            for group, base, lam in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
                group["lr"] = base * lam(scheduler.last_epoch)
        if precision.scaler is not None and state.get("scaler") is not None:
            precision.scaler.load_state_dict(state["scaler"])
        history = state["history"]
        start_epoch, start_batch, partial = state["epoch"], state["batch"], state.get("partial")
        last_saved = (start_epoch, start_batch)
        rngs = state["rng"]
        if start_batch and len(rngs) != ctx.world_size:
            raise ValueError(f"the checkpoint was interrupted mid-epoch with {len(rngs)} processes; resume "
                             f"with the same number (now {ctx.world_size}).")
        resumed_rng = rngs[ctx.rank] if ctx.rank < len(rngs) else None
        if ctx.is_main:  # the metrics files follow the checkpoint (they may lag it after a kill)
            _write_metrics(out_dir, history)

    model = wrap_ddp(model, ctx, sync_bn=cfg.sync_bn)
    core = unwrap(model)
    end_epoch = cfg.epochs if cfg.stop_after is None else min(cfg.epochs, cfg.stop_after)
    if start_epoch >= end_epoch:
        return TrainResult(history, core, cfg, ckpt_path)

    def save(epoch: int, batch: int, partial_sums) -> None:
        nonlocal last_saved
        rngs = all_gather_objects(capture_rng_state(), ctx)
        if ckpt_path is None:
            return
        last_saved = (epoch, batch)
        if not ctx.is_main:
            return
        save_checkpoint(ckpt_path, {
            "format": 1, "config": dataclasses.asdict(cfg), "epoch": epoch, "batch": batch,
            "partial": partial_sums, "model": core.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": precision.scaler.state_dict() if precision.scaler is not None else None,
            "rng": rngs, "history": history, "world_size": ctx.world_size,
            "threads": torch.get_num_threads(),
        })

    def last_good() -> str:
        if ckpt_path is None:
            return "nothing was saved (no out_dir)"
        if last_saved is None:
            return f"no checkpoint was written yet in {out_dir}"
        epoch, batch = last_saved
        where = f"the end of epoch {epoch}" if batch == 0 else f"epoch {epoch + 1}, batch {batch}"
        return f"the last good checkpoint is {ckpt_path} ({where})"

    from tqdm.auto import tqdm

    exclude = list(core.parameters())
    board = _TensorBoard.open(cfg, ctx, out_dir, start_epoch, test_set if test_set is not None else train_set, kind)
    with _StopRequest() as stop, board:
        for epoch in range(start_epoch, end_epoch):
            first = epoch == start_epoch and start_batch > 0
            skip = start_batch if first else 0
            if first and resumed_rng is not None:
                restore_rng_state(resumed_rng)
            else:
                seed_everything(derive_seed(cfg.seed, epoch, ctx.rank))
            sampler = EpochShardSampler(len(train_set), seed=cfg.seed, epoch=epoch, rank=ctx.rank,
                                        world_size=ctx.world_size, start=skip * local_batch)
            loader = _loader(train_set, sampler, local_batch, cfg, ctx, derive_seed(cfg.seed, epoch, ctx.rank, 1))
            n_batches = math.ceil((len(sampler) + skip * local_batch) / local_batch)
            if cfg.max_batches is not None:
                n_batches = min(n_batches, cfg.max_batches)
            sums = dict(partial) if first and partial else {"loss": 0.0, "correct": 0.0, "count": 0.0,
                                                           "seconds": 0.0, "saved_bytes_peak": 0}
            reset_peak_rss()
            if ctx.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(ctx.device)
            core.train()
            lr = optimizer.param_groups[0]["lr"]
            bar = tqdm(total=n_batches, initial=skip, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       disable=not (cfg.progress and ctx.is_main), leave=True, dynamic_ncols=True)
            batch = skip
            try:
                for x, y in loader:
                    if batch >= n_batches:
                        break
                    t0 = time.perf_counter()
                    x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
                    inputs = time_major(x, cfg.T, kind)
                    with MemoryMeter(exclude=[*exclude, inputs], track_rss=False, track_cuda=False) as meter:
                        result = method.train_step(model, inputs, y, loss_fn, optimizer, precision=precision)
                    if any_rank(not math.isfinite(result.loss), ctx):
                        raise NonFiniteLossError(
                            f"the training loss became {result.loss!r} at epoch {epoch + 1}, batch {batch + 1} "
                            f"of {n_batches}; training stopped without saving this state, and {last_good()}. "
                            f"The step diverged: lower --lr (now {cfg.lr:g})"
                            + (f" or --momentum (now {cfg.momentum:g})" if cfg.optimizer == "sgd" else "")
                            + ", then start again (--overwrite keeps the old run in previous/).")
                    saved = meter.report().saved_bytes_peak
                    correct = float((loss_fn.predict(result.outputs) == y).sum())
                    sums["loss"] += result.loss * len(y)
                    sums["correct"] += correct
                    sums["count"] += len(y)
                    sums["seconds"] += time.perf_counter() - t0
                    sums["saved_bytes_peak"] = max(sums["saved_bytes_peak"], saved)
                    batch += 1
                    bar.update(1)
                    postfix = {"loss": f"{sums['loss'] / sums['count']:.4f}",
                               "acc": f"{sums['correct'] / sums['count']:.3f}",
                               "mem": f"{sums['saved_bytes_peak'] / 2**20:.1f}MB"}  # held for backward
                    if ctx.device.type == "cuda":
                        postfix["gpu"] = f"{torch.cuda.max_memory_allocated(ctx.device) / 2**30:.2f}GB"
                    bar.set_postfix(postfix, refresh=False)
                    for cb in callbacks:
                        cb({"epoch": epoch, "batch": batch - 1, "loss": result.loss,
                            "accuracy": correct / len(y), "saved_bytes": saved, "lr": lr})
                    if batch < n_batches:
                        if any_rank(stop.requested, ctx):
                            save(epoch, batch, sums)
                            if ctx.is_main:
                                bar.write(f"snnlab train: interrupted at epoch {epoch + 1}, batch {batch}; "
                                          + (f"checkpoint saved to {ckpt_path}; continue with --resume."
                                             if ckpt_path else "no out_dir, nothing saved."))
                            raise KeyboardInterrupt
                        if cfg.checkpoint_every is not None and batch % cfg.checkpoint_every == 0:
                            save(epoch, batch, sums)  # a kill loses at most checkpoint_every batches
            finally:
                bar.close()
            loss_sum, correct_sum, count = all_reduce_sums([sums["loss"], sums["correct"], sums["count"]], ctx)
            row: dict[str, Any] = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(count, 1),
                "train_accuracy": correct_sum / max(count, 1),
                "test_loss": None,
                "test_accuracy": None,
                "lr": lr,
                "seconds": sums["seconds"],
                "saved_bytes_peak": int(sums["saved_bytes_peak"]),
                "rss_peak_bytes": peak_rss_bytes(),
                "cuda_peak_bytes": (int(torch.cuda.max_memory_allocated(ctx.device))
                                    if ctx.device.type == "cuda" else None),
                "method": cfg.method,
                "T": cfg.T,
            }
            if cfg.evaluate and test_set is not None:
                ev = evaluate(core, test_set, T=cfg.T, kind=kind, loss_fn=loss_fn, batch_size=max(local_batch, 1),
                              ctx=ctx, max_batches=cfg.max_batches)
                row["test_loss"], row["test_accuracy"] = ev["loss"], ev["accuracy"]
            if scheduler is not None:
                scheduler.step()
            history.append(json_safe_row(row))  # rows are valid JSON in memory and in the files alike
            save(epoch + 1, 0, None)  # first the checkpoint: the metrics files are never ahead of it
            if ctx.is_main and out_dir is not None:
                _write_metrics(out_dir, history)
                board.log(history[-1], core)
            if ctx.is_main and cfg.progress:
                test = "" if row["test_accuracy"] is None else f", test acc {row['test_accuracy']:.3f}"
                print(f"epoch {epoch + 1}: train loss {row['train_loss']:.4f}, "
                      f"train acc {row['train_accuracy']:.3f}{test}")
            if any_rank(stop.requested, ctx):
                if ctx.is_main:
                    print("snnlab train: interrupted at the end of an epoch; checkpoint saved"
                          + (f" to {ckpt_path}" if ckpt_path else " nowhere (no out_dir)") + ".")
                raise KeyboardInterrupt
    return TrainResult(history, core, cfg, ckpt_path)
