"""Watch every spiking layer of a network during one forward pass.

The analyses that read what neurons receive or emit (dormant units, firing rates) share this:
hook every :class:`~snnlab.neurons.BaseNode`, run the network once on a fresh state without
gradient, and remove the hooks and reset the state again, whatever happens.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from snnlab.neurons import BaseNode, reset_states

__all__ = ["observe_neurons"]


def observe_neurons(
    model: nn.Module,
    inputs: torch.Tensor,
    on_forward: Callable[[str, BaseNode, torch.Tensor, torch.Tensor], None],
    *,
    eval_mode: bool = False,
    reset: Callable[[nn.Module], None] = reset_states,
) -> None:
    """Run ``model(inputs)`` once and call ``on_forward(name, layer, input, output)`` for every
    spiking layer's forward call. ``eval_mode`` runs in eval mode (the previous mode is restored);
    ``reset`` starts and ends the sequence (default: reset every neuron)."""
    handles = [
        module.register_forward_hook(lambda mod, args, out, name=name: on_forward(name, mod, args[0], out))
        for name, module in model.named_modules()
        if isinstance(module, BaseNode)
    ]
    if not handles:
        raise ValueError("the model has no spiking layers (snnlab BaseNode) to observe.")
    was_training = model.training
    try:
        if eval_mode:
            model.eval()
        reset(model)
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
        reset(model)
