"""Dormant units: neurons whose surrogate gradient is zero at every timestep (MLF, Feng et al. 2022;
Qu et al. 2024, sec. 2.2).

A spiking neuron passes gradient back only through ``σ'(H[t] - V_th)``. With a surrogate of compact
support (MLF's rectangle of width ``a``: ``σ'(x) = 1[|x| < a/2]/a``) a neuron whose potential never
comes within ``a/2`` of its threshold passes *no* gradient for that input: it is dormant, and the
weights feeding it learn nothing from that sample. An MLF unit has K levels with thresholds
V_th,1 < ... < V_th,K, each with its own window centred on its own threshold, so the union of the
windows covers a wider range of potentials and fewer units are dormant.

* :func:`level_windows` / :func:`window_coverage`: the windows σ'(u - V_th,k) of the levels along
  the membrane-potential axis, and the length of the axis where at least one level passes gradient.
* :func:`record_neuron_inputs`: the input each spiking layer of a network received (forward hooks).
* :func:`dormant_units`: per layer, the fraction of (sample, unit) pairs whose surrogate gradient is
  zero at every timestep and every level, recomputed exactly from the recorded inputs with the
  reference dynamics of :mod:`snnlab.neurons.functional` (checked against the layer's own spikes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from snnlab.analysis.neuron_hooks import observe_neurons
from snnlab.checks import check_tensor
from snnlab.neurons import BaseNode, MLFNode, simulate
from snnlab.surrogate import Surrogate

__all__ = ["DormantLayer", "level_windows", "window_coverage", "record_neuron_inputs", "neuron_potentials",
           "dormant_units"]


def level_windows(thresholds: Sequence[float], surrogate: Surrogate, u: torch.Tensor) -> torch.Tensor:
    """σ'(u - V_th,k) for every level: ``[K, *u.shape]``."""
    check_tensor("u", u)
    if len(thresholds) < 1:
        raise ValueError("thresholds must hold at least one level.")
    return torch.stack([surrogate.derivative(u - float(v)) for v in thresholds])


def window_coverage(thresholds: Sequence[float], surrogate: Surrogate, lo: float, hi: float,
                    n: int = 200_001, tol: float = 0.0) -> dict[str, float]:
    """How the levels' windows cover the potential axis on ``[lo, hi]`` (a grid of ``n`` points, float64).

    Returns ``covered`` (length where some level has σ' > tol), ``sum_of_windows`` (the lengths of
    the levels' windows added up; equal to ``covered`` when the windows tile without overlap),
    ``overlap`` (length where two or more levels are active) and ``gap`` (length between the
    lowest and the highest active point where no level is).
    """
    if not hi > lo:
        raise ValueError(f"need hi > lo, got lo={lo}, hi={hi}.")
    if n < 3:
        raise ValueError(f"n must be >= 3 grid points, got {n}.")
    u = torch.linspace(lo, hi, n, dtype=torch.float64)
    du = (hi - lo) / (n - 1)
    active = level_windows(thresholds, surrogate, u) > tol
    count = active.sum(0)
    any_active = count > 0
    covered = float(any_active.sum()) * du
    span = 0.0
    if any_active.any():
        idx = torch.nonzero(any_active).flatten()
        span = float(idx[-1] - idx[0] + 1) * du
    return {"covered": covered, "sum_of_windows": float(active.sum()) * du,
            "overlap": float((count > 1).sum()) * du, "gap": span - covered}


def record_neuron_inputs(model: nn.Module, inputs: torch.Tensor) -> dict[str, tuple[BaseNode, torch.Tensor, torch.Tensor]]:
    """Run ``model(inputs)`` once (state reset first, no grad) and return, per spiking layer in
    multi-step mode, ``name -> (layer, input [T, B, ...], output [T, B, ...])``."""
    for name, module in model.named_modules():
        if isinstance(module, BaseNode) and module.step_mode != "m":
            raise ValueError(f"layer {name!r} is in single-step mode; dormant_units needs multi-step layers.")
    records: dict[str, tuple[BaseNode, torch.Tensor, torch.Tensor]] = {}

    def record(name, layer, x, out):
        records[name] = (layer, x.detach(), out.detach())

    observe_neurons(model, inputs, record)
    return records


