"""Batch norm and a spiking neuron in one layer: ``BatchNormNeuron(bn, neuron)``.

``BatchNormNeuron(nn.BatchNorm2d(C), LIFNode(step_mode="m"))`` computes exactly what
``TimeFolded(bn)`` followed by the neuron computes on ``[T, B, C, H, W]`` (batch norm's statistics
over ``T·B·H·W`` per channel, tdBN's convention; then the neuron over the T steps), forward and
backward, with the same parameters, buffers and state-dict keys (``bn.*``): a network built with it
loads the weights of one built without it, and the other way round.

On CPU float32/float64 with an IF or LIF neuron it runs fused Numba kernels
(:mod:`snnlab.neurons.bn_kernels`): batch norm's output and the neuron's potentials are never
written to memory, and only the input is kept for backward (which batch norm keeps anyway). The
statistics are accumulated in float64, in either memory layout: channels_last frames are read in
place, and the spikes come out in channels_last. (Torch's own channels_last batch norm on CPU
accumulates the variance in float32: over the 262,144 values per channel of a 32-frame batch of
32x32 maps it is off by ~5e-3 of the normalised output, enough to flip spikes; see
``tests/test_bn_neuron.py``.)

For inference, :func:`snnlab.conversion.fold_batchnorm` folds the batch norm into the
``TimeFolded(conv)`` before the layer and leaves the neuron (eval-mode statistics, exact up to
rounding).

Everything else runs the unfused composition with the same modules: CUDA, other dtypes,
PLIF/MLF neurons, ``backend="torch"``, while ``torch.compile`` traces (Inductor fuses the pair
itself), a stored state that requires a gradient (a sequence continued inside one graph), and
single-step mode.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from snnlab.checks import check_tensor
from snnlab.cpu_threads import numba_threads
from snnlab.neurons import IFNode, LIFNode
from snnlab.neurons import bn_kernels as BK
from snnlab.neurons import launch
from snnlab.neurons.ops import _charge_code, _flat_state, _flat_steps, _step_order, _unflat, use_kernel

__all__ = ["BatchNormNeuron", "FUSE_FROM"]

FUSE_FROM = 1 << 16
"""Input elements (T·B·C·H·W) from which :class:`BatchNormNeuron` runs its fused kernels."""


def _layout(x: torch.Tensor) -> tuple[tuple[int, ...] | None, int, int, int]:
    """``(order, O, C, I)``: the steps' memory order (:func:`snnlab.neurons.ops._step_order`) and
    the pattern split of one step: ``O`` repeats of ``C`` channels times ``I`` inner neurons."""
    order = _step_order(x)
    dims = order if order is not None else tuple(range(1, x.dim()))
    at = dims.index(2)
    outer = math.prod(x.shape[d] for d in dims[:at])
    inner = math.prod(x.shape[d] for d in dims[at + 1:])
    return order, outer, x.shape[2], inner


class _Config:
    """What the fused backward needs besides tensors (plain Python / NumPy values)."""

    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)


def _sums(parts: np.ndarray, channels: int, inner: int) -> np.ndarray:
    """``[G, r·C·I]`` partial sums per (super-)pattern position -> ``[C]`` per channel (float64)."""
    return parts.sum(0).reshape(-1, channels, inner).sum((0, 2))


def _expand(values: np.ndarray, inner: int, dtype, rep: int = 1) -> np.ndarray:
    """Per-channel ``values [C]`` -> per pattern position ``[C·I]``, tiled ``rep`` times."""
    return np.ascontiguousarray(np.tile(np.repeat(values, inner), rep).astype(dtype))


class _BNSpikingFunction(torch.autograd.Function):
    """Fused ``neuron(batch_norm(x))`` over ``x2 [T, N]``: outputs ``(S [T, N], V_last [N])``."""

    @staticmethod
    def forward(ctx, x2, gamma, beta, cfg):  # type: ignore[override]
        dtype = x2.detach().numpy().dtype
        g = np.ones(cfg.C) if gamma is None else gamma.detach().double().numpy()
        b = np.zeros(cfg.C) if beta is None else beta.detach().double().numpy()
        scale = g * cfg.invstd
        a_p = _expand(scale, cfg.I, dtype, cfg.rep)
        c_p = _expand(b - cfg.mean * scale, cfg.I, dtype, cfg.rep)
        spikes = launch.new(x2)
        v_last = launch.new(x2[0])
        with numba_threads(x2.numel()):
            bad = BK.bn_spiking_forward(x2.detach().numpy(), cfg.v0, a_p, c_p, cfg.prm, cfg.charge, cfg.hard,
                                        cfg.items, spikes.numpy(), v_last.numpy())
        if bad:
            launch.raise_nonfinite(bad, "batch-normalised neuron input")
        cfg.a_p, cfg.c_p, cfg.gamma = a_p, c_p, g
        ctx.cfg = cfg
        ctx.has_gamma, ctx.has_beta = gamma is not None, beta is not None
        ctx.save_for_backward(x2)
        ctx.set_materialize_grads(False)
        return spikes, v_last

    @staticmethod
    def backward(ctx, g_spikes, g_v_last):  # type: ignore[override]
        (x2,) = ctx.saved_tensors
        cfg = ctx.cfg
        dtype = x2.detach().numpy().dtype
        T, N = x2.shape
        gs = launch.contiguous_grad(g_spikes, x2)
        gvl = x2.new_empty((0,)) if g_v_last is None else launch.contiguous_grad(g_v_last, x2[0])
        gy = launch.new(x2)
        G = cfg.groups
        s = np.empty((G, cfg.rep * cfg.P))
        q = np.empty((G, cfg.rep * cfg.P))
        mean_p = _expand(cfg.mean, cfg.I, dtype, cfg.rep)
        invstd_p = _expand(cfg.invstd, cfg.I, dtype, cfg.rep)
        with numba_threads(x2.numel()):
            x_np = x2.detach().numpy()
            BK.bn_spiking_backward(x_np, cfg.v0, gs.numpy(), gvl.numpy(), cfg.a_p, cfg.c_p, mean_p, invstd_p, cfg.prm,
                                   cfg.charge, cfg.hard, cfg.detach, cfg.cut, cfg.items, gy.numpy(), s, q)
            sum_gy = _sums(s, cfg.C, cfg.I)                 # ∂L/∂β
            sum_gyx = _sums(q, cfg.C, cfg.I)                # ∂L/∂γ = Σ ∂L/∂y · x̂
            k = cfg.gamma * cfg.invstd
            if cfg.batch_stats:                             # the statistics depend on x too
                u = -k * cfg.invstd * sum_gyx / cfg.count
                w = -k * sum_gy / cfg.count - u * cfg.mean
            else:
                u = w = np.zeros_like(k)
            R = T * cfg.O
            BK.bn_input_grad(gy.view(R, cfg.P).numpy(), x_np.reshape(R, cfg.P), _expand(k, cfg.I, dtype),
                             _expand(u, cfg.I, dtype), _expand(w, cfg.I, dtype), G)
        g_gamma = torch.from_numpy(sum_gyx).to(x2.dtype) if ctx.has_gamma and ctx.needs_input_grad[1] else None
        g_beta = torch.from_numpy(sum_gy).to(x2.dtype) if ctx.has_beta and ctx.needs_input_grad[2] else None
        return gy, g_gamma, g_beta, None


class BatchNormNeuron(nn.Module):
    """``neuron(TimeFolded(bn)(x))`` on ``[T, B, C, H, W]``, fused on CPU (see the module docstring).

    ``bn`` is an ``nn.BatchNorm2d`` over the ``C`` channels (any eps, momentum, affine or not,
    running statistics tracked or not; train and eval modes behave as in batch norm) and
    ``neuron`` a multi-step neuron layer (:class:`snnlab.neurons.IFNode` or
    :class:`snnlab.neurons.LIFNode` are fused; any other runs unfused). ``reset()`` resets the neuron.
    Inputs of fewer than ``fuse_from`` elements (default :data:`FUSE_FROM`) run the plain pair too:
    the fused path's fixed cost (~0.15 ms per training call) is more than it saves there.
    """

    def __init__(self, bn: nn.BatchNorm2d, neuron: nn.Module, *, fuse_from: int = FUSE_FROM) -> None:
        super().__init__()
        if not isinstance(fuse_from, int) or isinstance(fuse_from, bool) or fuse_from < 0:
            raise ValueError(f"fuse_from must be a non-negative number of input elements, got {fuse_from!r}.")
        self.fuse_from = fuse_from
        if not isinstance(bn, nn.BatchNorm2d):
            raise TypeError(f"BatchNormNeuron takes an nn.BatchNorm2d as bn, got {type(bn).__name__}.")
        if getattr(neuron, "step_mode", None) != "m":
            raise ValueError("BatchNormNeuron takes a multi-step neuron (step_mode='m'): it runs on [T, B, C, H, W].")
        self.bn = bn
        self.neuron = neuron

    def reset(self) -> None:
        self.neuron.reset()

    def _fused(self, x: torch.Tensor) -> bool:
        n = self.neuron
        return (x.numel() >= self.fuse_from and type(n) in (IFNode, LIFNode) and type(self.bn) is nn.BatchNorm2d
                and not torch.compiler.is_compiling() and use_kernel(x, n.backend)
                and not (n.v is not None and n.v.requires_grad and torch.is_grad_enabled()))

    def unfused(self, x: torch.Tensor) -> torch.Tensor:
        """The same computation by the two modules one after the other (the reference)."""
        y = self.bn(x.flatten(0, 1))
        return self.neuron(y.reshape(x.shape[0], x.shape[1], *y.shape[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("BatchNormNeuron input [T, B, C, H, W]", x, dims=5)
        if x.shape[2] != self.bn.num_features:
            raise ValueError(f"BatchNormNeuron input has {x.shape[2]} channels (dim 2 of [T, B, C, H, W]); "
                             f"its batch norm has {self.bn.num_features}.")
        if not self._fused(x):
            return self.unfused(x)
        bn, n = self.bn, self.neuron
        order, O, C, I = _layout(x)
        x2 = _flat_steps(x, order)
        T = x.shape[0]
        count = T * O * I
        batch_stats = bn.training or bn.running_mean is None
        with numba_threads(x2.numel()) as threads:
            groups = max(1, 4 * threads)
            if batch_stats:
                if count < 2 and bn.training:
                    raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                                     f"{list(x.shape)}.")
                s = np.empty((groups, C * I))
                q = np.empty((groups, C * I))
                BK.pattern_sums(x2.detach().view(T * O, C * I).numpy(), s, q)
                mean = _sums(s, C, I) / count
                var = np.maximum(_sums(q, C, I) / count - mean * mean, 0.0)
            else:
                mean = bn.running_mean.detach().double().numpy()
                var = bn.running_var.detach().double().numpy()
        if not (np.isfinite(mean).all() and np.isfinite(var).all()):
            launch.raise_nonfinite(int((~np.isfinite(mean + var)).sum()), "batch-normalised neuron input")
        if bn.training and bn.track_running_stats and bn.running_mean is not None:
            self._update_running_stats(mean, var, count)
        prm = n.params
        v0 = n.v
        # small patterns (channels_last: P = C) are grouped by ``rep`` into super-patterns of about a
        # kernel chunk, so the kernels stream long rows instead of one short row per pattern
        rep = max(1, BK.CHUNK // (C * I))
        cfg = _Config(
            O=O, C=C, I=I, P=C * I, rep=rep, count=count, mean=mean, invstd=1.0 / np.sqrt(var + bn.eps),
            batch_stats=batch_stats, groups=groups, items=BK.plan(-(-O // rep), rep * C * I, groups),
            prm=launch.spiking_vector(x2.dtype, prm.v_threshold, prm.leak_target, 1.0 / prm.tau,
                                      n.surrogate.kernel_spec()),
            charge=_charge_code(n.kind, prm), hard=not prm.soft_reset, detach=prm.detach_reset,
            cut=bool(n.cut_temporal_grad),
            v0=(x2.new_empty((0,)) if v0 is None else _flat_state(v0.detach().to(x2.dtype), order)).numpy(),
        )
        gamma = bn.weight if bn.affine else None
        beta = bn.bias if bn.affine else None
        spikes, v_last = _BNSpikingFunction.apply(x2, gamma, beta, cfg)
        step = tuple(x.shape[1:])
        n.v = _unflat(v_last, step, order, 0)
        return _unflat(spikes, step, order, 1)

    @torch.no_grad()
    def _update_running_stats(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        bn = self.bn
        factor = 0.0 if bn.momentum is None else bn.momentum
        if bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            if bn.momentum is None:                         # cumulative moving average
                factor = 1.0 / float(bn.num_batches_tracked)
        unbiased = var * count / max(count - 1, 1)
        bn.running_mean.mul_(1 - factor).add_(torch.from_numpy(mean).to(bn.running_mean.dtype), alpha=factor)
        bn.running_var.mul_(1 - factor).add_(torch.from_numpy(unbiased).to(bn.running_var.dtype), alpha=factor)

    def extra_repr(self) -> str:
        return f"fused on CPU from {self.fuse_from} input elements: batch norm over T·B·H·W, then the neuron"

