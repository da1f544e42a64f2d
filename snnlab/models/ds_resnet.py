"""DS-ResNet: the dormant-suppressed residual network of MLF (Feng et al. 2022; Qu et al. 2024, Fig. 1).

A ResNet whose BN + ReLU pairs are replaced by tdBN + MLF (:class:`~snnlab.layers.tdbn.TDBatchNorm`,
:class:`~snnlab.neurons.MLFNode`), with the MLF unit placed *before* the shortcut addition
(authors' code, langfengQ/MLF-DSResNet):

    block:    O = MLF(tdBN(conv3x3(MLF(tdBN(conv3x3(S)))))) + shortcut(S)
    shortcut: S (identity) or MLF(tdBN(conv1x1(S, stride)))

Since every branch ends in an MLF unit (outputs 0..K), block outputs are integer sums, not binary
spikes. Network: conv3x3-tdBN-MLF stem, stages of blocks (stride 2 at the start of every stage but
the first), global average pooling, and a linear classifier applied at every step, so the model
maps ``[T, B, C, H, W]`` to ``[T, B, num_classes]``.

``attention`` adds the spatial attention module (SAM) of Qu et al. (eq. 18). The paper's text says
both that its network has "two SAM modules" (sec. 3.1; Fig. 3, which would show where, is not in
the text) and that feature maps are refined by SAM "at every convolutional block" (sec. 3.4, CBAM's
wording). Two placements:

- ``"blocks"`` (``True``): CBAM's placement in a residual network (Woo et al. 2018, Fig. 3), one SAM
  on every block's residual branch, after its last MLF unit and before the shortcut addition:
  ``O = SAM(MLF(tdBN(conv(A)))) + shortcut(S)``. In :func:`ds_resnet_small` (two blocks) this gives
  exactly two SAMs, so both statements of the paper hold; :func:`ds_resnet20` gets nine.
- ``"ends"``: one SAM after the stem and one after the last stage, the common way of adding two
  CBAMs to a ResNet without changing its blocks. The second SAM then gates the only path to the
  classifier: a sigmoid map that shrinks towards 0 shrinks every logit, which lowers the
  cross-entropy of an untrained network, and once it has saturated no gradient passes through it
  (the map's derivative and the features it multiplies are both near 0). On the book's event
  digits this network stays at chance; chapter 4 measures it.

``thresholds`` are the MLF levels (0.6, 1.6, 2.6); ``thresholds=(0.6,)`` makes every unit a single
LIF with the same decay, reset and surrogate (the "LIF" network of the dormant-unit comparison).
``neuron="relu"`` replaces every MLF unit by a ReLU: the non-spiking ANN of the same shape (same
convolutions, normalisation, shortcuts, attention and classifier), applied to every step on its
own, which is the baseline a spiking network of this shape is measured against.

Sizes: :func:`ds_resnet20` is the paper's CIFAR-10 network (three stages of three blocks, widths 64,
128, 256: 4.32 M parameters, Qu et al. Table 3); :func:`ds_resnet_small` (one block per stage,
widths 8 and 16) trains on this machine's 2 CPU cores.
"""

from __future__ import annotations

from typing import Sequence

ATTENTION_PLACEMENTS = ("blocks", "ends")

import torch
from torch import nn

from snnlab.checks import check_positive, check_tensor
from snnlab.layers.attention import SpatialAttention
from snnlab.layers.tdbn import TDBatchNorm
from snnlab.neurons import MLFNode
from snnlab.surrogate import Rectangular

__all__ = ["DSBlock", "DSResNet", "ds_resnet", "ds_resnet20", "ds_resnet_small", "mlf_unit"]

MLF_THRESHOLDS = (0.6, 1.6, 2.6)


def mlf_unit(thresholds: Sequence[float] = MLF_THRESHOLDS, *, decay: float = 0.25, surrogate_width: float = 1.0,
             backend: str = "auto") -> MLFNode:
    """A multi-step MLF unit with the MLF code's settings: decay 0.25, hard reset to 0, rectangular
    surrogate of width ``surrogate_width`` (height 1/width) for every level."""
    return MLFNode(tuple(float(t) for t in thresholds), decay=decay, surrogate=Rectangular(width=surrogate_width),
                   step_mode="m", backend=backend)


