"""observe_neurons: every spiking layer seen once per call, hooks removed, mode and state restored."""

import pytest
import torch
from torch import nn

from snnlab.analysis.neuron_hooks import observe_neurons
from snnlab.neurons import IFNode


def test_sees_every_layer_and_cleans_up():
    net = nn.Sequential(nn.Linear(3, 4), IFNode(step_mode="m"), nn.Linear(4, 2), IFNode(step_mode="m"))
    net.train()
    seen = []
    observe_neurons(net, torch.rand(5, 2, 3), lambda name, layer, x, out: seen.append((name, tuple(out.shape))),
                    eval_mode=True)
    assert seen == [("1", (5, 2, 4)), ("3", (5, 2, 2))]
    assert net.training and all(not m._forward_hooks for m in net.modules())
    assert net[1].v is None and net[3].v is None


def test_a_network_without_spiking_layers_is_an_error():
    with pytest.raises(ValueError, match="no spiking layers"):
        observe_neurons(nn.Linear(3, 2), torch.rand(4, 3), lambda *a: None)
