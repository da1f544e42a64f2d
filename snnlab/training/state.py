"""Network state between sequences: resetting it and cutting its temporal gradient path."""

from __future__ import annotations

from torch import nn

from snnlab.neurons import BaseNode

__all__ = ["reset_model", "set_temporal_cut", "spiking_neurons"]


def spiking_neurons(model: nn.Module) -> list[BaseNode]:
    """Every snnlab spiking neuron in ``model``."""
    return [m for m in model.modules() if isinstance(m, BaseNode)]


def reset_model(model: nn.Module) -> None:
    """Start a new input sequence: reset every neuron, every OTTT trace and every other stateful
    module (any module whose class defines a ``reset()`` method, e.g. an output integrator)."""
    from snnlab.training.traces import reset_traces

    for m in model.modules():
        reset = getattr(type(m), "reset", None)
        if callable(reset):
            m.reset()
    reset_traces(model)


def set_temporal_cut(model: nn.Module, cut: bool) -> int:
    """Set ``cut_temporal_grad`` on every neuron (SLTT / OTTT detach the membrane each step).

    Returns the number of neurons changed; raises if the network has none.
    """
    neurons = spiking_neurons(model)
    if not neurons:
        raise ValueError(
            "the network has no snnlab spiking neurons (BaseNode subclasses); the temporal cut of "
            "SLTT/OTTT acts on their membrane state."
        )
    for n in neurons:
        n.cut_temporal_grad = bool(cut)
    return len(neurons)
