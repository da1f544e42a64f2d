"""Memory meter: bytes held for backward, peak process memory and peak CUDA memory.

* **Bytes held for backward** (what BPTT grows with T and SLTT/OTTT keep constant): every tensor
  autograd saves for the backward pass goes through ``torch.autograd.graph.saved_tensors_hooks``;
  the meter counts each underlying storage once (a view or a tensor saved by two ops is not
  counted twice), drops it when autograd frees it, and records the peak of the live total.
  Storages of the parameters (and anything passed as ``exclude``) are not counted: they exist
  whether or not a graph is kept.
* **Peak process memory**: the resident set size high-water mark (``VmHWM``). On Linux the meter
  resets it on entry (``/proc/self/clear_refs``), so the peak is the block's own; where that is not
  allowed it is the process's lifetime peak (``rss_peak_is_lifetime`` says which).
* **Peak CUDA memory**: ``torch.cuda.max_memory_allocated`` after a reset, on GPU only.
"""

from __future__ import annotations

import resource
import sys
import weakref
from dataclasses import asdict, dataclass
from typing import Iterable

import torch

__all__ = ["MemoryReport", "MemoryMeter", "StepCost", "training_step_cost", "saved_tensor_bytes", "process_rss_bytes", "peak_rss_bytes",
           "reset_peak_rss"]


@dataclass
class MemoryReport:
    """What a :class:`MemoryMeter` saw."""

    saved_bytes_peak: int
    """Peak of the bytes held for backward at any moment (unique storages)."""
    saved_bytes_total: int
    """Bytes of every distinct storage saved during the block (a storage counts once)."""
    saved_tensors: int
    """Number of tensors saved for backward (with repeats)."""
    rss_peak_bytes: int | None
    """Peak resident set size during the block (or of the process, see below)."""
    rss_peak_is_lifetime: bool
    """True when the peak could not be reset and is the process's lifetime peak."""
    cuda_peak_bytes: int | None
    """Peak CUDA memory allocated during the block (None without CUDA)."""

    def as_dict(self) -> dict:
        return asdict(self)


def process_rss_bytes() -> int | None:
    """Current resident set size of this process, or None if it cannot be read."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # pragma: no cover - psutil missing
        return _proc_status("VmRSS")


def _proc_status(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_rss_bytes() -> int:
    """Peak resident set size (``VmHWM`` on Linux; ``ru_maxrss`` elsewhere)."""
    hwm = _proc_status("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS (Linux ``/proc/self/clear_refs``); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _storage_key(t: torch.Tensor) -> tuple[str, int]:
    s = t.untyped_storage()
    return (str(t.device), s.data_ptr())


class _Held:
    """What the pack hook returns: the tensor, plus a finaliser that un-counts it."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


class MemoryMeter:
    """Context manager measuring the memory of a block (typically one training step).

    ``with MemoryMeter(exclude=model.parameters()) as meter: ...`` then ``meter.report()``.
    ``device`` selects the CUDA device whose peak is measured (default: the current one, if any).
    ``track_rss`` / ``track_cuda``: reset and read those peaks (off: leave the peaks to the caller).
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = (), *, device: torch.device | str | None = None,
                 track_rss: bool = True, track_cuda: bool = True) -> None:
        self._exclude = {_storage_key(t) for t in exclude}
        self._device = device
        self._track_rss = track_rss
        self._track_cuda = track_cuda
        self._live: dict[tuple[str, int], list[int]] = {}  # key -> [refcount, nbytes]
        self._seen: dict[tuple[str, int], int] = {}
        self._current = 0
        self.peak = 0
        self.count = 0
        self._hooks = None
        self._report: MemoryReport | None = None

    # -- saved-tensor accounting --------------------------------------------------------
    def _release(self, key: tuple[str, int]) -> None:
        entry = self._live.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self._current -= entry[1]
            del self._live[key]

    def _pack(self, tensor: torch.Tensor):
        self.count += 1
        held = _Held(tensor)
        if tensor.layout != torch.strided or tensor.device.type == "meta":
            return held
        key = _storage_key(tensor)
        if key in self._exclude:
            return held
        entry = self._live.get(key)
        if entry is None:
            nbytes = tensor.untyped_storage().nbytes()
            self._live[key] = [1, nbytes]
            self._seen[key] = nbytes
            self._current += nbytes
            self.peak = max(self.peak, self._current)
        else:
            entry[0] += 1
        weakref.finalize(held, self._release, key)
        return held

    @staticmethod
    def _unpack(held: _Held) -> torch.Tensor:
        return held.tensor

    # -- context manager -----------------------------------------------------------------
    def __enter__(self) -> "MemoryMeter":
        self._cuda = None
        wants_cuda = self._device is None or torch.device(self._device).type == "cuda"
        if self._track_cuda and torch.cuda.is_available() and wants_cuda:
            self._cuda = torch.device(self._device) if self._device is not None else torch.device("cuda")
            torch.cuda.reset_peak_memory_stats(self._cuda)
        self._rss_reset = reset_peak_rss() if self._track_rss else False
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        rss = peak_rss_bytes() if self._track_rss else None
        cuda = int(torch.cuda.max_memory_allocated(self._cuda)) if self._cuda is not None else None
        self._report = MemoryReport(
            saved_bytes_peak=int(self.peak),
            saved_bytes_total=int(sum(self._seen.values())),
            saved_tensors=int(self.count),
            rss_peak_bytes=rss,
            rss_peak_is_lifetime=bool(self._track_rss and not self._rss_reset),
            cuda_peak_bytes=cuda,
        )

    @property
    def current(self) -> int:
        """Bytes held for backward right now (inside the block)."""
        return self._current

    def report(self) -> MemoryReport:
        """The measurements (after the block has ended)."""
        if self._report is None:
            raise RuntimeError("MemoryMeter.report() is available after the `with` block ends.")
        return self._report


def saved_tensor_bytes(fn, *args, exclude: Iterable[torch.Tensor] = (), **kwargs) -> tuple[object, MemoryReport]:
    """Run ``fn(*args, **kwargs)`` under a :class:`MemoryMeter`; return ``(result, report)``."""
    with MemoryMeter(exclude=exclude) as meter:
        result = fn(*args, **kwargs)
    return result, meter.report()



@dataclass
class StepCost:
    """What one training step holds and takes: :func:`training_step_cost`'s result."""

    saved_bytes_peak: int
    """Peak bytes held for backward during one step (parameters and inputs excluded)."""
    seconds: float
    """Median wall-clock seconds of the timed steps."""


def training_step_cost(method, model: torch.nn.Module, inputs: torch.Tensor, target: torch.Tensor, loss_fn, *,
                       repeats: int = 3) -> StepCost:
    """Bytes held for backward and median time of ``method.train_step(model, inputs, target, loss_fn)``
    (gradients accumulated, no optimiser step). One untimed warm-up step first (kernels compiled,
    the method attached), then one metered step, then ``repeats`` timed steps."""
    import statistics
    import time

    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}.")
    method.train_step(model, inputs, target, loss_fn, None)
    with MemoryMeter(exclude=[*model.parameters(), inputs], track_rss=False) as meter:
        method.train_step(model, inputs, target, loss_fn, None)
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        method.train_step(model, inputs, target, loss_fn, None)
        seconds.append(time.perf_counter() - t0)
    return StepCost(meter.report().saved_bytes_peak, statistics.median(seconds))
