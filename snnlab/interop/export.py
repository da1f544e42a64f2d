"""Export an snnlab network as a NIR graph: :func:`to_nir`.

The exporter walks the network's layers in the order its ``forward`` applies them (it knows how
each snnlab model wires its layers; any ``nn.Sequential`` of supported layers works too) and writes
one NIR node per layer, named by the layer's path in the model (``features.3``). Signals are
tracked as the set of nodes whose outputs sum to them, because NIR adds the edges that enter a node
(the convention nirtorch's tracer follows too): a SEW ADD block ``A + S`` has no node of its own,
every layer that reads it receives one edge from ``A`` and one from each node summed in ``S``, so a
residual network exports as a graph with branches.

What each layer becomes (per-sample shapes, time and batch excluded):

* ``nn.Linear`` -> ``Affine`` (``Linear`` without bias); ``nn.Conv2d`` -> ``Conv2d``; a scaled
  weight-standardised layer (OTTT) exports its standardised weight.
* ``BatchNorm1d/2d`` and tdBN directly after a conv/linear layer are folded into it with their
  running statistics (SC-TTFS eq. 24, :func:`snnlab.conversion.fold_conv_bn`): the graph describes
  the network in eval mode.
* ``nn.AvgPool2d`` -> ``AvgPool2d``; global average pooling -> ``AvgPool2d`` over the whole map;
  flattening -> ``Flatten``; :class:`~snnlab.layers.SpikeScale` (OTTT's γ) -> ``Scale``.
* Max pooling has no NIR 1.0 node. Over binary spikes it is their OR, ``[Σ s > 1/2]``, so a max pool
  whose input is one spiking layer's output is written as ``SumPool2d`` + ``Threshold(0.5)``
  (exact); any other max pool is refused.
* IF / LIF / PLIF neurons and the non-spiking output integrator: see
  :mod:`snnlab.interop.neuron_map` (hard reset: one ``IF``/``LIF`` node; soft reset: a membrane,
  ``Threshold`` and ``Scale`` loop).
* Dropout and identity layers vanish (the graph is an inference graph).

Refused, with the layer's name and the reason (:class:`UnsupportedLayerError`): the MLF unit, SEW's
AND/IAND connections, spatial attention, the TTFS/SC-TTFS neurons, OTTT's VGG-F feedback, and any
layer type without a mapping. ``dt`` is recorded in the graph's metadata (``metadata["dt"]``,
seconds) next to ``time_unit``, the exporter and the model class.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import nir
import numpy as np
import torch
from torch import nn

import snnlab
from snnlab.checks import check_positive
from snnlab.conversion.bn_folding import fold_conv_bn
from snnlab.conversion.ttfs import SCTTFSNeuron
from snnlab.interop.importer import Heaviside, NIRNetwork, Scale, SumPool2d
from snnlab.interop.neuron_map import Fragment, integrator_fragment, neuron_fragment
from snnlab.layers.attention import SpatialAttention
from snnlab.layers.residual import Downsample, ResidualBlock, SeqConvBN
from snnlab.layers.scaled_ws import ScaledWSConv2d, ScaledWSLinear, SpikeScale
from snnlab.layers.tdbn import TDBatchNorm
from snnlab.models.atsn_vgg import AtsnVGG
from snnlab.models.seven_b_net import SevenBNet, _SeqMaxPool
from snnlab.models.sew_resnet import SpikingResNetLayout
from snnlab.models.small import SpikingCNN, SpikingMLP, TimeFolded
from snnlab.models.vgg import OTTTVGG
from snnlab.neurons import BaseNode, MLFNode, NonSpikingIntegrator

__all__ = ["to_nir", "write_graph", "UnsupportedLayerError", "EXPORTED_MODELS", "EXPORTED_LAYERS", "REFUSED_LAYERS"]


class UnsupportedLayerError(ValueError):
    """A layer NIR 1.0 (or snnlab's mapping) cannot express; ``layer`` is its path in the model."""

    def __init__(self, layer: str, kind: str, reason: str) -> None:
        self.layer, self.kind, self.reason = layer, kind, reason
        super().__init__(f"cannot export layer {layer!r} ({kind}) to NIR: {reason}")


EXPORTED_LAYERS: dict[str, str] = {
    "nn.Linear (ScaledWSLinear: its standardised weight)": "Affine, or Linear without a bias",
    "nn.Conv2d (ScaledWSConv2d: its standardised weight), nn.Conv1d": "Conv2d / Conv1d (groups=1, zero padding)",
    "BatchNorm1d/2d, tdBN after a conv or linear layer": "folded into that layer's Affine/Conv2d (running statistics)",
    "nn.AvgPool2d, global / adaptive average pooling": "AvgPool2d",
    "max pool of one spiking layer's output": "SumPool2d + Threshold(0.5) (the OR of binary spikes)",
    "flattening (nn.Flatten, a model's flatten)": "Flatten",
    "SpikeScale (OTTT's γ)": "Scale",
    "IF / LIF / PLIF, hard reset": "IF / LIF (PLIF: its learned τ, and metadata to rebuild a PLIF)",
    "IF / LIF / PLIF, soft reset": "I / LI -> Threshold -> Scale, fed back one step later",
    "NonSpikingIntegrator (ATSN / OTTT output layer)": "LI (decay < 1) or I (decay 1)",
    "SEW ADD, Spiking ResNet and plain residual blocks": "summed edges: branches, no node for the sum",
    "nn.Dropout, nn.Identity": "nothing (an inference graph)",
}
"""What each supported layer becomes in the graph (the appendix's table)."""

REFUSED_LAYERS: dict[str, str] = {
    "MLFNode": (
        "NIR 1.0 has no multi-level neuron: an MLF unit keeps K potentials with K thresholds and emits up to K "
        "spikes per step (Qu et al. 2024), while NIR's IF/LIF nodes have one potential and one threshold. "
        "snnlab does not rewrite it as K separate LIF populations (a reader would rebuild K independent "
        "layers, not the MLF unit)."),
    "SEW AND": "NIR 1.0 has no node that multiplies two signals; SEW's AND connection is g = A·S, and NIR "
               "combines signals only by summing the edges that enter a node.",
    "SEW IAND": "NIR 1.0 has no node that multiplies two signals; SEW's IAND connection is g = (1 - A)·S, and NIR "
                "combines signals only by summing the edges that enter a node.",
    "SpatialAttention": "NIR 1.0 has no sigmoid, no pooling across channels (mean and max over C) and no product "
                        "of two signals, and spatial attention (Qu et al. 2024, eq. 18) computes F·σ(conv([mean_c F; "
                        "max_c F])).",
    "SCTTFSNeuron": "NIR 1.0's neurons have constant thresholds and no coding window; the SC-TTFS neuron compares a "
                    "potential held over an encoding window with exponentially decaying thresholds "
                    "θ(t) = α·exp(-kt + β) (SC-TTFS eqs. 9-14) and its output is decoded from spike times.",
    "VGG-F feedback": "VGG-F's feedback upsamples the last hidden layer (nearest neighbour) to the first layer's "
                      "size; NIR 1.0 has no upsampling node.",
    "max pool": "max pooling has no NIR 1.0 node. snnlab writes it as SumPool2d + Threshold(0.5), the OR of binary "
                "spikes, but this pool's input is not one spiking layer's output (e.g. a SEW ADD sum, whose values "
                "are 0, 1, 2, ...), so that rewrite would not be exact.",
}
"""Why each refused layer cannot be written as NIR 1.0 primitives (the errors quote these)."""


@dataclass(frozen=True)
class _Signal:
    """A per-sample tensor in the graph being written: the nodes whose outputs sum to it, its shape,
    and whether it is known to hold binary spikes (one spiking layer's output)."""

    sources: tuple[str, ...]
    shape: tuple[int, ...]
    binary: bool = False


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy().copy()


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


@torch.no_grad()
def _out_shape(layer: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(layer(torch.zeros(1, *shape)).shape[1:])


@torch.no_grad()
def _plain_affine(layer: nn.Module) -> nn.Module:
    """A plain ``nn.Conv2d``/``nn.Linear`` computing what ``layer`` computes (standardised weight for OTTT's
    scaled weight-standardised layers), so that a BatchNorm can be folded into it."""
    if isinstance(layer, (ScaledWSConv2d, ScaledWSLinear)):
        weight = layer.standardized_weight()
        if isinstance(layer, ScaledWSConv2d):
            plain = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                              layer.padding, layer.dilation, layer.groups, layer.bias is not None,
                              layer.padding_mode)
        else:
            plain = nn.Linear(layer.in_features, layer.out_features, layer.bias is not None)
        plain.weight.copy_(weight)
        if layer.bias is not None:
            plain.bias.copy_(layer.bias)
        return plain
    return layer


@torch.no_grad()
def _fold(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """``layer`` with ``bn`` folded in; tdBN's extra α·V_th scale goes into its weight first."""
    if isinstance(bn, TDBatchNorm):
        plain_bn = nn.BatchNorm1d(bn.num_features, eps=bn.eps)
        plain_bn.load_state_dict(bn.state_dict())
        plain_bn.weight.mul_(bn.scale)
        bn = plain_bn
    return fold_conv_bn(_plain_affine(layer), bn)


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_RESERVED = ("input", "output")  # the graph's Input and Output nodes
_MAX_POOLS = (nn.MaxPool2d, _SeqMaxPool)


class _GraphWriter:
    """Builds the node and edge lists of one NIR graph (see the module docstring)."""

    def __init__(self, dt: float) -> None:
        self.dt = dt
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []

    # -- primitives ----------------------------------------------------------------------------

    def add(self, name: str, node: nir.NIRNode, signal: _Signal, shape: tuple[int, ...], binary: bool = False) -> _Signal:
        if name in _RESERVED:  # a layer called "output" (AtsnVGG's): keep the graph's own Output node's name
            name = f"{name}.{type(node).__name__}"
        if name in self.nodes:
            raise ValueError(f"two NIR nodes named {name!r}: a layer is used twice in the network, which NIR "
                             f"cannot express as one node.")
        self.nodes[name] = node
        self.edges += [(source, name) for source in signal.sources]
        return _Signal((name,), tuple(int(s) for s in shape), binary)

    def fragment(self, name: str, fragment: Fragment, signal: _Signal, binary: bool) -> _Signal:
        if name in _RESERVED and "" in fragment.nodes:
            name = f"{name}.{type(fragment.nodes['']).__name__}"
        for suffix, node in fragment.nodes.items():
            if name + suffix in self.nodes:
                raise ValueError(f"two NIR nodes named {name + suffix!r}: a layer is used twice in the network.")
            self.nodes[name + suffix] = node
        self.edges += [(source, name + fragment.entry) for source in signal.sources]
        self.edges += [(name + a, name + b) for a, b in fragment.edges]
        return _Signal((name + fragment.exit,), signal.shape, binary)

    # -- layers --------------------------------------------------------------------------------

    def affine(self, name: str, layer: nn.Module, signal: _Signal, bn: nn.Module | None = None) -> _Signal:
        layer = _fold(layer, bn) if bn is not None else _plain_affine(layer)
        if isinstance(layer, nn.Linear):
            if len(signal.shape) != 1:
                raise UnsupportedLayerError(name, "Linear", f"it is applied to a {signal.shape} map; NIR's Affine "
                                                            f"takes a vector (flatten first).")
            shape = (layer.out_features,)
            if layer.bias is None:
                return self.add(name, nir.Linear(weight=_numpy(layer.weight)), signal, shape)
            return self.add(name, nir.Affine(weight=_numpy(layer.weight), bias=_numpy(layer.bias)), signal, shape)
        if isinstance(layer, nn.Conv2d):
            if layer.padding_mode != "zeros":
                raise UnsupportedLayerError(name, "Conv2d", f"padding_mode={layer.padding_mode!r}; NIR pads with zeros.")
            if len(signal.shape) != 3:
                raise UnsupportedLayerError(name, "Conv2d", f"its input has shape {signal.shape}, expected (C, H, W).")
            if layer.groups != 1:
                raise UnsupportedLayerError(name, "Conv2d", f"groups={layer.groups}: nir {nir.__version__} takes a conv's "
                                            f"input channels from weight.shape[1] (C_in/groups), so a grouped conv "
                                            f"fails nir's own type check when the graph is read.")
            bias = _numpy(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels, np.float32)
            padding = layer.padding if isinstance(layer.padding, str) else _pair(layer.padding)
            node = nir.Conv2d(input_shape=signal.shape[1:], weight=_numpy(layer.weight), stride=_pair(layer.stride),
                              padding=padding, dilation=_pair(layer.dilation), groups=int(layer.groups), bias=bias)
            return self.add(name, node, signal, _out_shape(layer, signal.shape))
        if isinstance(layer, nn.Conv1d):
            if layer.padding_mode != "zeros" or len(signal.shape) != 2 or layer.groups != 1:
                raise UnsupportedLayerError(name, "Conv1d", f"needs zero padding, groups=1 and a (C, L) input; got "
                                            f"{layer.padding_mode!r}, groups={layer.groups}, input {signal.shape}.")
            bias = _numpy(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels, np.float32)
            padding = layer.padding if isinstance(layer.padding, str) else int(layer.padding[0])
            node = nir.Conv1d(input_shape=signal.shape[1], weight=_numpy(layer.weight), stride=int(layer.stride[0]),
                              padding=padding, dilation=int(layer.dilation[0]), groups=int(layer.groups), bias=bias)
            return self.add(name, node, signal, _out_shape(layer, signal.shape))
        raise UnsupportedLayerError(name, type(layer).__name__, "no NIR mapping for this layer type.")

    def avg_pool(self, name: str, layer: nn.AvgPool2d, signal: _Signal) -> _Signal:
        padding = _pair(layer.padding)
        if layer.ceil_mode or layer.divisor_override is not None or (any(padding) and not layer.count_include_pad):
            raise UnsupportedLayerError(name, "AvgPool2d", "ceil_mode, divisor_override or count_include_pad=False "
                                                           "have no NIR equivalent.")
        kernel = _pair(layer.kernel_size)
        stride = _pair(layer.stride if layer.stride is not None else layer.kernel_size)
        node = nir.AvgPool2d(kernel_size=np.array(kernel), stride=np.array(stride), padding=np.array(padding))
        return self.add(name, node, signal, _out_shape(layer, signal.shape))

    def global_avg_pool(self, name: str, signal: _Signal) -> _Signal:
        c, h, w = signal.shape
        node = nir.AvgPool2d(kernel_size=np.array((h, w)), stride=np.array((h, w)), padding=np.array((0, 0)))
        return self.add(name, node, signal, (c, 1, 1))

    def adaptive_avg_pool(self, name: str, layer: nn.AdaptiveAvgPool2d, signal: _Signal) -> _Signal:
        out = _pair(layer.output_size) if layer.output_size is not None else signal.shape[1:]
        h, w = signal.shape[1:]
        if h % out[0] or w % out[1]:
            raise UnsupportedLayerError(name, "AdaptiveAvgPool2d", f"a {h}x{w} map pooled to {out} has unequal windows; "
                                                                   f"NIR's AvgPool2d has one kernel size.")
        kernel = (h // out[0], w // out[1])
        node = nir.AvgPool2d(kernel_size=np.array(kernel), stride=np.array(kernel), padding=np.array((0, 0)))
        return self.add(name, node, signal, (signal.shape[0], *out))

    def max_pool(self, name: str, layer: nn.Module, signal: _Signal) -> _Signal:
        if not signal.binary:
            what = (f"the sum of {len(signal.sources)} nodes ({', '.join(signal.sources)})" if len(signal.sources) > 1
                    else f"node {signal.sources[0]!r}, not a spiking layer")
            raise UnsupportedLayerError(name, type(layer).__name__, f"{REFUSED_LAYERS['max pool']} Its input here is "
                                                                    f"{what}.")
        if isinstance(layer, _SeqMaxPool):
            layer = nn.MaxPool2d(2)
        if layer.ceil_mode or _pair(layer.dilation) != (1, 1):
            raise UnsupportedLayerError(name, "MaxPool2d", "ceil_mode or dilation have no NIR equivalent.")
        kernel = _pair(layer.kernel_size)
        stride = _pair(layer.stride if layer.stride is not None else layer.kernel_size)
        padding = _pair(layer.padding)
        shape = _out_shape(nn.MaxPool2d(kernel, stride, padding), signal.shape)
        pooled = self.add(f"{name}.sum", nir.SumPool2d(kernel_size=np.array(kernel), stride=np.array(stride),
                                                      padding=np.array(padding),
                                                      metadata={"snnlab_role": "max pool of spikes: sum"}),
                          signal, shape)
        return self.add(name, nir.Threshold(threshold=np.full(shape, 0.5), metadata={"snnlab_role": "max pool of "
                                                                                      "spikes: OR"}),
                        pooled, shape, binary=True)

    def flatten(self, name: str, signal: _Signal) -> _Signal:
        if len(signal.shape) == 1:
            return signal
        node = nir.Flatten(input_type={"input": np.array(signal.shape)}, start_dim=0, end_dim=-1)
        return self.add(name, node, signal, (int(np.prod(signal.shape)),))

    def flatten_module(self, name: str, layer: nn.Flatten, signal: _Signal, folded: bool) -> _Signal:
        """``nn.Flatten`` on ``[T*B, ...]`` (folded) or ``[T, B, ...]``: NIR's dims exclude time and batch."""
        lead = 1 if folded else 2
        rank = len(signal.shape) + lead
        start = layer.start_dim % rank - lead
        end = layer.end_dim % rank - lead
        if start < 0:
            raise UnsupportedLayerError(name, "Flatten", f"start_dim={layer.start_dim} flattens the "
                                        f"{'batch' if folded else 'time or batch'} dimension into the features.")
        if start == 0 and end == len(signal.shape) - 1:
            return self.flatten(name, signal)
        node = nir.Flatten(input_type={"input": np.array(signal.shape)}, start_dim=start, end_dim=end)
        shape = tuple(torch.zeros(signal.shape).flatten(start, end).shape)
        return self.add(name, node, signal, shape)

    def neuron(self, name: str, module: nn.Module, signal: _Signal) -> _Signal:
        if isinstance(module, MLFNode):
            raise UnsupportedLayerError(name, "MLFNode", REFUSED_LAYERS["MLFNode"])
        if isinstance(module, NonSpikingIntegrator):
            return self.fragment(name, integrator_fragment(module, signal.shape, self.dt), signal, binary=False)
        return self.fragment(name, neuron_fragment(module, signal.shape, self.dt), signal, binary=True)

    # -- containers ----------------------------------------------------------------------------

    def module(self, name: str, module: nn.Module, signal: _Signal, folded: bool = False) -> _Signal:
        """Write ``module``; ``folded``: it runs on ``[T*B, ...]`` (inside a TimeFolded), else on ``[T, B, ...]``."""
        handler = _MODEL_HANDLERS.get(type(module))
        if handler is not None:
            return handler(self, name, module, signal)
        if isinstance(module, nn.Sequential):
            return self.sequence(name, list(module.named_children()), signal, folded)
        if isinstance(module, TimeFolded):
            inner = module.layers
            if isinstance(inner, nn.Sequential):
                return self.sequence(name + ".layers", list(inner.named_children()), signal, folded=True)
            return self.module(name + ".layers", inner, signal, folded=True)
        if isinstance(module, (BaseNode, NonSpikingIntegrator)):
            return self.neuron(name, module, signal)
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.Conv1d)):
            return self.affine(name, module, signal)
        if isinstance(module, nn.AvgPool2d):
            return self.avg_pool(name, module, signal)
        if isinstance(module, nn.AdaptiveAvgPool2d):
            return self.adaptive_avg_pool(name, module, signal)
        if isinstance(module, _MAX_POOLS):
            return self.max_pool(name, module, signal)
        if isinstance(module, nn.Flatten):
            return self.flatten_module(name, module, signal, folded)
        if isinstance(module, Scale):
            scale = np.broadcast_to(module.scale.detach().cpu().numpy().astype(np.float32), signal.shape).copy()
            return self.add(name, nir.Scale(scale=scale), signal, signal.shape)
        if isinstance(module, SumPool2d):
            node = nir.SumPool2d(kernel_size=np.array(_pair(module.kernel_size)), stride=np.array(_pair(module.stride)),
                                 padding=np.array(_pair(module.padding)))
            return self.add(name, node, signal, _out_shape(module, signal.shape))
        if isinstance(module, Heaviside):
            threshold = np.broadcast_to(module.threshold.detach().cpu().numpy(), signal.shape).astype(np.float64)
            return self.add(name, nir.Threshold(threshold=threshold), signal, signal.shape, binary=True)
        if isinstance(module, SpikeScale):
            return self.add(name, nir.Scale(scale=np.full(signal.shape, module.gamma, dtype=np.float32)), signal,
                            signal.shape)
        if isinstance(module, (nn.Identity, nn.Dropout)):
            return signal
        refused = _refusal(module)
        if refused is not None:
            raise UnsupportedLayerError(name, refused[0], refused[1])
        if isinstance(module, _BATCH_NORMS + (TDBatchNorm,)):
            raise UnsupportedLayerError(name, type(module).__name__, "a BatchNorm is exported folded into the conv or "
                                                                     "linear layer right before it, and there is none.")
        raise UnsupportedLayerError(name, type(module).__name__,
                                    "snnlab.interop has no NIR mapping for this layer type (supported: Linear, Conv2d, "
                                    "BatchNorm after them, AvgPool2d, max pool of spikes, Flatten, SpikeScale, IF, "
                                    "LIF, PLIF, NonSpikingIntegrator, residual blocks, and snnlab's models).")

    def sequence(self, prefix: str, children: Sequence[tuple[str, nn.Module]], signal: _Signal,
                 folded: bool = False) -> _Signal:
        i = 0
        while i < len(children):
            child_name, child = children[i]
            name = f"{prefix}.{child_name}" if prefix else child_name
            following = children[i + 1][1] if i + 1 < len(children) else None
            affine, affine_name = child, name
            if isinstance(child, TimeFolded) and not isinstance(child.layers, nn.Sequential):
                affine, affine_name = child.layers, name + ".layers"  # a folded conv, then a tdBN on [T, B, ...]
            if isinstance(affine, (nn.Linear, nn.Conv2d)) and isinstance(following, _BATCH_NORMS + (TDBatchNorm,)):
                signal = self.affine(affine_name, affine, signal, bn=following)
                i += 2
                continue
            signal = self.module(name, child, signal, folded)
            i += 1
        return signal


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _residual_block(w: _GraphWriter, name: str, block: ResidualBlock, s: _Signal) -> _Signal:
    """Spiking ResNet ``SN(F(S) + S)``, SEW ``SN(F(S)) + S`` (ADD) and plain blocks (SEW ResNet eqs. 7, 9)."""
    if block.kind == "sew" and block.cnf != "ADD":
        raise UnsupportedLayerError(name, f"SEW block, g = {block.cnf}", REFUSED_LAYERS[f"SEW {block.cnf}"])
    x = s
    last = len(block.convs) - 1
    for i, (conv, sn) in enumerate(zip(block.convs, block.sns)):
        x = w.affine(_join(name, f"convs.{i}.conv"), conv.conv, x, bn=conv.bn)
        if i < last or block.kind != "spiking":
            x = w.neuron(_join(name, f"sns.{i}"), sn, x)
    if block.kind == "plain":
        return x
    identity = s if block.downsample is None else _downsample(w, _join(name, "downsample"), block.downsample, s)
    if x.shape != identity.shape:
        raise ValueError(f"block {name!r}: residual {x.shape} and shortcut {identity.shape} shapes differ.")
    summed = _Signal(x.sources + identity.sources, x.shape)
    if block.kind == "spiking":
        return w.neuron(_join(name, f"sns.{last}"), block.last_sn, summed)
    return summed  # SEW ADD: the next layers receive an edge from each term


def _downsample(w: _GraphWriter, name: str, down: Downsample, s: _Signal) -> _Signal:
    y = w.affine(_join(name, "conv_bn.conv"), down.conv_bn.conv, s, bn=down.conv_bn.bn)
    return y if down.sn is None else w.neuron(_join(name, "sn"), down.sn, y)


def _seq_conv_bn(w: _GraphWriter, name: str, m: SeqConvBN, s: _Signal) -> _Signal:
    return w.affine(_join(name, "conv"), m.conv, s, bn=m.bn)


def _spiking_mlp(w: _GraphWriter, name: str, m: SpikingMLP, s: _Signal) -> _Signal:
    s = w.flatten(_join(name, "flatten"), s)
    s = w.module(_join(name, "features"), m.features, s)
    return w.affine(_join(name, "classifier"), m.classifier, s)


def _spiking_cnn(w: _GraphWriter, name: str, m: SpikingCNN, s: _Signal) -> _Signal:
    s = w.module(_join(name, "features"), m.features, s)
    s = w.flatten(_join(name, "flatten"), s)
    return w.affine(_join(name, "classifier"), m.classifier, s)


def _ottt_vgg(w: _GraphWriter, name: str, m: OTTTVGG, s: _Signal) -> _Signal:
    if m.feedback is not None:
        raise UnsupportedLayerError(_join(name, "feedback"), "VGG-F feedback", REFUSED_LAYERS["VGG-F feedback"])
    s = w.module(_join(name, "first_conv"), m.first_conv, s)
    s = w.module(_join(name, "hidden"), m.hidden, s)
    s = w.module(_join(name, "pool"), m.pool, s)
    s = w.flatten(_join(name, "flatten"), s)
    s = w.affine(_join(name, "classifier"), m.classifier, s)
    return w.neuron(_join(name, "readout"), m.readout, s)


def _atsn_vgg(w: _GraphWriter, name: str, m: AtsnVGG, s: _Signal) -> _Signal:
    s = w.module(_join(name, "features"), m.features, s)
    s = w.flatten(_join(name, "flatten"), s)
    s = w.module(_join(name, "hidden"), m.hidden, s)
    s = w.affine(_join(name, "classifier"), m.classifier, s)
    return w.module(_join(name, "output"), m.output, s)


def _spiking_resnet(w: _GraphWriter, name: str, m: SpikingResNetLayout, s: _Signal) -> _Signal:
    s = _seq_conv_bn(w, _join(name, "stem"), m.stem, s)
    s = w.neuron(_join(name, "stem_sn"), m.stem_sn, s)
    s = w.module(_join(name, "pool"), m.pool, s)
    for i, block in enumerate(m.blocks):
        s = _residual_block(w, _join(name, f"blocks.{i}"), block, s)
    s = w.global_avg_pool(_join(name, "gap"), s)
    s = w.flatten(_join(name, "flatten"), s)
    return w.affine(_join(name, "fc"), m.fc, s)


def _nir_network(w: _GraphWriter, name: str, m: NIRNetwork, s: _Signal) -> _Signal:
    """A network imported from NIR (and perhaps trained since): its layers in its own order, summed edges kept."""
    signals = {"": s}

    def merged(names: list[str]) -> _Signal:
        parts = [signals[n] for n in names]
        if len(parts) == 1:
            return parts[0]
        return _Signal(tuple(src for p in parts for src in p.sources), parts[0].shape)

    for unit in m.order:
        module = m.unit(unit)
        layer = unit[: -len(".fire")] if isinstance(module, BaseNode) and unit.endswith(".fire") else unit
        signals[unit] = w.module(_join(name, layer), module, merged(m.sources[unit]), folded=True)
    return merged(m.outputs)


def _seven_b_net(w: _GraphWriter, name: str, m: SevenBNet, s: _Signal) -> _Signal:
    s = w.module(_join(name, "stem"), m.stem, s)
    s = w.module(_join(name, "features"), m.features, s)
    s = w.flatten(_join(name, "flatten"), s)
    return w.affine(_join(name, "fc"), m.fc, s)


_MODEL_HANDLERS: dict[type, Callable[[_GraphWriter, str, nn.Module, _Signal], _Signal]] = {
    ResidualBlock: _residual_block,
    **{cls: _residual_block for cls in ResidualBlock.__subclasses__()},
    Downsample: _downsample,
    SeqConvBN: _seq_conv_bn,
    SpikingMLP: _spiking_mlp,
    SpikingCNN: _spiking_cnn,
    OTTTVGG: _ottt_vgg,
    AtsnVGG: _atsn_vgg,
    SpikingResNetLayout: _spiking_resnet,
    SevenBNet: _seven_b_net,
    NIRNetwork: _nir_network,
}

EXPORTED_MODELS: tuple[str, ...] = tuple(sorted(cls.__name__ for cls in _MODEL_HANDLERS)) + ("nn.Sequential",)
"""The model classes :func:`to_nir` knows how to walk (besides any ``nn.Sequential``)."""


def _refusal(module: nn.Module) -> tuple[str, str] | None:
    """``(kind, reason)`` if ``module`` is a layer NIR cannot express (see :data:`REFUSED_LAYERS`)."""
    if isinstance(module, MLFNode):
        return "MLFNode", REFUSED_LAYERS["MLFNode"]
    if isinstance(module, SpatialAttention):
        return "SpatialAttention", REFUSED_LAYERS["SpatialAttention"]
    if isinstance(module, SCTTFSNeuron):
        return type(module).__name__, REFUSED_LAYERS["SCTTFSNeuron"]
    if isinstance(module, ResidualBlock) and module.kind == "sew" and module.cnf != "ADD":
        return f"SEW block, g = {module.cnf}", REFUSED_LAYERS[f"SEW {module.cnf}"]
    if isinstance(module, OTTTVGG) and module.feedback is not None:
        return "VGG-F feedback", REFUSED_LAYERS["VGG-F feedback"]
    return None


def _check_exportable(model: nn.Module) -> None:
    """Name every layer NIR cannot express, all at once, before writing anything."""
    found = []
    for name, module in model.named_modules():
        refused = _refusal(module)
        if refused is not None:
            if isinstance(module, OTTTVGG):
                name = _join(name, "feedback")
            found.append((name or "<model>", *refused))
    if len(found) == 1:
        raise UnsupportedLayerError(*found[0])
    if found:
        reasons = {}
        for name, kind, reason in found:
            reasons.setdefault((kind, reason), []).append(name)
        lines = [f"{kind} ({', '.join(repr(n) for n in names)}): {reason}" for (kind, reason), names in reasons.items()]
        error = UnsupportedLayerError(found[0][0], found[0][1], found[0][2])
        error.args = (f"cannot export {len(found)} layers to NIR:\n  " + "\n  ".join(lines),)
        raise error


def _input_shape(model: nn.Module, input_shape: Iterable[int] | None) -> tuple[int, ...]:
    own = getattr(model, "input_shape", None)
    if input_shape is None:
        if own is None:
            raise ValueError(f"pass input_shape= (the per-step input shape, e.g. (1, 8, 8)): {type(model).__name__} "
                             f"does not record one.")
        return tuple(int(s) for s in own)
    shape = tuple(int(s) for s in input_shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape must be the positive per-step input shape, e.g. (1, 8, 8); got {shape}.")
    if own is not None and tuple(own) != shape:
        raise ValueError(f"input_shape {shape} differs from the model's own per-step input shape {tuple(own)}.")
    return shape


@torch.no_grad()
def to_nir(model: nn.Module, *, dt: float, input_shape: Sequence[int] | None = None,
           path: str | Path | None = None) -> nir.NIRGraph:
    """The NIR graph of an snnlab network (module docstring), its time step ``dt`` (seconds) recorded
    in ``graph.metadata["dt"]``; with ``path``, also written there (``nir.write``, HDF5).

    ``input_shape`` is the per-step input shape (default: the model's ``input_shape``). The model is
    not changed (BatchNorm is folded into copies of the weights). Layers NIR 1.0 cannot express
    raise :class:`UnsupportedLayerError` naming every such layer and why.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"to_nir exports a torch nn.Module, got {type(model).__name__}.")
    dt = check_positive("dt (the time step in seconds)", dt)
    shape = _input_shape(model, input_shape)
    _check_exportable(model)
    if type(model) not in _MODEL_HANDLERS and not isinstance(model, nn.Sequential):
        raise UnsupportedLayerError(
            "<model>", type(model).__name__,
            "snnlab.interop does not know how this model wires its layers (its forward is Python code). Supported: "
            f"{', '.join(EXPORTED_MODELS)}; build the network as an nn.Sequential of supported layers, or add a "
            f"handler to snnlab.interop.export.")
    writer = _GraphWriter(dt)
    writer.nodes["input"] = nir.Input(input_type={"input": np.array(shape)})
    out = writer.module("", model, _Signal(("input",), shape))
    if out.sources == ("input",):
        raise ValueError("the network has no layer NIR can carry: its output is its input.")
    writer.nodes["output"] = nir.Output(output_type={"output": np.array(out.shape)})
    writer.edges += [(source, "output") for source in out.sources]
    metadata = {"dt": float(dt), "time_unit": "s", "source": f"snnlab {snnlab.__version__}",
                "model": type(model).__name__}
    graph = nir.NIRGraph(nodes=writer.nodes, edges=writer.edges, metadata=metadata)
    if path is not None:
        write_graph(graph, path)
    return graph


def write_graph(graph: nir.NIRGraph, path: str | Path) -> Path:
    """``nir.write`` into memory, then atomically to ``path`` (a reader never sees half a graph)."""
    from snnlab.training.checkpoint import atomic_write_bytes

    buffer = io.BytesIO()
    nir.write(buffer, graph)
    path = Path(path)
    atomic_write_bytes(path, lambda fh: fh.write(buffer.getvalue()))
    return path
