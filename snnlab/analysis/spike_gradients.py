"""Why a spike has no gradient, and what a surrogate gives instead.

A neuron driven by ``w * x[t]`` emits ``n(w) = Σ_t S[t]`` spikes. ``n`` is a staircase in ``w``:
its true derivative is 0 almost everywhere (and undefined at the steps), so gradient descent on
``w`` learns nothing. Backpropagating with a surrogate σ'(H - V_th) in place of Θ'(H - V_th)
(SEW ResNet, section 3.1) gives a non-zero slope that points the right way.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from snnlab.checks import check_tensor
from snnlab.neurons.functional import NeuronParams, simulate
from snnlab.surrogate import Surrogate

__all__ = ["SpikeCountResponse", "spike_count_response"]


class SpikeCountResponse(NamedTuple):
    weights: torch.Tensor
    counts: torch.Tensor
    """spike count n(w) for each weight"""
    surrogate_grad: torch.Tensor
    """dn/dw by backpropagation with the surrogate"""
    finite_difference: torch.Tensor
    """(n(w + h) - n(w - h)) / 2h, the true slope of the staircase at resolution h"""


def spike_count_response(
    weights: torch.Tensor,
    x: torch.Tensor,
    params: NeuronParams,
    surrogate: Surrogate,
    *,
    kind: str = "lif",
    h: float = 1e-3,
) -> SpikeCountResponse:
    """Spike count of a neuron driven by ``w * x`` for each ``w`` in ``weights``, its surrogate
    gradient dn/dw, and the central finite difference of the (piecewise-constant) count."""
    check_tensor("weights", weights, dims=1)
    check_tensor("x", x, dims=1)
    w = weights.detach().clone().requires_grad_(True)
    trace = simulate(w[None, :] * x[:, None], params, surrogate, kind=kind)
    counts = trace.spikes.sum(0)
    (grad,) = torch.autograd.grad(counts.sum(), w)
    with torch.no_grad():
        up = simulate((weights + h)[None, :] * x[:, None], params, surrogate, kind=kind).spikes.sum(0)
        down = simulate((weights - h)[None, :] * x[:, None], params, surrogate, kind=kind).spikes.sum(0)
    return SpikeCountResponse(weights.detach(), counts.detach(), grad.detach(), (up - down) / (2 * h))
