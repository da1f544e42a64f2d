"""Transforms on frame sequences ``[T, 2, H, W]``.

- :class:`RandomTemporalDeletion`: SEW ResNet's training trick (Fang et al. 2021, Sec. 5.3 and
  the official code): train on a random, sorted subset of ``T_train`` of the ``T`` frames, test on
  all ``T``. It acts as temporal augmentation and shortens training sequences.
- :func:`fix_frame_count`: pad with empty frames or cut to exactly ``T`` frames, so that slicing
  by a fixed time window yields a fixed-length tensor that batches.
"""

from __future__ import annotations

import torch

from snnlab.checks import check_timesteps

__all__ = ["RandomTemporalDeletion", "fix_frame_count"]


class RandomTemporalDeletion:
    """Keep a random sorted subset of ``T_train`` frames (SEW ResNet's random temporal deletion).

    Given ``frames`` of shape ``[T, ...]`` with ``T >= T_train``, draws ``T_train`` distinct
    frame indices uniformly (torch's global generator, or ``generator``) and returns those frames
    in their original order, shape ``[T_train, ...]``.
    """

    def __init__(self, T_train: int, generator: torch.Generator | None = None):
        self.T_train = check_timesteps("T_train", T_train)
        self.generator = generator

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        T = frames.shape[0]
        if T < self.T_train:
            raise ValueError(
                f"random temporal deletion keeps T_train={self.T_train} frames but the sample has "
                f"only T={T}; choose T_train <= T."
            )
        keep = torch.randperm(T, generator=self.generator)[: self.T_train].sort().values
        return frames[keep]

    def __repr__(self) -> str:
        return f"RandomTemporalDeletion(T_train={self.T_train})"


def fix_frame_count(frames: torch.Tensor, T: int) -> torch.Tensor:
    """Return exactly ``T`` frames: the first ``T`` of ``frames`` ``[n, ...]``, padded at the end
    with all-zero frames (no events) when ``n < T``."""
    check_timesteps("T", T)
    n = frames.shape[0]
    if n >= T:
        return frames[:T]
    pad = frames.new_zeros((T - n, *frames.shape[1:]))
    return torch.cat([frames, pad], dim=0)
