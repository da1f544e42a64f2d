"""Spiking neurons: functional reference dynamics, Numba kernels and torch modules."""

from snnlab.neurons.functional import (
    NeuronParams,
    NeuronTrace,
    fire_and_reset,
    if_charge,
    integrator_step,
    lif_charge,
    mlf_level_params,
    mlf_step,
    neuron_step,
    simulate,
)
from snnlab.neurons.modules import (
    BaseNode,
    IFNode,
    LIFNode,
    MLFNode,
    NonSpikingIntegrator,
    PLIFNode,
    StatefulNode,
    reset_states,
)
from snnlab.neurons.ops import integrator_multi_step, mlf_multi_step, spiking_multi_step

__all__ = [
    "NeuronParams",
    "NeuronTrace",
    "fire_and_reset",
    "if_charge",
    "lif_charge",
    "neuron_step",
    "simulate",
    "mlf_level_params",
    "mlf_step",
    "integrator_step",
    "spiking_multi_step",
    "mlf_multi_step",
    "integrator_multi_step",
    "StatefulNode",
    "BaseNode",
    "IFNode",
    "LIFNode",
    "PLIFNode",
    "MLFNode",
    "NonSpikingIntegrator",
    "reset_states",
]
