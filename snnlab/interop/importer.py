"""Import a NIR graph as an snnlab network: :func:`from_nir` -> :class:`NIRNetwork`.

Each NIR node becomes an snnlab or torch layer (neurons through
:mod:`snnlab.interop.neuron_map`, so they run on snnlab's Numba kernels and train with its
surrogates):

=====================================  ===========================================================
NIR node(s)                            snnlab layer
=====================================  ===========================================================
Affine / Linear (2-D weight)           ``nn.Linear``
Conv2d / Conv1d                        ``nn.Conv2d`` / ``nn.Conv1d`` (zero padding, groups kept)
AvgPool2d / SumPool2d                  ``nn.AvgPool2d`` / a sum pool (``divisor_override=1``)
SumPool2d -> Threshold(0 < θ < 1)      ``nn.MaxPool2d`` when the pool's input is one spiking layer's
                                       output (binary spikes: the sum exceeds θ iff the max is 1)
Flatten                                ``nn.Flatten`` (NIR's dims exclude the batch)
Scale                                  an elementwise scale
IF / LIF                               :class:`~snnlab.neurons.IFNode` / ``LIFNode`` (hard reset);
                                       ``PLIFNode`` when the node's metadata says it was one
I / LI -> Threshold -> Scale -> (loop)  a soft-reset ``IFNode`` / ``LIFNode`` (neuron_map, item 5)
LI / I                                 :class:`~snnlab.neurons.NonSpikingIntegrator`
Threshold (anywhere else)              a Heaviside step ``[x > θ]`` (no surrogate gradient)
Input / Output                         the network's input and output
nested NIRGraph                        flattened into the graph (names ``outer.inner``)
=====================================  ===========================================================

Refused with the node's name and the reason: ``CubaLIF`` / ``CubaLI`` (snnlab has no current-based
neuron), ``Delay``, a recurrent loop that is not a soft-reset neuron, parameters that differ between
the neurons of one node, and neuron parameters that contradict dt (see neuron_map).

The time step: :func:`from_nir` takes ``dt`` in seconds. A graph that records its own
(``metadata["dt"]``, as snnlab writes) is read with that dt, and a different ``dt`` is refused
(:class:`DtMismatchError`) instead of silently changing every time constant; a graph without one
needs ``dt``. Edges entering one node are summed in the order the graph lists them.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any, Sequence

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snnlab.checks import check_positive, check_tensor
from snnlab.interop.neuron_map import (
    NeuronOptions,
    integrator_from_nir,
    soft_reset_neuron_from_nir,
    spiking_neuron_from_nir,
    uniform_value,
)
from snnlab.neurons import StatefulNode, reset_states

__all__ = ["from_nir", "read_graph", "NIRNetwork", "DtMismatchError", "graph_dt", "describe_graph",
           "model_from_nir", "NIR_IMPORTS"]

DT_RTOL = 1e-9
"""How closely a requested dt must match the graph's recorded one (both are float64 seconds)."""

NIR_IMPORTS: dict[str, str] = {
    "Affine": "nn.Linear", "Linear": "nn.Linear (no bias)", "Conv2d": "nn.Conv2d", "Conv1d": "nn.Conv1d",
    "AvgPool2d": "nn.AvgPool2d", "SumPool2d": "sum pool (or nn.MaxPool2d with a Threshold, over spikes)",
    "Flatten": "nn.Flatten", "Scale": "elementwise scale", "IF": "IFNode (hard reset)",
    "LIF": "LIFNode / PLIFNode (hard reset)", "I": "NonSpikingIntegrator(decay=1), or a soft-reset IF's membrane",
    "LI": "NonSpikingIntegrator, or a soft-reset LIF's membrane", "Threshold": "Heaviside step, or a soft "
    "reset's / max pool's spike", "Input": "input", "Output": "output", "NIRGraph": "flattened",
}
"""What each NIR node type becomes in snnlab (the refused ones raise: CubaLIF, CubaLI, Delay)."""

