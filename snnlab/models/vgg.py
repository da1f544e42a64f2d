"""OTTT's spiking VGG and the feedback network VGG-F (patent CN114998659B, [0096]; code pkuxmq/OTTT-SNN).

VGG: ``64C3-128C3-AP2-256C3-AP2-512C3-512C3-AP2-512C3-512C3-GAP-FC``. Every convolution is a
scaled weight-standardised conv (:class:`~snnlab.layers.scaled_ws.ScaledWSConv2d`, learnable gain),
followed by an LIF neuron (OTTT eq. 2: λ = 0.5, V_th = 1, soft reset, sigmoid surrogate α = 4) and,
as in the authors' code, a constant scale γ = 2.74 (:class:`~snnlab.layers.scaled_ws.SpikeScale`).
Pools are average pools; the classifier is a plain ``nn.Linear``. The output layer does not spike
and does not reset (OTTT claim 5: threshold ∞): ``u^N[t] = W s^{N-1}[t] + b`` at every step, a
:class:`~snnlab.neurons.NonSpikingIntegrator` with decay 0, and the prediction is
``argmax Σ_t u^N[t]`` (the ``ottt`` loss's ``predict``).

VGG-F ([0096], [0110]) adds a feedback connection from the last hidden layer (before GAP) to the
first: at step t the first neuron also receives ``conv_fb(up(h[t-1]))``, where ``h[t-1]`` is the
last hidden layer's (scaled) spikes of the previous step, detached as in the authors' code (the
patent's backward runs through feed-forward connections only, [0103]), ``up`` is a nearest-neighbour
upsampling to the first layer's size and ``conv_fb`` is a plain (not standardised, [0095]) 3x3 conv
from 512 to 64 channels initialised to zero, so an untrained VGG-F computes exactly what VGG does.
At t = 0 there is no feedback. Because the feedback's input is detached, its weight gradient is the
instantaneous ``g_u1[t] h[t-1]^T`` rather than eq. 6's trace-based ``g_u1[t] â[t-1]^T``.

``feedback_scale`` (default 1, the authors') multiplies the feedback's output: the first neuron
receives ``first_conv(x[t]) + feedback_scale · conv_fb(up(h[t-1]))``. The weights start at zero, so
the untrained network is unchanged; under SGD the scale multiplies the feedback's effective
learning rate by ``feedback_scale²``. Why a small network needs it: the feedback's input is
non-negative (γ times spikes) with a fan-in of 9 x the last layer's channels, and its weight is
not standardised, so a gradient step on it moves the first layer's input by far more than a step
on the standardised convs does; at a learning rate that trains the rest of the network it pushes
the first layer's firing down faster than the rest adapts (chapter 5 measures this).

``width`` multiplies every channel count (``width=1/8``: 8-16-32-64-64-64-64 channels), so the
network fits this 2-core machine; ``width=1`` is the paper's (9.2M parameters for CIFAR-10).

``spiking=False`` builds the network's non-spiking twin, the reference a spiking run is judged
against: every LIF neuron becomes a ReLU, and everything else (scaled weight-standardised convs,
the γ scale, the pools, the classifier and the non-spiking readout) stays, so it has exactly the
spiking network's parameters. Only the constant γ differs: 2.74 is the authors' value for spikes;
after a ReLU the weight-standardisation papers' own γ = sqrt(2 / (1 - 1/π)) ≈ 1.71 (NF-Nets, Brock
et al. 2021) keeps the activations' scale from layer to layer, where 2.74 makes them grow by
about 1.6x per layer and a deep twin diverge. It is stateless, so on static input every step computes the same
output (train and evaluate it with T = 1).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from snnlab.checks import check_positive
from snnlab.layers.scaled_ws import OTTT_GAMMA, ScaledWSConv2d, SpikeScale
from snnlab.models.small import TimeFolded, _check_input, make_neuron
from snnlab.neurons import NonSpikingIntegrator

__all__ = ["OTTT_VGG_CONFIG", "OTTT_NEURON", "RELU_GAMMA", "OTTTVGG", "ottt_vgg", "ottt_vgg_f", "vgg_channels"]

OTTT_VGG_CONFIG: tuple[int | str, ...] = (64, 128, "A", 256, "A", 512, 512, "A", 512, 512)
"""[0096]: numbers are 3x3 conv output channels, "A" a 2x2 average pool (GAP and FC follow)."""

OTTT_NEURON = dict(neuron="lif", tau=2.0, v_threshold=1.0, v_reset=None, detach_reset=True,
                   decay_input=False, surrogate="sigmoid")
"""OTTT's neuron: λ = 1 - 1/τ = 0.5, V_th = 1, soft reset (detached), input not decayed, sigmoid α=4."""


RELU_GAMMA = math.sqrt(2.0 / (1.0 - 1.0 / math.pi))
"""γ of scaled weight standardisation after a ReLU (NF-Nets, Brock et al. 2021): about 1.713."""


def vgg_channels(width: float, config: Sequence[int | str] = OTTT_VGG_CONFIG) -> list[int | str]:
    """The config with every channel count multiplied by ``width`` (at least 1 channel)."""
    check_positive("width", width)
    return [c if c == "A" else max(1, int(round(c * width))) for c in config]


