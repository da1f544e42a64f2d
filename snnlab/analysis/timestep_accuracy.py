"""Accuracy as a function of the timestep: how well a network classifies after t of its T steps."""

from __future__ import annotations

import torch

from snnlab.checks import check_tensor

__all__ = ["accuracy_per_timestep"]


def accuracy_per_timestep(outputs: torch.Tensor, target: torch.Tensor, *, cumulative: bool = True) -> torch.Tensor:
    """Accuracy ``[T]`` from per-step outputs ``[T, B, C]``.

    ``cumulative=True``: at step t the prediction is argmax of the mean output over steps 1..t (what
    a network stopped after t steps predicts; SDT and TET both predict from the mean, eq. 7).
    ``False``: argmax of the output O(t) of step t alone (what TET's eq. 13 trains directly).
    """
    check_tensor("outputs [T, B, C]", outputs, dims=3)
    if target.dim() != 1 or target.shape[0] != outputs.shape[1]:
        raise ValueError(f"target must be [B] = [{outputs.shape[1]}], got {tuple(target.shape)}.")
    if cumulative:
        steps = torch.arange(1, outputs.shape[0] + 1, dtype=outputs.dtype).view(-1, 1, 1)
        outputs = outputs.cumsum(0) / steps
    return (outputs.argmax(-1) == target.unsqueeze(0)).double().mean(1)
