"""Flatness of a minimum: the loss along random filter-normalised weight directions.

TET (Deng et al. 2022; Qu et al. 2024, sec. 3.2) claims its per-step loss "drives training to flatter
minima" that generalise better. Following Li et al. (2018), "Visualizing the loss landscape of neural
nets", sec. 4: draw a Gaussian direction ``d`` with the shape of the weights, rescale each filter
(each output row of a conv or linear weight) to the norm of the same filter of the trained weights,
``d_i ← d_i·‖θ_i‖/‖d_i‖``, leave 1-D parameters (biases, norm scales) unperturbed, and evaluate
``L(θ + α·d)`` for a few ``α``. Filter normalisation makes the curves of networks whose weights have
different scales comparable. A flatter minimum rises less for the same ``α``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["FlatnessCurves", "filter_normalized_direction", "loss_along_directions"]


def filter_normalized_direction(model: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A random direction per parameter (Li et al. 2018): Gaussian, each filter scaled to the norm of
    the model's filter; zero for 1-D parameters. Returns ``{name: tensor}``."""
    direction = {}
    for name, p in model.named_parameters():
        if p.dim() <= 1:
            direction[name] = torch.zeros_like(p)
            continue
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype)
        d_rows, p_rows = d.reshape(p.shape[0], -1), p.detach().reshape(p.shape[0], -1)
        scale = p_rows.norm(dim=1, keepdim=True) / d_rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
        direction[name] = (d_rows * scale).reshape(p.shape)
    return direction


@dataclass
class FlatnessCurves:
    """Losses ``losses[i, j] = L(θ + alphas[j]·d_i)`` along ``n`` random directions."""

    alphas: np.ndarray
    losses: np.ndarray
    base_loss: float

    def rise(self, radius: float) -> float:
        """Mean over directions of the largest loss increase within ``|α| <= radius`` (a sharpness)."""
        inside = np.abs(self.alphas) <= radius + 1e-12
        if not inside.any():
            raise ValueError(f"no alpha within radius {radius}; alphas: {self.alphas.tolist()}.")
        return float(np.mean(np.max(self.losses[:, inside], axis=1) - self.base_loss))


def loss_along_directions(model: nn.Module, loss_of: Callable[[nn.Module], float], alphas: Sequence[float], *,
                          n_directions: int = 3, seed: int = 0) -> FlatnessCurves:
    """Evaluate ``loss_of(model)`` at ``θ + α·d`` for each ``α`` in ``alphas`` and ``n_directions``
    filter-normalised random directions ``d`` (seeded). The weights are restored afterwards, also
    on error. ``loss_of`` should be deterministic (eval mode, a fixed batch)."""
    alphas_arr = np.asarray(list(alphas), dtype=np.float64)
    if alphas_arr.ndim != 1 or alphas_arr.size < 1 or not np.all(np.isfinite(alphas_arr)):
        raise ValueError(f"alphas must be a non-empty list of finite numbers, got {alphas!r}.")
    if isinstance(n_directions, bool) or not isinstance(n_directions, int) or n_directions < 1:
        raise ValueError(f"n_directions must be an int >= 1, got {n_directions!r}.")
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    original = {n: p.detach().clone() for n, p in params.items()}
    losses = np.zeros((n_directions, alphas_arr.size))
    try:
        base = float(loss_of(model))
        for i in range(n_directions):
            with torch.no_grad():  # every direction is normalised against the unperturbed weights
                for n, p in params.items():
                    p.copy_(original[n])
            d = filter_normalized_direction(model, gen)
            for j, a in enumerate(alphas_arr):
                with torch.no_grad():
                    for n, p in params.items():
                        p.copy_(original[n] + float(a) * d[n])
                losses[i, j] = float(loss_of(model))
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(original[n])
    return FlatnessCurves(alphas_arr, losses, base)
