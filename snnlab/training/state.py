"""Network state between sequences: resetting it and cutting its temporal gradient path."""

from __future__ import annotations

from torch import nn

from snnlab.neurons import BaseNode, NonSpikingIntegrator, StatefulNode

__all__ = ["reset_model", "set_temporal_cut", "spiking_neurons", "stateful_nodes"]


def spiking_neurons(model: nn.Module) -> list[BaseNode]:
    """Every snnlab spiking neuron in ``model``."""
    return [m for m in model.modules() if isinstance(m, BaseNode)]


def stateful_nodes(model: nn.Module) -> list[StatefulNode]:
    """Every snnlab node that carries a state from one step to the next: the spiking neurons and
    the non-spiking integrators (output layers)."""
    return [m for m in model.modules() if isinstance(m, StatefulNode)]


def reset_model(model: nn.Module) -> None:
    """Start a new input sequence: reset every neuron, every OTTT trace and every other stateful
    module (any module whose class defines a ``reset()`` method, e.g. an output integrator)."""
    from snnlab.training.traces import reset_traces

    for m in model.modules():
        reset = getattr(type(m), "reset", None)
        if callable(reset):
            m.reset()
    reset_traces(model)


def _cut_is_exact(node: StatefulNode) -> bool:
    """An integrator with decay 0 does not read its previous state: cutting it changes no gradient
    (a model may keep it cut to keep each step's graph separate, as OTTT's VGG does)."""
    return isinstance(node, NonSpikingIntegrator) and node.decay == 0.0


def clear_temporal_cut(model: nn.Module) -> int:
    """Undo :func:`set_temporal_cut` (BPTT): gradients flow through every state again.

    A node whose cut is exact (an integrator with decay 0) keeps its setting. Returns the number
    of nodes changed; a network without snnlab nodes is left as it is.
    """
    nodes = [n for n in stateful_nodes(model) if not _cut_is_exact(n)]
    for n in nodes:
        n.cut_temporal_grad = False
    return len(nodes)


def set_temporal_cut(model: nn.Module, cut: bool) -> int:
    """Set ``cut_temporal_grad`` on every stateful node: SLTT and OTTT detach the state carried into
    each step, so gradients flow only through the current step.

    The cut reaches every snnlab neuron and every non-spiking integrator (a leaky output layer's
    potential is state like any membrane's). ``cut=False`` is :func:`clear_temporal_cut`. Returns
    the number of nodes changed; raises if the network has no spiking neuron.
    """
    if not spiking_neurons(model):
        raise ValueError(
            "the network has no snnlab spiking neurons (BaseNode subclasses); the temporal cut of "
            "SLTT/OTTT acts on their membrane state."
        )
    if not cut:
        return clear_temporal_cut(model)
    nodes = stateful_nodes(model)
    for n in nodes:
        n.cut_temporal_grad = True
    return len(nodes)
