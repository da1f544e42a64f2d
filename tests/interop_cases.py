"""Networks and helpers shared by the NIR interop tests: one small network per supported layer type,
chapter 5's and chapter 7's networks, and spike collection on both sides of a round trip."""

from __future__ import annotations

import torch
from torch import nn

from snnlab.layers import ScaledWSConv2d, ScaledWSLinear, SpikeScale, TDBatchNorm
from snnlab.models import build_model
from snnlab.models.small import TimeFolded
from snnlab.neurons import BaseNode, IFNode, LIFNode, NonSpikingIntegrator, PLIFNode, StatefulNode, reset_states

DT = 1e-3


def lif(**kw) -> LIFNode:
    return LIFNode(step_mode="m", **kw)


def lin(i: int, o: int, bias: bool = True) -> nn.Linear:
    """A linear layer with mostly excitatory weights, so that the neurons after it fire on [0, 2) input."""
    layer = nn.Linear(i, o, bias=bias)
    with torch.no_grad():
        layer.weight.uniform_(-0.5, 1.0).div_(i ** 0.5)
    return layer


@torch.no_grad()
def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine parameters far from their defaults, so folding is not trivial."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.copy_(torch.rand(n, generator=g) * 0.6 - 0.2)
    return model.eval()


def layer_cases() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """One small multi-step network per supported layer type: name -> (model, per-step input shape)."""
    torch.manual_seed(0)
    img = (2, 8, 8)
    flat = (2 * 4 * 4,)

    def conv_block(neuron, *extra, layer=None):
        return nn.Sequential(TimeFolded(layer or conv(2, 4, padding=1)), neuron, *extra)

    return {
        "Linear+LIF (decayed input, hard reset)": (nn.Sequential(lin(6, 5), lif(tau=2.0, v_reset=0.0)), (6,)),
        "Linear without bias+LIF (undecayed, hard reset to -0.2)": (
            nn.Sequential(lin(6, 5, bias=False), lif(tau=3.0, decay_input=False, v_reset=-0.2)), (6,)),
        "Linear+IF (hard reset)": (nn.Sequential(lin(6, 5), IFNode(step_mode="m", v_threshold=0.8)), (6,)),
        "Linear+IF (soft reset)": (nn.Sequential(lin(6, 5), IFNode(step_mode="m", v_reset=None)), (6,)),
        "Linear+LIF (decayed input, soft reset)": (nn.Sequential(lin(6, 5), lif(tau=2.5, v_reset=None)), (6,)),
        "Linear+LIF (undecayed input, soft reset: OTTT)": (
            nn.Sequential(lin(6, 5), lif(tau=2.0, decay_input=False, v_reset=None)), (6,)),
        "Linear+PLIF (learned tau, hard reset)": (nn.Sequential(lin(6, 5), _plif(v_reset=0.0)), (6,)),
        "Linear+PLIF (learned tau, soft reset)": (nn.Sequential(lin(6, 5), _plif(v_reset=None)), (6,)),
        "Conv2d (stride 2, padding 2, dilation 2)+LIF": (
            conv_block(lif(v_reset=0.0), layer=conv(2, 4, stride=2, padding=2, dilation=2)), img),
        "Conv2d+BatchNorm2d folded+IF": (
            nn.Sequential(TimeFolded(conv(2, 4, padding=1, bias=False), nn.BatchNorm2d(4)),
                          IFNode(step_mode="m")), img),
        "Linear+BatchNorm1d folded+LIF": (
            nn.Sequential(nn.Flatten(2), TimeFolded(lin(128, 7), nn.BatchNorm1d(7)), lif(v_reset=0.0)), img),
        "Conv2d+tdBN folded+LIF": (_tdbn_case(), img),
        "AvgPool2d+Flatten+Linear": (
            nn.Sequential(*conv_block(lif(v_reset=0.0), TimeFolded(nn.AvgPool2d(2))), nn.Flatten(2), lin(64, 3),
                          lif(v_reset=0.0)), img),
        "max pool of spikes (SumPool2d+Threshold)": (
            nn.Sequential(*conv_block(lif(v_reset=0.0), TimeFolded(nn.MaxPool2d(3, 2, 1))), nn.Flatten(2),
                          lin(64, 3), IFNode(step_mode="m")), img),
        "global average pool (AdaptiveAvgPool2d)": (
            nn.Sequential(*conv_block(lif(v_reset=None, decay_input=False), TimeFolded(nn.AdaptiveAvgPool2d(1))),
                          nn.Flatten(2), lin(4, 3), IFNode(step_mode="m")), img),
        "SpikeScale (OTTT's gamma) and scaled WS layers": (
            nn.Sequential(TimeFolded(ScaledWSConv2d(2, 4, 3, padding=1)), lif(v_reset=None, decay_input=False),
                          SpikeScale(2.74), nn.Flatten(2), ScaledWSLinear(256, 5), IFNode(step_mode="m")), img),
        "NonSpikingIntegrator decay 0.5 (LI) / 1 (I) / 0 (OTTT readout)": (
            nn.Sequential(lin(6, 5), lif(v_reset=0.0), lin(5, 4), NonSpikingIntegrator(0.5, step_mode="m"),
                          lin(4, 3), NonSpikingIntegrator(1.0, step_mode="m"), lin(3, 2),
                          NonSpikingIntegrator(0.0, step_mode="m")), (6,)),
        "Flatten of the last two dims": (
            nn.Sequential(conv_block(lif(v_reset=0.0)), TimeFolded(nn.Flatten(2)), TimeFolded(nn.Conv1d(4, 3, 3)),
                          IFNode(step_mode="m")), img),
    }


