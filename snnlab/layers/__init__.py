"""Network layers beyond convolutions: SEW connect functions and residual blocks."""

from snnlab.layers.residual import (
    BLOCK_KINDS,
    BasicBlock,
    Bottleneck,
    Downsample,
    ResidualBlock,
    SeqConvBN,
    constant_spike_bias,
    spiking_neuron,
)
from snnlab.layers.sew import CONNECT_FUNCTIONS, SEWConnect, check_connect, sew_connect

__all__ = [
    "CONNECT_FUNCTIONS",
    "SEWConnect",
    "check_connect",
    "sew_connect",
    "BLOCK_KINDS",
    "BasicBlock",
    "Bottleneck",
    "Downsample",
    "ResidualBlock",
    "SeqConvBN",
    "constant_spike_bias",
    "spiking_neuron",
]
