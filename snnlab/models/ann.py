"""ReLU ANNs to convert into spiking networks (SC-TTFS paper, section 4: VGG16 and ResNet20 on
CIFAR), plus a small VGG-style net for the embedded 8x8 digits.

These are ordinary (non-spiking) networks, so they live outside the SNN registry
:data:`snnlab.models.MODELS`; :data:`ANN_MODELS` lists them. Conversion-friendly choices, as in
the conversion literature the paper builds on: every BN directly follows its conv/linear inside an
``nn.Sequential`` (so :func:`snnlab.conversion.fold_batchnorm` finds it), every nonlinearity is an
``nn.ReLU`` module (so conversion can swap it for a spiking neuron), pooling is average pooling
(a linear map, which decodes exactly; max pooling of spike times does not), and no biases
before BN.
"""

from __future__ import annotations

from torch import nn

__all__ = ["vgg16", "resnet20", "digits_cnn", "BasicBlock", "ANN_MODELS", "VGG16_CONFIG"]

VGG16_CONFIG = (64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P")
"""Simonyan & Zisserman's configuration D: 13 convs, "P" = 2x2 pooling."""


def _check(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
    return value


def _conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def vgg16(num_classes: int = 10, in_channels: int = 3, width: int = 64, input_size: int = 32) -> nn.Sequential:
    """VGG16 for 32x32 inputs (CIFAR): 13 conv-BN-ReLU layers with 5 average pools, then
    Linear-BN-ReLU, Linear-BN-ReLU, Linear: 16 weighted layers, 15 ReLUs. ``width`` is the first
    stage's channel count (64 in the paper; smaller for this machine)."""
    _check("num_classes", num_classes), _check("in_channels", in_channels), _check("width", width)
    _check("input_size", input_size, 32)
    if input_size % 32:
        raise ValueError(f"VGG16 pools five times: input_size must be a multiple of 32, got {input_size}.")
    layers, cin = [], in_channels
    for item in VGG16_CONFIG:
        if item == "P":
            layers.append(nn.AvgPool2d(2))
        else:
            cout = item * width // 64
            layers += _conv_bn_relu(cin, cout)
            cin = cout
    hidden = 512 * width // 64
    spatial = (input_size // 32) ** 2
    layers += [nn.Flatten(), nn.Linear(cin * spatial, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
               nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
               nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """He et al.'s basic block: ReLU(branch(x) + shortcut(x)), branch = conv-BN-ReLU-conv-BN,
    shortcut = identity or 1x1 conv-BN (projection) when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Sequential()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.branch(x) + self.shortcut(x))


def resnet20(num_classes: int = 10, in_channels: int = 3, width: int = 16) -> nn.Sequential:
    """ResNet20, CIFAR layout (He et al. 2016, section 4.2): conv3x3-BN-ReLU, three stages of
    three basic blocks with ``width``, ``2 width``, ``4 width`` channels (16/32/64 in the paper;
    strides 1, 2, 2), global average pooling, a linear classifier: 19 convs + 1 linear = 20
    weighted layers on the main path, 19 ReLUs. Projection (1x1 conv) shortcuts where the shape
    changes."""
    _check("num_classes", num_classes), _check("in_channels", in_channels), _check("width", width)
    layers = [nn.Sequential(*_conv_bn_relu(in_channels, width))]
    cin = width
    for stage, stride in enumerate((1, 2, 2)):
        cout = width * 2 ** stage
        for block in range(3):
            layers.append(BasicBlock(cin, cout, stride if block == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def digits_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 16, hidden: int = 64) -> nn.Sequential:
    """A small VGG-style net for 8x8 digits (this machine's stand-in for VGG16): conv(w)-conv(w)-
    pool-conv(2w)-pool-Linear(hidden)-Linear, each hidden layer BN-ReLU: 4 spiking layers after
    conversion."""
    _check("num_classes", num_classes), _check("in_channels", in_channels), _check("width", width)
    _check("hidden", hidden)
    return nn.Sequential(
        *_conv_bn_relu(in_channels, width), *_conv_bn_relu(width, width), nn.AvgPool2d(2),
        *_conv_bn_relu(width, 2 * width), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(2 * width * 4, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes))


ANN_MODELS = {"vgg16": vgg16, "resnet20": resnet20, "digits_cnn": digits_cnn}
"""The ANNs the conversion chapter uses, by name (not spiking: not in ``MODELS``)."""
