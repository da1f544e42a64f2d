"""Multi-step neuron operations: Numba kernels behind custom autograd functions, or the torch reference.

Each ``*_multi_step`` function takes a ``[T, ...]`` input and the state before the first step, and
returns the outputs over the sequence and the state after the last step. ``backend`` selects:

* ``"auto"`` (default): the Numba kernels for CPU float32 tensors, the pure-torch reference
  (:mod:`snnlab.neurons.functional`) for everything else (CUDA, float64, ...);
* ``"numba"``: the kernels (CPU only; float32, or float64 for the gradient checks);
* ``"torch"``: the reference, always.

A kernel call covers the whole sequence: one forward pass over ``[T, N]``, one backward pass.

NaN policy: non-finite input is rejected with a ``ValueError`` that says so, never propagated into
the membrane state. The torch path checks the input before it runs (:func:`snnlab.checks.check_finite`);
the kernels count non-finite potentials while they run (no second pass over memory) and the
wrapper raises before returning anything, with the state left untouched. (A non-finite potential
can also come from finite but overflowing input, |x| ~ 1e38; that is rejected the same way.)

``cut_temporal_grad``: gradient only through the current step (SLTT, OTTT): the potential carried
into each step is detached, in both backends.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from snnlab.checks import check_finite
from snnlab.cpu_threads import numba_threads
from snnlab.neurons import buffers
from snnlab.neurons import kernels as K
from snnlab.neurons.functional import NeuronParams, integrator_step, mlf_step, neuron_step
from snnlab.surrogate import Surrogate

__all__ = [
    "BACKENDS",
    "use_kernel",
    "spiking_multi_step",
    "mlf_multi_step",
    "integrator_multi_step",
]

BACKENDS = ("auto", "numba", "torch")

_KERNEL_DTYPES = (torch.float32, torch.float64)


def use_kernel(x: torch.Tensor, backend: str) -> bool:
    """Whether ``x`` goes to the Numba kernels under ``backend`` (raises if ``"numba"`` cannot)."""
    if backend == "torch":
        return False
    if backend == "auto":
        return x.device.type == "cpu" and x.dtype == torch.float32
    if backend == "numba":
        if x.device.type != "cpu" or x.dtype not in _KERNEL_DTYPES:
            raise ValueError(
                f"backend='numba' runs on CPU float32/float64 tensors, got a {x.dtype} tensor on "
                f"{x.device}; use backend='auto' (the torch reference runs elsewhere) or move the input."
            )
        return True
    raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(map(repr, BACKENDS))}.")


def _raise_nonfinite(bad: int, what: str) -> None:
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


def _new(like: torch.Tensor) -> torch.Tensor:
    """An uninitialised output shaped like ``like``, from the buffer pool (:mod:`snnlab.neurons.buffers`)."""
    return buffers.empty(tuple(like.shape), like.dtype)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _contig(t: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """An incoming gradient as a contiguous array (zeros, pooled, when autograd passes None)."""
    if t is None:
        return _new(like).zero_()
    return t.to(like.dtype).contiguous()


def _needs_graph(*inputs) -> bool:
    """Whether autograd must record the call (grad mode on and some input requires a gradient)."""
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in inputs)


# ---------------------------------------------------------------------------------------------
# IF / LIF / PLIF
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SpikingConfig:
    charge: int
    params: NeuronParams
    surrogate_spec: tuple[int, float, float]
    cut: bool

    def vector(self, dtype, k: float) -> np.ndarray:
        """The kernels' parameter vector (cached per parameters, dtype and k: the kernels only read it)."""
        return _spiking_vector(self.params, self.surrogate_spec, np.dtype(dtype).str, float(k))


@lru_cache(maxsize=256)
def _spiking_vector(p: NeuronParams, surrogate_spec, dtype: str, k: float) -> np.ndarray:
    vector = K.param_vector(
        np.dtype(dtype), v_threshold=p.v_threshold, v_reset=p.leak_target, k=k, leak=p.leak_target,
        surrogate_spec=surrogate_spec,
    )
    return vector


