"""SpikingJelly 2.0 as a real NIR client: a graph file snnlab writes, read by SpikingJelly's importer, gives
the same outputs as the snnlab network; a graph SpikingJelly writes, read by snnlab, gives SpikingJelly's
spikes. Needs the ``[bench]`` extra; skipped without it, except in CI (``CI=true``), where it fails."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from interop_cases import conv, drive, lif, lin, randomise_batchnorm
from snnlab.interop import from_nir, to_nir
from snnlab.interop.spikingjelly import INSTALL_HINT, export_from_spikingjelly, run_in_spikingjelly, \
    spikingjelly_version
from snnlab.models import build_model
from snnlab.models.small import TimeFolded
from snnlab.neurons import IFNode, PLIFNode, reset_states

pytestmark = pytest.mark.spikingjelly

DT = 1e-3


@pytest.fixture(scope="module", autouse=True)
def spikingjelly():
    version = spikingjelly_version()
    if version is None:
        reason = f"SpikingJelly 2.0 is not installed ({INSTALL_HINT})"
        if os.environ.get("CI"):
            pytest.fail("the SpikingJelly cross-check must run in CI, but " + reason)
        pytest.skip(reason)
    assert int(version.split(".")[0]) >= 2, f"SpikingJelly {version}: the NIR exchange needs 2.0"
    return version


def snnlab_networks() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    torch.manual_seed(0)
    return {
        "conv-BN-LIF (decayed input)-avgpool-linear-IF, output spikes": (nn.Sequential(
            TimeFolded(conv(2, 6, padding=1, bias=False), nn.BatchNorm2d(6)), lif(tau=2.0, v_reset=0.0),
            TimeFolded(nn.AvgPool2d(2)), nn.Flatten(2), lin(96, 5), IFNode(step_mode="m", v_threshold=0.7)), (2, 8, 8)),
        "linear-LIF (undecayed input, tau 3)-linear-PLIF, output spikes": (nn.Sequential(
            lin(10, 12), lif(tau=3.0, decay_input=False, v_reset=0.0), lin(12, 4),
            PLIFNode(init_tau=2.0, step_mode="m", v_reset=0.0)), (10,)),
        "SEW ResNet-18 ADD (IF; a graph with branches)": (
            build_model("sew_resnet18", num_classes=10, input_shape=(2, 16, 16), T=4, width=4, stem="small",
                        stages=(2, 1, 1, 1)), (2, 16, 16)),
        "spiking CNN, hard-reset LIF": (
            build_model("spiking_cnn", num_classes=10, input_shape=(1, 8, 8), T=4, v_reset=0.0, neuron="lif",
                        decay_input=True), (1, 8, 8)),
    }


@pytest.mark.parametrize("case", list(snnlab_networks()))
def test_spikingjelly_reads_snnlab_graphs(case, tmp_path):
    model, shape = snnlab_networks()[case]
    model = randomise_batchnorm(model.eval())
    path = tmp_path / "net.nir"
    to_nir(model, dt=DT, input_shape=shape, path=path)
    x = drive(shape, 8, 6, scale=2.0)
    with torch.no_grad():
        reset_states(model)
        ours = model(x)
    theirs = run_in_spikingjelly(path, x, dt=DT)  # SpikingJelly reads the file, with the dt we wrote
    assert theirs.shape == ours.shape
    assert torch.equal(ours, theirs), f"max |diff| {float((ours - theirs).abs().max())}"
    if "output spikes" in case:
        assert set(ours.unique().tolist()) == {0.0, 1.0}, "the compared outputs should be spikes, some of each"


def spikingjelly_networks():
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(1)
    nets = {
        "conv-LIF-avgpool-flatten-linear-IF": (nn.Sequential(
            layer.Conv2d(2, 6, 3, padding=1), neuron.LIFNode(tau=2.0, v_reset=0.0), layer.AvgPool2d(2),
            layer.Flatten(), layer.Linear(96, 5), neuron.IFNode(v_reset=0.0, v_threshold=0.5)), (2, 8, 8)),
        "linear-LIF (undecayed input)-linear-PLIF": (nn.Sequential(
            layer.Linear(10, 12), neuron.LIFNode(tau=4.0, decay_input=False, v_reset=0.0), layer.Linear(12, 4),
            neuron.ParametricLIFNode(init_tau=2.5, v_reset=0.0)), (10,)),
    }
    for net, _ in nets.values():
        functional.set_step_mode(net, "m")
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    m.weight.mul_(2.0)
    return nets


@pytest.mark.parametrize("case", ["conv-LIF-avgpool-flatten-linear-IF", "linear-LIF (undecayed input)-linear-PLIF"])
def test_snnlab_reads_spikingjelly_graphs(case, tmp_path):
    from spikingjelly.activation_based import functional

    net, shape = spikingjelly_networks()[case]
    x = drive(shape, 8, 6, seed=3)
    path = tmp_path / "sj.nir"
    export_from_spikingjelly(net, x, dt=DT, path=path)
    with torch.no_grad():
        functional.reset_net(net)
        theirs = net(x)
    ours_net = from_nir(path, dt=DT)  # SpikingJelly records no dt in the graph: it must be given
    with torch.no_grad():
        reset_states(ours_net)
        ours = ours_net(x)
    assert set(theirs.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(ours, theirs), f"spikes differ in {int((ours != theirs).sum())} of {ours.numel()} places"
    with pytest.raises(ValueError, match="does not record its time step"):
        from_nir(path)
