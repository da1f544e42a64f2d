"""Multi-step neuron operations: Numba kernels behind custom autograd functions, or the torch reference.

Each ``*_multi_step`` function takes a ``[T, ...]`` input and the state before the first step, and
returns the outputs over the sequence and the state after the last step. ``backend`` selects:

* ``"auto"`` (default): the Numba kernels for CPU float32 tensors, the pure-torch reference
  (:mod:`snnlab.neurons.functional`) for everything else (CUDA, float64, ...);
* ``"numba"``: the kernels (CPU only; float32, or float64 for the gradient checks);
* ``"torch"``: the reference, always.

A kernel call covers the whole sequence: one forward pass over ``[T, N]``, one backward pass.

``torch.compile``: while TorchDynamo traces, the kernels are called as the ``snnlab::`` operators of
:mod:`snnlab.neurons.library` (fake implementations and registered autograd), so a compiled model
keeps them as graph nodes, with no graph break, and Inductor fuses the layers around them. Eager
calls launch the same kernels directly (:mod:`snnlab.neurons.launch`): an autograd function when a
graph is recorded, the bare kernel otherwise; both paths give the same outputs bit for bit.

NaN policy: non-finite input is rejected with a ``ValueError`` that says so, never propagated into
the membrane state. The torch path checks the input before it runs (:func:`snnlab.checks.check_finite`);
the kernels count non-finite potentials while they run (no second pass over memory) and the
wrapper raises before returning anything, with the state left untouched. (A non-finite potential
can also come from finite but overflowing input, |x| ~ 1e38; that is rejected the same way.)

``cut_temporal_grad``: gradient only through the current step (SLTT, OTTT): the potential carried
into each step is detached, in both backends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snnlab.checks import check_finite
from snnlab.neurons import kernels as K
from snnlab.neurons import launch
from snnlab.neurons import library  # noqa: F401  (registers the snnlab:: operators torch.compile calls)
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


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy()


def _needs_graph(*inputs) -> bool:
    """Whether autograd must record the call (grad mode on and some input requires a gradient)."""
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in inputs)


def _compiling() -> bool:
    """True while TorchDynamo traces: the kernels are then called as ``snnlab::`` operators
    (:mod:`snnlab.neurons.library`), which it can put in a graph; eagerly they are launched directly."""
    return torch.compiler.is_compiling()


def _checked(what: str, x_seq: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The torch path's NaN check of ``x_seq`` (raises ``ValueError``), returning the state ``v``.
    While compiling, the check is the ``snnlab::check_finite`` operator, whose zero is added to ``v``
    so the graph keeps it and runs it first (a data-dependent ``if`` would break the graph)."""
    if _compiling():
        return v + torch.ops.snnlab.check_finite(x_seq, what)
    check_finite(what, x_seq)
    return v


# ---------------------------------------------------------------------------------------------
# Memory layout: [T, ...] sequences as [T, N] arrays without copies
# ---------------------------------------------------------------------------------------------


def _step_order(x_seq: torch.Tensor) -> tuple[int, ...] | None:
    """The per-step dimensions of ``x_seq [T, ...]`` from outermost to innermost in memory, when its
    steps are dense blocks laid out one after the other in one shared order other than the
    default (a time-folded ``channels_last`` convolution's output: ``[T, B, C, H, W]`` stored as
    ``[T, B, H, W, C]``); ``None`` when ``x_seq`` is contiguous or has no such order (then it is copied).

    A neuron is elementwise over the neurons of a step, so it can run over the steps' memory in
    its own order and write its outputs in the same layout: no copy in, none out, and the layers
    around it keep their memory format."""
    if x_seq.is_contiguous():
        return None
    order = tuple(sorted(range(1, x_seq.dim()), key=lambda d: -x_seq.stride(d)))
    return order if x_seq.permute(0, *order).is_contiguous() else None


def _flat_steps(x_seq: torch.Tensor, order: tuple[int, ...] | None) -> torch.Tensor:
    """``x_seq [T, ...]`` as a contiguous ``[T, N]`` array, neurons in memory order (a view when ``order``
    is :func:`_step_order`'s, a copy when ``x_seq`` is neither contiguous nor in such an order)."""
    T = x_seq.shape[0]
    if order is None:
        return x_seq.reshape(T, -1).contiguous()
    return x_seq.permute(0, *order).reshape(T, -1)


