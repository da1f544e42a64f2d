"""Kernel launches: from contiguous CPU tensors and plain parameters to one Numba kernel call.

Every path into the kernels of :mod:`snnlab.neurons.kernels` comes through here: the eager
autograd functions of :mod:`snnlab.neurons.ops` and the ``torch.library`` operators of
:mod:`snnlab.neurons.library` (what ``torch.compile`` sees) call the same functions, so the two
give the same numbers bit for bit. A launch

* takes its outputs from the buffer pool (:mod:`snnlab.neurons.buffers`),
* runs the kernel on the thread count of :func:`snnlab.cpu_threads.numba_threads` (one thread for
  small work),
* raises ``ValueError`` when the kernel met a non-finite potential (snnlab's NaN policy: the
  kernels count them while they run; nothing is returned, so the caller's state stays untouched).

Parameters travel as plain numbers (what a ``torch.library`` schema can carry); the kernels' typed
parameter vector is built here and memoised in a small dict (not ``functools.lru_cache``: nothing
here is ever traced by TorchDynamo, which runs these launches as opaque operators).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from snnlab.cpu_threads import numba_threads
from snnlab.neurons import buffers
from snnlab.neurons import kernels as K

__all__ = [
    "raise_nonfinite",
    "spiking_vector",
    "spiking_forward",
    "spiking_backward",
    "mlf_forward",
    "mlf_backward",
    "integrator_forward",
    "integrator_backward",
]


def raise_nonfinite(bad: int, what: str) -> None:
    raise ValueError(
        f"{what} contains non-finite value(s) (NaN or inf, or values so large the membrane potential "
        f"overflowed) reaching {bad} neuron(s). snnlab rejects them rather than letting them spread "
        f"through the membrane state; check the data or the layer that produced them."
    )


@contextmanager
def _launch(n_neurons: int, work: int, max_block: int = K.BLOCK):
    """Yield the block size for a kernel over ``n_neurons`` run on the thread count of
    :func:`snnlab.cpu_threads.numba_threads` (one thread when ``work`` is small)."""
    with numba_threads(work) as threads:
        yield min(max_block, K.block_size(n_neurons, threads))


def _mlf_backward_block(steps: int, levels: int) -> int:
    # mlf_backward keeps a [T, K, block] scratch per block: hold it to about 1 MB (L2-sized)
    return max(64, ((1 << 20) // (4 * steps * levels)) // 64 * 64)


def new(like: torch.Tensor) -> torch.Tensor:
    """An uninitialised output shaped like ``like``, from the buffer pool (:mod:`snnlab.neurons.buffers`)."""
    return buffers.empty(tuple(like.shape), like.dtype)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def contiguous_grad(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """An incoming gradient as a contiguous array (zeros, pooled, when autograd passes None)."""
    if t is None:
        return new(like).zero_()
    return t.to(like.dtype).contiguous()


_VECTORS: dict[tuple, np.ndarray] = {}
_MAX_VECTORS = 256


def spiking_vector(dtype: torch.dtype, v_threshold: float, leak: float, k: float,
                   surrogate_spec: tuple[int, float, float]) -> np.ndarray:
    """The kernels' parameter vector (:func:`snnlab.neurons.kernels.param_vector`; the reset
    potential is the leak target), memoised: the kernels only read it."""
    key = (dtype, float(v_threshold), float(leak), float(k), tuple(surrogate_spec))
    vector = _VECTORS.get(key)
    if vector is None:
        if len(_VECTORS) >= _MAX_VECTORS:
            _VECTORS.clear()
        vector = K.param_vector(
            np.float32 if dtype == torch.float32 else np.float64, v_threshold=v_threshold, v_reset=leak,
            k=k, leak=leak, surrogate_spec=surrogate_spec,
        )
        vector.setflags(write=False)
        _VECTORS[key] = vector
    return vector


# ---------------------------------------------------------------------------------------------
# IF / LIF / PLIF
# ---------------------------------------------------------------------------------------------


def spiking_forward(x: torch.Tensor, v0: torch.Tensor, prm: np.ndarray, charge: int, hard: bool,
                    store: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The forward kernel over ``x[T, N]`` from ``v0[N]`` (empty: at rest): ``(spikes, H or an empty
    [0, 0] tensor, V_last)``; raises on non-finite input."""
    spikes = new(x)
    h = new(x) if store else x.new_empty((0, 0))
    v_last = new(x[0])
    with _launch(x.shape[1], x.numel()) as block:
        bad = K.spiking_forward(_np(x), _np(v0), prm, charge, hard, _np(spikes), _np(h), _np(v_last), store, block)
    if bad:
        raise_nonfinite(bad, "neuron input")
    return spikes, h, v_last


