"""Why a spike has no gradient, and what a surrogate gives instead.

A neuron driven by ``w * x[t]`` emits ``n(w) = Σ_t S[t]`` spikes. ``n`` is a staircase in ``w``:
its true derivative is 0 almost everywhere (and undefined at the steps), so gradient descent on
``w`` learns nothing. Backpropagating with a surrogate σ'(H - V_th) in place of Θ'(H - V_th)
(SEW ResNet, section 3.1) gives a non-zero slope that points the right way.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from snnlab.checks import check_tensor
from snnlab.neurons.functional import NeuronParams, simulate
from snnlab.surrogate import Surrogate

__all__ = ["SpikeCountResponse", "spike_count_response", "SpikeCountStaircase", "spike_count_staircase"]


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


class SpikeCountStaircase(NamedTuple):
    """The exact spike count ``n(w)`` of a neuron driven by ``w * x`` on ``[w_min, w_max]``:
    ``counts[i]`` holds on ``[edges[i], edges[i + 1])``."""

    edges: np.ndarray
    """interval boundaries, ``w_min`` first and ``w_max`` last (float64)"""
    counts: np.ndarray
    """spike count on each interval (int)"""

    @property
    def jumps(self) -> np.ndarray:
        """The weights at which ``n(w)`` changes: where the true derivative is undefined (it is 0
        everywhere else)."""
        change = np.flatnonzero(np.diff(self.counts) != 0)
        return self.edges[change + 1]

    def count_at(self, w) -> np.ndarray:
        """``n(w)`` read off the staircase."""
        index = np.searchsorted(self.edges, np.asarray(w, dtype=np.float64), side="right") - 1
        return self.counts[np.clip(index, 0, len(self.counts) - 1)]


def _pattern(w: float, x: np.ndarray, params: NeuronParams, kind: str) -> np.ndarray:
    """Spikes (bool [T]) of the neuron driven by ``w * x``, in float64 (same equations as
    :func:`snnlab.neurons.functional.simulate`)."""
    k = 1.0 / params.tau
    v = params.leak_target
    spikes = np.zeros(len(x), dtype=bool)
    for t, xt in enumerate(x):
        if kind == "if":
            h = v + w * xt
        elif params.decay_input:
            h = v + (w * xt - (v - params.leak_target)) * k
        else:
            h = v - (v - params.leak_target) * k + w * xt
        spikes[t] = h - params.v_threshold >= 0
        v = (h - params.v_threshold if params.soft_reset else params.v_reset) if spikes[t] else h
    return spikes


def _next_break(w: float, pattern: np.ndarray, x: np.ndarray, params: NeuronParams, kind: str) -> float:
    """The smallest weight above ``w`` at which some step's charge crosses the threshold, given
    that the spike ``pattern`` holds at ``w``: with the pattern fixed, every H[t] is affine in
    the weight, H[t] = a_t w + b_t, so each crossing is solved for exactly."""
    k = 1.0 / params.tau
    leak = params.leak_target
    a_v, b_v = 0.0, leak
    best = math.inf
    for t, xt in enumerate(x):
        if kind == "if":
            a_h, b_h = a_v + xt, b_v
        elif params.decay_input:
            a_h, b_h = a_v * (1 - k) + xt * k, b_v * (1 - k) + leak * k
        else:
            a_h, b_h = a_v * (1 - k) + xt, b_v * (1 - k) + leak * k
        # a spike that stops (H falls below V_th as w grows) or a silent step that starts firing
        if (pattern[t] and a_h < 0) or (not pattern[t] and a_h > 0):
            crossing = (params.v_threshold - b_h) / a_h
            if crossing > w:
                best = min(best, crossing)
        if pattern[t]:
            a_v, b_v = (a_h, b_h - params.v_threshold) if params.soft_reset else (0.0, float(params.v_reset))
        else:
            a_v, b_v = a_h, b_h
    return best


def spike_count_staircase(x: torch.Tensor, params: NeuronParams, *, kind: str = "lif", w_min: float = 0.0,
                          w_max: float = 3.0) -> SpikeCountStaircase:
    """The exact staircase ``n(w)`` of a neuron driven by ``w * x`` for ``w`` in ``[w_min, w_max]``.

    Between two changes of the spike pattern every charge H[t] is affine in ``w``; the next
    change is where one of them crosses V_th, solved for exactly (:func:`_next_break`), so every
    jump is found, however close to another (a finite difference on a grid finds only those it
    happens to straddle)."""
    check_tensor("x", x, dims=1)
    if kind not in ("if", "lif"):
        raise ValueError(f"unknown neuron kind {kind!r}; valid: 'if', 'lif'.")
    if not w_max > w_min:
        raise ValueError(f"w_max must be greater than w_min, got [{w_min}, {w_max}].")
    xs = x.detach().to(torch.float64).cpu().numpy()
    edges, counts = [float(w_min)], []
    w = float(w_min)
    pattern = _pattern(w, xs, params, kind)
    while True:
        counts.append(int(pattern.sum()))
        nxt = _next_break(w, pattern, xs, params, kind)
        if nxt >= w_max:
            edges.append(float(w_max))
            break
        edges.append(nxt)
        w = nxt
        # the pattern just above the crossing (at the crossing itself H = V_th fires: Θ(0) = 1)
        pattern = _pattern(nxt + 1e-9 * max(1.0, abs(nxt)), xs, params, kind)
        if len(edges) > 100_000:
            raise RuntimeError("the staircase has more than 100,000 steps; narrow [w_min, w_max].")
    return SpikeCountStaircase(np.array(edges), np.array(counts))