class ConvTDBN(nn.Module):
    """conv (no bias) -> tdBN on ``[T, B, C, H, W]``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, v_threshold: float,
                 alpha: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                              bias=False)
        self.bn = TDBatchNorm(out_channels, v_threshold=v_threshold, alpha=alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.flatten(0, 1))
        return self.bn(y.unflatten(0, x.shape[:2]))


class DSBlock(nn.Module):
    """DS-ResNet basic block (module docstring): MLF before the shortcut addition."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1, *, unit=mlf_unit, tdbn_threshold: float = 1.0,
                 tdbn_alpha: float = 1.0, attention: nn.Module | None = None) -> None:
        super().__init__()
        self.attention = attention  # SAM on the residual branch, before the addition (CBAM's placement)
        opts = dict(v_threshold=tdbn_threshold, alpha=tdbn_alpha)
        self.conv1 = ConvTDBN(in_channels, planes, 3, stride, **opts)
        self.sn1 = unit()
        self.conv2 = ConvTDBN(planes, planes, 3, 1, **opts)
        self.sn2 = unit()
        self.shortcut = None
        if stride != 1 or in_channels != planes:
            self.shortcut = nn.Sequential(ConvTDBN(in_channels, planes, 1, stride, **opts), unit())

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        out = self.sn2(self.conv2(self.sn1(self.conv1(s))))
        if self.attention is not None:
            out = self.attention(out)
        return out + (s if self.shortcut is None else self.shortcut(s))


class DSResNet(nn.Module):
    """Stem, stages of :class:`DSBlock`, global average pooling, per-step linear classifier."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, *, widths: Sequence[int] = (64, 128, 256),
                 blocks: Sequence[int] = (3, 3, 3), thresholds: Sequence[float] = MLF_THRESHOLDS,
                 decay: float = 0.25, surrogate_width: float = 1.0, attention: bool | str = False,
                 attention_kernel: int = 7, tdbn_threshold: float = 1.0, tdbn_alpha: float = 1.0,
                 neuron: str = "mlf", backend: str = "auto") -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(f"DS-ResNet needs per-step input shape (C, H, W), got {self.input_shape}.")
        widths, blocks = [int(w) for w in widths], [int(b) for b in blocks]
        if not widths or len(widths) != len(blocks) or min(widths) < 1 or min(blocks) < 1:
            raise ValueError(f"widths and blocks must be equally long lists of ints >= 1, got {widths} and {blocks}.")
        check_positive("surrogate_width", surrogate_width)
        if attention is True:
            attention = "blocks"
        if attention is not False and attention is not None and attention not in ATTENTION_PLACEMENTS:
            raise ValueError(f"attention must be False, True or one of {ATTENTION_PLACEMENTS}, got {attention!r}.")
        self.attention = attention or None
        if neuron not in ("mlf", "relu"):
            raise ValueError(f"neuron must be 'mlf' (spiking) or 'relu' (the ANN of the same shape), got {neuron!r}.")
        self.thresholds = tuple(float(t) for t in thresholds)
        self.neuron = neuron

        def unit() -> nn.Module:
            if neuron == "relu":
                return nn.ReLU()
            return mlf_unit(self.thresholds, decay=decay, surrogate_width=surrogate_width, backend=backend)

        opts = dict(unit=unit, tdbn_threshold=tdbn_threshold, tdbn_alpha=tdbn_alpha)
        self.stem = ConvTDBN(self.input_shape[0], widths[0], 3, 1, tdbn_threshold, tdbn_alpha)
        self.stem_sn = unit()
        ends = self.attention == "ends"
        self.attention_in = SpatialAttention(attention_kernel) if ends else None
        layers: list[nn.Module] = []
        in_ch = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                sam = SpatialAttention(attention_kernel) if self.attention == "blocks" else None
                layers.append(DSBlock(in_ch, w, stride=2 if (i > 0 and j == 0) else 1, attention=sam, **opts))
                in_ch = w
        self.layers = nn.Sequential(*layers)
        self.attention_out = SpatialAttention(attention_kernel) if ends else None
        self.classifier = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("DS-ResNet input [T, B, C, H, W]", x, dims=5)
        if tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(f"DS-ResNet expects [T, B, {', '.join(map(str, self.input_shape))}], got {tuple(x.shape)}.")
        h = self.stem_sn(self.stem(x))
        if self.attention_in is not None:
            h = self.attention_in(h)
        h = self.layers(h)
        if self.attention_out is not None:
            h = self.attention_out(h)
        return self.classifier(h.mean(dim=(3, 4)))


def ds_resnet(*, num_classes: int, input_shape: Sequence[int], T: int | None = None, **options) -> DSResNet:
    """A DS-ResNet with any ``widths``/``blocks`` and the options of :class:`DSResNet`."""
    return DSResNet(input_shape, num_classes, **options)


def ds_resnet20(*, num_classes: int, input_shape: Sequence[int], T: int | None = None, **options) -> DSResNet:
    """The paper's CIFAR-10 DS-ResNet: 3 stages x 3 blocks, widths 64/128/256 (4.32 M parameters at 10 classes)."""
    return DSResNet(input_shape, num_classes, **{"widths": (64, 128, 256), "blocks": (3, 3, 3), **options})


def ds_resnet_small(*, num_classes: int, input_shape: Sequence[int], T: int | None = None, **options) -> DSResNet:
    """A DS-ResNet for 2 CPU cores: 2 stages x 1 block, widths 8/16."""
    return DSResNet(input_shape, num_classes, **{"widths": (8, 16), "blocks": (1, 1), **options})
