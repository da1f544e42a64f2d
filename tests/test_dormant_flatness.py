"""Dormant units (surrogate windows, per-layer fractions vs autograd), loss flatness, per-step accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from snnlab.analysis.dormant import dormant_units, level_windows, neuron_potentials, window_coverage
from snnlab.analysis.flatness import filter_normalized_direction, loss_along_directions
from snnlab.analysis.timestep_accuracy import accuracy_per_timestep
from snnlab.models.ds_resnet import ds_resnet_small, mlf_unit
from snnlab.neurons import LIFNode, MLFNode, reset_states
from snnlab.surrogate import ArcTan, Rectangular


# ---------------------------------------------------------------- windows
def test_level_windows_are_the_surrogate_at_each_threshold():
    u = torch.linspace(-1, 4, 101, dtype=torch.float64)
    w = level_windows((0.6, 1.6, 2.6), Rectangular(1.0), u)
    assert w.shape == (3, 101)
    for k, th in enumerate((0.6, 1.6, 2.6)):
        torch.testing.assert_close(w[k], ((u - th).abs() < 0.5).double())


@pytest.mark.parametrize("width,covered,total,overlap,gap", [
    (1.0, 3.0, 3.0, 0.0, 0.0),   # the paper's setting: three unit windows tile [0.1, 3.1]
    (0.5, 1.5, 1.5, 0.0, 1.0),   # narrower windows leave two gaps of 0.5
    (2.0, 4.0, 6.0, 2.0, 0.0),   # wider windows overlap: [-0.4, 3.6]
])
def test_window_coverage_of_mlf_levels(width, covered, total, overlap, gap):
    c = window_coverage((0.6, 1.6, 2.6), Rectangular(width), -2.0, 6.0)
    for key, expected in (("covered", covered), ("sum_of_windows", total), ("overlap", overlap), ("gap", gap)):
        assert c[key] == pytest.approx(expected, abs=2e-3), key


def test_window_coverage_single_level_and_errors():
    assert window_coverage((1.0,), Rectangular(1.0), -2, 3)["covered"] == pytest.approx(1.0, abs=1e-3)
    # ArcTan never vanishes: the whole interval is covered
    assert window_coverage((1.0,), ArcTan(), -2, 3)["covered"] == pytest.approx(5.0, abs=1e-3)
    with pytest.raises(ValueError):
        window_coverage((1.0,), Rectangular(), 1.0, 1.0)
    with pytest.raises(ValueError):
        level_windows((), Rectangular(), torch.zeros(3))


# ---------------------------------------------------------------- dormant fractions
def _constant_inputs(values, T=6):
    return torch.tensor(values).view(1, 1, -1).expand(T, 1, len(values)).contiguous()


def test_dormant_units_hand_example_mlf_vs_lif():
    """Constant inputs 0, 0.3, 1.4, 10 (width-1 windows): 0 never comes within 0.5 of 0.6; 0.3 charges
    towards 0.4 (inside level 1's window); 1.4 makes level 1 fire every step at H = 1.4, outside its
    window but inside level 2's; 10 saturates every level. MLF: 2 of 4 dormant; LIF (level 1 only): 3 of 4."""
    x = _constant_inputs([0.0, 0.3, 1.4, 10.0])
    mlf = nn.Sequential(mlf_unit())
    lif = nn.Sequential(mlf_unit((0.6,)))
    [r_mlf] = dormant_units(mlf, x)
    [r_lif] = dormant_units(lif, x)
    assert r_mlf.units == 4 and r_mlf.dormant_fraction == pytest.approx(0.5)
    assert r_lif.dormant_fraction == pytest.approx(0.75)
    assert len(r_mlf.active_steps_by_level) == 3 and len(r_lif.active_steps_by_level) == 1
    # level 2 is active for the 1.4 unit at every step: 1/4 of the unit-steps
    assert r_mlf.active_steps_by_level[1] == pytest.approx(0.25)


def test_dormant_means_zero_input_gradient_at_every_step():
    """Against autograd (BPTT through the whole sequence): a unit is dormant exactly when the
    gradient of its summed output w.r.t. its input is zero at every step."""
    g = torch.Generator().manual_seed(3)
    level = torch.rand(1, 4, 60, generator=g) * 14 - 2  # per-unit drive from -2 (silent) to 12 (saturating)
    x = (level + 0.2 * torch.randn(5, 4, 60, generator=g)).double()
    for node in (mlf_unit(), mlf_unit((0.6,)), mlf_unit(surrogate_width=0.4),
                 LIFNode(v_threshold=1.0, surrogate=Rectangular(1.0), step_mode="m")):
        model = nn.Sequential(node)
        [r] = dormant_units(model, x)
        xg = x.clone().requires_grad_(True)
        reset_states(model)
        model(xg).sum().backward()
        zero_grad = (xg.grad == 0).all(dim=0)
        assert r.dormant_fraction == pytest.approx(float(zero_grad.double().mean()))
        assert 0 < r.dormant_fraction < 1


def test_dormant_units_on_a_network_keeps_batchnorm_buffers_and_mode():
    torch.manual_seed(0)
    m = ds_resnet_small(num_classes=10, input_shape=(1, 8, 8))
    x = torch.rand(3, 16, 1, 8, 8) * 2
    before = {n: b.clone() for n, b in m.named_buffers()}
    m.eval()
    layers = dormant_units(m, x)
    assert not m.training
    for n, b in m.named_buffers():
        assert torch.equal(b, before[n]), n
    names = [l.name for l in layers]
    assert names[0] == "stem_sn" and len(names) == 1 + 2 * 2 + 1  # stem, 2 blocks x 2, one shortcut
    assert all(0.0 <= l.dormant_fraction <= 1.0 and l.potentials.numel() > 0 for l in layers)


def test_neuron_potentials_reproduce_layer_output():
    x = torch.rand(5, 3, 7) * 3
    node = MLFNode(step_mode="m")
    y = node(x)
    h, spikes, th = neuron_potentials(node, x)
    assert th == (0.6, 1.6, 2.6) and h.shape == (3, 5, 3, 7)
    torch.testing.assert_close(spikes.sum(0), y)


def test_dormant_units_errors():
    with pytest.raises(ValueError, match="no spiking layers"):
        dormant_units(nn.Sequential(nn.Linear(3, 3)), torch.rand(2, 1, 3))
    with pytest.raises(ValueError, match="single-step"):
        dormant_units(nn.Sequential(MLFNode(step_mode="s")), torch.rand(2, 1, 3))


# ---------------------------------------------------------------- flatness
def test_loss_along_directions_quadratic_matches_formula_and_restores_weights():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    w0 = model.weight.detach().clone()
    b0 = model.bias.detach().clone()

    def loss_of(m):
        return float(((m.weight.detach() - w0) ** 2).sum() + ((m.bias.detach() - b0) ** 2).sum())

    alphas = [-1.0, -0.5, 0.0, 0.5, 1.0]
    curves = loss_along_directions(model, loss_of, alphas, n_directions=4, seed=1)
    # filter normalisation: every row of d has the norm of the row of W, so ‖d‖² = ‖W‖²; bias unperturbed
    expected = np.array(alphas) ** 2 * float((w0**2).sum())
    np.testing.assert_allclose(curves.losses, np.tile(expected, (4, 1)), rtol=1e-5, atol=1e-7)
    assert curves.base_loss == 0.0
    assert curves.rise(0.5) == pytest.approx(0.25 * float((w0**2).sum()), rel=1e-5)
    assert torch.equal(model.weight, w0) and torch.equal(model.bias, b0)
    again = loss_along_directions(model, loss_of, alphas, n_directions=4, seed=1)
    np.testing.assert_array_equal(again.losses, curves.losses)


def test_filter_normalized_direction_row_norms():
    conv = nn.Conv2d(3, 4, 3)
    d = filter_normalized_direction(conv, torch.Generator().manual_seed(0))
    torch.testing.assert_close(d["weight"].flatten(1).norm(dim=1), conv.weight.detach().flatten(1).norm(dim=1))
    assert torch.equal(d["bias"], torch.zeros(4))


def test_loss_along_directions_restores_on_error_and_checks_arguments():
    model = nn.Linear(2, 2)
    w0 = model.weight.detach().clone()
    calls = []

    def failing(m):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("boom")
        return 0.0

    with pytest.raises(RuntimeError, match="boom"):
        loss_along_directions(model, failing, [0.5, 1.0])
    assert torch.equal(model.weight, w0)
    with pytest.raises(ValueError):
        loss_along_directions(model, lambda m: 0.0, [])
    with pytest.raises(ValueError):
        loss_along_directions(model, lambda m: 0.0, [float("nan")])
    with pytest.raises(ValueError):
        loss_along_directions(model, lambda m: 0.0, [1.0], n_directions=0)
    curves = loss_along_directions(model, lambda m: 0.0, [1.0])
    with pytest.raises(ValueError, match="radius"):
        curves.rise(0.5)


# ---------------------------------------------------------------- per-step accuracy
def test_accuracy_per_timestep_cumulative_and_instant():
    # two samples, two classes, three steps
    out = torch.tensor([[[1.0, 0.0], [0.0, 1.0]],
                        [[0.0, 3.0], [0.0, 1.0]],
                        [[0.0, 3.0], [2.0, 0.0]]])
    y = torch.tensor([0, 1])
    torch.testing.assert_close(accuracy_per_timestep(out, y, cumulative=False), torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64))
    # cumulative means: t=1 [1,0],[0,1]; t=2 [.5,1.5],[0,1]; t=3 [1/3,2],[2/3,2/3] (tie -> class 0)
    torch.testing.assert_close(accuracy_per_timestep(out, y), torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError):
        accuracy_per_timestep(out, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError):
        accuracy_per_timestep(out[0], y)