def _spiking_forward(x: torch.Tensor, v0: torch.Tensor, prm: np.ndarray, cfg: _SpikingConfig, store: bool):
    """Run the forward kernel: ``(spikes, H or an empty tensor, V_last)``; raises on non-finite input."""
    spikes = _new(x)
    h = _new(x) if store else x.new_empty((0, 0))
    v_last = _new(x[0])
    with _launch(x.shape[1], x.numel()) as block:
        bad = K.spiking_forward(
            _np(x), _np(v0), prm, cfg.charge, not cfg.params.soft_reset,
            _np(spikes), _np(h), _np(v_last), store, block,
        )
    if bad:
        _raise_nonfinite(bad, "neuron input")
    return spikes, h, v_last


class _SpikingFunction(torch.autograd.Function):
    """Numba IF/LIF/PLIF over ``x[T, N]``: outputs ``(S[T, N], V_last[N])``; keeps ``H`` for backward."""

    @staticmethod
    def forward(ctx, x, v0, k, cfg: _SpikingConfig):  # type: ignore[override]
        k_value = float(k) if isinstance(k, torch.Tensor) else k
        prm = cfg.vector(_np(x).dtype, k_value)
        store = any(ctx.needs_input_grad[:3])
        spikes, h, v_last = _spiking_forward(x, v0, prm, cfg, store)
        plif = isinstance(k, torch.Tensor) and ctx.needs_input_grad[2]
        if store:
            # H, plus the initial potential only when PLIF's ∂H/∂k needs V[t-1] at t = 0
            ctx.save_for_backward(h, v0 if plif else None)
        ctx.cfg, ctx.prm, ctx.plif = cfg, prm, plif
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None, not zeros
        return spikes, v_last

    @staticmethod
    def backward(ctx, g_spikes, g_v_last):  # type: ignore[override]
        h, v0 = ctx.saved_tensors
        cfg = ctx.cfg
        gs = _contig(g_spikes, h)
        # no gradient for the final potential (the usual case): an empty vector, read as zeros
        gvl = h.new_empty((0,)) if g_v_last is None else _contig(g_v_last, h[0])
        gx = _new(h)
        gv0 = _new(h[0])
        with _launch(h.shape[1], h.numel()) as block:
            dk = K.spiking_backward(
                _np(gs), _np(gvl), _np(h), _np(v0) if v0 is not None else _np(gvl), ctx.prm,
                cfg.charge, not cfg.params.soft_reset, cfg.params.detach_reset, cfg.cut,
                _np(gx), _np(gv0), ctx.plif, block,
            )
        g_k = torch.tensor(dk, dtype=h.dtype) if ctx.plif else None
        return gx, (gv0 if ctx.needs_input_grad[1] else None), g_k, None


def _charge_code(kind: str, params: NeuronParams) -> int:
    if kind == "if":
        return K.CHARGE_IF
    if kind == "lif":
        return K.CHARGE_LIF_DECAY_INPUT if params.decay_input else K.CHARGE_LIF
    raise ValueError(f"unknown neuron kind {kind!r}; valid: 'if', 'lif'.")