_REFUSED_NODES = {
    "CubaLIF": "snnlab has no current-based neuron (a synaptic current with its own time constant feeding the "
               "membrane); its neurons are IF, LIF and PLIF.",
    "CubaLI": "snnlab has no current-based leaky integrator (a synaptic current with its own time constant).",
    "Delay": "snnlab's networks have no synaptic delays.",
}


class DtMismatchError(ValueError):
    """The dt asked for contradicts the dt the graph records (``metadata["dt"]``)."""


def graph_dt(graph: nir.NIRGraph) -> float | None:
    """The time step (seconds) a graph records in its metadata, or None."""
    meta = getattr(graph, "metadata", None) or {}
    value = meta.get("dt")
    if value is None:
        return None
    try:
        dt = float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        raise ValueError(f"the graph's metadata['dt'] is {value!r}; expected a number of seconds.") from None
    if not dt > 0 or not math.isfinite(dt):
        raise ValueError(f"the graph's metadata['dt'] is {dt}; expected a positive number of seconds.")
    return dt


def read_graph(source: nir.NIRGraph | str | Path | bytes) -> nir.NIRGraph:
    """A ``nir.NIRGraph`` from a graph, a ``.nir`` file or its bytes, with a clear error for anything else."""
    if isinstance(source, nir.NIRGraph):
        return source
    if isinstance(source, (bytes, bytearray)):
        return _read(io.BytesIO(bytes(source)), "the given bytes")
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no NIR file at {path}; write one with snnlab.interop.to_nir(model, dt=..., "
                                    f"path=...) or `snnlab export`.")
        return _read(path, str(path))
    raise TypeError(f"expected a nir.NIRGraph, a path to a .nir file or its bytes, got {type(source).__name__}.")


def _read(target, what: str) -> nir.NIRGraph:
    try:
        graph = nir.read(target)
    except OSError as error:
        raise ValueError(f"{what} is not a NIR file (an HDF5 file written by nir.write): {error}") from None
    except (KeyError, AssertionError, ValueError) as error:
        raise ValueError(f"{what} could not be read as a NIR graph (nir {nir.__version__}): {error}") from None
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"{what} holds a single {type(graph).__name__} node, not a NIRGraph.")
    return graph


def _resolve_dt(graph: nir.NIRGraph, dt: float | None) -> float:
    recorded = graph_dt(graph)
    if dt is None:
        if recorded is None:
            raise ValueError(
                "this NIR graph does not record its time step (no metadata['dt']), and NIR itself does not fix one: "
                "pass dt= (seconds), the step its exporter used. Reading it with the wrong dt changes every time "
                "constant tau/dt.")
        return recorded
    dt = check_positive("dt (the time step in seconds)", dt)
    if recorded is not None and not math.isclose(dt, recorded, rel_tol=DT_RTOL):
        raise DtMismatchError(
            f"this NIR graph was written for dt = {recorded:g} s (its metadata['dt']), but dt = {dt:g} s was asked "
            f"for. Reading it at another dt would change every neuron's leak per step (dt/tau) and input gain "
            f"(dt·r), i.e. a different network. Pass dt={recorded:g}, or leave dt out to use the graph's.")
    return dt


# -- graph preprocessing -------------------------------------------------------------------------


