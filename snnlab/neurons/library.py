"""snnlab's Numba neuron kernels as ``torch.library`` operators, so ``torch.compile`` can see them.

TorchDynamo cannot trace into Numba. Registered as custom operators (namespace ``snnlab``), the
kernels become single nodes of the traced graph: each has a *fake* implementation (the shapes and
dtypes of its outputs, which is all tracing needs), a registered autograd formula (the backward is
another operator, so AOTAutograd traces the backward graph too), and its real implementation, the
kernel launch of :mod:`snnlab.neurons.launch` that the eager path calls as well. Inductor then
compiles the layers around them (convolution, batch norm, pooling, the loss) into its fused loops
and calls the kernels in between: a compiled snnlab model has no graph break from its neurons.

========================================  =====================================================
operator                                  what it runs
========================================  =====================================================
``snnlab::spiking_forward`` / ``_backward``  IF, LIF (both charges) and PLIF (learned ``k = 1/τ``)
``snnlab::mlf_forward`` / ``_backward``      MLF's K levels
``snnlab::integrator_forward`` / ``_backward``  the non-spiking integrator
``snnlab::check_finite``                  the NaN check of the pure-torch path (any device)
========================================  =====================================================

Why eager code does not go through them: a Python custom operator costs the dispatcher's Python
round trip on every call (measured with torch 2.14 on the development machine: about 15 µs per
call without gradient and 50 µs with autograd, against 9 and 17 µs for a ``torch.autograd.Function``
and nothing for a direct launch). The neuron operations of :mod:`snnlab.neurons.ops` therefore call
these operators only while TorchDynamo traces (``torch.compiler.is_compiling()``), and the same
launches directly otherwise; the two paths give the same outputs and gradients bit for bit (tested).

NaN policy: the real implementations raise ``ValueError`` on non-finite input exactly as the eager
path does (the kernels count non-finite potentials while they run); in a compiled model the error
comes from the operator call, before the module stores any state.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from snnlab.checks import check_finite as _check_finite
from snnlab.neurons import launch

__all__ = [
    "check_finite",
    "spiking_forward",
    "spiking_backward",
    "mlf_forward",
    "mlf_backward",
    "integrator_forward",
    "integrator_backward",
]


def _k_value(k_tensor: Optional[Tensor], k: float) -> float:
    return float(k_tensor) if k_tensor is not None else float(k)


def _check_backward_input(h: Tensor, what: str) -> None:
    if h.numel() == 0:
        raise RuntimeError(f"{what}: the forward ran without keeping what the backward needs "
                           f"(no input required a gradient when it ran).")


# ---------------------------------------------------------------------------------------------
# IF / LIF / PLIF
# ---------------------------------------------------------------------------------------------


@torch.library.custom_op("snnlab::spiking_forward", mutates_args=())
def spiking_forward(
    x: Tensor, v0: Tensor, k_tensor: Optional[Tensor], k: float, charge: int, hard: bool,
    v_threshold: float, leak: float, sg_code: int, sg_p1: float, sg_p2: float,
    detach_reset: bool, cut: bool, store_h: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """IF/LIF/PLIF over ``x[T, N]`` from ``v0[N]`` (``[0]``: at rest): ``(S[T, N], H, V_T[N])``.

    ``H`` (``[T, N]``, the charged potentials the backward reads) only when ``store_h``, else ``[0, 0]``.
    ``k_tensor`` (PLIF: a 0-d learned 1/τ) overrides ``k``. ``charge``: 0 IF, 1 LIF (SEW eq. 5),
    2 LIF (OTTT eq. 2); ``leak``: the reset potential (hard) or 0 (soft); ``sg_*``: the surrogate's
    ``kernel_spec()``. ``detach_reset`` and ``cut`` are read by the backward only.
    """
    prm = launch.spiking_vector(x.dtype, v_threshold, leak, _k_value(k_tensor, k), (sg_code, sg_p1, sg_p2))
    return launch.spiking_forward(x.contiguous(), v0.contiguous(), prm, charge, hard, store_h)


@spiking_forward.register_fake
def _(x, v0, k_tensor, k, charge, hard, v_threshold, leak, sg_code, sg_p1, sg_p2, detach_reset, cut, store_h):
    torch._check(x.dim() == 2, lambda: "spiking_forward takes x [T, N]")
    h_shape = tuple(x.shape) if store_h else (0, 0)
    return x.new_empty(x.shape), x.new_empty(h_shape), x.new_empty(x.shape[1:])


@torch.library.custom_op("snnlab::spiking_backward", mutates_args=())
def spiking_backward(
    g_spikes: Optional[Tensor], g_v_last: Optional[Tensor], h: Tensor, v0: Tensor, k_tensor: Optional[Tensor],
    k: float, charge: int, hard: bool, v_threshold: float, leak: float, sg_code: int, sg_p1: float,
    sg_p2: float, detach_reset: bool, cut: bool, want_dk: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Surrogate backward of :func:`spiking_forward`: ``(∂L/∂X [T, N], ∂L/∂V0 [N], ∂L/∂k [])``."""
    _check_backward_input(h, "snnlab::spiking_backward")
    prm = launch.spiking_vector(h.dtype, v_threshold, leak, _k_value(k_tensor, k), (sg_code, sg_p1, sg_p2))
    gx, gv0, dk = launch.spiking_backward(g_spikes, g_v_last, h.contiguous(), v0.contiguous(), prm, charge,
                                          hard, detach_reset, cut, want_dk)
    return gx, gv0, torch.tensor(dk, dtype=h.dtype)