def spiking_multi_step(
    x_seq: torch.Tensor,
    v0: torch.Tensor | None,
    params: NeuronParams,
    surrogate: Surrogate,
    *,
    kind: str = "lif",
    inv_tau: float | torch.Tensor | None = None,
    cut_temporal_grad: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """IF/LIF/PLIF over ``x_seq`` ``[T, ...]`` from ``v0`` ``[...]``: returns ``(spikes [T, ...], V_T)``.

    ``v0=None`` starts every neuron at rest (``v_reset``, or 0 for a soft reset).

    ``inv_tau`` overrides ``1/params.tau`` (PLIF passes ``sigmoid(w)``, a tensor: its gradient is
    returned too). The input must already be checked (shape, dtype, T >= 1) by the caller.
    """
    charge = _charge_code(kind, params)
    if not use_kernel(x_seq, backend):
        check_finite("neuron input", x_seq)
        v = torch.full_like(x_seq[0], params.leak_target) if v0 is None else v0
        spikes = []
        for x in x_seq:
            if cut_temporal_grad:
                v = v.detach()
            s, _, v = neuron_step(x, v, params, surrogate, kind=kind, inv_tau=inv_tau)
            spikes.append(s)
        return torch.stack(spikes), v
    T = x_seq.shape[0]
    x2 = x_seq.reshape(T, -1).contiguous()
    # a fresh state travels as an empty vector: the kernel starts every neuron at V_leak itself
    v = x2.new_empty((0,)) if v0 is None else v0.reshape(-1).to(x2.dtype).contiguous()
    if cut_temporal_grad:
        v = v.detach()
    k = (1.0 / params.tau) if inv_tau is None else inv_tau
    if isinstance(k, torch.Tensor):
        k = k.reshape(()).to(x2.dtype)
    cfg = _SpikingConfig(charge, params, surrogate.kernel_spec(), bool(cut_temporal_grad))
    if _needs_graph(x2, v, k):
        spikes, v_last = _SpikingFunction.apply(x2, v, k, cfg)
    else:  # inference: the kernel alone, without autograd's bookkeeping
        k_value = float(k) if isinstance(k, torch.Tensor) else k
        spikes, _, v_last = _spiking_forward(x2, v, cfg.vector(_np(x2).dtype, k_value), cfg, False)
    return spikes.reshape(x_seq.shape), v_last.reshape(x_seq.shape[1:])


# ---------------------------------------------------------------------------------------------
# MLF
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MLFConfig:
    levels: tuple[NeuronParams, ...]
    surrogate_spec: tuple[int, float, float]
    cut: bool

    def thresholds(self, dtype) -> np.ndarray:
        return np.array([p.v_threshold for p in self.levels], dtype=dtype)

    def vector(self, dtype) -> np.ndarray:
        p = self.levels[0]
        return K.param_vector(
            dtype, v_threshold=p.v_threshold, v_reset=p.leak_target, k=1.0 / p.tau,
            leak=p.leak_target, surrogate_spec=self.surrogate_spec,
        )


class _MLFFunction(torch.autograd.Function):
    """Numba MLF over ``x[T, N]``: outputs ``(Σ_k S_k [T, N], V_last [K, N])``; keeps only ``x``, ``v0``."""

    @staticmethod
    def forward(ctx, x, v0, cfg: _MLFConfig):  # type: ignore[override]
        dtype = _np(x).dtype
        th, prm = cfg.thresholds(dtype), cfg.vector(dtype)
        out = _new(x)
        v_last = buffers.empty((len(th), x.shape[1]), x.dtype)
        with _launch(x.shape[1], x.numel() * len(th)) as block:
            bad = K.mlf_forward(_np(x), _np(v0), th, prm, _np(out), _np(v_last), block)
        if bad:
            _raise_nonfinite(bad, "MLF input")
        if any(ctx.needs_input_grad[:2]):
            ctx.save_for_backward(x, v0)  # the K potentials are recomputed in the backward
        ctx.cfg, ctx.th, ctx.prm = cfg, th, prm
        ctx.set_materialize_grads(False)
        return out, v_last

    @staticmethod
    def backward(ctx, g_out, g_v_last):  # type: ignore[override]
        x, v0 = ctx.saved_tensors
        cfg = ctx.cfg
        g = _contig(g_out, x)
        gx = _new(x)
        gv0 = buffers.empty((len(ctx.th), x.shape[1]), x.dtype)
        gvl = x.new_empty((len(ctx.th), 0)) if g_v_last is None else _contig(g_v_last, gv0)
        T, Kl = x.shape[0], len(ctx.th)
        with _launch(x.shape[1], x.numel() * Kl, _mlf_backward_block(T, Kl)) as block:
            K.mlf_backward(
                _np(g), _np(gvl), _np(x), _np(v0), ctx.th, ctx.prm,
                cfg.levels[0].detach_reset, cfg.cut, _np(gx), _np(gv0), block,
            )
        return gx, (gv0 if ctx.needs_input_grad[1] else None), None


def mlf_multi_step(
    x_seq: torch.Tensor,
    v0: torch.Tensor | None,
    levels: tuple[NeuronParams, ...],
    surrogate: Surrogate,
    *,
    cut_temporal_grad: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """MLF over ``x_seq`` ``[T, ...]`` from ``v0`` ``[K, ...]``: returns ``(Σ_k S_k [T, ...], V_T [K, ...])``.

    ``levels`` from :func:`snnlab.neurons.functional.mlf_level_params` (same τ and reset for all);
    ``v0=None`` starts every level at ``v_reset``.
    """
    Kl = len(levels)
    if not use_kernel(x_seq, backend):
        check_finite("MLF input", x_seq)
        if v0 is None:
            v0 = x_seq.new_full((Kl, *x_seq.shape[1:]), levels[0].leak_target)
        v, outs = v0, []
        for x in x_seq:
            if cut_temporal_grad:
                v = v.detach()
            o, v = mlf_step(x, v, levels, surrogate)
            outs.append(o)
        return torch.stack(outs), v
    T = x_seq.shape[0]
    x2 = x_seq.reshape(T, -1).contiguous()
    v = x2.new_empty((Kl, 0)) if v0 is None else v0.reshape(Kl, -1).to(x2.dtype).contiguous()
    if cut_temporal_grad:
        v = v.detach()
    cfg = _MLFConfig(tuple(levels), surrogate.kernel_spec(), bool(cut_temporal_grad))
    out, v_last = _MLFFunction.apply(x2, v, cfg)
    return out.reshape(x_seq.shape), v_last.reshape(Kl, *x_seq.shape[1:])


# ---------------------------------------------------------------------------------------------
# Non-spiking integrator
# ---------------------------------------------------------------------------------------------


def _integrator_forward(x: torch.Tensor, v0: torch.Tensor, d: np.ndarray) -> torch.Tensor:
    """Run the integrator's forward kernel; raises on non-finite input."""
    out = _new(x)
    with _launch(x.shape[1], x.numel()) as block:
        bad = K.integrator_forward(_np(x), _np(v0), d, _np(out), block)
    if bad:
        _raise_nonfinite(bad, "integrator input")
    return out


class _IntegratorFunction(torch.autograd.Function):
    """Numba ``V[t] = λ V[t-1] + X[t]`` over ``x[T, N]``: output ``V [T, N]``; keeps nothing."""

    @staticmethod
    def forward(ctx, x, v0, decay: float, cut: bool):  # type: ignore[override]
        d = np.array([decay], dtype=_np(x).dtype)
        out = _integrator_forward(x, v0, d)
        ctx.d, ctx.cut, ctx.shape = d, cut, x.shape
        return out

    @staticmethod
    def backward(ctx, g_out):  # type: ignore[override]
        g = g_out.contiguous()
        gx = _new(g)
        gv0 = _new(g[0])
        with _launch(g.shape[1], g.numel()) as block:
            K.integrator_backward(_np(g), ctx.d, ctx.cut, _np(gx), _np(gv0), block)
        return gx, (gv0 if ctx.needs_input_grad[1] else None), None, None


def integrator_multi_step(
    x_seq: torch.Tensor,
    v0: torch.Tensor | None,
    decay: float,
    *,
    cut_temporal_grad: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """Non-spiking integrator over ``x_seq`` ``[T, ...]`` from ``v0`` (None: 0): returns ``V [T, ...]``."""
    if not use_kernel(x_seq, backend):
        check_finite("integrator input", x_seq)
        v = torch.zeros_like(x_seq[0]) if v0 is None else v0
        outs = []
        for x in x_seq:
            if cut_temporal_grad:
                v = v.detach()
            v = integrator_step(x, v, decay)
            outs.append(v)
        return torch.stack(outs)
    T = x_seq.shape[0]
    x2 = x_seq.reshape(T, -1).contiguous()
    v = x2.new_empty((0,)) if v0 is None else v0.reshape(-1).to(x2.dtype).contiguous()
    if cut_temporal_grad:
        v = v.detach()
    if _needs_graph(x2, v):
        out = _IntegratorFunction.apply(x2, v, float(decay), bool(cut_temporal_grad))
    else:  # inference: the kernel alone
        out = _integrator_forward(x2, v, np.array([decay], dtype=_np(x2).dtype))
    return out.reshape(x_seq.shape)