def _flatten(graph: nir.NIRGraph, prefix: str = "") -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]]]:
    """Nodes and edges with nested subgraphs spliced in (names ``outer.inner``)."""
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    entries: dict[str, list[str]] = {}
    exits: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            inner_nodes, inner_edges = _flatten(node, full + ".")
            inputs = [n for n, v in inner_nodes.items() if isinstance(v, nir.Input)]
            outputs = [n for n, v in inner_nodes.items() if isinstance(v, nir.Output)]
            if len(inputs) != 1 or len(outputs) != 1:
                raise ValueError(f"NIR subgraph {full!r} has {len(inputs)} inputs and {len(outputs)} outputs; snnlab "
                                 f"reads subgraphs with one of each.")
            entries[full] = [b for a, b in inner_edges if a == inputs[0]]
            exits[full] = [a for a, b in inner_edges if b == outputs[0]]
            nodes.update({n: v for n, v in inner_nodes.items() if n not in (inputs[0], outputs[0])})
            edges += [(a, b) for a, b in inner_edges if a != inputs[0] and b != outputs[0]]
        else:
            nodes[full] = node
    for a, b in graph.edges:
        for source in exits.get(prefix + a, [prefix + a]):
            for target in entries.get(prefix + b, [prefix + b]):
                edges.append((source, target))
    return nodes, edges


@dataclass
class _Unit:
    """One layer of the imported network: the NIR node(s) it comes from and its torch module."""

    name: str
    nir_nodes: tuple[str, ...]
    module: nn.Module
    spiking: bool = False


class Scale(nn.Module):
    """NIR's ``Scale``: ``y = x ⊙ s`` with a fixed per-sample ``s`` (a scalar when uniform)."""

    def __init__(self, scale: np.ndarray) -> None:
        super().__init__()
        scale = np.asarray(scale, dtype=np.float32)
        uniform = scale.size > 0 and bool(np.all(scale == scale.reshape(-1)[0]))
        self.register_buffer("scale", torch.tensor(scale.reshape(-1)[0]) if uniform else torch.from_numpy(scale.copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class SumPool2d(nn.Module):
    """NIR's ``SumPool2d``: the sum over each window (zero padding)."""

    def __init__(self, kernel_size, stride, padding) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, count_include_pad=True, divisor_override=1)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Heaviside(nn.Module):
    """NIR's ``Threshold``: ``[x > θ]`` (no surrogate gradient: its gradient is zero)."""

    def __init__(self, threshold: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("threshold", torch.from_numpy(np.asarray(threshold, dtype=np.float32).copy()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.threshold).to(x.dtype)


def _ints(value, n: int) -> tuple[int, ...]:
    array = np.asarray(value).reshape(-1)
    if array.size == 1:
        return (int(array[0]),) * n
    if array.size != n:
        raise ValueError(f"expected {n} integers, got {value!r}.")
    return tuple(int(v) for v in array)


def _padding(value, n: int):
    if isinstance(value, (str, bytes)):
        return value.decode() if isinstance(value, bytes) else value
    return _ints(value, n)


def _weight(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array, dtype=np.float32).copy())


def _stateless_module(name: str, node: nir.NIRNode) -> nn.Module:
    kind = type(node).__name__
    if kind in _REFUSED_NODES:
        raise ValueError(f"NIR node {name!r} ({kind}) cannot be imported: {_REFUSED_NODES[kind]}")
    if isinstance(node, (nir.Affine, nir.Linear)):
        weight = np.asarray(node.weight)
        if weight.ndim != 2:
            raise ValueError(f"NIR node {name!r} ({kind}): weight of shape {weight.shape}; snnlab reads 2-D weights "
                             f"[out, in] only.")
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=isinstance(node, nir.Affine))
        with torch.no_grad():
            layer.weight.copy_(_weight(weight))
            if isinstance(node, nir.Affine):
                layer.bias.copy_(_weight(np.broadcast_to(node.bias, (weight.shape[0],))))
        return layer
    if isinstance(node, (nir.Conv2d, nir.Conv1d)):
        n = 2 if isinstance(node, nir.Conv2d) else 1
        weight = np.asarray(node.weight)
        groups = int(np.asarray(node.groups).reshape(()))
        cls = nn.Conv2d if n == 2 else nn.Conv1d
        layer = cls(weight.shape[1] * groups, weight.shape[0], weight.shape[2:], stride=_ints(node.stride, n),
                    padding=_padding(node.padding, n), dilation=_ints(node.dilation, n), groups=groups, bias=True)
        with torch.no_grad():
            layer.weight.copy_(_weight(weight))
            layer.bias.copy_(_weight(np.broadcast_to(node.bias, (weight.shape[0],))))
        return layer
    if isinstance(node, nir.AvgPool2d):
        return nn.AvgPool2d(_ints(node.kernel_size, 2), _ints(node.stride, 2), _ints(node.padding, 2))
    if isinstance(node, nir.SumPool2d):
        return SumPool2d(_ints(node.kernel_size, 2), _ints(node.stride, 2), _ints(node.padding, 2))
    if isinstance(node, nir.Flatten):
        start, end = int(node.start_dim), int(node.end_dim)
        return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)
    if isinstance(node, nir.Scale):
        return Scale(node.scale)
    if isinstance(node, nir.Threshold):
        return Heaviside(node.threshold)
    raise ValueError(f"NIR node {name!r} has type {kind}, which snnlab cannot import (it reads "
                     f"{', '.join(sorted(NIR_IMPORTS))}).")


