"""OTTT's VGG and VGG-F: architecture, registry, zero-init feedback, causality, training methods."""

import pytest
import torch
from torch import nn

from snnlab.layers import ScaledWSConv2d, SpikeScale
from snnlab.models import MODELS, OTTTVGG, build_model
from snnlab.models.vgg import OTTT_VGG_CONFIG, vgg_channels
from snnlab.neurons import LIFNode, NonSpikingIntegrator
from snnlab.training import build_loss, build_method, compute_gradients, reset_model, time_major


def _vgg(name="ottt_vgg", seed=0, shape=(1, 8, 8), width=0.125, **kw):
    torch.manual_seed(seed)
    return build_model(name, num_classes=10, input_shape=shape, T=3, width=width, **kw)


def _fire(model, bias=0.8):
    """Raise every conv bias so that all layers fire (an untrained VGG is nearly silent at depth)."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, ScaledWSConv2d):
                mod.bias.fill_(bias)
    return model


def _batch(T=3, B=4, shape=(1, 8, 8), seed=1):
    g = torch.Generator().manual_seed(seed)
    return time_major(torch.randn(B, *shape, generator=g) * 2, T, "static"), torch.randint(0, 10, (B,), generator=g)


def test_registry_and_the_papers_layer_sequence():
    assert "ottt_vgg" in MODELS and "ottt_vgg_f" in MODELS
    m = _vgg(width=1.0, shape=(3, 32, 32))
    convs = [mod for mod in m.modules() if isinstance(mod, ScaledWSConv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 512, 512, 512]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(mod, nn.AvgPool2d) for mod in m.modules()) == 3
    assert sum(isinstance(mod, LIFNode) for mod in m.modules()) == 7
    scales = [mod for mod in m.modules() if isinstance(mod, SpikeScale)]
    assert len(scales) == 7 and all(s.gamma == 2.74 for s in scales)
    assert type(m.classifier) is nn.Linear and m.classifier.in_features == 512
    assert isinstance(m.readout, NonSpikingIntegrator) and m.readout.decay == 0.0
    # parameters of the listed architecture: 7 convs (+ bias + gain) and the FC
    chans = [3, 64, 128, 256, 512, 512, 512, 512]
    expected = sum(9 * a * b + 2 * b for a, b in zip(chans, chans[1:])) + 512 * 10 + 10
    assert sum(p.numel() for p in m.parameters()) == expected
    neuron = next(mod for mod in m.modules() if isinstance(mod, LIFNode))
    assert neuron.params.tau == 2.0 and neuron.params.soft_reset and not neuron.params.decay_input


def test_width_multiplier():
    assert vgg_channels(0.125) == [8, 16, "A", 32, "A", 64, 64, "A", 64, 64]
    assert vgg_channels(1.0) == list(OTTT_VGG_CONFIG)
    with pytest.raises(ValueError, match="width"):
        vgg_channels(0.0)


def test_output_shape_and_prediction_is_argmax_of_summed_potential():
    m = _vgg()
    x, y = _batch()
    out = m(x)
    assert out.shape == (3, 4, 10)
    loss = build_loss("ottt")
    assert torch.equal(loss.predict(out), out.sum(0).argmax(-1))


def test_feedback_starts_at_zero_so_vgg_f_equals_vgg():
    a, b = _fire(_vgg("ottt_vgg")), _vgg("ottt_vgg_f")
    missing = b.load_state_dict(a.state_dict(), strict=False)
    assert missing.missing_keys == ["feedback.layers.weight"] and not missing.unexpected_keys
    assert torch.count_nonzero(b.feedback.layers.weight) == 0
    x, _ = _batch(T=4)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        b.feedback.layers.weight.normal_(0, 1.0)
        reset_model(a); reset_model(b)
        ya, yb = a(x), b(x)
    assert torch.equal(ya[0], yb[0])  # no feedback at t = 0
    assert not torch.equal(ya[1:], yb[1:])  # it acts from t = 1 on


@pytest.mark.parametrize("name", ["ottt_vgg", "ottt_vgg_f"])
def test_stepwise_calls_match_one_sequence(name):
    m = _fire(_vgg(name))
    if m.feedback is not None:
        with torch.no_grad():
            m.feedback.layers.weight.normal_(0, 0.3)
    x, _ = _batch(T=4)
    with torch.no_grad():
        whole = m(x)
        reset_model(m)
        steps = torch.cat([m(x[t : t + 1]) for t in range(4)])
    assert torch.allclose(whole, steps, atol=1e-6)


@pytest.mark.parametrize("name", ["ottt_vgg", "ottt_vgg_f"])
def test_training_methods_run_and_ottt_traces_every_layer_after_a_neuron(name):
    m = _vgg(name)
    x, y = _batch()
    loss = build_loss("ottt")
    for method_name in ("bptt", "ottt_a", "ottt_o"):
        method = build_method(method_name)
        opt = torch.optim.SGD(m.parameters(), lr=0.01)
        result = method.train_step(m, x, y, loss, opt)
        assert torch.isfinite(torch.tensor(result.loss))
        if method_name != "bptt":
            traced = method.traced_layers(m)
            # every conv but the first (raw image) and the classifier; the feedback conv is detached
            assert len(traced) == 7 and "classifier" in traced and "first_conv.layers" not in traced
            assert not any(t.startswith("feedback") for t in traced)
        method.detach(m)


def test_feedback_weight_learns_from_zero_under_ottt():
    m = _fire(_vgg("ottt_vgg_f"))  # the feedback must carry spikes
    x, y = _batch(T=4)
    grads = compute_gradients("ottt_a", m, x, y, build_loss("ottt"))
    assert grads["feedback.layers.weight"].abs().sum() > 0


def test_feedback_scale_equals_feedback_weights_multiplied_by_it_and_squares_the_sgd_step():
    scaled, plain = _fire(_vgg("ottt_vgg_f", feedback_scale=0.1)), _fire(_vgg("ottt_vgg_f"))
    with torch.no_grad():
        scaled.feedback.layers.weight.normal_(0, 1.0)
        plain.feedback.layers.weight.copy_(0.1 * scaled.feedback.layers.weight)
    x, y = _batch(T=4)
    with torch.no_grad():
        assert torch.allclose(scaled(x), plain(x), atol=1e-5)
    # the feedback's gradient is 0.1 times the plain one, and a step on it moves the output 0.1x further:
    # in the plain network's terms an SGD step of lr·0.1² on the feedback weight
    loss = build_loss("ottt")
    g_scaled = compute_gradients("bptt", scaled, x, y, loss)["feedback.layers.weight"]
    g_plain = compute_gradients("bptt", plain, x, y, loss)["feedback.layers.weight"]
    assert g_plain.abs().sum() > 0
    assert torch.allclose(g_scaled, 0.1 * g_plain, rtol=1e-4, atol=1e-7)
    assert "feedback_scale=0.1" in repr(scaled)


def test_errors():
    with pytest.raises(ValueError, match="per-step input shape"):
        OTTTVGG((8, 8), 10)
    with pytest.raises(ValueError, match="too small"):
        OTTTVGG((1, 4, 4), 10)
    with pytest.raises(ValueError, match="start with a conv"):
        OTTTVGG((1, 8, 8), 10, config=("A", 8))
    with pytest.raises(ValueError, match="VGG-F"):
        OTTTVGG((1, 8, 8), 10, feedback_scale=0.5)
    with pytest.raises(ValueError, match="feedback_scale"):
        OTTTVGG((1, 8, 8), 10, feedback=True, feedback_scale=0.0)
    m = _vgg()
    with pytest.raises(ValueError, match="time-major"):
        m(torch.randn(3, 4, 1, 9, 9))


def test_non_spiking_twin_has_the_spiking_networks_parameters_and_no_neurons():
    from snnlab.neurons import BaseNode

    torch.manual_seed(0)
    spiking = build_model("ottt_vgg", num_classes=10, input_shape=(1, 8, 8), T=4, config=(8, "A", 16))
    torch.manual_seed(0)
    twin = build_model("ottt_vgg", num_classes=10, input_shape=(1, 8, 8), T=4, config=(8, "A", 16), spiking=False)
    assert [p.shape for p in spiking.parameters()] == [p.shape for p in twin.parameters()]
    assert not any(isinstance(m, BaseNode) for m in twin.modules())
    assert sum(isinstance(m, torch.nn.ReLU) for m in twin.modules()) == 2
    # NF-Nets' gamma for ReLU, sqrt(2 / (1 - 1/pi)), written out: 1.71286...
    assert all(abs(m.gamma - 1.7128586) < 1e-6 for m in twin.modules() if type(m).__name__ == "SpikeScale")
    x = torch.rand(1, 3, 1, 8, 8).repeat(4, 1, 1, 1, 1)  # static input over T = 4
    out = twin(x)
    assert torch.allclose(out[0], out[3])  # stateless: every step computes the same output
    # one step by hand: conv -> ReLU -> gamma -> pool -> conv -> ReLU -> gamma -> GAP -> linear
    convs = [m for m in twin.modules() if type(m).__name__ == "ScaledWSConv2d"]
    h = torch.relu(convs[0](x[0])) * 1.7128586
    h = torch.nn.functional.avg_pool2d(h, 2)
    h = torch.relu(convs[1](h)) * 1.7128586
    expected = twin.classifier(h.mean((2, 3)))
    assert torch.allclose(out[0], expected, atol=1e-5)


def test_non_spiking_twin_refuses_neuron_options():
    with pytest.raises(ValueError, match="no neuron options"):
        build_model("ottt_vgg", num_classes=10, input_shape=(1, 8, 8), T=4, spiking=False, tau=3.0)
