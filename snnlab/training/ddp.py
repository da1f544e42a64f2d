"""Distributed data-parallel training on PyTorch's own engine.

``torchrun --nproc_per_node=N -m snnlab train ...`` starts N processes; each finds its rank in
the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, set by torchrun), joins the process
group (NCCL on GPUs, gloo on CPU), wraps the model in ``DistributedDataParallel`` and reads its
shard of every epoch through :class:`EpochShardSampler`. Only rank 0 writes checkpoints, metrics
and the progress bar.

Semantics (what makes N processes equal one process with the same global batch):

* ``batch_size`` is the *global* batch; each rank takes ``batch_size / N`` samples. Global batch
  k of an epoch is the same set of samples as in a single-process run (the shards interleave one
  permutation drawn from ``(seed, epoch)``), each rank averages its loss over its local batch and
  DDP averages the gradients over ranks, so the update is the global-batch mean.
* Batch norm computes statistics per rank (per local batch) unless ``sync_bn`` converts it to
  ``SyncBatchNorm`` (GPU only); the models without batch norm match a single process exactly up
  to float rounding of the all-reduce.
* Online methods (SLTT, OTTT_A) backpropagate T times per batch under ``no_sync`` and all-reduce
  once, at the last step; OTTT_O all-reduces at every step (it steps the optimizer every step).

:func:`launch_local` runs the same thing from Python (a notebook or a test): N CPU processes with
gloo on this machine.
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from snnlab.training.checkpoint import derive_seed

__all__ = [
    "DistContext",
    "launched_by_torchrun",
    "resolve_device",
    "setup_distributed",
    "teardown_distributed",
    "wrap_ddp",
    "all_reduce_sums",
    "any_rank",
    "all_gather_objects",
    "EpochShardSampler",
    "launch_local",
]


@dataclass
class DistContext:
    """Where this process sits: rank, world size, device, backend."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True in a process started by torchrun (or :func:`launch_local`) with more than one rank."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"``: this rank's GPU if CUDA is available, else the CPU. ``"cuda"`` picks the local rank's GPU.

    snnlab trains on ``cpu`` and ``cuda`` devices; any other device, or one this machine lacks
    (``mps`` here, ``cuda:3`` with two GPUs), raises a ``ValueError`` saying what is available.
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu', 'cuda' or 'cuda:1', got {device!r}.")
    available = "cpu" + (f", cuda (cuda:0..cuda:{torch.cuda.device_count() - 1})" if torch.cuda.is_available() else "")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device 'cuda' requested but CUDA is not available on this machine; available: "
                             f"{available}. Use --device cpu or auto.")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:<index>' "
                         f"(available here: {available}).") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported: snnlab runs on 'cpu' and 'cuda' devices "
                         f"(available here: {available}). Use --device auto.")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available on this machine; available: "
                             f"{available}.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} "
                             f"CUDA device(s); available: {available}.")
    return dev


def setup_distributed(device: str | torch.device = "auto") -> DistContext:
    """Join the process group if launched by torchrun; otherwise a single-process context."""
    if not launched_by_torchrun():
        return DistContext(device=resolve_device(device, 0))
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = resolve_device(device, local)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        owns = True
    return DistContext(device=dev, rank=rank, world_size=world, local_rank=local, backend=backend, owns_group=owns)


def teardown_distributed(ctx: DistContext) -> None:
    """Leave the process group if :func:`setup_distributed` joined it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(model: nn.Module, ctx: DistContext, *, sync_bn: bool = False) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed (after optional SyncBatchNorm); else ``model``."""
    if not ctx.distributed:
        return model
    if sync_bn:
        if ctx.device.type != "cuda":
            raise ValueError("sync_bn needs GPUs (PyTorch's SyncBatchNorm does not run on CPU).")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_sums(values: list[float], ctx: DistContext) -> list[float]:
    """Sum each value over ranks (float64); the identity in a single process."""
    if not ctx.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True if ``flag`` is True on any rank (used to stop every rank at the same batch)."""
    if not ctx.distributed:
        return bool(flag)
    return all_reduce_sums([1.0 if flag else 0.0], ctx)[0] > 0


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` in a single process)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


class EpochShardSampler(Sampler[int]):
    """This rank's share of one epoch, reproducible from ``(seed, epoch)`` alone.

    Like ``DistributedSampler``: one permutation of the data set per epoch (identity when
    ``shuffle=False``), padded by wrapping around so every rank gets the same number of samples,
    rank r taking positions r, r+N, r+2N, ... ``start`` skips that many of this rank's samples
    (resuming in the middle of an epoch). With ``pad=False`` the last ranks may get one sample
    fewer and nothing is repeated (evaluation).
    """

    def __init__(self, size: int, *, seed: int = 0, epoch: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, start: int = 0, pad: bool = True) -> None:
        if size < 1:
            raise ValueError(f"the data set is empty (size {size}).")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}.")
        self.size, self.seed, self.epoch = size, seed, epoch
        self.rank, self.world_size = rank, world_size
        self.shuffle, self.start, self.pad = shuffle, start, pad

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        if self.pad:
            total = -(-self.size // self.world_size) * self.world_size
            order += (order * (1 + total // self.size))[: total - self.size]
        return order[self.rank :: self.world_size][self.start :]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _local_worker(rank: int, world_size: int, port: int, config: Any, overrides: dict, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    from snnlab.training.loop import train

    result = train(config, **overrides)
    torch.save({"history": result.history,
                "state_dict": {k: v.cpu() for k, v in result.model.state_dict().items()}},
               Path(out_dir) / f"rank{rank}.pt")


def launch_local(config: Any, world_size: int = 2, **overrides) -> list[dict[str, Any]]:
    """Run :func:`snnlab.training.train` on ``world_size`` local CPU processes (gloo).

    The same code path as torchrun. Returns, per rank, ``{"history", "state_dict"}`` of the
    trained model (every rank's, so the caller can check they agree).
    """
    import torch.multiprocessing as mp

    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}.")
    overrides = {"device": "cpu", "progress": False, **overrides}
    with tempfile.TemporaryDirectory(prefix="snnlab-ddp-") as tmp:
        mp.start_processes(_local_worker, args=(world_size, _free_port(), config, overrides, tmp),
                           nprocs=world_size, join=True, start_method="spawn")
        return [torch.load(Path(tmp) / f"rank{r}.pt", weights_only=False) for r in range(world_size)]