def neuron_potentials(layer: BaseNode, x_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[float, ...]]:
    """Charged potentials ``H`` ``[K, T, ...]``, spikes ``[K, T, ...]`` and thresholds of ``layer`` driven
    by ``x_seq`` from rest (K = 1 for IF/LIF/PLIF), by the reference dynamics."""
    if isinstance(layer, MLFNode):
        traces = [simulate(x_seq, p, layer.surrogate, kind="lif") for p in layer.levels]
        thresholds = layer.thresholds
    else:
        traces = [simulate(x_seq, layer.params, layer.surrogate, kind=layer.kind, inv_tau=layer._inv_tau())]
        thresholds = (layer.params.v_threshold,)
    return torch.stack([t.h for t in traces]), torch.stack([t.spikes for t in traces]), thresholds


@dataclass
class DormantLayer:
    """Dormant-unit statistics of one spiking layer for one batch."""

    name: str
    units: int
    """Neurons in the layer (per sample)."""
    dormant_fraction: float
    """Fraction of (sample, unit) pairs with σ' = 0 at every timestep and level."""
    active_steps_by_level: tuple[float, ...]
    """Per level: fraction of (sample, unit, step) triples where that level's σ' > 0."""
    output_rate: float
    """Mean output per unit and step (spikes; for MLF the sum over levels, 0..K)."""
    potentials: torch.Tensor
    """A sample (at most 20 000 values) of the lowest level's charged potential H, for histograms."""


def dormant_units(model: nn.Module, inputs: torch.Tensor, *, tol: float = 0.0, batch_stats: bool = True,
                  seed: int = 0) -> list[DormantLayer]:
    """Per spiking layer of ``model`` (in forward order), the dormant fraction on ``inputs`` ``[T, B, ...]``.

    A (sample, unit) pair is dormant when ``σ'(H_k[t] - V_th,k) <= tol`` for every step t and level k.
    ``batch_stats=True`` runs batch norms with batch statistics (as in training; their running
    statistics are restored afterwards), ``False`` in eval mode. The model's mode is restored.
    """
    was_training = model.training
    saved = {n: b.clone() for n, b in model.named_buffers()}
    model.train(batch_stats)
    try:
        records = record_neuron_inputs(model, inputs)
    finally:
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(saved[n])
        model.train(was_training)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for name, (layer, x_seq, y_seq) in records.items():
        with torch.no_grad():
            h, spikes, thresholds = neuron_potentials(layer, x_seq.to(torch.float64))
        mismatch = float((spikes.sum(0).to(y_seq.dtype) != y_seq).float().mean())
        if mismatch > 1e-3:
            raise RuntimeError(f"layer {name!r}: the reference dynamics reproduce only {100 * (1 - mismatch):.2f}% "
                               f"of its outputs; was its state reset, and is it a plain snnlab neuron?")
        grads = torch.stack([layer.surrogate.derivative(h[k] - th) for k, th in enumerate(thresholds)])
        active = grads > tol  # [K, T, B, ...]
        alive = active.any(dim=0).any(dim=0)  # [B, ...]
        flat = h[0].flatten()
        take = torch.randperm(flat.numel(), generator=gen)[:20_000]
        out.append(DormantLayer(
            name=name,
            units=int(alive[0].numel()),
            dormant_fraction=float(1.0 - alive.double().mean()),
            active_steps_by_level=tuple(float(active[k].double().mean()) for k in range(active.shape[0])),
            output_rate=float(y_seq.double().mean()),
            potentials=flat[take].float(),
        ))
    return out
