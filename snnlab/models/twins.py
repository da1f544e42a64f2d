"""The non-spiking twin of a spiking network: the same layers with every spiking neuron replaced
by a ReLU, the reference row of an accuracy table ("did the spiking network learn at all?").

``relu_twin(model)`` returns a copy of ``model`` whose :class:`~snnlab.neurons.BaseNode` layers
(IF, LIF, PLIF, MLF) are :class:`ReLU` modules. The convolutions, batch norms, pooling, shortcuts
and classifier are untouched, so the twin has the spiking network's shape and parameter count
(less PLIF's one scalar per layer). Run with ``T = 1`` on a static image it is an ordinary ANN: a
Spiking ResNet block ``SN(F(S) + S)`` becomes He et al.'s ``ReLU(F(x) + x)`` (SEW ResNet eq. 6),
and a SEW ADD block becomes the "ReLU before add" block of eq. (10). On event frames the twin
classifies each frame on its own and the outputs are averaged over time like the spiking
network's; it has no memory from one frame to the next.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from snnlab.neurons import BaseNode

__all__ = ["ReLU", "relu_twin"]


class ReLU(nn.Module):
    """``max(x, 0)``, standing where a spiking neuron stood (stateless: nothing to reset)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


def relu_twin(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every spiking neuron replaced by :class:`ReLU` (see the module
    docstring). Raises ``ValueError`` if ``model`` has no spiking neuron to replace."""
    twin = copy.deepcopy(model)
    names = [name for name, m in twin.named_modules() if isinstance(m, BaseNode)]
    if not names:
        raise ValueError(f"relu_twin: {type(model).__name__} has no spiking neuron to replace.")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = twin.get_submodule(parent_name) if parent_name else twin
        setattr(parent, child, ReLU())
    leftover = [name for name, m in twin.named_modules(remove_duplicate=False) if isinstance(m, BaseNode)]
    if leftover:  # a neuron registered under two parents would survive under one of them
        raise ValueError(f"relu_twin: neurons shared between modules could not all be replaced: {leftover}.")
    return twin
