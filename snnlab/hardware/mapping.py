"""From a trained snnlab SNN to the accelerator: the layer program and its mapping onto the array.

:func:`compile_network` reads the leaf modules of an inference network in registration order (the
forward order of :class:`~snnlab.models.atsn_vgg.AtsnVGG` and of sequential models) and accepts

* ``nn.Conv2d`` (groups 1, dilation 1, zero padding) and ``nn.Linear``: weight layers (a flatten
  between a conv block and a linear layer is implicit);
* :class:`~snnlab.neurons.LIFNode` after each hidden weight layer: hard reset to 0, undecayed input
  (ATSN eqs. 1-2; ``decay_input=False``, ``v_reset=0``), decay 1 - 1/τ;
* ``nn.MaxPool2d`` (kernel = stride, no padding) after a LIF layer: on binary spikes it is an OR;
* after the last weight layer: :class:`~snnlab.neurons.NonSpikingIntegrator` (ATSN eq. 8) or
  ``nn.Identity`` (a plain readout, an integrator with decay 0).

Anything else (BatchNorm: fold it first with ``AtsnVGG.folded()``; ReLU; average pooling; soft
reset) raises a ``TypeError``/``ValueError`` naming the module.

**Mapping** (:func:`map_network`). The array is time-multiplexed: at every timestep the layers run
one after another. A hidden layer's N neurons (flattened in channel-major order) are spread over the
PEs, ``m`` consecutive neurons per PE, so a tile holds up to ``n_pe·m`` neurons; a PE's data memory
holds its ``m`` potentials and the weights its neurons use (for a conv, one kernel per output
channel among its neurons). ``m = ceil(N / n_pe)`` (one tile) if that fits the PE memory, otherwise
``m`` shrinks and the layer takes several tiles. If even one neuron's weights do not fit, the layer
streams its weights from the global SRAM at every accumulate (``weights_resident=False``); when they
fit (``weights_resident=True``) the simulator still streams them at a step where that is cheaper
(see :mod:`snnlab.hardware.simulator`). The
output layer runs on the AT unit (all C neurons in its 3 KB memory, weights streamed if they do not
fit) or, without an AT unit, on the PEs like a hidden layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from snnlab.hardware.config import AcceleratorConfig

__all__ = ["LayerProgram", "NetworkProgram", "compile_network", "LayerMapping", "map_network", "shift_add_terms"]


@dataclass
class LayerProgram:
    """One weight layer with its neurons (and the pooling after them)."""

    name: str
    kind: str                       # "conv" | "linear"
    in_shape: tuple[int, ...]       # (C, H, W) or (D,)
    out_shape: tuple[int, ...]      # neurons before pooling
    weight: np.ndarray              # float64, torch layout
    bias: np.ndarray                # float64 [out channels or features]
    neuron: str                     # "lif" | "integrator"
    decay: float
    v_threshold: float = math.inf
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    pool: int = 0                   # max-pool kernel (= stride) after the neurons, 0 for none

    @property
    def neurons(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def inputs(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def pooled_shape(self) -> tuple[int, ...]:
        if not self.pool:
            return self.out_shape
        c, h, w = self.out_shape
        return (c, h // self.pool, w // self.pool)

    @property
    def outputs(self) -> int:
        return int(np.prod(self.pooled_shape))


@dataclass
class NetworkProgram:
    """The weight layers of a network in forward order; the last one is the output layer."""

    layers: list[LayerProgram]
    input_shape: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return self.layers[-1].neurons


def _leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from snnlab.neurons import StatefulNode

    leaves = []
    for name, m in model.named_modules():
        if isinstance(m, StatefulNode) or not list(m.children()):
            leaves.append((name, m))
    return leaves


def _conv_attr(m: nn.Conv2d, name: str) -> int:
    value = getattr(m, name)
    if len(set(value)) != 1:
        raise ValueError(f"{name} of a Conv2d must be the same along height and width, got {value}.")
    return int(value[0])


def compile_network(model: nn.Module, input_shape) -> NetworkProgram:
    """The :class:`NetworkProgram` of ``model`` for one sample's input of shape ``input_shape``."""
    from snnlab.neurons import LIFNode, NonSpikingIntegrator

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}.")
    shape = tuple(int(s) for s in input_shape)
    layers: list[LayerProgram] = []
    pending: LayerProgram | None = None   # weight layer waiting for its neuron
    for name, m in _leaf_modules(model):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if pending is not None:
                raise ValueError(f"weight layer {name!r} follows {pending.name!r} without a neuron layer in between.")
            if layers and layers[-1].neuron == "integrator":
                raise ValueError(f"{name!r} follows the non-spiking output layer; the output layer must be last.")
            w = m.weight.detach().double().cpu().numpy()
            b = (m.bias.detach().double().cpu().numpy() if m.bias is not None else np.zeros(w.shape[0]))
            if isinstance(m, nn.Conv2d):
                if len(shape) != 3:
                    raise ValueError(f"Conv2d {name!r} needs a (C, H, W) input, got {shape}.")
                if m.groups != 1 or _conv_attr(m, "dilation") != 1 or m.padding_mode != "zeros" \
                        or isinstance(m.padding, str):
                    raise ValueError(f"Conv2d {name!r}: only groups=1, dilation=1 and numeric zero padding are supported.")
                k, s, p = _conv_attr(m, "kernel_size"), _conv_attr(m, "stride"), _conv_attr(m, "padding")
                if shape[0] != m.in_channels:
                    raise ValueError(f"Conv2d {name!r} expects {m.in_channels} input channels, got {shape[0]}.")
                h, wd = (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1
                if h < 1 or wd < 1:
                    raise ValueError(f"Conv2d {name!r} has no output on a {shape} input.")
                pending = LayerProgram(name, "conv", shape, (m.out_channels, h, wd), w, b, "lif", 0.0,
                                       kernel=k, stride=s, padding=p)
            else:
                flat = int(np.prod(shape))
                if flat != m.in_features:
                    raise ValueError(f"Linear {name!r} expects {m.in_features} inputs, the layer before gives {flat}.")
                pending = LayerProgram(name, "linear", (flat,), (m.out_features,), w, b, "lif", 0.0)
        elif isinstance(m, LIFNode):
            if pending is None:
                raise ValueError(f"neuron layer {name!r} has no weight layer before it.")
            p = m.params
            if p.decay_input or p.v_reset is None or p.v_reset != 0.0:
                raise ValueError(f"LIF {name!r}: the accelerator's PE implements ATSN eq. (1), hard reset to 0 "
                                 f"with undecayed input (decay_input=False, v_reset=0.0).")
            pending.neuron, pending.decay, pending.v_threshold = "lif", 1.0 - 1.0 / float(p.tau), float(p.v_threshold)
            layers.append(pending)
            shape, pending = pending.out_shape, None
        elif isinstance(m, (NonSpikingIntegrator, nn.Identity)) and pending is not None:
            pending.neuron = "integrator"
            pending.decay = float(m.decay) if isinstance(m, NonSpikingIntegrator) else 0.0
            layers.append(pending)
            shape, pending = pending.out_shape, None
        elif isinstance(m, nn.MaxPool2d):
            if not layers or layers[-1].neuron != "lif" or layers[-1].pool or pending is not None:
                raise ValueError(f"max pooling {name!r} must directly follow a LIF layer (on binary spikes it is an OR).")
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            s = m.stride if isinstance(m.stride, int) else m.stride[0]
            pad = m.padding if isinstance(m.padding, int) else m.padding[0]
            if k != s or pad != 0 or m.ceil_mode or (m.dilation not in (1, (1, 1))):
                raise ValueError(f"MaxPool2d {name!r}: only kernel = stride, no padding, floor mode are supported.")
            if len(layers[-1].out_shape) != 3:
                raise ValueError(f"MaxPool2d {name!r} follows a linear layer.")
            layers[-1].pool = int(k)
            shape = layers[-1].pooled_shape
        elif isinstance(m, (nn.Identity, nn.Flatten, nn.Dropout, nn.Sequential, nn.ModuleList)):
            continue   # the flatten is implicit; dropout is the identity at inference
        else:
            raise TypeError(f"module {name!r} ({type(m).__name__}) is not supported by the accelerator; supported: "
                            "Conv2d, Linear, LIFNode (hard reset), MaxPool2d, NonSpikingIntegrator/Identity output. "
                            "Fold BatchNorm first (AtsnVGG.folded()).")
    if pending is not None:
        raise ValueError(f"the last weight layer {pending.name!r} has no output neuron: add a "
                         "NonSpikingIntegrator (ATSN eq. 8) or nn.Identity after it.")
    if not layers or layers[-1].neuron != "integrator":
        raise ValueError("the network must end with a weight layer and a non-spiking output "
                         "(NonSpikingIntegrator or nn.Identity): that is what the AT unit reads.")
    return NetworkProgram(layers, tuple(int(s) for s in input_shape))


def shift_add_terms(decay: float) -> int:
    """Shifts needed to multiply by ``decay`` with shift-and-add: the 1-bits of its binary fraction
    (0.5 -> 1 shift; 0.75 = 1/2 + 1/4 -> 2 shifts and 1 add). Raises if ``decay`` is not k/2^s, s <= 16."""
    if decay == 0.0:
        return 0
    scaled = decay * 2 ** 16
    if not 0.0 < decay < 1.0 or scaled != math.floor(scaled):
        raise ValueError(f"shift-and-add decay needs a decay k/2^s in (0, 1) with s <= 16, got {decay}; "
                         "use decay 0.5 (one shift) or 0.75 (two shifts and an add).")
    return bin(int(scaled)).count("1")


@dataclass
class LayerMapping:
    """Where one layer runs and how it is tiled (see the module docstring)."""

    unit: str                 # "pe" | "at"
    units: int                # units the layer is spread over (n_pe, or 1 for the AT unit)
    per_unit: int             # m: neurons per unit in a tile
    tiles: int
    weights_resident: bool
    memory_bytes: int         # most data memory one unit uses (potentials + resident weights)
    load_sram_words: int      # words read from SRAM to fill the units' memories, per timestep (all tiles)
    load_spad_words: int      # words written into the units' memories, per timestep (all tiles)
    decay_shifts: int = 0
    notes: list[str] = field(default_factory=list)


def _unit_weight_words(layer: LayerProgram, first: int, count: int) -> tuple[int, int]:
    """(distinct weight+bias words, per-unit stored words) for neurons first..first+count-1."""
    if layer.kind == "conv":
        per_channel = int(np.prod(layer.out_shape[1:]))
        channels = len(range(first // per_channel, (first + count - 1) // per_channel + 1))
        kernel = layer.weight[0].size
        return channels * (kernel + 1), channels * (kernel + 1)
    fan_in = layer.weight.shape[1]
    return count * (fan_in + 1), count * (fan_in + 1)


def _tile_words(layer: LayerProgram, units: int, m: int) -> tuple[int, int, int]:
    """(SRAM words, scratchpad words, most bytes per unit's weights) to load every tile once."""
    n = layer.neurons
    sram = spad = most = 0
    for tile_start in range(0, n, units * m):
        channels_in_tile = set()
        for u in range(units):
            first = tile_start + u * m
            if first >= n:
                break
            count = min(m, n - first)
            distinct, stored = _unit_weight_words(layer, first, count)
            spad += stored
            most = max(most, stored)
            if layer.kind == "conv":
                per_channel = int(np.prod(layer.out_shape[1:]))
                channels_in_tile.update(range(first // per_channel, (first + count - 1) // per_channel + 1))
            else:
                sram += distinct
        if layer.kind == "conv":   # one SRAM read of a kernel is broadcast to every PE that uses it
            sram += len(channels_in_tile) * (layer.weight[0].size + 1)
    return sram, spad, most


def map_network(program: NetworkProgram, config: AcceleratorConfig) -> list[LayerMapping]:
    """Tile every layer of ``program`` onto ``config``'s array (see the module docstring)."""
    mappings = []
    for i, layer in enumerate(program.layers):
        output = i == len(program.layers) - 1
        shifts = shift_add_terms(layer.decay) if config.decay == "shift" else 0
        on_at = output and config.at_unit
        units = 1 if on_at else config.n_pe
        memory = config.at_memory_bytes if on_at else config.pe_memory_bytes
        if on_at and config.exp_table_entries:
            memory -= config.exp_table_entries * config.weight_bytes
            if memory < 0:
                raise ValueError(f"an exp table of {config.exp_table_entries} entries ({config.weight_bytes} B each) "
                                 f"does not fit the AT unit's {config.at_memory_bytes} B memory; use fewer entries.")
        m = max(1, math.ceil(layer.neurons / units))
        notes = []
        while True:
            sram, spad, most = _tile_words(layer, units, m)
            used = m * config.potential_bytes + most * config.weight_bytes
            if used <= memory or m == 1:
                break
            m = max(1, m // 2) if not on_at else m   # the AT unit cannot split its layer
            if on_at:
                break
        resident = used <= memory
        if not resident:
            if m * config.potential_bytes > memory:
                raise ValueError(f"layer {layer.name!r}: {m} potentials of {config.potential_bytes} B do not fit "
                                 f"the {'AT' if on_at else 'PE'} memory of {memory} B.")
            notes.append("weights streamed from SRAM (they do not fit the unit's memory)")
            used, sram, spad = m * config.potential_bytes, 0, 0
        tiles = math.ceil(layer.neurons / (units * m))
        mappings.append(LayerMapping("at" if on_at else "pe", units, m, tiles, resident, used, sram, spad,
                                     shifts, notes))
    return mappings
