"""Threshold-dependent batch normalisation (tdBN) for multi-step spiking layers.

Zheng et al. (2021), "Going deeper with directly-trained larger SNNs", as used by DS-ResNet
(Feng et al. 2022; Qu et al. 2024, sec. 2.1: "tdBN ... normalises the input distribution"). For
pre-activations ``x`` of shape ``[T, B, C, ...]`` the statistics of each channel are taken over
time, batch and space together (``T·B·H·W`` values), and the result is scaled to the threshold:

    x̂ = α·V_th·(x - E[x]) / sqrt(Var[x] + ε),     y = λ·x̂ + β          (tdBN, eqs. 6-7)

with λ, β learned per channel (init 1, 0) and α a fixed constant (1 in the MLF code; the tdBN
paper uses 1/sqrt(2) before a residual addition). The MLF code writes ``(sqrt(var) + eps)``; this
module uses torch's ``sqrt(var + eps)``, which differs by far less than float32 rounding for
any channel whose variance is not tiny. In eval mode the running statistics are used, as in BN.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from snnlab.checks import check_positive, check_tensor

__all__ = ["TDBatchNorm"]


class TDBatchNorm(nn.BatchNorm1d):
    """tdBN over ``[T, B, C, ...]`` (time folded into the batch); see the module docstring.

    ``v_threshold`` is the V_th the normalised pre-activation is scaled to (DS-ResNet: the MLF
    unit's lowest threshold, 0.6, or 1 as in the tdBN paper: pass what the next neuron uses) and
    ``alpha`` the extra factor α. Works for any number of trailing dimensions (``[T, B, C]`` after a
    linear layer, ``[T, B, C, H, W]`` after a convolution).
    """

    def __init__(self, num_features: int, *, v_threshold: float = 1.0, alpha: float = 1.0,
                 eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=True, track_running_stats=True)
        self.v_threshold = check_positive("tdBN v_threshold", v_threshold)
        self.alpha = check_positive("tdBN alpha", alpha)

    @property
    def scale(self) -> float:
        """α·V_th, the standard deviation of the normalised output before the affine step."""
        return self.alpha * self.v_threshold

    def _check_input_dim(self, x: torch.Tensor) -> None:  # noqa: D401 - BatchNorm hook
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("tdBN input [T, B, C, ...]", x, min_dim=3)
        if x.shape[2] != self.num_features:
            raise ValueError(f"tdBN was built for {self.num_features} channels; input [T, B, C, ...] has "
                             f"C = {x.shape[2]} (shape {tuple(x.shape)}).")
        folded = x.flatten(0, 1)
        if self.training and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        normalised = F.batch_norm(
            folded, self.running_mean, self.running_var, None, None,
            self.training, self.momentum, self.eps)
        shape = (1, -1) + (1,) * (folded.dim() - 2)
        y = normalised * (self.scale * self.weight).view(shape) + self.bias.view(shape)
        return y.unflatten(0, x.shape[:2])

    def extra_repr(self) -> str:
        return f"{self.num_features}, v_threshold={self.v_threshold}, alpha={self.alpha}, eps={self.eps}"
