"""Residual blocks of Spiking ResNet, SEW ResNet and the plain (shortcut-free) network, multi-step.

All blocks take spikes ``[T, B, C, H, W]`` and return ``[T, B, C', H', W']``. Convolutions and batch
norms see time folded into the batch (statistics over T·B); the neurons run multi-step.

``kind`` selects the block (SEW ResNet, Fang et al. 2021, Figs. 1-2 and eqs. 7, 9):

* ``"spiking"``: Spiking ResNet, ``O = SN(F(S) + S)`` (eq. 7); the last SN comes after the add and
  the downsample shortcut is conv1x1-BN (no SN), as in the ANN ResNet.
* ``"sew"``: SEW ResNet, ``O = g(SN(F(S)), S)`` (eq. 9), ``g`` in ADD/AND/IAND
  (:mod:`snnlab.layers.sew`); the downsample shortcut is conv1x1-BN-**SN** (Fig. 2b).
* ``"plain"``: no shortcut at all, ``O = SN(F(S))`` (the plain net of Table 4).

``F`` is conv3x3-BN-SN-conv3x3-BN (basic) or conv1x1-BN-SN-conv3x3-BN-SN-conv1x1-BN (bottleneck,
stride on the 3x3 as in torchvision's ResNet v1.5 and the authors' code). Each block exposes
``last_bn`` (zero-initialised by :meth:`ResidualBlock.zero_init_`) and ``last_sn``, whose output is
``A^l`` for SEW blocks (for Spiking ResNet and plain blocks it is the block output ``O^l``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from snnlab.checks import check_choice
from snnlab.layers.sew import check_connect, sew_connect
from snnlab.neurons import BaseNode, IFNode, LIFNode, PLIFNode
from snnlab.surrogate import Surrogate, get_surrogate

__all__ = [
    "BLOCK_KINDS",
    "spiking_neuron",
    "constant_spike_bias",
    "SeqConvBN",
    "Downsample",
    "ResidualBlock",
    "BasicBlock",
    "Bottleneck",
]

BLOCK_KINDS = ("sew", "spiking", "plain")
_NEURONS = {"if": IFNode, "lif": LIFNode, "plif": PLIFNode}


def spiking_neuron(
    neuron: str = "if",
    *,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    detach_reset: bool = True,
    surrogate: str | Surrogate = "arctan",
    alpha: float | None = None,
    tau: float = 2.0,
    decay_input: bool = True,
    backend: str = "auto",
) -> BaseNode:
    """A multi-step neuron with SEW ResNet's defaults (appendix A.1): IF, V_th = 1, hard reset to
    V_reset = 0, reset detached in the backward pass, ArcTan surrogate with α = 2.

    ``neuron``: ``"if"``, ``"lif"`` or ``"plif"`` (PLIF: ``tau`` is the initial time constant).
    ``surrogate``: a :class:`~snnlab.surrogate.Surrogate` or a name; ``alpha`` sets a named
    surrogate's ``alpha`` (ArcTan's slope; default 2 for ``"arctan"``). ``backend``: the neurons'
    (``"auto"``: Numba kernels on CPU float32; ``"torch"``: the reference, faster for tiny tensors).
    """
    check_choice("neuron", neuron, _NEURONS)
    if isinstance(surrogate, str):
        if alpha is None and surrogate.lower() == "arctan":
            alpha = 2.0
        surrogate = get_surrogate(surrogate, **({} if alpha is None else {"alpha": alpha}))
    elif alpha is not None:
        raise ValueError("alpha sets a named surrogate's slope; with a Surrogate instance, set it there.")
    kwargs = dict(v_threshold=v_threshold, v_reset=v_reset, detach_reset=detach_reset,
                  surrogate=surrogate, step_mode="m", backend=backend)
    if neuron == "lif":
        kwargs.update(tau=tau, decay_input=decay_input)
    elif neuron == "plif":
        kwargs.update(init_tau=tau, decay_input=decay_input)
    return _NEURONS[neuron](**kwargs)


def constant_spike_bias(sn: BaseNode) -> float:
    """A constant input that makes ``sn`` fire at every step from rest (for AND's A ≡ 1).

    SEW ResNet, section 3.3: "set the bias to a large enough constant to cause spikes, e.g. V_th for
    an IF neuron". From V = V_reset = 0 an IF neuron reaches ``H = X``; a LIF/PLIF neuron with
    decayed input reaches ``H = X/τ``, so it needs ``X >= τ·V_th`` (1% margin against rounding).
    """
    p = sn.params
    if p.v_reset is None or p.v_reset != 0.0:
        raise ValueError("constant_spike_bias assumes a hard reset to 0 (SEW ResNet's V_reset = 0).")
    if isinstance(sn, IFNode):
        return float(p.v_threshold)
    tau = sn.tau if isinstance(sn, PLIFNode) else p.tau
    return float(p.v_threshold) * (float(tau) if p.decay_input else 1.0) * 1.01


def _fold(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a per-sample layer to ``[T, B, ...]`` with time folded into the batch."""
    y = layer(x.flatten(0, 1))
    return y.unflatten(0, x.shape[:2])


class SeqConvBN(nn.Module):
    """conv (no bias) -> BN on ``[T, B, C, H, W]``, time folded into the batch."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _fold(lambda z: self.bn(self.conv(z)), x)


class Downsample(nn.Module):
    """The shortcut of a downsample block: conv1x1(stride)-BN, plus an SN in SEW ResNet (Fig. 2)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, sn: BaseNode | None) -> None:
        super().__init__()
        self.conv_bn = SeqConvBN(in_channels, out_channels, 1, stride)
        self.sn = sn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_bn(x)
        return y if self.sn is None else self.sn(y)