class OTTTVGG(nn.Module):
    """OTTT's VGG (``feedback=False``) or VGG-F (``feedback=True``); input ``[T, B, C, H, W]``,
    output ``[T, B, num_classes]`` (the output layer's potential u^N[t] at every step)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, *, width: float = 1.0,
                 feedback: bool = False, gamma: float | None = None, weight_standardization: bool = True,
                 config: Sequence[int | str] = OTTT_VGG_CONFIG, spiking: bool = True, feedback_scale: float = 1.0,
                 **neuron_options) -> None:
        super().__init__()
        if not spiking and neuron_options:
            raise ValueError(f"a non-spiking VGG (spiking=False) has no neuron options, got {sorted(neuron_options)}.")
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(f"OTTTVGG needs per-step input shape (C, H, W), got {self.input_shape}.")
        channels = vgg_channels(width, config)
        if not channels or channels[0] == "A":
            raise ValueError(f"the VGG config must start with a conv layer, got {list(config)}.")
        neuron = {**OTTT_NEURON, **neuron_options}
        if gamma is None:
            gamma = OTTT_GAMMA if spiking else RELU_GAMMA
        c, h, w = self.input_shape
        self.first_size = (h, w)
        layers: list[nn.Module] = []
        for item in channels:
            if item == "A":
                if min(h, w) < 2:
                    raise ValueError(f"input {self.input_shape} is too small for the config's average pools.")
                layers.append(TimeFolded(nn.AvgPool2d(2)))
                h, w = h // 2, w // 2
                continue
            conv = (ScaledWSConv2d(c, item, 3, padding=1) if weight_standardization
                    else nn.Conv2d(c, item, 3, padding=1))
            unit = make_neuron(**neuron) if spiking else nn.ReLU()
            layers += [TimeFolded(conv), unit, SpikeScale(gamma)]
            c = item
        # layers[0] is the first conv; layers[1:] runs from the first neuron to the last hidden layer.
        self.first_conv = layers[0]
        self.hidden = nn.Sequential(*layers[1:])
        self.pool = TimeFolded(nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(c, num_classes)
        self.readout = NonSpikingIntegrator(decay=0.0, step_mode="m")
        # decay 0: u^N[t] does not depend on u^N[t-1], so cutting that (zero-gradient) edge is exact for
        # every method, and it keeps one step's graph from reaching into the previous step's (online methods).
        self.readout.cut_temporal_grad = True
        self.width = float(width)
        self.spiking = bool(spiking)
        self.has_feedback = bool(feedback)
        self.feedback = None
        self.feedback_scale = check_positive("feedback_scale", feedback_scale)
        if feedback_scale != 1.0 and not feedback:
            raise ValueError("feedback_scale applies to VGG-F (feedback=True) only.")
        if feedback:
            first_channels = channels[0]
            self.feedback = TimeFolded(nn.Conv2d(c, first_channels, 3, padding=1, bias=False))
            nn.init.zeros_(self.feedback.layers.weight)
        self._fb: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the feedback state (start of a sequence); neurons reset themselves."""
        self._fb = None

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.readout(self.classifier(self.pool(hidden).flatten(2)))

    def _feedback_step(self, x_t: torch.Tensor) -> torch.Tensor:
        z = self.first_conv(x_t)
        if self._fb is not None:
            if self._fb.shape[1] != x_t.shape[1]:
                raise ValueError("the batch size changed within a sequence; reset the model (reset_model) first.")
            T1, B = self._fb.shape[:2]
            up = F.interpolate(self._fb.flatten(0, 1), size=self.first_size, mode="nearest")
            fb = self.feedback(up.reshape(T1, B, *up.shape[1:]))
            z = z + (fb if self.feedback_scale == 1.0 else self.feedback_scale * fb)
        hidden = self.hidden(z)
        self._fb = hidden.detach()
        return hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.input_shape)
        if self.feedback is None:
            return self._head(self.hidden(self.first_conv(x)))
        return torch.cat([self._head(self._feedback_step(x[t : t + 1])) for t in range(x.shape[0])])

    def extra_repr(self) -> str:
        return (f"width={self.width}, feedback={self.has_feedback}" + ("" if self.spiking else ", spiking=False")
                + ("" if self.feedback_scale == 1.0 else f", feedback_scale={self.feedback_scale}"))


def ottt_vgg(*, num_classes: int, input_shape: Sequence[int], T: int | None = None, width: float = 1.0,
             **options) -> OTTTVGG:
    """OTTT's spiking VGG ([0096]) with a channel ``width`` multiplier."""
    return OTTTVGG(input_shape, num_classes, width=width, feedback=False, **options)


def ottt_vgg_f(*, num_classes: int, input_shape: Sequence[int], T: int | None = None, width: float = 1.0,
               **options) -> OTTTVGG:
    """OTTT's VGG-F: the VGG plus a zero-initialised feedback conv from the last hidden layer to the first."""
    return OTTTVGG(input_shape, num_classes, width=width, feedback=True, **options)
