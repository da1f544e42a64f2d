"""Network layers beyond convolutions: SEW connect functions, residual blocks, scaled weight standardisation,
batch norm fused with a spiking neuron."""

from snnlab.layers.bn_neuron import BatchNormNeuron
from snnlab.layers.attention import SpatialAttention, spatial_attention_map
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
from snnlab.layers.scaled_ws import OTTT_GAMMA, ScaledWSConv2d, ScaledWSLinear, SpikeScale, standardize_weight
from snnlab.layers.sew import CONNECT_FUNCTIONS, SEWConnect, check_connect, sew_connect
from snnlab.layers.tdbn import TDBatchNorm

__all__ = [
    "BatchNormNeuron",
    "TDBatchNorm",
    "SpatialAttention",
    "spatial_attention_map",
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
    "OTTT_GAMMA",
    "ScaledWSConv2d",
    "ScaledWSLinear",
    "SpikeScale",
    "standardize_weight",
]
