"""Scaled weight standardisation (OTTT claims 6-7, authors' code): values, gradients, errors."""

import math

import pytest
import torch
from torch import nn

from snnlab.layers import OTTT_GAMMA, ScaledWSConv2d, ScaledWSLinear, SpikeScale, standardize_weight


def _reference(weight, gain, gamma, eps):
    """Claim 6 written out element by element (loops over output rows)."""
    out = torch.empty_like(weight)
    for i in range(weight.shape[0]):
        row = weight[i].flatten()
        m = row.numel()
        mu = row.mean()
        var = ((row - mu) ** 2).sum() / (m - 1)  # torch.var: unbiased, as in the authors' code
        out[i] = gamma * gain[i].flatten()[0] * (weight[i] - mu) / math.sqrt(float(var) * m + eps)
    return out


def test_standardized_weight_matches_the_formula():
    torch.manual_seed(0)
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64) * 0.7 + 0.2
    gain = torch.rand(5, 1, 1, 1, dtype=torch.float64) + 0.5
    got = standardize_weight(w, gain, gamma=2.74, eps=1e-4)
    assert torch.allclose(got, _reference(w, gain, 2.74, 1e-4), atol=1e-12)


def test_each_row_has_zero_mean_and_unit_fan_in_scale():
    torch.manual_seed(1)
    conv = ScaledWSConv2d(4, 6, 3, padding=1).double()
    with torch.no_grad():
        conv.weight.mul_(10.0).add_(3.0)  # the raw scale and offset must not matter
    w = conv.standardized_weight().detach()
    M = 4 * 9
    assert torch.allclose(w.mean(dim=(1, 2, 3)), torch.zeros(6, dtype=torch.float64), atol=1e-12)
    # Σ_j Ŵ_ij² = (M-1)/M·M·var/(var·M + eps) ≈ (M-1)/M for var >> eps
    assert torch.allclose((w ** 2).sum(dim=(1, 2, 3)), torch.full((6,), (M - 1) / M, dtype=torch.float64), rtol=1e-5)


def test_conv_and_linear_forward_use_the_standardized_weight():
    torch.manual_seed(2)
    conv = ScaledWSConv2d(2, 3, 3, padding=1, gamma=OTTT_GAMMA)
    x = torch.randn(4, 2, 5, 5)
    ref = nn.functional.conv2d(x, _reference(conv.weight.detach(), conv.gain.detach(), OTTT_GAMMA, 1e-4),
                               conv.bias, padding=1)
    assert torch.allclose(conv(x), ref, atol=1e-5)
    lin = ScaledWSLinear(7, 3)
    x = torch.randn(4, 7)
    ref = x @ _reference(lin.weight.detach(), lin.gain.detach(), 1.0, 1e-4).T + lin.bias
    assert torch.allclose(lin(x), ref, atol=1e-5)
    assert isinstance(conv, nn.Conv2d) and isinstance(lin, nn.Linear)  # OTTT traces them as synapses


def test_gamma_in_the_weight_equals_gamma_after_the_neuron():
    """W_hat(γ s) = (γ W_hat) s: the authors' placement equals the patent's for layers fed by spikes."""
    torch.manual_seed(3)
    a = ScaledWSConv2d(3, 4, 3, padding=1)
    b = ScaledWSConv2d(3, 4, 3, padding=1, gamma=OTTT_GAMMA)
    b.load_state_dict(a.state_dict())
    s = (torch.rand(2, 3, 6, 6) < 0.3).float()
    assert torch.allclose(a(SpikeScale()(s)), b(s), atol=1e-5)


def test_gain_is_learnable_and_gradients_match_finite_differences():
    torch.manual_seed(4)
    lin = ScaledWSLinear(5, 3).double()
    assert lin.gain.requires_grad and torch.equal(lin.gain.detach(), torch.ones(3, 1, dtype=torch.float64))
    x = torch.randn(6, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda w, g: standardize_weight(w, g, gamma=2.74), 
                                    (lin.weight.detach().clone().requires_grad_(),
                                     lin.gain.detach().clone().requires_grad_()))
    lin(x).sum().backward()
    assert lin.gain.grad is not None and lin.weight.grad is not None
    no_gain = ScaledWSLinear(5, 3, gain=False)
    assert no_gain.gain is None and sum(p.numel() for p in no_gain.parameters()) == 5 * 3 + 3


def test_errors():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        standardize_weight(torch.randn(5))
    with pytest.raises(ValueError, match="fan-in"):
        standardize_weight(torch.randn(3, 1))
    with pytest.raises(ValueError, match="gamma"):
        ScaledWSConv2d(2, 3, 3, gamma=0.0)
    with pytest.raises(ValueError, match="eps"):
        ScaledWSLinear(2, 3, eps=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        SpikeScale(float("nan"))