class ResidualBlock(nn.Module):
    """A stack of conv-BN(-SN) stages with a shortcut chosen by ``kind`` (see the module docstring).

    ``stages``: ``(in_channels, out_channels, kernel_size, stride)`` per conv. The block needs a
    downsample shortcut when the first stage's input differs from the last stage's output in
    channels, or a stride is > 1.
    """

    expansion = 1

    def __init__(self, stages: Sequence[tuple[int, int, int, int]], *, kind: str = "sew", cnf: str = "ADD",
                 **neuron_options) -> None:
        super().__init__()
        self.kind = check_choice("block kind", kind, BLOCK_KINDS)
        self.cnf = check_connect(cnf) if kind == "sew" else None
        self.convs = nn.ModuleList(SeqConvBN(i, o, k, s) for i, o, k, s in stages)
        self.sns = nn.ModuleList(spiking_neuron(**neuron_options) for _ in stages)
        in_ch, out_ch = stages[0][0], stages[-1][1]
        stride = max(s for *_, s in stages)
        self.is_downsample = stride != 1 or in_ch != out_ch
        self.downsample = None
        if self.is_downsample and kind != "plain":
            self.downsample = Downsample(in_ch, out_ch, stride,
                                         spiking_neuron(**neuron_options) if kind == "sew" else None)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.convs[-1].bn

    @property
    def last_sn(self) -> BaseNode:
        """The last SN: its output is A^l (SEW) or the block output O^l (Spiking ResNet, plain)."""
        return self.sns[-1]

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if s.dim() != 5:
            raise ValueError(f"a residual block takes spikes [T, B, C, H, W], got shape {tuple(s.shape)}.")
        x = s
        last = len(self.convs) - 1
        for i, (conv, sn) in enumerate(zip(self.convs, self.sns)):
            x = conv(x)
            if i < last or self.kind != "spiking":
                x = sn(x)
        if self.kind == "plain":
            return x
        identity = s if self.downsample is None else self.downsample(s)
        if self.kind == "spiking":
            return self.last_sn(x + identity)  # eq. (7)
        return sew_connect(x, identity, self.cnf)  # eq. (9)

    @torch.no_grad()
    def zero_init_(self) -> "ResidualBlock":
        """SEW ResNet's zero-init (section 3.3): last BN weight = 0 and bias = 0, so F(S) ≡ 0 and
        A ≡ SN(0) = 0 (ADD, IAND, and Spiking ResNet's O = SN(S)); for AND the bias is set to make
        the last SN fire at every step, A ≡ 1 (:func:`constant_spike_bias`)."""
        if self.kind == "plain":
            raise ValueError("zero-init makes a plain block output nothing (it has no shortcut to carry S).")
        self.last_bn.weight.zero_()
        self.last_bn.bias.fill_(constant_spike_bias(self.last_sn) if self.cnf == "AND" else 0.0)
        return self

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}" + (f", g={self.cnf}" if self.cnf else "")


class BasicBlock(ResidualBlock):
    """conv3x3(stride)-BN-SN-conv3x3-BN(-SN): ResNet-18/34's block, and the SEW Block of 7B-Net."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, **options) -> None:
        super().__init__([(in_channels, planes, 3, stride), (planes, planes, 3, 1)], **options)


class Bottleneck(ResidualBlock):
    """conv1x1-BN-SN-conv3x3(stride)-BN-SN-conv1x1-BN(-SN), output 4·planes: ResNet-50/101/152."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, **options) -> None:
        super().__init__([(in_channels, planes, 1, 1), (planes, planes, 3, stride),
                          (planes, planes * 4, 1, 1)], **options)
