"""snnlab.viz.diagrams: each diagram renders, draws what it must (counted from its patches and
texts), and keeps every text readable at the book's column width."""

import io

import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text
from torch import nn

from snnlab.conversion import PAPER_THRESHOLDS, ThresholdParams
from snnlab.conversion.ttfs import spike_times
from snnlab.hardware import atsn_accelerator, conventional_accelerator, simulate
from snnlab.layers import BasicBlock, Bottleneck
from snnlab.neurons import LIFNode, MLFNode, NonSpikingIntegrator
from snnlab.surrogate import Rectangular
from snnlab.viz.diagrams import (
    block_layout, draw_accelerator, draw_mlf_unit, draw_residual_blocks, draw_sc_ttfs_neuron, draw_unrolled_graph,
    readable_fontsize,
)


def gids(fig, name):
    return [a for a in fig.findobj(lambda a: a.get_gid() == name)]


def texts(fig):
    return [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]


def renders(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def all_text_readable(fig):
    smallest = readable_fontsize(fig)
    small = [(t.get_text(), t.get_fontsize()) for t in texts(fig) if t.get_fontsize() < smallest - 1e-6]
    assert not small, f"texts below {smallest} pt: {small[:5]}"


def test_readable_fontsize_scales_with_the_width_shown_in_the_column():
    # 9 CSS points are 12 CSS pixels. An 8-inch figure at 100 dpi (800 px) shrinks to 640 px:
    # f/72 * 640/8 >= 12 -> f >= 10.8. A 4-inch one (400 px) is shown at its size: f*100/72 >= 12 -> 8.64.
    assert readable_fontsize(Figure(figsize=(8, 3), dpi=100)) == pytest.approx(10.9)
    assert readable_fontsize(Figure(figsize=(4, 3), dpi=100)) == pytest.approx(8.7)
    assert readable_fontsize(Figure(figsize=(4, 3), dpi=100), min_pt=12) == pytest.approx(11.6)


@pytest.mark.parametrize("T,layers", [(3, 2), (4, 1)])
def test_unrolled_graph_counts_the_paths_and_the_cut_resets(T, layers):
    fig = Figure(figsize=(9, 6))
    counts = draw_unrolled_graph(fig, T=T, layers=layers)
    # per step: the input, and H, S, V per layer; plus the loss
    assert counts["nodes"] == T * (1 + 3 * layers) + 1
    assert counts["reset"] == counts["cut"] == T * layers
    assert counts["temporal"] == layers * T + layers * (T - 1)       # H -> V, V[t] -> H[t+1]
    assert counts["spatial"] == 2 * T * layers + T                   # W into H, H -> S, S^L -> loss
    assert len(gids(fig, "edge:cut")) == T * layers
    labels = {t.get_text() for t in texts(fig)}
    assert f"$H^{layers}[{T}]$" in labels and f"$S^1[1]$" in labels
    renders(fig)
    all_text_readable(fig)


def test_unrolled_graph_without_detach_has_no_cut():
    fig = Figure(figsize=(9, 6))
    counts = draw_unrolled_graph(fig, T=2, layers=2, detach_reset=False)
    assert counts["cut"] == 0 and counts["reset"] == 4 and not gids(fig, "edge:cut")
    with pytest.raises(ValueError, match="T >= 1"):
        draw_unrolled_graph(Figure(), T=0)


def test_block_layout_reads_the_modules():
    spiking = block_layout(BasicBlock(8, 8, kind="spiking"))
    assert spiking.main == ("conv3x3", "BN", "SN", "conv3x3", "BN") and spiking.after_join == "SN"
    assert spiking.join == "+" and not spiking.downsample
    sew_down = block_layout(BasicBlock(8, 16, stride=2, kind="sew", cnf="IAND"))
    assert sew_down.shortcut == ("conv1x1, stride 2", "BN", "SN") and sew_down.join == "g: IAND"
    assert sew_down.main[-1] == "SN" and sew_down.after_join is None
    assert block_layout(BasicBlock(8, 16, stride=2, kind="spiking")).shortcut == ("conv1x1, stride 2", "BN")
    bottleneck = block_layout(Bottleneck(16, 4, kind="sew"))
    assert [op for op in bottleneck.main if op.startswith("conv")] == ["conv1x1", "conv3x3", "conv1x1"]
    with pytest.raises(ValueError, match="plain"):
        block_layout(BasicBlock(8, 8, kind="plain"))
    with pytest.raises(TypeError, match="ResidualBlock"):
        block_layout(nn.Conv2d(1, 1, 3))


def test_residual_blocks_show_the_sn_on_the_sew_downsample_shortcut_only():
    fig = Figure(figsize=(8, 6))
    blocks = {"Spiking ResNet": BasicBlock(8, 8, kind="spiking"), "SEW": BasicBlock(8, 8, kind="sew"),
              "Spiking ResNet, downsample": BasicBlock(8, 16, stride=2, kind="spiking"),
              "SEW, downsample": BasicBlock(8, 16, stride=2, kind="sew")}
    layouts = draw_residual_blocks(fig, blocks)
    assert len(gids(fig, "shortcut:SN")) == 1                         # SEW's downsample only
    assert len(gids(fig, "shortcut:conv")) == len(gids(fig, "shortcut:BN")) == 2
    assert len(gids(fig, "after:SN")) == 2 and len(gids(fig, "join:add")) == 2   # Spiking ResNet: add, then SN
    assert len(gids(fig, "join:g")) == 2
    assert len(gids(fig, "main:SN")) == sum(layout.main.count("SN") for layout in layouts.values()) == 6
    labels = {t.get_text() for t in texts(fig)}
    assert set(blocks) <= labels and "g: ADD" in labels and "downsample\nshortcut" in labels
    renders(fig)
    all_text_readable(fig)


def test_mlf_unit_draws_one_level_and_window_per_threshold():
    unit = MLFNode((0.5, 1.5, 2.5, 3.5), surrogate=Rectangular(width=1.0))
    fig = Figure(figsize=(8, 3.6))
    info = draw_mlf_unit(fig, unit, lo=-0.5, hi=4.5)
    assert len(gids(fig, "mlf:level")) == len(gids(fig, "mlf:window")) == 4
    for (lo, hi), th in zip(info["windows"], unit.thresholds):
        assert lo == pytest.approx(th - 0.5, abs=0.005) and hi == pytest.approx(th + 0.5, abs=0.005)
    labels = " ".join(t.get_text() for t in texts(fig))
    assert all(f"= {th:g}" in labels for th in unit.thresholds)
    renders(fig)
    all_text_readable(fig)
    with pytest.raises(TypeError, match="MLFNode"):
        draw_mlf_unit(Figure(), LIFNode())


def test_sc_ttfs_neuron_marks_the_two_spikes_the_conversion_code_computes():
    enc, cal = PAPER_THRESHOLDS["cifar10"]
    fig = Figure(figsize=(8, 4.6), layout="constrained")
    info = draw_sc_ttfs_neuron(fig, 0.4, 8, enc, cal)
    t_e, t_c = spike_times(torch.tensor([0.4], dtype=torch.float64), 8, enc, cal)
    assert (info["t_e"], info["t_c"]) == (int(t_e), int(t_c)) and 0 <= info["t_e"] <= info["t_c"]
    # z = theta_e(t_e) + theta_c(t_c) by eq. 14, and it is below v (both spikes subtract from v)
    assert info["z"] == pytest.approx(float(enc(info["t_e"]) + cal(info["t_c"])))
    assert info["z"] <= 0.4
    assert len(gids(fig, "spike:encoding")) == len(gids(fig, "spike:calibration")) == 1
    assert gids(fig, "theta_e") and gids(fig, "theta_c")
    renders(fig)
    all_text_readable(fig)
    # a neuron whose potential never reaches θ_e in the window is silent: no spike marked
    silent = Figure(figsize=(8, 4.6))
    info = draw_sc_ttfs_neuron(silent, 1e-4, 4, ThresholdParams(1.0, 0.0, 0.5), ThresholdParams(0.5, 0.0, 0.5))
    assert info["t_e"] == info["t_c"] == -1 and info["z"] == 0.0
    assert not gids(silent, "spike:encoding") and not gids(silent, "spike:calibration")


def _tiny_network():
    """16 inputs -> 6 LIF -> 3 outputs (an integrator), seeded weights large enough to spike."""
    torch.manual_seed(0)
    lif = LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0, step_mode="m")
    net = nn.Sequential(nn.Linear(16, 6), lif, nn.Linear(6, 3), NonSpikingIntegrator(0.5, step_mode="m"))
    with torch.no_grad():
        net[0].weight.mul_(4.0)
    return net.eval()


