"""Measurements for online training through time (OTTT, patent CN114998659B).

* :func:`presynaptic_trace`: the trace â[t] = λ â[t-1] + s[t] (eq. 3) of a spike train.
* :func:`cosine_similarity_per_layer` / :func:`gradient_similarity`: how closely the gradient of
  one training method (OTTT_A) follows another's (BPTT) on the same batch, layer by layer.
* :func:`firing_rates`: the mean firing rate and spikes per neuron of every spiking layer (Fig. 5).
* :func:`memory_vs_T`: bytes held for backward and peak process memory of one training step
  against T, per method (Fig. 3), measured with :class:`snnlab.analysis.memory.MemoryMeter`.
* :func:`seed_gap`, :func:`student_t_quantile`: re-exported from :mod:`snnlab.analysis.seeds`
  (the chapter's test of "within noise").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from snnlab.analysis.memory import MemoryMeter, process_rss_bytes
from snnlab.analysis.neuron_hooks import observe_neurons
from snnlab.analysis.seeds import SeedGap, seed_gap, student_t_quantile  # noqa: F401  (re-exported)
from snnlab.checks import check_in_range, check_tensor, check_timesteps

__all__ = [
    "presynaptic_trace",
    "cosine_similarity_per_layer",
    "gradient_similarity",
    "LayerFiring",
    "firing_rates",
    "mean_firing",
    "memory_vs_T",
    "SeedGap",
    "seed_gap",
    "student_t_quantile",
]


def presynaptic_trace(spikes: torch.Tensor, decay: float) -> torch.Tensor:
    """OTTT eq. (3): ``â[t] = λ â[t-1] + s[t]`` with ``â[-1] = 0``, for ``spikes`` ``[T, ...]``."""
    check_tensor("spikes [T, ...]", spikes, min_dim=1)
    lam = check_in_range("decay λ", decay, 0.0, 1.0)
    out = torch.empty_like(spikes)
    acc = torch.zeros_like(spikes[0])
    for t in range(spikes.shape[0]):
        acc = lam * acc + spikes[t]
        out[t] = acc
    return out


def cosine_similarity_per_layer(
    grads_a: Mapping[str, torch.Tensor],
    grads_b: Mapping[str, torch.Tensor],
    names: Iterable[str] | None = None,
) -> dict[str, float]:
    """Cosine similarity ``<a, b> / (|a| |b|)`` of two gradients, per parameter name.

    ``names`` defaults to the names both dicts share, in ``grads_a``'s order. A pair in which
    either gradient is all zero has no direction and gives ``nan``.
    """
    if names is None:
        names = [n for n in grads_a if n in grads_b]
    result = {}
    for n in names:
        if n not in grads_a or n not in grads_b:
            raise KeyError(f"parameter {n!r} has no gradient in both sets.")
        a, b = grads_a[n].detach().double().flatten(), grads_b[n].detach().double().flatten()
        if a.shape != b.shape:
            raise ValueError(f"gradients of {n!r} have different shapes {tuple(a.shape)} and {tuple(b.shape)}.")
        na, nb = a.norm(), b.norm()
        result[n] = float("nan") if na == 0 or nb == 0 else float(a @ b / (na * nb))
    if not result:
        raise ValueError("the two gradient sets share no parameter names.")
    return result


def _weight_names(model: nn.Module) -> list[str]:
    """Names of the weight parameters of conv/linear layers, in network order."""
    names = []
    for mname, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            names.append(f"{mname}.weight" if mname else "weight")
    return names


def gradient_similarity(
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    loss_fn,
    method_a: str = "ottt_a",
    method_b: str = "bptt",
) -> dict[str, float]:
    """Cosine similarity, per conv/linear weight, of the gradients ``method_a`` and ``method_b``
    give on the same batch from the same weights (no optimizer step).

    Runs in train mode; leaves the model's weights unchanged, its gradients zeroed and no method
    attached. Layers whose weight gets no gradient from both methods are left out.
    """
    from snnlab.training.methods import build_method, compute_gradients

    grads = {}
    for name in (method_a, method_b):
        method = build_method(name)
        try:
            grads[name] = compute_gradients(method, model, inputs, target, loss_fn)
        finally:
            method.detach(model)
    model.zero_grad(set_to_none=True)
    names = [n for n in _weight_names(model) if n in grads[method_a] and n in grads[method_b]]
    return cosine_similarity_per_layer(grads[method_a], grads[method_b], names)


@dataclass
class LayerFiring:
    """Firing statistics of one spiking layer over a batch."""

    name: str
    neurons: int
    """Neurons in the layer (per sample)."""
    rate: float
    """Mean spikes per neuron per timestep (Fig. 5's firing rate)."""
    spikes_per_neuron: float
    """Mean spikes per neuron over the whole sequence (rate · T)."""


def firing_rates(model: nn.Module, inputs: torch.Tensor) -> list[LayerFiring]:
    """Run ``model`` on ``inputs`` ``[T, B, ...]`` (eval mode, no gradient, fresh state) and
    return the firing statistics of every spiking neuron layer, in the order they fire."""
    from snnlab.training.state import reset_model

    check_tensor("inputs [T, B, ...]", inputs, min_dim=2)
    counts: dict[str, tuple[float, int]] = {}
    shapes: dict[str, int] = {}

    def count(name, layer, x, output):
        total, elements = counts.get(name, (0.0, 0))
        counts[name] = (total + float(output.sum()), elements + output.numel())
        shapes.setdefault(name, output[0, 0].numel())

    observe_neurons(model, inputs, count, eval_mode=True, reset=reset_model)
    T = inputs.shape[0]
    out = []
    for name, (total, elements) in counts.items():
        rate = total / elements
        out.append(LayerFiring(name, shapes[name], rate, rate * T))
    return out


def mean_firing(layers: Sequence[LayerFiring]) -> tuple[float, float]:
    """Network-wide firing rate and spikes per neuron, every neuron weighted equally."""
    if not layers:
        raise ValueError("no layers given.")
    n = sum(layer.neurons for layer in layers)
    rate = sum(layer.rate * layer.neurons for layer in layers) / n
    spikes = sum(layer.spikes_per_neuron * layer.neurons for layer in layers) / n
    return rate, spikes


def memory_vs_T(
    make_model: Callable[[], nn.Module],
    x: torch.Tensor,
    target: torch.Tensor,
    loss_fn,
    *,
    methods: Sequence[str] = ("bptt", "ottt_a", "ottt_o"),
    timesteps: Sequence[int] = (1, 2, 4, 8),
    kind: str = "static",
) -> list[dict]:
    """Memory of one training step against T (OTTT Fig. 3), per method.

    For each method and T a fresh ``make_model()`` (seed it inside for identical weights) runs
    one warm-up step (OTTT finds its traced layers), then one measured step with an SGD optimizer
    at lr 0 (the weights do not change; the optimizer's own state is there as in training). ``x``
    is a static batch ``[B, ...]`` repeated over T (``kind="static"``) or event frames
    ``[B, T_max, ...]`` cut to the first T (``kind="events"``). Returns one dict per (method, T):
    ``saved_bytes`` (peak bytes held for backward, parameters and input excluded),
    ``rss_peak_bytes`` (peak resident memory of the process during the step),
    ``rss_increase_bytes`` (that peak minus the resident memory just before the step) and
    ``seconds``.
    """
    from snnlab.training import build_method, time_major

    Ts = [check_timesteps("T", t) for t in timesteps]
    rows = []
    for name in methods:
        for T in Ts:
            if kind == "events":
                if x.shape[1] < T:
                    raise ValueError(f"event input has {x.shape[1]} frames, fewer than T = {T}.")
                inputs = time_major(x[:, :T], T, "events")
            else:
                inputs = time_major(x, T, "static")
            model = make_model()
            method = build_method(name)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)
            method.train_step(model, inputs, target, loss_fn, optimizer)
            before = process_rss_bytes()
            t0 = time.perf_counter()
            with MemoryMeter(exclude=[*model.parameters(), inputs]) as meter:
                method.train_step(model, inputs, target, loss_fn, optimizer)
            seconds = time.perf_counter() - t0
            report = meter.report()
            method.detach(model)
            rows.append({
                "method": name, "T": T, "saved_bytes": report.saved_bytes_peak,
                "rss_peak_bytes": report.rss_peak_bytes,
                "rss_increase_bytes": (None if report.rss_peak_bytes is None or before is None
                                       else max(report.rss_peak_bytes - before, 0)),
                "rss_peak_is_lifetime": report.rss_peak_is_lifetime,
                "seconds": seconds,
            })
    return rows