@spiking_backward.register_fake
def _(g_spikes, g_v_last, h, v0, k_tensor, k, charge, hard, v_threshold, leak, sg_code, sg_p1, sg_p2,
      detach_reset, cut, want_dk):
    return h.new_empty(h.shape), h.new_empty(h.shape[1:]), h.new_empty(())


def _spiking_setup(ctx, inputs, output) -> None:
    x, v0, k_tensor, k, charge, hard, v_threshold, leak, code, p1, p2, detach, cut, store_h = inputs
    ctx.save_for_backward(output[1], v0, k_tensor)
    ctx.args = (k, charge, hard, v_threshold, leak, code, p1, p2, detach, cut)


def _spiking_grad(ctx, g_spikes, g_h, g_v_last):
    h, v0, k_tensor = ctx.saved_tensors
    k, charge, hard, v_threshold, leak, code, p1, p2, detach, cut = ctx.args
    want_dk = k_tensor is not None and ctx.needs_input_grad[2]
    gx, gv0, dk = torch.ops.snnlab.spiking_backward(
        g_spikes, g_v_last, h, v0, k_tensor, k, charge, hard, v_threshold, leak, code, p1, p2, detach, cut, want_dk,
    )
    return (gx, gv0 if ctx.needs_input_grad[1] else None, dk if want_dk else None) + (None,) * 11


spiking_forward.register_autograd(_spiking_grad, setup_context=_spiking_setup)


# ---------------------------------------------------------------------------------------------
# MLF
# ---------------------------------------------------------------------------------------------


def _mlf_params(dtype: torch.dtype, thresholds, k, leak, code, p1, p2) -> tuple[np.ndarray, np.ndarray]:
    th = np.array(thresholds, dtype=np.float32 if dtype == torch.float32 else np.float64)
    return th, launch.spiking_vector(dtype, float(thresholds[0]), leak, k, (code, p1, p2))


@torch.library.custom_op("snnlab::mlf_forward", mutates_args=())
def mlf_forward(
    x: Tensor, v0: Tensor, thresholds: list[float], k: float, leak: float, sg_code: int, sg_p1: float,
    sg_p2: float, detach_reset: bool, cut: bool,
) -> tuple[Tensor, Tensor]:
    """MLF over ``x[T, N]`` from ``v0[K, N]`` (``[K, 0]``: at rest): ``(Σ_k S_k [T, N], V_T [K, N])``."""
    th, prm = _mlf_params(x.dtype, thresholds, k, leak, sg_code, sg_p1, sg_p2)
    return launch.mlf_forward(x.contiguous(), v0.contiguous(), th, prm)


@mlf_forward.register_fake
def _(x, v0, thresholds, k, leak, sg_code, sg_p1, sg_p2, detach_reset, cut):
    return x.new_empty(x.shape), x.new_empty((len(thresholds), x.shape[1]))