def _simulate(config):
    x = torch.rand(3, 16, generator=torch.Generator().manual_seed(0))
    return simulate(_tiny_network(), x, T=2, config=config, input_shape=(16,))


@pytest.mark.parametrize("rows,cols", [(16, 16), (4, 6)])
def test_accelerator_draws_every_pe_the_at_unit_and_the_simulators_numbers(rows, cols):
    config = atsn_accelerator(rows=rows, cols=cols)
    result = _simulate(config)
    fig = Figure(figsize=(9, 6))
    drawn = draw_accelerator(fig, result)
    assert len(gids(fig, "pe")) == rows * cols - 1 == config.n_pe
    assert len(gids(fig, "at-unit")) == 1
    assert gids(fig, "sram") and gids(fig, "dram") and gids(fig, "close-up:pe") and gids(fig, "close-up:at")
    labels = " ".join(t.get_text() for t in texts(fig))
    for needed in ("128 B", "1 KB", "3 KB", f"{config.n_pe} PEs", "AT unit", f"{config.bus_words} words / cycle"):
        assert needed in labels, needed
    cells = [t.get_text() for t in gids(fig, "table:cell")]
    per_layer = result.per_layer()
    assert drawn == per_layer and len(cells) == 8 * len(per_layer)
    def shown(x):  # whole numbers with separators from 100 up, else three significant digits
        return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"

    for row in per_layer:   # the simulator's numbers, as the table prints them
        assert shown(row["cycles"]) in cells and shown(row["synaptic_ops"]) in cells
        assert shown(row["energy"]) in cells and f"{100 * row['utilisation']:.1f} %" in cells
    assert f"{shown(result.cycles_per_inference)} cycles" in labels
    renders(fig)
    all_text_readable(fig)


def test_accelerator_needs_an_at_unit_and_a_simulation_result():
    result = _simulate(conventional_accelerator())
    with pytest.raises(ValueError, match="no AT unit"):
        draw_accelerator(Figure(figsize=(9, 6)), result)
    with pytest.raises(TypeError, match="SimulationResult"):
        draw_accelerator(Figure(figsize=(9, 6)), {"cycles": 1})
