"""SEW ResNet (Fang et al., 2021): the ImageNet ResNet layout with spike-element-wise blocks.

One class, :class:`SpikingResNetLayout`, builds the ImageNet ResNet of depth 18/34/50/101/152 with
any of the three block kinds of :mod:`snnlab.layers.residual` (``"sew"``, ``"spiking"``, ``"plain"``);
this module's builders make SEW ResNets and :mod:`snnlab.models.spiking_resnet` the Spiking ResNets
and plain nets from the same layout, so the three differ only in their blocks.

Layout (torchvision's ResNet v1.5 and the authors' code): stem conv7x7/2-BN-SN-maxpool3x3/2, four
stages of ``width·(1, 2, 4, 8)`` channels (×4 for bottleneck blocks), global average pooling, a
linear classifier. The stem's conv-BN sees a static image once and its output is repeated over T
(the authors' code); event input, whose steps differ, runs the stem on every step. Neurons default to
the paper's: IF, V_th = 1, V_reset = 0, reset detached, ArcTan α = 2. Input ``[T, B, C, H, W]`` of
any resolution; output ``[T, B, num_classes]`` (the classifier on every step; the authors' code
classifies the mean over T, which equals the mean of these outputs because the classifier is linear).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from snnlab.checks import check_choice, check_tensor
from snnlab.layers.residual import BasicBlock, Bottleneck, ResidualBlock, SeqConvBN, spiking_neuron
from snnlab.layers.sew import check_connect

__all__ = [
    "RESNET_DEPTHS",
    "SpikingResNetLayout",
    "sew_resnet18",
    "sew_resnet34",
    "sew_resnet50",
    "sew_resnet101",
    "sew_resnet152",
]

RESNET_DEPTHS: dict[int, tuple[type[ResidualBlock], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
"""ResNet depth -> (block, blocks per stage), He et al. 2016, Table 1."""

_STEMS = ("imagenet", "small")


class SpikingResNetLayout(nn.Module):
    """The ImageNet ResNet layout with spiking blocks.

    Args:
        depth: 18, 34, 50, 101 or 152 (:data:`RESNET_DEPTHS`).
        kind: ``"sew"``, ``"spiking"`` or ``"plain"``.
        cnf: SEW connect function ``"ADD"``, ``"AND"`` or ``"IAND"`` (SEW only).
        num_classes, input_shape: classifier size and the per-step input ``(C, H, W)``.
        width: channels of the first stage (64 in the paper); the stages have width·(1, 2, 4, 8).
        stages: blocks per stage, overriding the depth's (e.g. ``(1, 1, 1, 1)``).
        stem: ``"imagenet"`` (conv7x7/2 + maxpool/2) or ``"small"`` (conv3x3/1, no pool) for tiny images.
        zero_init: SEW ResNet's zero-init of every block's last BN (section 3.3).
        **neuron_options: passed to :func:`~snnlab.layers.residual.spiking_neuron` (``v_threshold``,
            ``alpha``, ``surrogate``, ``neuron``, ...).
    """

    def __init__(self, depth: int = 18, *, kind: str = "sew", cnf: str = "ADD", num_classes: int = 1000,
                 input_shape: Sequence[int] = (3, 224, 224), width: int = 64,
                 stages: Sequence[int] | None = None, stem: str = "imagenet", zero_init: bool = False,
                 **neuron_options) -> None:
        super().__init__()
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_DEPTHS)}, got {depth!r}.")
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be the per-step image shape (C, H, W), got {tuple(input_shape)}.")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an int >= 1, got {width!r}.")
        check_choice("stem", stem, _STEMS)
        block, default_stages = RESNET_DEPTHS[depth]
        stages = tuple(default_stages if stages is None else stages)
        if len(stages) != 4 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in stages):
            raise ValueError(f"stages must be four ints >= 1 (blocks per stage), got {stages!r}.")
        self.depth, self.kind, self.stem_kind = depth, kind, stem
        self.cnf = check_connect(cnf) if kind == "sew" else None
        block_options = dict(kind=kind, cnf=cnf, **neuron_options)
        self.neuron_options = dict(neuron_options)

        in_ch = self.input_shape[0]
        if stem == "imagenet":
            self.stem = SeqConvBN(in_ch, width, 7, stride=2)
            self.stem.conv.padding = (3, 3)
            self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.stem = SeqConvBN(in_ch, width, 3, stride=1)
            self.pool = nn.Identity()
        self.stem_sn = spiking_neuron(**neuron_options)
        blocks: list[ResidualBlock] = []
        channels = width
        for i, n in enumerate(stages):
            planes = width * 2**i
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(channels, planes, stride, **block_options))
                channels = planes * block.expansion
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(channels, num_classes)
        self.num_classes = num_classes
        self.reset_parameters()
        if zero_init:
            self.zero_init_()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The authors' (and torchvision's) initialisation: Kaiming-normal convs (fan_out, ReLU gain),
        BN weight 1 and bias 0; the classifier keeps PyTorch's default."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def downsample_indices(self) -> list[int]:
        """Indices (into :attr:`blocks`) of the downsample blocks (the paper's ∇ marks)."""
        return [i for i, b in enumerate(self.blocks) if b.is_downsample]

    def zero_init_(self) -> "SpikingResNetLayout":
        """Zero-init every block (:meth:`ResidualBlock.zero_init_`)."""
        for b in self.blocks:
            b.zero_init_()
        return self

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[0]
        # (not while torch.compile traces: the test reads the data, which would break the graph; the
        # compiled stem runs on all T copies, which gives the same output up to the rounding of BN's
        # batch statistics in training mode)
        if T > 1 and not torch.compiler.is_compiling() and bool((x[1:] == x[:1]).all()):
            # a static image repeated over T: conv-BN once, then repeat (the authors' code). Folding T
            # identical copies into BN's batch gives the same batch statistics, so the output is the same
            # (only the running variance's n/(n-1) correction uses B instead of T·B).
            y = self.stem(x[:1]).expand(T, -1, -1, -1, -1).contiguous()
        else:
            y = self.stem(x)
        y = self.stem_sn(y)
        return self.pool(y.flatten(0, 1)).unflatten(0, x.shape[:2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("SEW/Spiking ResNet input [T, B, C, H, W]", x, dims=5)
        if tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(f"the network was built for per-step input {self.input_shape} and expects "
                             f"[T, B, {', '.join(map(str, self.input_shape))}], got {tuple(x.shape)}.")
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"need T >= 1 and B >= 1, got shape {tuple(x.shape)}.")
        y = self._stem(x)
        for b in self.blocks:
            y = b(y)
        y = y.mean(dim=(3, 4))  # global average pool -> [T, B, C]
        return self.fc(y)

    def extra_repr(self) -> str:
        return f"depth={self.depth}, kind={self.kind!r}" + (f", g={self.cnf}" if self.cnf else "")


def _builder(depth: int, kind: str):
    def build(*, num_classes: int = 1000, input_shape: Sequence[int] = (3, 224, 224), T: int | None = None,
              **options) -> SpikingResNetLayout:
        return SpikingResNetLayout(depth, kind=kind, num_classes=num_classes, input_shape=input_shape, **options)

    name = {"sew": "sew_resnet", "spiking": "spiking_resnet", "plain": "plain_resnet"}[kind] + str(depth)
    what = {"sew": "SEW ResNet (g = cnf, default ADD)", "spiking": "Spiking ResNet",
            "plain": "plain ResNet layout without shortcuts"}[kind]
    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"{what}-{depth}: ``[T, B, C, H, W] -> [T, B, num_classes]``; options as "
                     f":class:`SpikingResNetLayout` (``cnf``, ``width``, ``zero_init``, ``v_threshold``, ``alpha``, ...).")
    return build


sew_resnet18 = _builder(18, "sew")
sew_resnet34 = _builder(34, "sew")
sew_resnet50 = _builder(50, "sew")
sew_resnet101 = _builder(101, "sew")
sew_resnet152 = _builder(152, "sew")