@torch.library.custom_op("snnlab::mlf_backward", mutates_args=())
def mlf_backward(
    g_out: Optional[Tensor], g_v_last: Optional[Tensor], x: Tensor, v0: Tensor, thresholds: list[float],
    k: float, leak: float, sg_code: int, sg_p1: float, sg_p2: float, detach_reset: bool, cut: bool,
) -> tuple[Tensor, Tensor]:
    """Backward of :func:`mlf_forward` (recomputes the levels from ``x``): ``(∂L/∂X, ∂L/∂V0 [K, N])``."""
    th, prm = _mlf_params(x.dtype, thresholds, k, leak, sg_code, sg_p1, sg_p2)
    return launch.mlf_backward(g_out, g_v_last, x.contiguous(), v0.contiguous(), th, prm, detach_reset, cut)


@mlf_backward.register_fake
def _(g_out, g_v_last, x, v0, thresholds, k, leak, sg_code, sg_p1, sg_p2, detach_reset, cut):
    return x.new_empty(x.shape), x.new_empty((len(thresholds), x.shape[1]))


def _mlf_setup(ctx, inputs, output) -> None:
    x, v0, *rest = inputs
    ctx.save_for_backward(x, v0)
    ctx.args = tuple(rest)


def _mlf_grad(ctx, g_out, g_v_last):
    x, v0 = ctx.saved_tensors
    gx, gv0 = torch.ops.snnlab.mlf_backward(g_out, g_v_last, x, v0, *ctx.args)
    return (gx, gv0 if ctx.needs_input_grad[1] else None) + (None,) * 8


mlf_forward.register_autograd(_mlf_grad, setup_context=_mlf_setup)


# ---------------------------------------------------------------------------------------------
# Non-spiking integrator
# ---------------------------------------------------------------------------------------------


@torch.library.custom_op("snnlab::integrator_forward", mutates_args=())
def integrator_forward(x: Tensor, v0: Tensor, decay: float, cut: bool) -> Tensor:
    """``V[t] = decay·V[t-1] + X[t]`` over ``x[T, N]`` from ``v0[N]`` (``[0]``: 0): ``V [T, N]``."""
    return launch.integrator_forward(x.contiguous(), v0.contiguous(), decay)


@integrator_forward.register_fake
def _(x, v0, decay, cut):
    return x.new_empty(x.shape)


@torch.library.custom_op("snnlab::integrator_backward", mutates_args=())
def integrator_backward(g_out: Tensor, decay: float, cut: bool) -> tuple[Tensor, Tensor]:
    """Backward of :func:`integrator_forward`: ``(∂L/∂X [T, N], ∂L/∂V0 [N])``."""
    return launch.integrator_backward(g_out, decay, cut)


@integrator_backward.register_fake
def _(g_out, decay, cut):
    return g_out.new_empty(g_out.shape), g_out.new_empty(g_out.shape[1:])


def _integrator_setup(ctx, inputs, output) -> None:
    ctx.decay, ctx.cut = inputs[2], inputs[3]


def _integrator_grad(ctx, g_out):
    gx, gv0 = torch.ops.snnlab.integrator_backward(g_out, ctx.decay, ctx.cut)
    return gx, (gv0 if ctx.needs_input_grad[1] else None), None, None


integrator_forward.register_autograd(_integrator_grad, setup_context=_integrator_setup)


# ---------------------------------------------------------------------------------------------
# The NaN check of the pure-torch reference path
# ---------------------------------------------------------------------------------------------


@torch.library.custom_op("snnlab::check_finite", mutates_args=())
def check_finite(x: Tensor, what: str) -> Tensor:
    """:func:`snnlab.checks.check_finite` as an operator: raises its ``ValueError`` on non-finite
    ``x``, else returns a 0-d zero of ``x``'s dtype. The torch path adds that zero to the neuron state
    while compiling, which keeps the check in the graph (an unused result would be dropped) and
    orders it before the state is computed; eagerly it calls the function itself. Any device."""
    _check_finite(what, x)
    return x.new_zeros(())


@check_finite.register_fake
def _(x, what):
    return x.new_empty(())


def _no_gradient(ctx, grad):
    return None, None  # the zero does not depend on x


check_finite.register_autograd(_no_gradient, setup_context=lambda ctx, inputs, output: None)
