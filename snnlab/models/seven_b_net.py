"""7B-Net and Wide-7B-Net: SEW ResNet's small networks for event data (section 4.2-4.3).

* 7B-Net (DVS Gesture): c32k3s1-BN-PLIF-{SEW Block(c32)-MPk2s2}*7-FC11, 0.13M parameters (Table 5).
* Wide-7B-Net (CIFAR10-DVS): c64k3s1-BN-PLIF-{SEW Block(c64)-MPk2s2}*4-c128k3s1-BN-PLIF-
  {SEW Block(c128)-MPk2s2}*3-FC10, 1.19M parameters (Table 6).

**The stem.** The paper's names say a 3x3 stem ("c32k3s1"); the authors' code
(``dvsgesture/smodels.py``, ``cifar10dvs/smodels.py``: ``up_kernel_size=1``) builds a 1x1
conv-BN-PLIF from the 2 polarity channels. snnlab follows the code by default (``stem_kernel=1``:
130,426 and 1,192,218 parameters); ``stem_kernel=3`` builds the paper's naming (+512 and +1,024
parameters: 130,938 and 1,193,242). Both round to the paper's 0.13M and 1.19M.

A SEW Block keeps its channels: conv3x3-BN-PLIF-conv3x3-BN-PLIF, then g(A, S)
(:class:`~snnlab.layers.residual.BasicBlock`); ``kind="spiking"`` and ``kind="plain"`` swap in the
Spiking ResNet and plain blocks of Table 4. Neurons: PLIF with initial τ = 2 (1/τ = sigmoid(w)),
V_th = 1, hard reset to 0, reset detached, ArcTan α = 2 (authors' code).

Where the channel count changes *between* stages the authors' code uses a 1x1 conv-BN-PLIF too: that
is what gives the paper's 1.19M parameters for Wide-7B-Net (a 3x3 "c128k3s1" would give 1.26M). Input ``[T, B, C, H, W]`` (C = 2 polarities); output
``[T, B, num_classes]``. A max pool is skipped once the feature map is 1x1, so inputs smaller than
2^7 pixels work (the paper's DVS frames are 128x128).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from snnlab.checks import check_tensor
from snnlab.layers.residual import BasicBlock, ResidualBlock, SeqConvBN, spiking_neuron
from snnlab.layers.sew import check_connect

__all__ = ["SEVEN_B_NET", "WIDE_SEVEN_B_NET", "SevenBNet", "seven_b_net", "wide_seven_b_net"]

SEVEN_B_NET = (32,) * 7
"""Channels of the 7 SEW blocks of 7B-Net."""
WIDE_SEVEN_B_NET = (64,) * 4 + (128,) * 3
"""Channels of the 7 SEW blocks of Wide-7B-Net."""

_PAPER_NEURON = dict(neuron="plif", tau=2.0, v_threshold=1.0, v_reset=0.0, detach_reset=True)


class SevenBNet(nn.Module):
    """stem conv(``stem_kernel``)-BN-SN (1x1 as in the authors' code; see the module docstring),
    then per entry of ``channels``: [conv1x1-BN-SN if the channels change]
    -> block -> MaxPool 2x2, then a linear classifier on the flattened map (per step).

    ``kind``: ``"sew"`` (with ``cnf``), ``"spiking"`` or ``"plain"``; ``zero_init`` as in SEW ResNet;
    neuron options override the PLIF defaults (e.g. ``neuron="if"``, ``alpha=3``). ``pool_every=2``
    pools after every second block: with ``neuron="if"``, ``channels=(32,)*10`` and ``stem_kernel=3`` that
    is the network of SEW ResNet's Table 9, c32k3s1-BN-IF-{{SEW Block(c32)}*2-MPk2s2}*5-FC10.
    """

    def __init__(self, channels: Sequence[int] = SEVEN_B_NET, *, num_classes: int = 11,
                 input_shape: Sequence[int] = (2, 128, 128), kind: str = "sew", cnf: str = "ADD",
                 zero_init: bool = False, stem_kernel: int = 1, pool_every: int = 1, **neuron_options) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be the per-step shape (C, H, W), got {tuple(input_shape)}.")
        channels = tuple(channels)
        if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty sequence of ints >= 1, got {channels!r}.")
        if isinstance(pool_every, bool) or not isinstance(pool_every, int) or pool_every < 1:
            raise ValueError(f"pool_every must be an int >= 1, got {pool_every!r}.")
        self.kind = kind
        self.cnf = check_connect(cnf) if kind == "sew" else None
        neuron = {**_PAPER_NEURON, **neuron_options}
        c, h, w = self.input_shape
        self.stem = nn.Sequential(SeqConvBN(c, channels[0], stem_kernel), spiking_neuron(**neuron))
        layers: list[nn.Module] = []
        blocks: list[ResidualBlock] = []
        c = channels[0]
        for i, out in enumerate(channels):
            if out != c:
                layers.append(nn.Sequential(SeqConvBN(c, out, 1), spiking_neuron(**neuron)))
                c = out
            block = BasicBlock(c, c, 1, kind=kind, cnf=cnf, **neuron)
            blocks.append(block)
            layers.append(block)
            if (i + 1) % pool_every == 0 and min(h, w) >= 2:
                layers.append(_SeqMaxPool())
                h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.blocks = nn.ModuleList(blocks)  # the same modules, for analysis (registered twice, counted once)
        self.fc = nn.Linear(c * h * w, num_classes)
        if zero_init:
            for b in self.blocks:
                b.zero_init_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("7B-Net input [T, B, C, H, W]", x, dims=5)
        if tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(f"the network was built for per-step input {self.input_shape} and expects "
                             f"[T, B, {', '.join(map(str, self.input_shape))}], got {tuple(x.shape)}.")
        y = self.features(self.stem(x))
        return self.fc(y.flatten(2))


class _SeqMaxPool(nn.Module):
    """MaxPool 2x2 stride 2 on ``[T, B, C, H, W]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.max_pool2d(x.flatten(0, 1), 2).unflatten(0, x.shape[:2])


def seven_b_net(*, num_classes: int = 11, input_shape: Sequence[int] = (2, 128, 128), T: int | None = None,
                channels: Sequence[int] = SEVEN_B_NET, **options) -> SevenBNet:
    """7B-Net (SEW ResNet, section 4.2); ``channels`` narrows or shortens it (one entry per block)."""
    return SevenBNet(channels, num_classes=num_classes, input_shape=input_shape, **options)


def wide_seven_b_net(*, num_classes: int = 10, input_shape: Sequence[int] = (2, 128, 128), T: int | None = None,
                     channels: Sequence[int] = WIDE_SEVEN_B_NET, **options) -> SevenBNet:
    """Wide-7B-Net (SEW ResNet, section 4.3)."""
    return SevenBNet(channels, num_classes=num_classes, input_shape=input_shape, **options)