def _flat_state(v: torch.Tensor, order: tuple[int, ...] | None, lead: int = 0) -> torch.Tensor:
    """A state ``[*lead dims, ...step shape]`` flattened as the steps are by :func:`_flat_steps`."""
    if order is None:
        return v.reshape(*v.shape[:lead], -1).contiguous()
    head = tuple(range(lead))
    return v.permute(*head, *(lead + d - 1 for d in order)).reshape(*v.shape[:lead], -1).contiguous()


def _unflat(t: torch.Tensor, step_shape: tuple[int, ...], order: tuple[int, ...] | None, lead: int) -> torch.Tensor:
    """Inverse of the flattening: ``t [*lead dims, N]`` back to ``[*lead dims, *step_shape]`` in the
    layout the input had (a view)."""
    head = tuple(t.shape[:lead])
    if order is None:
        return t.reshape(*head, *step_shape)
    stored = t.reshape(*head, *(step_shape[d - 1] for d in order))
    inverse = [order.index(d) for d in range(1, len(step_shape) + 1)]
    return stored.permute(*range(lead), *(lead + i for i in inverse))


# ---------------------------------------------------------------------------------------------
# IF / LIF / PLIF
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SpikingConfig:
    charge: int
    params: NeuronParams
    surrogate_spec: tuple[int, float, float]
    cut: bool

    def vector(self, dtype: torch.dtype, k: float) -> np.ndarray:
        """The kernels' parameter vector (memoised by :func:`snnlab.neurons.launch.spiking_vector`)."""
        return launch.spiking_vector(dtype, self.params.v_threshold, self.params.leak_target, k, self.surrogate_spec)

    def op_args(self) -> tuple:
        """The parameters as the ``snnlab::spiking_forward`` operator takes them, after ``k``."""
        p = self.params
        return (self.charge, not p.soft_reset, float(p.v_threshold), p.leak_target, *self.surrogate_spec,
                p.detach_reset, self.cut)


