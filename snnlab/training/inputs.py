"""From a DataLoader batch to the time-major input ``[T, B, ...]`` the models take."""

from __future__ import annotations

import torch

from snnlab.checks import check_choice, check_tensor, check_timesteps

__all__ = ["time_major"]


def time_major(x: torch.Tensor, T: int, kind: str) -> torch.Tensor:
    """``[T, B, ...]`` input for a batch ``x``.

    * ``kind="static"``: ``x`` is ``[B, C, H, W]`` (or any ``[B, ...]``); the same image is fed at
      every step (direct encoding, as in SEW ResNet, OTTT and MLF): ``[T, B, ...]``.
    * ``kind="events"``: ``x`` is ``[B, T', ...]`` frames from the DataLoader, transposed to
      ``[T', B, ...]``; the data fix T' (``T`` is not used, e.g. random temporal deletion).
    """
    check_choice("input kind", kind, ("static", "events"))
    check_tensor("batch", x, min_dim=2)
    if kind == "static":
        check_timesteps("T", T)
        return x.unsqueeze(0).expand(T, *x.shape).contiguous()
    return x.transpose(0, 1).contiguous()
