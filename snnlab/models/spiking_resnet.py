"""Spiking ResNet (the block SEW ResNet compares against, its Fig. 1b and eq. 7) and the plain net.

Same ImageNet layout as :mod:`snnlab.models.sew_resnet` (:class:`SpikingResNetLayout`), with
``O = SN(F(S) + S)`` blocks and a conv1x1-BN downsample shortcut without SN (``spiking_resnet*``), or
with no shortcut at all (``plain_resnet*``, SEW ResNet's "plain net", Table 4).
"""

from __future__ import annotations

from snnlab.models.sew_resnet import SpikingResNetLayout, _builder

__all__ = [
    "SpikingResNetLayout",
    "spiking_resnet18",
    "spiking_resnet34",
    "spiking_resnet50",
    "spiking_resnet101",
    "spiking_resnet152",
    "plain_resnet18",
    "plain_resnet34",
    "plain_resnet50",
    "plain_resnet101",
    "plain_resnet152",
]

spiking_resnet18 = _builder(18, "spiking")
spiking_resnet34 = _builder(34, "spiking")
spiking_resnet50 = _builder(50, "spiking")
spiking_resnet101 = _builder(101, "spiking")
spiking_resnet152 = _builder(152, "spiking")

plain_resnet18 = _builder(18, "plain")
plain_resnet34 = _builder(34, "plain")
plain_resnet50 = _builder(50, "plain")
plain_resnet101 = _builder(101, "plain")
plain_resnet152 = _builder(152, "plain")
