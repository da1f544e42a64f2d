"""Chapter 8's helpers: design comparison, energy sweep, Table 3 row, quantisation cost, figures."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from snnlab.hardware import HOROWITZ_45NM_TABLE, SATA_SIM_TABLE, GpuModel, compile_network, simulate
from snnlab.hardware.experiments import (
    PAPER_TABLE3, compare_designs, deploy, energy_sweep, quantization_cost, table3_analogue,
)
from snnlab.inference import ConfidenceExit
from snnlab.models.atsn_vgg import atsn_vgg
from snnlab.viz.accelerator import draw_energy_explorer, plot_designs, plot_layer_energy


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = atsn_vgg(num_classes=10, input_shape=(1, 8, 8)).eval().folded()
    with torch.no_grad():
        net.classifier.weight.mul_(8)       # confident enough to exit at some thresholds
    x = torch.randn(24, 1, 8, 8)
    y = torch.randint(0, 10, (24,))
    model, xq = deploy(net, x)
    return net, model, x, xq, y


def test_compare_designs_and_table3_row(setup):
    _, model, _, xq, y = setup
    report = compare_designs(model, xq, y, T=4, cl_init=0.5, tau_cl=0.9)
    assert set(report["designs"]) == {"atsn", "conventional", "conventional_exit"}
    for name, s in report["designs"].items():
        r = report["results"][name]
        assert s["accuracy"] == r.accuracy(y.numpy())
        assert s["joules_per_inference"] == pytest.approx(r.joules_per_inference(HOROWITZ_45NM_TABLE))
        assert len(report["per_layer"][name]) == 3
    gpu = GpuModel().estimate(compile_network(model, (1, 8, 8)), 4)
    assert report["gpu"] == pytest.approx(gpu)
    row = table3_analogue(report["results"]["atsn"], report["gpu"], frames=100)
    assert row["accelerator_joules"] == pytest.approx(100 * report["designs"]["atsn"]["joules_per_inference"])
    assert row["percent_of_gpu"] == pytest.approx(100 * row["accelerator_joules"] / row["gpu_joules"])
    assert len(PAPER_TABLE3) == 4 and PAPER_TABLE3[0][-1] == pytest.approx(100 * 537.6 / 6814, abs=0.01)


def test_energy_sweep_matches_single_runs(setup):
    _, model, _, xq, y = setup
    sweep = energy_sweep(model, xq, y, [0.3, 0.999], [0.9, 1.0], T=4)
    for i, cl in enumerate([0.3, 0.999]):
        for j, tau in enumerate([0.9, 1.0]):
            r = simulate(model, xq, T=4, cl_init=cl, tau_cl=tau)
            assert sweep["energy"][i, j] == pytest.approx(r.energy(SATA_SIM_TABLE)["total"])
            assert sweep["mean_steps"][i, j] == r.mean_steps
            assert sweep["exit_counts"][i, j].sum() == len(y)
            assert sweep["layer_energy"][i, j].sum() == pytest.approx(sweep["energy"][i, j])
    # a lower threshold never makes samples run longer
    assert sweep["mean_steps"][0, 0] <= sweep["mean_steps"][1, 0]


def test_quantization_cost_reports_both_networks(setup):
    net, _, x, _, y = setup
    cost = quantization_cost(net, x, y, ConfidenceExit(0.5, 0.9), T=4, weight_bits=12, input_bits=12)
    assert set(cost) == {"float_accuracy", "float_mean_steps", "fixed_point_accuracy", "fixed_point_mean_steps"}
    assert abs(cost["float_accuracy"] - cost["fixed_point_accuracy"]) <= 2 / len(y)   # 12 bits: almost float


def test_figures_draw(setup):
    _, model, _, xq, y = setup
    r = simulate(model, xq, T=4)
    fig, ax = plt.subplots()
    values = plot_layer_energy(ax, r, SATA_SIM_TABLE)
    assert values.sum(1) == pytest.approx([row["energy"] for row in r.per_layer(SATA_SIM_TABLE)])
    plt.close(fig)
    report = compare_designs(model, xq, y, T=4)
    fig, axes = plt.subplots(1, 3)
    plot_designs(axes, report["designs"])
    with pytest.raises(ValueError, match="one axis per key"):
        plot_designs(axes[:2], report["designs"])
    plt.close(fig)
    sweep = energy_sweep(model, xq, y, [0.5, 0.999], [1.0], T=4)
    fig = plt.figure()
    shown = draw_energy_explorer(fig, sweep, 0.51, 1.0)
    assert shown["energy"] == sweep["energy"][0, 0]
    assert fig._suptitle.get_text().startswith("CL_init = 0.5, τ_CL = 1: thresholds CL_t = 0.5000, 0.5000, 0.5000")
    plt.close(fig)
