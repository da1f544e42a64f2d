"""Small spiking networks for this 2-core machine: a spiking MLP and a spiking CNN.

Both take time-major input ``[T, B, C, H, W]`` (static images repeated over T, or event
frames) and return one output per step, ``[T, B, num_classes]``, from a non-spiking linear
readout (OTTT: the output layer has no spike and no reset, u^N[t] = W s^{N-1}[t] + b). The losses
of :mod:`snnlab.training.losses` and the online methods need these per-step outputs.

Defaults follow OTTT's neurons (authors' code): LIF with τ = 2 (λ = 1 - 1/τ = 0.5), input not
decayed, V_th = 1, soft reset, reset detached, sigmoid surrogate α = 4. Every neuron option can
be changed (``neuron="if"|"lif"|"plif"``, ``tau``, ``v_threshold``, ``v_reset`` (None: soft),
``detach_reset``, ``surrogate``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from snnlab.checks import check_choice, check_tensor
from snnlab.layers.residual import spiking_neuron
from snnlab.neurons import BaseNode
from snnlab.surrogate import Surrogate

__all__ = ["TimeFolded", "make_neuron", "SpikingMLP", "SpikingCNN", "spiking_mlp", "spiking_cnn"]


def make_neuron(
    neuron: str = "lif",
    *,
    tau: float = 2.0,
    v_threshold: float = 1.0,
    v_reset: float | None = None,
    detach_reset: bool = True,
    decay_input: bool = False,
    surrogate: str | Surrogate = "sigmoid",
    alpha: float | None = None,
) -> BaseNode:
    """A multi-step snnlab neuron (``"if"``, ``"lif"``, ``"plif"``) with OTTT's defaults (module
    docstring); :func:`snnlab.layers.residual.spiking_neuron` with other defaults."""
    return spiking_neuron(neuron, tau=tau, v_threshold=v_threshold, v_reset=v_reset, detach_reset=detach_reset,
                          decay_input=decay_input, surrogate=surrogate, alpha=alpha)


class TimeFolded(nn.Module):
    """Apply a per-sample layer to ``[T, B, ...]`` by folding time into the batch.

    Batch norm inside sees statistics over T·B (tdBN's convention); an online method that runs
    one step at a time gives it statistics per step (SLTT's "BN per timestep").
    """

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.layers = layers[0] if len(layers) == 1 else nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        y = self.layers(x.flatten(0, 1))
        return y.reshape(T, B, *y.shape[1:])


def _check_input(x: torch.Tensor, per_step: Sequence[int]) -> None:
    check_tensor("model input", x, min_dim=2)
    if tuple(x.shape[2:]) != tuple(per_step):
        raise ValueError(
            f"the model expects time-major input [T, B, {', '.join(map(str, per_step))}], got {tuple(x.shape)}; "
            f"static images are repeated over T and event frames [B, T, ...] transposed to [T, B, ...] first "
            f"(snnlab.training.time_major)."
        )


class SpikingMLP(nn.Module):
    """Flatten -> {Linear -> neuron} x len(hidden) -> Linear readout (per step)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (128,),
                 dropout: float = 0.0, **neuron_options) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        layers: list[nn.Module] = []
        width = math.prod(self.input_shape)
        for h in hidden:
            layers += [nn.Linear(width, int(h)), make_neuron(**neuron_options)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.input_shape)
        return self.classifier(self.features(x.flatten(2)))


class SpikingCNN(nn.Module):
    """{Conv3x3 -> BN -> neuron -> AvgPool2} per entry of ``channels`` -> Flatten -> Linear readout.

    Average pooling as in OTTT's VGG. ``bn=False`` drops the batch norms.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (16, 32),
                 bn: bool = True, pool: str = "avg", **neuron_options) -> None:
        super().__init__()
        check_choice("pool", pool, ("avg", "max"))
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(f"SpikingCNN needs per-step input shape (C, H, W), got {self.input_shape}.")
        c, h, w = self.input_shape
        blocks: list[nn.Module] = []
        for out in channels:
            conv = [nn.Conv2d(c, int(out), 3, padding=1, bias=not bn)]
            if bn:
                conv.append(nn.BatchNorm2d(int(out)))
            blocks += [TimeFolded(*conv), make_neuron(**neuron_options)]
            if min(h, w) >= 2:
                blocks.append(TimeFolded(nn.AvgPool2d(2) if pool == "avg" else nn.MaxPool2d(2)))
                h, w = h // 2, w // 2
            c = int(out)
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(c * h * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.input_shape)
        return self.classifier(self.features(x).flatten(2))


def _per_step(input_shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(s) for s in input_shape)


def spiking_mlp(*, num_classes: int, input_shape: Sequence[int], T: int | None = None,
                hidden: Sequence[int] = (128,), **options) -> SpikingMLP:
    """A spiking MLP: flatten, ``hidden`` LIF layers, linear readout."""
    return SpikingMLP(_per_step(input_shape), num_classes, hidden=hidden, **options)


def spiking_cnn(*, num_classes: int, input_shape: Sequence[int], T: int | None = None,
                channels: Sequence[int] = (16, 32), **options) -> SpikingCNN:
    """A small spiking CNN: conv-BN-LIF-avgpool blocks, linear readout."""
    return SpikingCNN(_per_step(input_shape), num_classes, channels=channels, **options)
