"""to_nir: the node each layer becomes, the neuron mapping's numbers, BatchNorm folding, branches,
and the layers it refuses (with the layer's name and the reason)."""

from __future__ import annotations

import math

import nir
import numpy as np
import pytest
import torch
from torch import nn

from interop_cases import DT, drive, lif, lin, randomise_batchnorm
from snnlab.conversion import SCTTFSNeuron, ThresholdParams
from snnlab.interop import UnsupportedLayerError, from_nir, to_nir
from snnlab.layers import SpatialAttention
from snnlab.models import build_model
from snnlab.models.small import TimeFolded
from snnlab.neurons import IFNode, NonSpikingIntegrator, PLIFNode, reset_states


def only(graph, kind):
    nodes = [(name, n) for name, n in graph.nodes.items() if isinstance(n, kind)]
    assert len(nodes) == 1, nodes
    return nodes[0]


def value(array) -> float:
    array = np.asarray(array)
    assert np.all(array == array.reshape(-1)[0])
    return float(array.reshape(-1)[0])


@pytest.mark.parametrize("decay_input, r_expected", [(True, 1.0), (False, 4.0)])
def test_lif_hard_reset_mapping(decay_input, r_expected):
    """tau = tau_s·dt; R = 1 (decayed input) or tau_s (undecayed); v_leak = v_reset (neuron_map's table)."""
    net = nn.Sequential(nn.Linear(3, 2), lif(tau=4.0, decay_input=decay_input, v_reset=-0.25, v_threshold=0.75))
    _, node = only(to_nir(net, dt=2e-3, input_shape=(3,)), nir.LIF)
    assert math.isclose(value(node.tau), 8e-3)
    assert value(node.r) == r_expected
    assert value(node.v_leak) == value(node.v_reset) == -0.25 and value(node.v_threshold) == 0.75
    assert node.tau.shape == (2,)


def test_if_plif_and_integrator_mapping():
    net = nn.Sequential(nn.Linear(3, 2), IFNode(step_mode="m", v_threshold=0.5), nn.Linear(2, 2),
                        PLIFNode(init_tau=2.0, step_mode="m"), nn.Linear(2, 2), NonSpikingIntegrator(0.75, step_mode="m"),
                        nn.Linear(2, 2), NonSpikingIntegrator(1.0, step_mode="m"))
    with torch.no_grad():
        net[3].w.fill_(-1.0)  # learned tau = 1/sigmoid(-1) = 1 + e
    graph = to_nir(net, dt=1e-3, input_shape=(3,))
    _, if_node = only(graph, nir.IF)
    assert value(if_node.r) == 1000.0 and value(if_node.v_threshold) == 0.5 and value(if_node.v_reset) == 0.0
    _, plif = only(graph, nir.LIF)
    assert math.isclose(value(plif.tau), (1 + math.e) * 1e-3, rel_tol=1e-6)
    assert plif.metadata["snnlab_neuron"] == "PLIFNode" and plif.metadata["snnlab_plif_w"] == -1.0
    _, li = only(graph, nir.LI)  # V = 0.75 V + X: dt/tau = 0.25, dt R / tau = 1
    assert math.isclose(value(li.tau), 4e-3) and math.isclose(value(li.r), 4.0) and value(li.v_leak) == 0.0
    _, integrator = only(graph, nir.I)
    assert value(integrator.r) == 1000.0


@pytest.mark.parametrize("neuron, expected_w", [
    (lambda: IFNode(step_mode="m", v_reset=None, v_threshold=0.8), -0.8),                 # -V_th
    (lambda: lif(tau=2.0, decay_input=False, v_reset=None), -0.5),                        # -(1 - 1/tau) V_th
    (lambda: lif(tau=4.0, decay_input=True, v_reset=None, v_threshold=0.5), -1.5),        # -(tau - 1) V_th
])
def test_soft_reset_is_a_membrane_threshold_scale_loop(neuron, expected_w):
    graph = to_nir(nn.Sequential(nn.Linear(3, 2), neuron()), dt=DT, input_shape=(3,))
    names = {type(n).__name__: name for name, n in graph.nodes.items()}
    membrane = names.get("LI", names.get("I"))
    fire, reset = names["Threshold"], names["Scale"]
    assert {(membrane, fire), (fire, reset), (reset, membrane), (fire, "output")} <= set(graph.edges)
    assert value(graph.nodes[reset].scale) == pytest.approx(expected_w)
    assert "IF" not in names and "LIF" not in names  # NIR 1.0's IF/LIF would reset to v_reset: not a soft reset


