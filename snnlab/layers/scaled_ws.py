"""Scaled weight standardisation (OTTT, claims 6-7; Brock et al. 2021, NF-ResNets).

OTTT re-parametrises every feed-forward weight matrix so that each output unit's fan-in weights
have zero mean and a fixed scale, which keeps the signal from vanishing or exploding through a
deep network without batch norm (batch norm mixes samples and is not online):

    Ŵ_ij = α γ (W_ij - μ_i) / (σ_i √M)          (OTTT, claim 6; γ = 2.74 by claim 7)

with μ_i, σ_i the mean and standard deviation of row i over its M fan-in entries and α a learnable
gain (initialised to 1). The authors' code (pkuxmq/OTTT-SNN) computes

    Ŵ = gain · (W - mean) / sqrt(var · fan_in + eps),   eps = 1e-4, var unbiased (torch.var),

with one gain per output channel, and applies γ = 2.74 not inside Ŵ but as a separate constant
scale after each spiking neuron (:class:`SpikeScale`): for a layer that receives spikes the two are
the same, Ŵ(γs) = (γŴ)s; they differ only at the first layer, which sees the raw image (no γ in
the code). ``gamma`` here defaults to 1 (the code's placement); ``gamma=2.74`` puts it in the
weight (the patent's formula as written).

Both layers subclass ``nn.Conv2d`` / ``nn.Linear``, so OTTT's trace wrapping
(:mod:`snnlab.training.traces`) treats them as synaptic layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from snnlab.checks import check_positive

__all__ = ["OTTT_GAMMA", "standardize_weight", "ScaledWSConv2d", "ScaledWSLinear", "SpikeScale"]

OTTT_GAMMA = 2.74
"""OTTT claim 7: the scale γ chosen from the signal-propagation analysis of Brock et al."""


def standardize_weight(weight: torch.Tensor, gain: torch.Tensor | None = None, *, gamma: float = 1.0,
                       eps: float = 1e-4) -> torch.Tensor:
    """OTTT claim 6 as in the authors' code: ``gamma · gain · (W - μ) / sqrt(var · M + eps)``.

    ``weight`` is ``[out, ...]``; mean and (unbiased) variance run over every dimension but the
    first (the fan-in, M entries). ``gain`` broadcasts against ``weight`` (one per output unit).
    """
    if weight.dim() < 2:
        raise ValueError(f"weight must be [out, fan_in...] with at least 2 dimensions, got {tuple(weight.shape)}.")
    dims = tuple(range(1, weight.dim()))
    fan_in = weight[0].numel()
    if fan_in < 2:
        raise ValueError(f"weight standardisation needs a fan-in of at least 2 entries, got {fan_in}.")
    mean = weight.mean(dim=dims, keepdim=True)
    var = weight.var(dim=dims, keepdim=True)
    w = (weight - mean) / torch.sqrt(var * fan_in + eps)
    if gain is not None:
        w = w * gain
    return w * gamma if gamma != 1.0 else w


class ScaledWSConv2d(nn.Conv2d):
    """A Conv2d whose weight is standardised per output channel (OTTT claim 6, authors' code).

    ``gain=True`` adds the learnable gain α (``[out, 1, 1, 1]``, init 1); ``gamma`` multiplies the
    standardised weight (default 1: the authors apply γ after the neuron, see :class:`SpikeScale`).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, *, gain: bool = True,
                 gamma: float = 1.0, eps: float = 1e-4) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.gain = nn.Parameter(torch.ones(out_channels, 1, 1, 1)) if gain else None
        self.gamma = check_positive("gamma", gamma)
        self.eps = check_positive("eps", eps)

    def standardized_weight(self) -> torch.Tensor:
        return standardize_weight(self.weight, self.gain, gamma=self.gamma, eps=self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.standardized_weight(), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", gain={self.gain is not None}, gamma={self.gamma}, eps={self.eps}"


class ScaledWSLinear(nn.Linear):
    """A Linear layer whose weight is standardised per output unit (OTTT claim 6).

    The authors' VGG keeps its classifier a plain ``nn.Linear``; this layer is for fully connected
    hidden layers (and for the patent's reading, in which every connection is standardised).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, gain: bool = True,
                 gamma: float = 1.0, eps: float = 1e-4) -> None:
        super().__init__(in_features, out_features, bias)
        self.gain = nn.Parameter(torch.ones(out_features, 1)) if gain else None
        self.gamma = check_positive("gamma", gamma)
        self.eps = check_positive("eps", eps)

    def standardized_weight(self) -> torch.Tensor:
        return standardize_weight(self.weight, self.gain, gamma=self.gamma, eps=self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.standardized_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", gain={self.gain is not None}, gamma={self.gamma}, eps={self.eps}"


class SpikeScale(nn.Module):
    """Multiply by a constant γ (OTTT's code: ``Scale(2.74)`` after every spiking neuron).

    No parameters, linear and time-invariant, so OTTT's trace of the scaled spikes is γ times the
    trace of the spikes.
    """

    def __init__(self, gamma: float = OTTT_GAMMA) -> None:
        super().__init__()
        self.gamma = check_positive("gamma", gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"
