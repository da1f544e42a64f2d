"""The model registry and the small spiking models."""

import pytest
import torch

from snnlab.models import MODELS, build_model
from snnlab.neurons import IFNode, LIFNode, PLIFNode


@pytest.mark.parametrize("name", ["spiking_mlp", "spiking_cnn"])
def test_per_step_outputs_for_static_and_event_shapes(name):
    for shape, per_step in (((1, 8, 8), (1, 8, 8)), ((5, 2, 8, 8), (2, 8, 8))):  # image; event item [T,2,H,W]
        model = build_model(name, num_classes=7, input_shape=shape, T=3)
        out = model(torch.rand(3, 4, *per_step))
        assert out.shape == (3, 4, 7)


def test_options_reach_the_layers():
    cnn = build_model("spiking_cnn", num_classes=3, input_shape=(2, 8, 8), T=2, channels=(4, 6, 8), bn=False,
                      pool="max", neuron="if")
    assert sum(isinstance(m, IFNode) for m in cnn.modules()) == 3
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in cnn.modules())
    assert any(isinstance(m, torch.nn.MaxPool2d) for m in cnn.modules())
    assert cnn.classifier.in_features == 8 * 1 * 1
    mlp = build_model("spiking_mlp", num_classes=3, input_shape=(10,), T=2, hidden=(5, 4), neuron="plif", tau=3.0)
    assert [m.tau for m in mlp.modules() if isinstance(m, PLIFNode)] == pytest.approx([3.0, 3.0])
    lif = next(m for m in build_model("spiking_mlp", num_classes=2, input_shape=(3,), T=1).modules()
               if isinstance(m, LIFNode))
    p = lif.params  # OTTT's neuron: τ = 2, input not decayed, soft reset, reset detached
    assert (p.tau, p.decay_input, p.v_reset, p.detach_reset) == (2.0, False, None, True)


def test_registry_errors_and_input_checks():
    assert {"spiking_mlp", "spiking_cnn"} <= set(MODELS)
    with pytest.raises(ValueError, match="unknown model 'vgg99'; valid names: .*spiking_cnn"):
        build_model("vgg99", num_classes=10, input_shape=(3, 32, 32), T=4)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("spiking_mlp", num_classes=0, input_shape=(3,), T=4)
    with pytest.raises(ValueError, match="T"):
        build_model("spiking_mlp", num_classes=2, input_shape=(3,), T=0)
    with pytest.raises(TypeError, match="bad options for model 'spiking_mlp'"):
        build_model("spiking_mlp", num_classes=2, input_shape=(3,), T=1, widht=3)
    with pytest.raises(ValueError, match="valid choices: 'if', 'lif', 'plif'"):
        build_model("spiking_mlp", num_classes=2, input_shape=(3,), T=1, neuron="izhikevich")
    model = build_model("spiking_cnn", num_classes=2, input_shape=(1, 8, 8), T=2)
    with pytest.raises(ValueError, match=r"time-major input \[T, B, 1, 8, 8\]"):
        model(torch.rand(4, 1, 8, 8))