def test_graph_records_dt_and_survives_the_file(tmp_path):
    model = build_model("spiking_cnn", num_classes=10, input_shape=(1, 8, 8), T=4, v_reset=0.0)
    path = tmp_path / "net.nir"
    to_nir(model, dt=5e-4, path=path)
    graph = nir.read(path)
    assert float(graph.metadata["dt"]) == 5e-4 and graph.metadata["time_unit"] == "s"
    assert graph.metadata["model"] == "SpikingCNN" and str(graph.metadata["source"]).startswith("snnlab ")
    assert list(graph.nodes["input"].input_type["input"]) == [1, 8, 8]
    assert list(graph.nodes["output"].output_type["output"]) == [10]


def test_batchnorm_folded_equals_unfolded_in_eval_mode():
    """The exported conv (BN folded in) computes what conv -> BN computes with the running statistics."""
    model = randomise_batchnorm(nn.Sequential(TimeFolded(nn.Conv2d(2, 5, 3, padding=1, bias=True), nn.BatchNorm2d(5)),
                                              lif(v_reset=0.0)))
    conv, bn = model[0].layers
    graph = to_nir(model, dt=DT, input_shape=(2, 6, 6))
    _, node = only(graph, nir.Conv2d)
    x = torch.randn(7, 2, 6, 6)
    with torch.no_grad():
        unfolded = bn(conv(x))
        folded = torch.nn.functional.conv2d(x, torch.from_numpy(node.weight), torch.from_numpy(node.bias), padding=1)
        # and against BN's formula written out, independently of the folding code
        by_hand = (conv(x) - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var + bn.eps)[:, None, None] \
            * bn.weight[:, None, None] + bn.bias[:, None, None]
    torch.testing.assert_close(folded, unfolded, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(folded, by_hand, rtol=1e-5, atol=1e-5)
    assert model.training is False and isinstance(model[0].layers[1], nn.BatchNorm2d)  # the model is unchanged


def test_tdbn_folding_includes_its_threshold_scale():
    from interop_cases import layer_cases

    model, shape = layer_cases()["Conv2d+tdBN folded+LIF"]
    model = randomise_batchnorm(model)
    graph = to_nir(model, dt=DT, input_shape=shape)
    _, node = only(graph, nir.Conv2d)
    x = drive(shape, 3, 2)
    with torch.no_grad():
        expected = model[1](model[0](x))  # conv then tdBN (alpha·V_th·(x - mean)/sigma·weight + bias)
        folded = torch.nn.functional.conv2d(x.flatten(0, 1), torch.from_numpy(node.weight),
                                            torch.from_numpy(node.bias), padding=1).unflatten(0, (3, 2))
    torch.testing.assert_close(folded, expected, rtol=1e-5, atol=1e-5)


def test_sew_add_exports_a_graph_with_branches():
    model = build_model("sew_resnet18", num_classes=10, input_shape=(2, 16, 16), T=4, width=4, stem="small",
                        stages=(2, 1, 1, 1))
    graph = to_nir(model.eval(), dt=DT)
    preds = {}
    for a, b in graph.edges:
        preds.setdefault(b, []).append(a)
    # block 1's first conv reads A + S of block 0: one edge from block 0's last neuron, one from the stem's
    assert sorted(preds["blocks.1.convs.0.conv"]) == ["blocks.0.sns.1", "stem_sn"]
    # block 1 has no node of its own for the sum; block 2 (a downsample block) reads A1 + A0 + stem
    assert sorted(preds["blocks.2.downsample.conv_bn.conv"]) == ["blocks.0.sns.1", "blocks.1.sns.1", "stem_sn"]
    assert max(len(p) for p in preds.values()) >= 3


def test_spiking_resnet_block_sums_before_its_last_neuron():
    model = build_model("spiking_resnet18", num_classes=10, input_shape=(2, 16, 16), T=4, width=4, stem="small",
                        stages=(1, 1, 1, 1))
    graph = to_nir(model.eval(), dt=DT)
    preds = [a for a, b in graph.edges if b == "blocks.1.sns.1"]
    assert sorted(preds) == ["blocks.1.convs.1.conv", "blocks.1.downsample.conv_bn.conv"]


# -- refusals --------------------------------------------------------------------------------------


def refusal(model, shape=None) -> UnsupportedLayerError:
    with pytest.raises(UnsupportedLayerError) as info:
        to_nir(model, dt=DT, input_shape=shape)
    return info.value


def test_refuses_mlf_naming_every_unit():
    error = refusal(build_model("ds_resnet_small", num_classes=10, input_shape=(2, 8, 8), T=4))
    assert "MLFNode" in str(error) and "'stem_sn'" in str(error) and "'layers.1.sn2'" in str(error)
    assert "multi-level" in str(error)


@pytest.mark.parametrize("cnf, formula", [("AND", "A·S"), ("IAND", "(1 - A)·S")])
def test_refuses_sew_and_iand(cnf, formula):
    error = refusal(build_model("sew_resnet18", num_classes=10, input_shape=(2, 16, 16), T=4, width=4, stem="small",
                                stages=(1, 1, 1, 1), cnf=cnf))
    assert f"g = {cnf}" in str(error) and "'blocks.0'" in str(error) and formula in str(error)
    assert "multiplies two signals" in str(error)


def test_refuses_spatial_attention_and_sc_ttfs_and_vgg_f():
    error = refusal(nn.Sequential(TimeFolded(nn.Conv2d(2, 4, 3, padding=1)), lif(v_reset=0.0), SpatialAttention(7)),
                    (2, 8, 8))
    assert error.layer == "2" and error.kind == "SpatialAttention" and "sigmoid" in error.reason
    scttfs = SCTTFSNeuron(4, ThresholdParams(1.0, 0.0, 0.5), ThresholdParams(0.5, 0.0, 0.5))
    error = refusal(nn.Sequential(nn.Linear(3, 2), scttfs), (3,))
    assert error.layer == "1" and error.kind == "SCTTFSNeuron" and "decaying thresholds" in error.reason
    error = refusal(build_model("ottt_vgg_f", num_classes=10, input_shape=(1, 16, 16), T=4, width=1 / 16))
    assert error.layer == "feedback" and "upsampl" in error.reason


def test_refuses_max_pool_of_non_binary_values():
    error = refusal(build_model("seven_b_net", num_classes=11, input_shape=(2, 16, 16), T=4, channels=(4, 4)))
    assert error.layer == "features.1" and "sum of 2 nodes" in str(error) and "SumPool2d + Threshold" in str(error)
    error = refusal(nn.Sequential(TimeFolded(nn.Conv2d(2, 4, 3, padding=1), nn.MaxPool2d(2))), (2, 8, 8))
    assert error.layer == "0.layers.1" and "'0.layers.0', not a spiking layer" in str(error)


def test_refuses_unknown_layers_and_models_and_stray_batchnorm():
    error = refusal(nn.Sequential(nn.Linear(3, 2), nn.ReLU()), (3,))
    assert error.layer == "1" and error.kind == "ReLU" and "no NIR mapping" in error.reason

    class Custom(nn.Module):
        def forward(self, x):
            return x

    error = refusal(Custom(), (3,))
    assert error.kind == "Custom" and "does not know how this model wires its layers" in error.reason
    error = refusal(nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 2)), (3,))
    assert error.layer == "0" and "folded into the conv or linear layer right before it" in error.reason
    error = refusal(nn.Sequential(TimeFolded(nn.Conv2d(2, 4, 3, groups=2)), lif()), (2, 8, 8))
    assert error.layer == "0.layers" and "groups=2" in error.reason


