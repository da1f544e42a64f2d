"""Spiking neurons: functional reference dynamics and torch modules."""

from snnlab.neurons.functional import (
    NeuronParams,
    NeuronTrace,
    fire_and_reset,
    if_charge,
    lif_charge,
    neuron_step,
    simulate,
)
from snnlab.neurons.modules import BaseNode, IFNode, LIFNode, PLIFNode, reset_states

__all__ = [
    "NeuronParams",
    "NeuronTrace",
    "fire_and_reset",
    "if_charge",
    "lif_charge",
    "neuron_step",
    "simulate",
    "BaseNode",
    "IFNode",
    "LIFNode",
    "PLIFNode",
    "reset_states",
]
