"""A small ATSN network whose neurons spike, shared by the adaptive-inference tests."""

from __future__ import annotations

import torch
from torch import nn

from snnlab.models import build_model


def atsn_net(output: str = "integrator", bn: bool = True, seed: int = 0) -> nn.Module:
    """AtsnVGG on 1x8x8 inputs (conv 6-8, hidden 16, T = 4), weights scaled up and batch-norm
    statistics randomised so that every LIF layer spikes; in eval mode."""
    torch.manual_seed(seed)
    net = build_model("atsn_vgg", num_classes=10, input_shape=(1, 8, 8), T=4, output=output, bn=bn,
                      channels=(6, 8), hidden=(16,))
    with torch.no_grad():  # stronger weights so that the LIF layers spike
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(3.0)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.2, 0.5)
    return net.eval()
