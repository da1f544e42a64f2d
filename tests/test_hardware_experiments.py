"""Chapter 8's helpers: design comparison, energy sweep, Table 3 row, quantisation cost, figures."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from snnlab.hardware import HOROWITZ_45NM_TABLE, SATA_SIM_TABLE, GpuModel, compile_network, simulate
from snnlab.hardware.experiments import (
    PAPER_TABLE3, compare_designs, deploy, energy_sweep, exactness_checks, measure_network, quantization_cost,
    table3_analogue,
)
from snnlab.inference import ConfidenceExit, fixed_inference
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
    assert set(cost) == {"float_accuracy", "float_mean_steps", "fixed_point_accuracy", "fixed_point_mean_steps",
                         "changed_predictions", "gained", "lost"}
    assert abs(cost["float_accuracy"] - cost["fixed_point_accuracy"]) <= 2 / len(y)   # 12 bits: almost float


def test_quantization_cost_counts_the_samples_rounding_changes(setup):
    net, _, x, _, y = setup
    rule = ConfidenceExit(0.5, 0.9)
    cost = quantization_cost(net, x, y, rule, T=4, weight_bits=2, input_bits=2)   # coarse: predictions move
    model, xq = deploy(net, x, weight_bits=2, input_bits=2)
    before = rule(fixed_inference(net, x, T=4)[0]).predictions.tolist()
    after = rule(fixed_inference(model, xq, T=4)[0]).predictions.tolist()
    truth = y.tolist()
    assert cost["changed_predictions"] == sum(b != a for b, a in zip(before, after)) > 0
    assert cost["gained"] == sum(a == t != b for b, a, t in zip(before, after, truth))
    assert cost["lost"] == sum(b == t != a for b, a, t in zip(before, after, truth))
    assert cost["fixed_point_accuracy"] - cost["float_accuracy"] == pytest.approx((cost["gained"] - cost["lost"]) / len(y))


def test_exactness_checks_pass_on_the_simulation_and_catch_a_wrong_one(setup):
    _, model, _, xq, _ = setup
    rule = ConfidenceExit(0.5, 0.9, hardware=True)
    r = simulate(model, xq, T=4, cl_init=0.5, tau_cl=0.9)
    assert exactness_checks(model, xq, r, rule, T=4) == dict.fromkeys(
        ("outputs", "exit_steps", "predictions", "synaptic_ops"), True)
    r.outputs[0, 0, 0] += 2.0 ** -8          # one potential off by one fixed-point step
    r.steps[0] = 4 if r.steps[0] != 4 else 3
    checks = exactness_checks(model, xq, r, rule, T=4)
    assert not checks["outputs"] and not checks["exit_steps"] and checks["predictions"]
    other = simulate(model, xq, T=4, cl_init=0.999, tau_cl=1.0)   # other thresholds: other exits and counts
    assert other.mean_steps != r.mean_steps
    checks = exactness_checks(model, xq, other, rule, T=4)
    assert not checks["exit_steps"] and not checks["synaptic_ops"]


def test_measure_network_matches_the_pieces(setup):
    net, _, x, _, y = setup
    m = measure_network(net, x, y, T=4, cl_init=0.5, tau_cl=0.9)
    assert all(m.exact.values())
    v = m.values
    cost = quantization_cost(net, x, y, ConfidenceExit(0.5, 0.9, hardware=True), T=4)
    assert {k: v[k] for k in cost} == cost
    designs = compare_designs(*deploy(net, x), y, T=4, cl_init=0.5, tau_cl=0.9)["designs"]
    ops = {name: d["counts_per_inference"]["synaptic_ops"] for name, d in designs.items()}
    energy = {name: d["energy_per_inference"]["total"] for name, d in designs.items()}
    assert v["ops_saved"] == pytest.approx(1 - ops["atsn"] / ops["conventional"])
    assert 0 < v["ops_saved"] < 1                         # the exit stops some samples early
    assert v["energy_saved"] == pytest.approx(1 - energy["atsn"] / energy["conventional"])
    assert v["shift_add_saved"] == pytest.approx(1 - energy["atsn"] / energy["conventional_exit"])
    assert v["mean_steps"] == designs["atsn"]["mean_steps"] < 4
    atsn = m.report["results"]["atsn"]
    layers = atsn.per_layer(SATA_SIM_TABLE)
    assert [r["unit"] for r in layers] == ["pe", "pe", "at"]
    assert v["at_pe_energy"] == pytest.approx(layers[2]["energy"] / (layers[0]["energy"] + layers[1]["energy"]))
    assert v["at_cycle_share"] == pytest.approx(layers[2]["cycles"] / sum(r["cycles"] for r in layers))
    e = atsn.energy(SATA_SIM_TABLE)
    assert v["memory_share"] == pytest.approx((e["dram"] + e["sram"] + e["scratchpad"]) / e["total"])
    row = table3_analogue(atsn, m.report["gpu"], frames=len(y))
    assert v["percent_of_gpu"] == pytest.approx(row["percent_of_gpu"])


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