class _SpikingFunction(torch.autograd.Function):
    """Numba IF/LIF/PLIF over ``x[T, N]``: outputs ``(S[T, N], V_last[N])``; keeps ``H`` for backward."""

    @staticmethod
    def forward(ctx, x, v0, k, cfg: _SpikingConfig):  # type: ignore[override]
        k_value = float(k) if isinstance(k, torch.Tensor) else k
        prm = cfg.vector(x.dtype, k_value)
        store = any(ctx.needs_input_grad[:3])
        spikes, h, v_last = launch.spiking_forward(x, v0, prm, cfg.charge, not cfg.params.soft_reset, store)
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
        gx, gv0, dk = launch.spiking_backward(
            g_spikes, g_v_last, h, v0, ctx.prm, cfg.charge, not cfg.params.soft_reset,
            cfg.params.detach_reset, cfg.cut, ctx.plif,
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
        v = torch.full_like(x_seq[0], params.leak_target) if v0 is None else v0
        v = _checked("neuron input", x_seq, v)
        spikes = []
        for x in x_seq:
            if cut_temporal_grad:
                v = v.detach()
            s, _, v = neuron_step(x, v, params, surrogate, kind=kind, inv_tau=inv_tau)
            spikes.append(s)
        return torch.stack(spikes), v
    order = _step_order(x_seq)
    x2 = _flat_steps(x_seq, order)
    # a fresh state travels as an empty vector: the kernel starts every neuron at V_leak itself
    v = x2.new_empty((0,)) if v0 is None else _flat_state(v0.to(x2.dtype), order)
    if cut_temporal_grad:
        v = v.detach()
    k = (1.0 / params.tau) if inv_tau is None else inv_tau
    if isinstance(k, torch.Tensor):
        k = k.reshape(()).to(x2.dtype)
    cfg = _SpikingConfig(charge, params, surrogate.kernel_spec(), bool(cut_temporal_grad))
    if _compiling():
        k_tensor, k_float = (k, 0.0) if isinstance(k, torch.Tensor) else (None, float(k))
        spikes, _, v_last = torch.ops.snnlab.spiking_forward(
            x2, v, k_tensor, k_float, *cfg.op_args(), _needs_graph(x2, v, k_tensor),
        )
    elif _needs_graph(x2, v, k):
        spikes, v_last = _SpikingFunction.apply(x2, v, k, cfg)
    else:  # inference: the kernel alone, without autograd's bookkeeping
        k_value = float(k) if isinstance(k, torch.Tensor) else k
        spikes, _, v_last = launch.spiking_forward(x2, v, cfg.vector(x2.dtype, k_value), charge,
                                                   not params.soft_reset, False)
    step = tuple(x_seq.shape[1:])
    return _unflat(spikes, step, order, 1), _unflat(v_last, step, order, 0)


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

    def vector(self, dtype: torch.dtype) -> np.ndarray:
        p = self.levels[0]
        return launch.spiking_vector(dtype, p.v_threshold, p.leak_target, 1.0 / p.tau, self.surrogate_spec)

    def op_args(self) -> tuple:
        """The parameters as the ``snnlab::mlf_forward`` operator takes them, after ``v0``."""
        p = self.levels[0]
        return ([float(q.v_threshold) for q in self.levels], 1.0 / p.tau, p.leak_target, *self.surrogate_spec,
                p.detach_reset, self.cut)


class _MLFFunction(torch.autograd.Function):
    """Numba MLF over ``x[T, N]``: outputs ``(Σ_k S_k [T, N], V_last [K, N])``; keeps only ``x``, ``v0``."""

    @staticmethod
    def forward(ctx, x, v0, cfg: _MLFConfig):  # type: ignore[override]
        th, prm = cfg.thresholds(_np(x).dtype), cfg.vector(x.dtype)
        out, v_last = launch.mlf_forward(x, v0, th, prm)
        if any(ctx.needs_input_grad[:2]):
            ctx.save_for_backward(x, v0)  # the K potentials are recomputed in the backward
        ctx.cfg, ctx.th, ctx.prm = cfg, th, prm
        ctx.set_materialize_grads(False)
        return out, v_last

    @staticmethod
    def backward(ctx, g_out, g_v_last):  # type: ignore[override]
        x, v0 = ctx.saved_tensors
        gx, gv0 = launch.mlf_backward(g_out, g_v_last, x, v0, ctx.th, ctx.prm, ctx.cfg.levels[0].detach_reset,
                                      ctx.cfg.cut)
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
        if v0 is None:
            v0 = x_seq.new_full((Kl, *x_seq.shape[1:]), levels[0].leak_target)
        v, outs = _checked("MLF input", x_seq, v0), []
        for x in x_seq:
            if cut_temporal_grad:
                v = v.detach()
            o, v = mlf_step(x, v, levels, surrogate)
            outs.append(o)
        return torch.stack(outs), v
    order = _step_order(x_seq)
    x2 = _flat_steps(x_seq, order)
    v = x2.new_empty((Kl, 0)) if v0 is None else _flat_state(v0.to(x2.dtype), order, lead=1)
    if cut_temporal_grad:
        v = v.detach()
    cfg = _MLFConfig(tuple(levels), surrogate.kernel_spec(), bool(cut_temporal_grad))
    if _compiling():
        out, v_last = torch.ops.snnlab.mlf_forward(x2, v, *cfg.op_args())
    else:
        out, v_last = _MLFFunction.apply(x2, v, cfg)
    step = tuple(x_seq.shape[1:])
    return _unflat(out, step, order, 1), _unflat(v_last, step, order, 1)


# ---------------------------------------------------------------------------------------------
# Non-spiking integrator
# ---------------------------------------------------------------------------------------------


class _IntegratorFunction(torch.autograd.Function):
    """Numba ``V[t] = λ V[t-1] + X[t]`` over ``x[T, N]``: output ``V [T, N]``; keeps nothing."""

    @staticmethod
    def forward(ctx, x, v0, decay: float, cut: bool):  # type: ignore[override]
        out = launch.integrator_forward(x, v0, decay)
        ctx.decay, ctx.cut = decay, cut
        return out

    @staticmethod
    def backward(ctx, g_out):  # type: ignore[override]
        gx, gv0 = launch.integrator_backward(g_out, ctx.decay, ctx.cut)
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
        v = _checked("integrator input", x_seq, torch.zeros_like(x_seq[0]) if v0 is None else v0)
        outs = []
        for x in x_seq:
            if cut_temporal_grad:
                v = v.detach()
            v = integrator_step(x, v, decay)
            outs.append(v)
        return torch.stack(outs)
    order = _step_order(x_seq)
    x2 = _flat_steps(x_seq, order)
    v = x2.new_empty((0,)) if v0 is None else _flat_state(v0.to(x2.dtype), order)
    if cut_temporal_grad:
        v = v.detach()
    if _compiling():
        out = torch.ops.snnlab.integrator_forward(x2, v, float(decay), bool(cut_temporal_grad))
    elif _needs_graph(x2, v):
        out = _IntegratorFunction.apply(x2, v, float(decay), bool(cut_temporal_grad))
    else:  # inference: the kernel alone
        out = launch.integrator_forward(x2, v, float(decay))
    return _unflat(out, tuple(x_seq.shape[1:]), order, 1)
