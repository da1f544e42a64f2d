"""Computational complexity of a spiking network run, ATSN eq. (19):

    E = Σ_l fr^{l-1} · T · conn^l,

the synaptic operations: every non-zero input of weight layer l (a spike of layer l-1, firing rate
fr^{l-1}) at each of the T steps it is computed costs one accumulate per weight it connects to
(conn^l, its fan-out). Read per input neuron and per step, this is

    E = Σ_l Σ_t Σ_i [s_i^{l-1}(t) ≠ 0] · conn_i^l,

which :class:`SynapticOpCounter` counts with forward hooks on every ``nn.Conv2d`` and ``nn.Linear``
while the network runs, so an adaptive run that stops computing a sample counts only the steps it
really computed (T in eq. 19 becomes each sample's exit step). ``conn_i`` is exact: the number of
weights input i actually touches (fewer at a zero-padded border; "实际连接的权重数目"). The first layer
sees the analog image (direct encoding): its non-zero pixels count like spikes (each costs a
multiply-accumulate rather than an accumulate; the count does not distinguish them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["fan_out", "SynapticOpCounter", "ComplexityReport"]


def fan_out(layer: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """conn_i of ATSN eq. (19): how many weights of ``layer`` each input element touches.

    ``input_shape`` is one sample's input (``(C, H, W)`` for a conv, ``(features,)`` for a linear
    layer). Computed as the gradient of the layer's output sum w.r.t. its input with all weights 1.
    """
    if isinstance(layer, nn.Linear):
        return torch.full(tuple(input_shape), float(layer.out_features), dtype=torch.float64)
    if isinstance(layer, nn.Conv2d):
        with torch.enable_grad():
            ones = torch.ones((1, *input_shape), dtype=torch.float64, requires_grad=True)
            weight = torch.ones(layer.weight.shape, dtype=torch.float64)
            out = F.conv2d(ones, weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)
            (grad,) = torch.autograd.grad(out.sum(), ones)
        return grad[0]
    raise TypeError(f"fan_out needs nn.Linear or nn.Conv2d, got {type(layer).__name__}.")


@dataclass
class ComplexityReport:
    """Counts of one run: per weight layer (in forward order) and in total."""

    layers: list[str]
    operations: list[float]
    """Synaptic operations per layer (eq. 19's terms)."""
    inputs: list[float]
    """Input elements seen per layer (neurons × steps × samples)."""
    nonzero: list[float]
    """Non-zero inputs (spikes) per layer."""

    @property
    def total(self) -> float:
        return float(sum(self.operations))

    @property
    def firing_rates(self) -> list[float]:
        """fr^{l-1}: fraction of non-zero inputs of each weight layer."""
        return [nz / n if n else 0.0 for nz, n in zip(self.nonzero, self.inputs)]


class SynapticOpCounter:
    """Context manager counting eq. (19)'s operations of every Conv2d/Linear run inside it."""

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}.")
        self.model = model
        self._layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        if not self._layers:
            raise ValueError("the model has no nn.Conv2d or nn.Linear layer to count operations of.")
        self._fan: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}
        self._handles: list = []
        self.reset()

    def reset(self) -> None:
        n = len(self._layers)
        self._ops, self._inputs, self._nonzero = [0.0] * n, [0.0] * n, [0.0] * n

    def _hook(self, index: int):
        layer = self._layers[index][1]
        per_sample = 3 if isinstance(layer, nn.Conv2d) else 1

        def hook(module, args, output) -> None:
            x = args[0].detach()
            shape = tuple(x.shape[-per_sample:])
            key = (index, shape)
            if key not in self._fan:
                self._fan[key] = fan_out(layer, shape)
            active = (x != 0).reshape(-1, *shape)
            self._nonzero[index] += float(active.sum())
            self._inputs[index] += float(active.numel())
            self._ops[index] += float((active.sum(0, dtype=torch.float64) * self._fan[key]).sum())
        return hook

    def __enter__(self) -> "SynapticOpCounter":
        self._handles = [m.register_forward_hook(self._hook(i)) for i, (_, m) in enumerate(self._layers)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def report(self) -> ComplexityReport:
        return ComplexityReport([name for name, _ in self._layers], list(self._ops), list(self._inputs),
                                list(self._nonzero))