def test_bad_arguments_raise_clear_errors():
    model = nn.Sequential(lin(3, 2), lif())
    with pytest.raises(ValueError, match="dt .* must be a finite number > 0"):
        to_nir(model, dt=0.0, input_shape=(3,))
    with pytest.raises(ValueError, match="pass input_shape="):
        to_nir(model, dt=DT)
    with pytest.raises(ValueError, match="differs from the model's own per-step input shape"):
        to_nir(build_model("spiking_mlp", num_classes=3, input_shape=(1, 8, 8), T=2), dt=DT, input_shape=(1, 4, 4))
    with pytest.raises(TypeError, match="nn.Module"):
        to_nir("net", dt=DT)


def test_exported_network_in_training_mode_exports_running_statistics():
    """BatchNorm is folded with its running statistics whatever the mode: the graph is the eval-mode network."""
    model = randomise_batchnorm(nn.Sequential(TimeFolded(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)), lif(v_reset=0.0)))
    g_eval = to_nir(model, dt=DT, input_shape=(2, 6, 6))
    g_train = to_nir(model.train(), dt=DT, input_shape=(2, 6, 6))
    np.testing.assert_array_equal(only(g_eval, nir.Conv2d)[1].weight, only(g_train, nir.Conv2d)[1].weight)
    net = from_nir(g_train)
    x = drive((2, 6, 6), 4, 2)
    with torch.no_grad():
        model.eval()
        reset_states(model)
        expected = model(x)
        reset_states(net)
        assert torch.equal(net(x), expected)