class _GraphView:
    """Adjacency of the flattened graph, edges in the order the graph lists them."""

    def __init__(self, nodes: dict[str, nir.NIRNode], edges: list[tuple[str, str]]) -> None:
        for a, b in edges:
            for end in (a, b):
                if end not in nodes:
                    raise ValueError(f"NIR edge ({a!r}, {b!r}) refers to node {end!r}, which the graph does not have.")
        self.nodes = nodes
        self.edges = list(dict.fromkeys(edges))
        self.preds: dict[str, list[str]] = defaultdict(list)
        self.succs: dict[str, list[str]] = defaultdict(list)
        for a, b in self.edges:
            self.preds[b].append(a)
            self.succs[a].append(b)

    def only(self, name: str, direction: str) -> str | None:
        linked = (self.preds if direction == "in" else self.succs)[name]
        return linked[0] if len(linked) == 1 else None


def _soft_reset_loops(view: _GraphView) -> dict[str, tuple[str, str, str]]:
    """``{threshold: (membrane, threshold, scale)}`` for every soft-reset loop (neuron_map, item 5)."""
    loops = {}
    for name, node in view.nodes.items():
        if not isinstance(node, nir.Threshold):
            continue
        membrane = view.only(name, "in")
        if membrane is None or not isinstance(view.nodes[membrane], (nir.LI, nir.I)):
            continue
        scales = [s for s in view.succs[name] if isinstance(view.nodes[s], nir.Scale)
                  and view.preds[s] == [name] and view.succs[s] == [membrane]]
        if len(scales) == 1 and view.succs[membrane] == [name]:
            loops[name] = (membrane, name, scales[0])
    return loops


