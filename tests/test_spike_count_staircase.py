"""The exact spike-count staircase n(w) (chapter 1) and the neuron conventions the chapter compares."""

import numpy as np
import pytest
import torch

from snnlab.analysis.spike_gradients import spike_count_staircase
from snnlab.neurons import NeuronParams, simulate
from snnlab.viz.neurons import draw_driven_neuron, driving_current

CONVENTIONS = {
    "IF, hard reset": (NeuronParams(1.0, 0.0), "if"),
    "IF, soft reset": (NeuronParams(1.0, None), "if"),
    "SEW LIF, hard reset": (NeuronParams(1.0, 0.0, tau=2.0), "lif"),
    "SEW LIF, soft reset": (NeuronParams(1.0, None, tau=2.0), "lif"),
    "OTTT LIF, soft reset": (NeuronParams(1.0, None, tau=2.0, decay_input=False), "lif"),
}


@torch.no_grad()
def brute_force_counts(x, params, kind, w):
    return simulate(torch.as_tensor(w)[None, :] * x[:, None].double(), params, kind=kind).spikes.sum(0).numpy()


@pytest.mark.parametrize("name", list(CONVENTIONS))
def test_staircase_finds_every_jump_a_fine_grid_finds(name):
    params, kind = CONVENTIONS[name]
    x = driving_current(60, seed=1)
    stairs = spike_count_staircase(x, params, kind=kind, w_min=0.0, w_max=3.0)
    w = np.linspace(0.0, 3.0, 100_001)
    counts = brute_force_counts(x, params, kind, w)
    assert np.array_equal(stairs.count_at(w), counts)
    assert len(stairs.jumps) == np.count_nonzero(np.diff(counts))
    # on each side of every jump the brute-force count differs
    for jump in stairs.jumps:
        below, above = brute_force_counts(x, params, kind, np.array([jump - 1e-7, jump + 1e-7]))
        assert below != above


def test_staircase_marks_the_jumps_a_finite_difference_misses():
    """Chapter 1's old figure marked the jumps where a central difference with h = 1e-3 was
    non-zero on a 301-point grid: most jumps fall between grid points and were never marked."""
    from snnlab.analysis.spike_gradients import spike_count_response
    from snnlab.surrogate import ArcTan

    x = driving_current(60, seed=1)
    params = NeuronParams(v_threshold=1.0, tau=2.0)
    weights = torch.linspace(0.0, 3.0, 301)
    old = spike_count_response(weights, x, params, ArcTan(2.0))
    marked_before = int((old.finite_difference != 0).sum())
    stairs = spike_count_staircase(x, params)
    fine = brute_force_counts(x, params, "lif", np.linspace(0.0, 3.0, 100_001))
    assert len(stairs.jumps) == np.count_nonzero(np.diff(fine))
    assert marked_before < len(stairs.jumps) / 2


def test_staircase_rejects_bad_input():
    x = driving_current(10)
    with pytest.raises(ValueError, match="w_max"):
        spike_count_staircase(x, NeuronParams(), w_min=1.0, w_max=1.0)
    with pytest.raises(ValueError, match="kind"):
        spike_count_staircase(x, NeuronParams(), kind="plif")


def test_reset_matters_as_much_as_the_leak_for_a_constant_input():
    """Chapter 1's corrected claim: for a constant input of 0.9 over 60 steps (V_th = 1), an IF
    neuron with a hard reset fires every second step (30 spikes), OTTT's soft-reset LIF two steps
    in three (40): a leaky neuron can out-fire an IF neuron with a different reset. SEW's LIF
    (decayed input) only approaches 0.9 and never fires."""
    x = torch.full((60, 1), 0.9)
    counts = {name: int(simulate(x, p, kind=k).spikes.sum()) for name, (p, k) in CONVENTIONS.items()}
    assert counts["IF, hard reset"] == 30
    assert counts["OTTT LIF, soft reset"] == 40
    assert counts["SEW LIF, hard reset"] == 0 and counts["SEW LIF, soft reset"] == 0
    assert counts["IF, soft reset"] > counts["OTTT LIF, soft reset"]


def test_explorer_neuron_uses_otts_convention_soft_reset_and_undecayed_input():
    """The chapter 1 explorer says 'OTTT's convention': soft reset (subtract V_th) and input not
    decayed. After a spike, V = H - V_th (a hard reset would give 0)."""
    from matplotlib.figure import Figure

    x = driving_current(40, seed=1)
    trace = draw_driven_neuron(Figure(), 1.0, 2.0, x=x)
    fired = trace.spikes > 0
    assert fired.any()
    assert torch.allclose(trace.v[fired], trace.h[fired] - 1.0)
    expected = simulate(x[:, None], NeuronParams(1.0, None, tau=2.0, decay_input=False), kind="lif")
    assert torch.equal(trace.spikes, expected.spikes[:, 0])