def conv(i: int, o: int, k: int = 3, **kw) -> nn.Conv2d:
    """A convolution with mostly excitatory weights (as :func:`lin`)."""
    layer = nn.Conv2d(i, o, k, **kw)
    with torch.no_grad():
        layer.weight.uniform_(-0.5, 1.0).div_((i * k * k) ** 0.5)
    return layer


def _plif(**kw) -> PLIFNode:
    node = PLIFNode(init_tau=2.0, step_mode="m", **kw)
    with torch.no_grad():
        node.w.fill_(0.3137)  # a learned-looking tau = 1/sigmoid(w), not the initial 2
    return node


def _tdbn_case() -> nn.Module:
    class ConvTD(nn.Module):  # conv then tdBN on [T, B, C, H, W], as DS-ResNet's ConvTDBN
        def __init__(self):
            super().__init__()
            self.conv = TimeFolded(conv(2, 4, padding=1))
            self.bn = TDBatchNorm(4, v_threshold=0.6, alpha=0.7)

        def forward(self, x):
            return self.bn(self.conv(x))

    block = ConvTD()
    return nn.Sequential(block.conv, block.bn, lif(v_reset=0.0, v_threshold=0.3))


def model_cases() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """snnlab's models at a small width: name -> (model, per-step input shape)."""
    return {
        "chapter 5: OTTT VGG (soft reset, scaled WS, gamma, GAP, decay-0 readout)": (
            build_model("ottt_vgg", num_classes=10, input_shape=(1, 16, 16), T=4, width=1 / 16), (1, 16, 16)),
        "chapter 7: ATSN VGG (BN, LIF, max pool of spikes, non-reset output)": (
            build_model("atsn_vgg", num_classes=10, input_shape=(1, 8, 8), T=4, hidden=(12,)), (1, 8, 8)),
        "SEW ResNet-18 ADD (IF, imagenet stem with max pool)": (
            build_model("sew_resnet18", num_classes=10, input_shape=(2, 32, 32), T=4, width=4, stages=(2, 1, 1, 1)),
            (2, 32, 32)),
        "Spiking ResNet-18 (SN after the add)": (
            build_model("spiking_resnet18", num_classes=10, input_shape=(2, 16, 16), T=4, width=4, stem="small",
                        stages=(1, 1, 1, 1)), (2, 16, 16)),
        "7B-Net, Spiking ResNet blocks (PLIF)": (
            build_model("seven_b_net", num_classes=11, input_shape=(2, 16, 16), T=4, channels=(4, 4, 8),
                        kind="spiking"), (2, 16, 16)),
        "spiking CNN (OTTT defaults)": (build_model("spiking_cnn", num_classes=10, input_shape=(1, 8, 8), T=4), (1, 8, 8)),
        "spiking MLP (PLIF, hard reset)": (
            build_model("spiking_mlp", num_classes=10, input_shape=(1, 8, 8), T=4, neuron="plif", v_reset=0.0),
            (1, 8, 8)),
    }


def drive(shape: tuple[int, ...], T: int = 8, B: int = 4, seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(T, B, *shape, generator=g) * scale


@torch.no_grad()
def stateful_outputs(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The model's output and every neuron/integrator layer's output, by module path."""
    outs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: outs.__setitem__(name, out))
             for name, m in model.named_modules() if isinstance(m, StatefulNode)]
    reset_states(model)
    try:
        y = model(x)
    finally:
        for h in hooks:
            h.remove()
        reset_states(model)
    return y, outs


def imported_layer(net, name: str) -> str:
    """The imported network's layer for the original module path (a soft reset goes by its Threshold)."""
    for candidate in (name, f"{name}.fire", f"{name}.LI", f"{name}.I"):
        if candidate in net.order:
            return candidate
    raise KeyError(f"{name} not among {net.order}")


def is_spiking(module: nn.Module) -> bool:
    return isinstance(module, BaseNode)