class NIRNetwork(nn.Module):
    """An snnlab network built from a NIR graph: ``[T, B, *input_shape] -> [T, B, *output_shape]``.

    Stateless layers see time folded into the batch; neurons run multi-step on snnlab's kernels and
    keep their state between calls until :func:`~snnlab.training.reset_model` (so the training
    methods, online ones included, work on it). ``units`` maps each layer's name to its module;
    ``sources`` lists the layers whose outputs are summed into it. ``dt`` is the time step it was
    read with, ``graph_metadata`` the graph's metadata. Its state dict carries the NIR graph it came
    from (torch's extra state), so a checkpoint of a run started from a graph can be exported again.
    """

    def __init__(self, units: Sequence[_Unit], sources: dict[str, list[str]], outputs: list[str],
                 input_shape: tuple[int, ...], dt: float, graph_bytes: bytes, metadata: dict[str, Any]) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.dt = float(dt)
        self.graph_metadata = dict(metadata)
        self._graph_bytes = graph_bytes
        self.order = [u.name for u in units]
        self.nir_nodes = {u.name: u.nir_nodes for u in units}
        self.sources = {u.name: list(sources[u.name]) for u in units}
        self.outputs = list(outputs)
        self._keys = {u.name: f"n{i}_" + "".join(c if c.isalnum() else "_" for c in u.name) for i, u in enumerate(units)}
        self.units = nn.ModuleDict({self._keys[u.name]: u.module for u in units})
        self.output_shape = self._dry_run()

    def unit(self, name: str) -> nn.Module:
        """The module of layer ``name`` (a NIR node name; a soft-reset neuron goes by its Threshold's)."""
        if name not in self._keys:
            raise KeyError(f"no layer {name!r}; layers: {', '.join(self.order)}.")
        return self.units[self._keys[name]]

    def _run(self, x: torch.Tensor, keep: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        T, B = x.shape[:2]
        values: dict[str, torch.Tensor] = {"": x}
        last_use = {}
        for i, name in enumerate(self.order):
            for s in self.sources[name]:
                last_use[s] = i
        for i, name in enumerate(self.order):
            srcs = self.sources[name]
            z = values[srcs[0]]
            for s in srcs[1:]:
                z = z + values[s]
            module = self.units[self._keys[name]]
            if isinstance(module, StatefulNode):
                y = module(z)
            else:
                y = module(z.flatten(0, 1))
                y = y.reshape(T, B, *y.shape[1:])
            values[name] = y
            if not keep:
                for s in srcs:
                    if last_use.get(s) == i and s not in self.outputs:
                        values.pop(s, None)
        out = values[self.outputs[0]]
        for s in self.outputs[1:]:
            out = out + values[s]
        return out, values

    def _check_input(self, x: torch.Tensor) -> None:
        check_tensor("imported network input [T, B, ...]", x, min_dim=3)
        if tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(f"the NIR graph's input is {self.input_shape} per step, so the network expects "
                             f"[T, B, {', '.join(map(str, self.input_shape))}]; got {tuple(x.shape)}.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return self._run(x)[0]

    def forward_all(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output ``[T, B, ...]`` by layer name (``""``: the input), e.g. to compare spikes."""
        self._check_input(x)
        return self._run(x, keep=True)[1]

    @torch.no_grad()
    def _dry_run(self) -> tuple[int, ...]:
        x = torch.zeros(1, 1, *self.input_shape)
        values: dict[str, torch.Tensor] = {"": x}
        for name in self.order:
            module = self.units[self._keys[name]]
            shapes = {tuple(values[s].shape[2:]) for s in self.sources[name]}
            if len(shapes) != 1:
                raise ValueError(f"NIR node {name!r} receives edges of different shapes {sorted(shapes)}; edges "
                                 f"entering one node are summed, so they must agree.")
            z = sum(values[s] for s in self.sources[name])
            try:
                y = module(z) if isinstance(module, StatefulNode) else module(z.flatten(0, 1)).unflatten(0, (1, 1))
            except (RuntimeError, ValueError) as error:
                raise ValueError(f"NIR node {name!r} ({type(module).__name__}) cannot take its input of shape "
                                 f"{tuple(z.shape[2:])}: {error}") from None
            values[name] = y
        reset_states(self)
        shapes = {tuple(values[s].shape[2:]) for s in self.outputs}
        if len(shapes) != 1:
            raise ValueError(f"the graph's output receives edges of different shapes {sorted(shapes)}.")
        return shapes.pop()

    def get_extra_state(self) -> dict[str, Any]:
        return {"format": "snnlab.nir/1", "graph": self._graph_bytes, "dt": self.dt}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("format") != "snnlab.nir/1":
            raise ValueError("this state dict does not come from an imported NIR network (snnlab.nir/1).")

    def extra_repr(self) -> str:
        return f"input_shape={self.input_shape}, output_shape={self.output_shape}, dt={self.dt:g} s"


def _build(graph: nir.NIRGraph, dt: float, options: NeuronOptions) -> tuple[list[_Unit], dict, list[str], tuple]:
    nodes, edges = _flatten(graph)
    view = _GraphView(nodes, edges)
    inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [n for n, v in nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"the NIR graph has {len(inputs)} Input and {len(outputs)} Output nodes; snnlab imports "
                         f"graphs with exactly one of each.")
    input_name, output_name = inputs[0], outputs[0]
    input_shape = tuple(int(s) for s in np.asarray(nodes[input_name].input_type["input"]).reshape(-1))
    loops = _soft_reset_loops(view)
    owner: dict[str, str] = {}          # NIR node -> unit name
    units: dict[str, _Unit] = {}
    for fire, (membrane, _, scale) in loops.items():
        module = soft_reset_neuron_from_nir(nodes[membrane], nodes[fire], nodes[scale], (membrane, fire, scale), dt,
                                            options)
        units[fire] = _Unit(fire, (membrane, fire, scale), module, spiking=True)
        owner.update({membrane: fire, fire: fire, scale: fire})
    owner[input_name] = ""
    for name, node in nodes.items():
        if name in owner or name == output_name:
            continue
        if isinstance(node, (nir.IF, nir.LIF)):
            units[name] = _Unit(name, (name,), spiking_neuron_from_nir(node, name, dt, options), spiking=True)
        elif isinstance(node, (nir.LI, nir.I)):
            units[name] = _Unit(name, (name,), integrator_from_nir(node, name, dt, options.backend))
        else:
            units[name] = _Unit(name, (name,), _stateless_module(name, node),
                                spiking=isinstance(node, nir.Threshold))
        owner[name] = name

    def unit_sources(unit: _Unit) -> list[str]:
        entry = unit.nir_nodes[0]  # a loop's membrane, or the node itself
        return [owner[a] for a in view.preds[entry] if owner.get(a) != unit.name]

    # max pool of spikes: SumPool2d -> Threshold(0 < θ < 1), the pool reading one spiking layer
    for name, node in nodes.items():
        if not isinstance(node, nir.SumPool2d) or view.succs[name] == [] or len(view.succs[name]) != 1:
            continue
        fire = view.succs[name][0]
        if not isinstance(nodes[fire], nir.Threshold) or fire in loops or view.preds[fire] != [name]:
            continue
        feeding = [owner[a] for a in view.preds[name]]
        theta = uniform_value(nodes[fire].threshold, "threshold", fire)
        if len(feeding) == 1 and feeding[0] in units and units[feeding[0]].spiking and 0.0 <= theta < 1.0:
            pool = units.pop(name).module
            units[fire] = _Unit(fire, (name, fire), nn.MaxPool2d(pool.kernel_size, pool.stride, pool.padding),
                                spiking=True)
            owner[name] = fire

    sources = {}
    for unit in units.values():
        srcs = unit_sources(unit)
        if not srcs:
            raise ValueError(f"NIR node {unit.nir_nodes[0]!r} has no incoming edge; every node must be reached from "
                             f"the graph's input.")
        sources[unit.name] = srcs
    out_sources = [owner[a] for a in view.preds[output_name]]
    if not out_sources:
        raise ValueError(f"the graph's Output node {output_name!r} has no incoming edge.")
    order = _topological(units, sources)
    return [units[n] for n in order], sources, out_sources, input_shape


def _topological(units: dict[str, _Unit], sources: dict[str, list[str]]) -> list[str]:
    sorter = TopologicalSorter({name: [s for s in sources[name] if s] for name in units})
    try:
        order = list(sorter.static_order())
    except CycleError as error:
        cycle = error.args[1] if len(error.args) > 1 else []
        raise ValueError(
            f"the NIR graph has a recurrent loop through {' -> '.join(map(repr, cycle))} that is not a soft-reset "
            f"neuron (membrane -> Threshold -> Scale -> membrane); snnlab imports feed-forward graphs whose only "
            f"loops are neurons.") from None
    depth = {"": 0}  # longest path from the input: sorting by it keeps a topological order
    for name in order:
        depth[name] = 1 + max(depth[s] for s in sources[name])
    position = {name: i for i, name in enumerate(units)}  # among equals, keep the graph's order
    return sorted(order, key=lambda n: (depth[n], position[n]))


def from_nir(graph: nir.NIRGraph | str | Path | bytes, dt: float | None = None, *, surrogate="arctan",
             detach_reset: bool = True, backend: str = "auto") -> NIRNetwork:
    """Build an snnlab network from a NIR graph (or a ``.nir`` file, or its bytes); module docstring.

    ``dt`` (seconds): the graph's recorded one when left out; a different one raises
    :class:`DtMismatchError`; required for a graph that records none. ``surrogate``,
    ``detach_reset`` and ``backend`` set what NIR does not carry, for training the imported neurons
    (:class:`~snnlab.interop.neuron_map.NeuronOptions`). The result is in eval mode.
    """
    graph = read_graph(graph)
    dt = _resolve_dt(graph, dt)
    options = NeuronOptions(surrogate=surrogate, detach_reset=detach_reset, backend=backend)
    units, sources, outputs, input_shape = _build(graph, dt, options)
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    return NIRNetwork(units, sources, outputs, input_shape, dt, buffer.getvalue(), dict(graph.metadata or {})).eval()


def model_from_nir(source, *, input_shape: Sequence[int], num_classes: int | None = None, **options) -> NIRNetwork:
    """:func:`from_nir` for training (``snnlab train --init-from``): checks that the graph takes the data
    set's per-step ``input_shape`` and outputs ``num_classes`` values; ``options`` go to :func:`from_nir`
    (``dt=...`` for a graph that records none)."""
    unknown = set(options) - {"dt", "surrogate", "detach_reset", "backend"}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for a network imported from NIR; valid: dt (seconds, "
                         f"for a graph that records none), surrogate, detach_reset, backend.")
    net = from_nir(source, **options)
    shape = tuple(int(s) for s in input_shape)
    if net.input_shape != shape:
        raise ValueError(f"the NIR graph takes input {net.input_shape} per step, but the data set's items are {shape}; "
                         f"pick the data set (and --data-option size=...) the graph was exported for.")
    if num_classes is not None and net.output_shape != (int(num_classes),):
        raise ValueError(f"the NIR graph outputs {net.output_shape} per step, but the data set has {num_classes} "
                         f"classes; the network must end in one output per class.")
    return net.train()


def describe_graph(graph: nir.NIRGraph) -> list[dict[str, Any]]:
    """One row per node: name, NIR type, input and output shape, and its main parameters."""
    rows = []
    for name, node in graph.nodes.items():
        params = {}
        for key in ("tau", "r", "v_leak", "v_threshold", "v_reset", "threshold", "scale"):
            if hasattr(node, key) and getattr(node, key) is not None:
                array = np.asarray(getattr(node, key), dtype=np.float64)
                params[key] = float(array.reshape(-1)[0]) if np.all(array == array.reshape(-1)[0]) else "varies"
        for key in ("weight",):
            if hasattr(node, key):
                params["weight"] = "x".join(map(str, np.asarray(getattr(node, key)).shape))
        for key in ("kernel_size", "stride", "padding"):
            if isinstance(node, (nir.AvgPool2d, nir.SumPool2d, nir.Conv2d)) and hasattr(node, key):
                value = getattr(node, key)
                params[key] = value if isinstance(value, str) else tuple(int(v) for v in np.asarray(value).reshape(-1))

        def shape(types):
            values = list((types or {}).values())
            return tuple(int(v) for v in np.asarray(values[0]).reshape(-1)) if values and values[0] is not None else None

        rows.append({"node": name, "type": type(node).__name__, "input": shape(getattr(node, "input_type", None)),
                     "output": shape(getattr(node, "output_type", None)), "parameters": params})
    return rows
