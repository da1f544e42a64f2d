"""The staircase of spike counts and the surrogate gradient through it."""

import pytest
import torch

from snnlab.analysis.spike_gradients import spike_count_response
from snnlab.neurons import NeuronParams
from snnlab.surrogate import ArcTan, Triangle


def test_one_step_gradient_equals_the_surrogate_formula():
    """T = 1: n(w) = Θ(w x - V_th), so dn/dw = σ'(w x - V_th) x."""
    w = torch.linspace(0.1, 2.0, 20, dtype=torch.float64)
    x = torch.tensor([0.7], dtype=torch.float64)
    surrogate = ArcTan(2.0)
    response = spike_count_response(w, x, NeuronParams(v_threshold=1.0), surrogate, kind="if")
    torch.testing.assert_close(response.counts, (w * 0.7 >= 1.0).double())
    torch.testing.assert_close(response.surrogate_grad, surrogate.derivative(w * 0.7 - 1.0) * 0.7)


def test_true_slope_is_zero_almost_everywhere_but_the_surrogate_is_not():
    x = torch.rand(30, generator=torch.Generator().manual_seed(0))
    w = torch.linspace(0.0, 3.0, 200)
    response = spike_count_response(w, x, NeuronParams(v_threshold=1.0, tau=2.0), ArcTan(2.0))
    assert (response.finite_difference == 0).float().mean() > 0.9
    assert (response.surrogate_grad > 0).all()
    assert torch.all(response.counts[1:] >= response.counts[:-1])  # more weight, more spikes


def test_compact_surrogate_gives_zero_gradient_far_from_threshold():
    x = torch.full((5,), 0.1)
    w = torch.tensor([0.01])
    response = spike_count_response(w, x, NeuronParams(v_threshold=1.0), Triangle(0.5), kind="if")
    assert float(response.surrogate_grad) == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="1 dimensions"):
        spike_count_response(torch.ones(2, 2), torch.ones(3), NeuronParams(), ArcTan())
