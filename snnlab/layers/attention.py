"""Spatial attention module (SAM) of Qu et al. (2024), eq. (18), after CBAM (Woo et al. 2018).

    M_s(F) = σ( f^{7x7}( [AvgPool_c(F); MaxPool_c(F)] ) )                 (eq. 18)

AvgPool_c / MaxPool_c pool across channels, giving two ``1 x H x W`` maps; ``f^{7x7}`` is a
convolution 2 -> 1 channels with a 7x7 kernel; σ the logistic sigmoid. The module returns the
refined feature map ``F ⊙ M_s(F)`` (the map broadcast over channels), as CBAM does. On a spiking
network's ``[T, B, C, H, W]`` features time is folded into the batch: each step gets its own map.
"""

from __future__ import annotations

import torch
from torch import nn

from snnlab.checks import check_tensor

__all__ = ["SpatialAttention", "spatial_attention_map"]


def spatial_attention_map(features: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """M_s(F) of eq. (18) for ``features`` ``[N, C, H, W]``: ``[N, 1, H, W]`` in (0, 1)."""
    pooled = torch.cat([features.mean(dim=1, keepdim=True), features.amax(dim=1, keepdim=True)], dim=1)
    return torch.sigmoid(conv(pooled))


class SpatialAttention(nn.Module):
    """``F ⊙ M_s(F)`` (eq. 18) on ``[T, B, C, H, W]`` or ``[N, C, H, W]``; ``kernel_size`` odd (paper: 7)."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd int >= 1 (the paper uses 7), got {kernel_size!r}.")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """M_s(F), shaped like ``x`` with one channel."""
        check_tensor("spatial attention input [T, B, C, H, W] or [N, C, H, W]", x, min_dim=4)
        if x.dim() == 5:
            return spatial_attention_map(x.flatten(0, 1), self.conv).unflatten(0, x.shape[:2])
        if x.dim() != 4:
            raise ValueError(f"spatial attention takes [T, B, C, H, W] or [N, C, H, W], got {tuple(x.shape)}.")
        return spatial_attention_map(x, self.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention_map(x)
