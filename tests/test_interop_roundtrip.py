"""NIR round trip: export, write, read, import gives the same spikes at every spiking layer."""

from __future__ import annotations

import pytest
import torch

from interop_cases import DT, drive, imported_layer, is_spiking, layer_cases, model_cases, randomise_batchnorm, \
    stateful_outputs
from snnlab.interop import from_nir, to_nir
from snnlab.neurons import BaseNode, LIFNode, PLIFNode, reset_states

LAYERS = layer_cases()
MODELS = model_cases()


def round_trip(model, shape, tmp_path, *, T=8, B=4, seed=0, scale=2.0):
    """Original and imported outputs and per-layer outputs on the same random input."""
    model = randomise_batchnorm(model.eval())
    path = tmp_path / "net.nir"
    to_nir(model, dt=DT, input_shape=shape, path=path)
    net = from_nir(path)
    x = drive(shape, T, B, seed, scale)
    y, layers = stateful_outputs(model, x)
    with torch.no_grad():
        reset_states(net)
        imported = net.forward_all(x)
        y_net = net(x) if False else imported[net.outputs[0]] if len(net.outputs) == 1 else None
    return model, net, x, y, layers, imported, y_net


def assert_same_spikes(model, net, y, layers, imported, y_net):
    spiking = {name for name, m in model.named_modules() if is_spiking(m)}
    assert layers, "the network has no neuron layer"
    fired = 0
    for name, out in layers.items():
        theirs = imported[imported_layer(net, name)]
        if name in spiking:
            assert torch.equal(out, theirs), f"spikes of {name} differ in {int((out != theirs).sum())} places"
            fired += int(out.sum())
        else:  # non-spiking integrators: the same potentials
            assert torch.equal(out, theirs), f"{name}: max |diff| {float((out - theirs).abs().max())}"
    if spiking:
        total = sum(layers[n].numel() for n in spiking)
        assert 0 < fired < total, f"{fired} of {total} possible spikes: the input does not exercise the neurons"
    assert torch.equal(y, y_net)


@pytest.mark.parametrize("case", list(LAYERS))
def test_round_trip_identical_spikes_per_layer_type(case, tmp_path):
    model, shape = LAYERS[case]
    assert_same_spikes(*_drop_inputs(round_trip(model, shape, tmp_path)))


@pytest.mark.parametrize("case", list(MODELS))
def test_round_trip_identical_spikes_for_models(case, tmp_path):
    model, shape = MODELS[case]
    # a drive strong enough to make every model fire: the 7B-Nets' 1x1 stem (2 inputs per unit) stays
    # silent at the default scale of 2
    assert_same_spikes(*_drop_inputs(round_trip(model, shape, tmp_path, T=6, B=3, scale=6.0)))


def _drop_inputs(result):
    model, net, x, y, layers, imported, y_net = result
    return model, net, y, layers, imported, y_net


def test_atsn_folded_network_of_chapter_8_round_trips(tmp_path):
    """The BN-free network chapter 8 deploys (AtsnVGG.folded) exports to the same graph as the BN one."""
    model, shape = MODELS["chapter 7: ATSN VGG (BN, LIF, max pool of spikes, non-reset output)"]
    model = randomise_batchnorm(model)
    folded = model.folded()
    g1, g2 = to_nir(model, dt=DT), to_nir(folded, dt=DT)
    assert [type(n) for n in g1.nodes.values()] == [type(n) for n in g2.nodes.values()]
    assert len(g1.edges) == len(g2.edges)
    for a, b in zip(g1.nodes.values(), g2.nodes.values()):
        for key in ("weight", "bias"):
            if hasattr(a, key):  # both folded BN with the running statistics (float32 rounding apart)
                torch.testing.assert_close(torch.from_numpy(getattr(a, key)), torch.from_numpy(getattr(b, key)))
    net = from_nir(g2)
    x = drive(shape, 6, 3)
    y, _ = stateful_outputs(folded, x)
    with torch.no_grad():
        reset_states(net)
        assert torch.equal(net(x), y)


def test_imported_neurons_are_snnlab_neurons_with_the_exported_parameters():
    model, shape = LAYERS["Linear+PLIF (learned tau, soft reset)"]
    net = from_nir(to_nir(model, dt=DT, input_shape=shape))
    plif = [m for m in net.modules() if isinstance(m, BaseNode)]
    assert len(plif) == 1 and isinstance(plif[0], PLIFNode) and plif[0].params.soft_reset
    assert plif[0].w.item() == model[1].w.item()  # the learned parameter itself, so it keeps learning
    model, shape = LAYERS["Linear without bias+LIF (undecayed, hard reset to -0.2)"]
    lif = [m for m in from_nir(to_nir(model, dt=DT, input_shape=shape)).modules() if isinstance(m, LIFNode)][0]
    assert (lif.params.tau, lif.params.decay_input, lif.params.v_reset) == (3.0, False, -0.2)


def test_step_by_step_calls_match_one_sequence_call(tmp_path):
    """The online training methods call the network one step at a time."""
    model, shape = MODELS["chapter 5: OTTT VGG (soft reset, scaled WS, gamma, GAP, decay-0 readout)"]
    net = from_nir(to_nir(model.eval(), dt=DT))
    x = drive(shape, 5, 2)
    with torch.no_grad():
        reset_states(net)
        whole = net(x)
        reset_states(net)
        steps = torch.cat([net(x[t:t + 1]) for t in range(5)])
    assert torch.equal(whole, steps)