def spiking_backward(g_spikes: torch.Tensor | None, g_v_last: torch.Tensor | None, h: torch.Tensor,
                     v0: torch.Tensor | None, prm: np.ndarray, charge: int, hard: bool, detach: bool,
                     cut: bool, want_dk: bool) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Surrogate backward from the stored ``h[T, N]``: ``(∂L/∂X, ∂L/∂V0, ∂L/∂k)``. ``v0`` is needed
    only for PLIF's ∂L/∂k (``want_dk``); a ``None`` gradient is read as zeros."""
    gs = contiguous_grad(g_spikes, h)
    # no gradient for the final potential (the usual case): an empty vector, read as zeros
    gvl = h.new_empty((0,)) if g_v_last is None else contiguous_grad(g_v_last, h[0])
    gx = new(h)
    gv0 = new(h[0])
    with _launch(h.shape[1], h.numel()) as block:
        dk = K.spiking_backward(
            _np(gs), _np(gvl), _np(h), _np(v0) if v0 is not None else _np(gvl), prm,
            charge, hard, detach, cut, _np(gx), _np(gv0), want_dk, block,
        )
    return gx, gv0, float(dk)


# ---------------------------------------------------------------------------------------------
# MLF
# ---------------------------------------------------------------------------------------------


def mlf_forward(x: torch.Tensor, v0: torch.Tensor, thresholds: np.ndarray,
                prm: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """MLF forward over ``x[T, N]`` from ``v0[K, N]`` (``[K, 0]``: at rest): ``(Σ_k S_k, V_last[K, N])``."""
    out = new(x)
    v_last = buffers.empty((len(thresholds), x.shape[1]), x.dtype)
    with _launch(x.shape[1], x.numel() * len(thresholds)) as block:
        bad = K.mlf_forward(_np(x), _np(v0), thresholds, prm, _np(out), _np(v_last), block)
    if bad:
        raise_nonfinite(bad, "MLF input")
    return out, v_last


def mlf_backward(g_out: torch.Tensor | None, g_v_last: torch.Tensor | None, x: torch.Tensor, v0: torch.Tensor,
                 thresholds: np.ndarray, prm: np.ndarray, detach: bool, cut: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward of :func:`mlf_forward`, recomputing the levels from ``x``: ``(∂L/∂X, ∂L/∂V0 [K, N])``."""
    g = contiguous_grad(g_out, x)
    gx = new(x)
    Kl = len(thresholds)
    gv0 = buffers.empty((Kl, x.shape[1]), x.dtype)
    gvl = x.new_empty((Kl, 0)) if g_v_last is None else contiguous_grad(g_v_last, gv0)
    with _launch(x.shape[1], x.numel() * Kl, _mlf_backward_block(x.shape[0], Kl)) as block:
        K.mlf_backward(_np(g), _np(gvl), _np(x), _np(v0), thresholds, prm, detach, cut, _np(gx), _np(gv0), block)
    return gx, gv0


# ---------------------------------------------------------------------------------------------
# Non-spiking integrator
# ---------------------------------------------------------------------------------------------


def integrator_forward(x: torch.Tensor, v0: torch.Tensor, decay: float) -> torch.Tensor:
    """``V[t] = decay·V[t-1] + X[t]`` over ``x[T, N]`` from ``v0`` (empty: 0); raises on non-finite input."""
    d = np.array([decay], dtype=_np(x).dtype)
    out = new(x)
    with _launch(x.shape[1], x.numel()) as block:
        bad = K.integrator_forward(_np(x), _np(v0), d, _np(out), block)
    if bad:
        raise_nonfinite(bad, "integrator input")
    return out


def integrator_backward(g_out: torch.Tensor, decay: float, cut: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward of :func:`integrator_forward` (it needs nothing from the forward): ``(∂L/∂X, ∂L/∂V0)``."""
    g = g_out.contiguous()
    d = np.array([decay], dtype=_np(g).dtype)
    gx = new(g)
    gv0 = new(g[0])
    with _launch(g.shape[1], g.numel()) as block:
        K.integrator_backward(_np(g), d, cut, _np(gx), _np(gv0), block)
    return gx, gv0
