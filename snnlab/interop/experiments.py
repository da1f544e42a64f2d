"""What reading a NIR graph with the wrong time step does (the appendix's experiment).

NIR leaves dt to the reader. :func:`assumed_dt_sweep` reads one graph, stripped of the dt it records
(as a graph from an exporter that does not record one, or a reader that ignores it), at several
assumed time steps, and measures what each reading computes on the same input: every LIF layer's
leak per step (τ_s = τ/dt), the spikes per sample of every spiking layer, and the accuracy. The
graph is not changed.
"""

from __future__ import annotations

import copy
from typing import Sequence

import nir
import torch

from snnlab.interop.importer import NIRNetwork, from_nir, read_graph
from snnlab.analysis.neuron_hooks import observe_neurons
from snnlab.neurons import BaseNode, LIFNode, reset_states

__all__ = ["without_recorded_dt", "assumed_dt_sweep", "spiking_layers", "round_trip_report"]


def without_recorded_dt(graph: nir.NIRGraph) -> nir.NIRGraph:
    """A copy of ``graph`` whose metadata no longer records a dt."""
    stripped = copy.deepcopy(read_graph(graph))
    stripped.metadata = {k: v for k, v in (stripped.metadata or {}).items() if k != "dt"}
    return stripped


def spiking_layers(net: NIRNetwork) -> list[str]:
    """The names of the imported network's spiking layers, in order."""
    return [name for name in net.order if isinstance(net.unit(name), BaseNode)]


@torch.no_grad()
def assumed_dt_sweep(graph: nir.NIRGraph, x: torch.Tensor, y: torch.Tensor, dts: Sequence[float]) -> list[dict]:
    """One row per assumed dt: ``dt``, ``error`` (why the graph could not be read at it, else None),
    ``tau_steps`` (each LIF layer's τ/dt), ``spikes_per_sample`` (per spiking layer) and ``accuracy``
    (argmax of the mean output over time) on ``x`` ``[T, B, ...]`` with labels ``y``."""
    stripped = without_recorded_dt(graph)
    rows = []
    for dt in dts:
        row = {"dt": float(dt), "error": None, "tau_steps": {}, "spikes_per_sample": {}, "accuracy": None}
        try:
            net = from_nir(stripped, dt=dt)
        except ValueError as error:
            row["error"] = str(error)
            rows.append(row)
            continue
        reset_states(net)
        values = net.forward_all(x)
        out = values[net.outputs[0]]
        for name in spiking_layers(net):
            module = net.unit(name)
            if isinstance(module, LIFNode):
                row["tau_steps"][name] = float(getattr(module, "tau", module.params.tau))
            row["spikes_per_sample"][name] = float(values[name].sum() / x.shape[1])
        row["accuracy"] = float((out.mean(0).argmax(-1) == y).float().mean())
        rows.append(row)
    return rows


@torch.no_grad()
def round_trip_report(model: torch.nn.Module, net: NIRNetwork, x: torch.Tensor) -> list[dict]:
    """Per spiking layer of ``model``: its spikes on ``x`` and in how many places the imported ``net``
    (from ``model``'s graph) fires differently; the last row compares the two outputs."""
    outs: dict[str, torch.Tensor] = {}
    observe_neurons(model, x, lambda name, layer, inp, out: outs.__setitem__(name, out))
    reset_states(model)
    y = model(x)
    reset_states(model)
    reset_states(net)
    theirs = net.forward_all(x)
    reset_states(net)
    rows = []
    for name, out in outs.items():
        layer = next(n for n in (name, f"{name}.fire") if n in theirs)
        rows.append({"layer": name, "NIR node": layer, "spikes": int(out.sum()),
                     "places that differ": int((out != theirs[layer]).sum()), "of": out.numel()})
    y_net = theirs[net.outputs[0]]
    rows.append({"layer": "output", "NIR node": "output", "spikes": "-",
                 "places that differ": int((y != y_net).sum()), "of": y.numel()})
    return rows
