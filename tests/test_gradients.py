"""snnlab.analysis.gradients: eq. (8), eq. (11), eq. (15) and the per-block probes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snnlab.analysis.gradients import (
    block_statistics,
    eq8_product,
    eq15_block_prediction,
    eq15_prediction,
    eq15_product_norm,
    identity_chain_gradient,
)
from snnlab.models.sew_resnet import SpikingResNetLayout
from snnlab.surrogate import ArcTan

SETTINGS = [(1.0, 2.0), (0.5, 2.0), (1.0, 3.0)]  # (V_th, α) of Figs. 6, 7, 8


def spikes(*shape, seed=0, p=0.5):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < p).float()


def test_arctan_values_quoted_by_the_paper():
    """Section 4.1: α=2: σ'(0) = 1, σ'(-1) = 0.092; V_th = 0.5: σ'(±0.5) = 0.288; α=3: σ'(0) = 1.5."""
    d = lambda a, x: float(ArcTan(a).derivative(torch.tensor(x)))
    assert d(2, 0.0) == pytest.approx(1.0)
    assert round(d(2, -1.0), 3) == 0.092
    assert round(d(2, 0.5), 3) == round(d(2, -0.5), 3) == 0.288
    assert d(3, 0.0) == pytest.approx(1.5)


@pytest.mark.parametrize("v_th,alpha", SETTINGS)
@pytest.mark.parametrize("k", [1, 4, 12])
def test_eq8_matches_autograd_through_k_if_blocks(v_th, alpha, k):
    """With T = 1, autograd through k zero-init Spiking ResNet blocks gives exactly σ'(S - V_th)^k."""
    s = spikes(1, 3, 4, 3, 3, seed=k)
    out, grad = identity_chain_gradient(s, k, kind="spiking", v_threshold=v_th, alpha=alpha)
    assert torch.equal(out, s)  # identity mapping (IF, 0 < V_th <= 1)
    torch.testing.assert_close(grad, eq8_product(s, k, v_threshold=v_th, surrogate=ArcTan(alpha)),
                               rtol=1e-5, atol=1e-30)


def test_eq8_limits():
    s = torch.tensor([0.0, 1.0])
    vanish = eq8_product(s, 40, v_threshold=0.5, surrogate=ArcTan(2.0))
    assert vanish.max() < 1e-20
    one = eq8_product(s, 40, v_threshold=1.0, surrogate=ArcTan(2.0))
    assert one[1] == pytest.approx(1.0) and one[0] < 1e-30
    explode = eq8_product(s, 40, v_threshold=1.0, surrogate=ArcTan(3.0))
    assert explode[1] == pytest.approx(1.5**40, rel=1e-4)


@pytest.mark.parametrize("cnf", ["ADD", "AND", "IAND"])
@pytest.mark.parametrize("T", [1, 4])
def test_eq11_sew_chain_gradient_is_exactly_one(cnf, T):
    for v_th, alpha in SETTINGS:
        s = spikes(T, 2, 3, 3, 3, seed=T)
        out, grad = identity_chain_gradient(s, 15, kind="sew", cnf=cnf, v_threshold=v_th, alpha=alpha)
        assert torch.equal(out, s)
        assert torch.equal(grad, torch.ones_like(s))


def test_multi_step_if_chain_carries_gradient_through_the_membrane():
    """Eq. (8) is per step. With T > 1 a silent IF neuron keeps its (zero) potential, and the
    detached reset lets a later step's gradient reach it: the silent entries receive more than
    σ'(-V_th)^k (here, with α = 2, about as much as the spikes)."""
    s = spikes(4, 4, 4, 3, 3, seed=3)
    _, grad = identity_chain_gradient(s, 10, kind="spiking", v_threshold=1.0, alpha=2.0)
    eq8 = eq8_product(s, 10, v_threshold=1.0, surrogate=ArcTan(2.0))
    torch.testing.assert_close(grad[s == 1], eq8[s == 1])  # a spike resets V: no temporal path
    assert grad[s == 0].mean() > 1e6 * eq8[s == 0].mean()


def test_eq15_norm_equals_direct_computation():
    """Eq. (15) against the norm of the elementwise product for a concrete spike tensor."""
    s = spikes(4, 3, 5, 6, seed=2, p=0.3)
    n, phi = s.numel(), float(s.mean())
    for v_th, alpha in SETTINGS:
        sg = ArcTan(alpha)
        d1 = float(sg.derivative(torch.tensor(1 - v_th)))
        d0 = float(sg.derivative(torch.tensor(-v_th)))
        for k in (0, 1, 3, 7):
            direct = float(eq8_product(s.double(), k, v_threshold=v_th, surrogate=sg).norm())
            assert eq15_product_norm(n, phi, d1, d0, k) == pytest.approx(direct, rel=1e-5)
    assert eq15_product_norm(100, 0.25, 1.0, 1.0, 9) == pytest.approx(10.0)  # sqrt(NT)
    assert eq15_product_norm(100, 0.25, 1.0, 0.0, 9) == pytest.approx(5.0)  # sqrt(NT·Φ)


def test_eq15_prediction_matches_a_random_upstream_gradient():
    """Read as a root-mean-square, eq. (15) predicts ‖g ⊙ Π σ'‖ for a g independent of the spikes."""
    torch.manual_seed(0)
    s = spikes(64, 256, seed=5, p=0.2).double()
    g = torch.randn(64, 256, dtype=torch.float64)
    sg = ArcTan(2.0)
    d1, d0 = 1.0, float(sg.derivative(torch.tensor(-1.0)))  # V_th = 1
    for k in (1, 2, 5):
        measured = float((g * eq8_product(s, k, v_threshold=1.0, surrogate=sg)).norm())
        assert eq15_prediction(float(g.norm()), float(s.mean()), d1, d0, k) == pytest.approx(measured, rel=0.03)


def test_block_statistics_on_a_zero_init_network():
    torch.manual_seed(0)
    net = SpikingResNetLayout(18, kind="sew", cnf="IAND", num_classes=4, input_shape=(1, 16, 16), width=4,
                              stages=(3, 1, 1, 2), zero_init=True)
    x = torch.randn(3, 5, 1, 16, 16)
    y = torch.randint(0, 4, (5,))
    before = [p.grad for p in net.parameters()]
    st = block_statistics(net, x, y, lambda out, t: torch.nn.functional.cross_entropy(out.mean(0), t))
    assert all(p.grad is None for p in net.parameters()) and before[0] is None
    assert st.downsample == [1 * 3, 4, 5] and len(st.grad_norm) == 7
    assert np.all(st.a_rate == 0.0)  # IAND zero-init: A ≡ 0
    # identity regions: O^l = S^l and ‖∂L/∂S^l‖ equal across the region (gradient does not pass an SN)
    np.testing.assert_allclose(st.o_rate[:3], st.s_rate[:3])
    np.testing.assert_allclose(st.grad_norm[0:3], st.grad_norm[0], rtol=1e-6)
    np.testing.assert_allclose(st.grad_norm[2], st.grad_norm[3] * 0 + st.grad_norm[2])
    assert math.isfinite(st.loss) and st.grad_out_last > 0


def test_eq15_block_prediction_for_a_spiking_resnet():
    torch.manual_seed(0)
    net = SpikingResNetLayout(18, kind="spiking", num_classes=4, input_shape=(1, 16, 16), width=4,
                              stages=(6, 1, 1, 1), zero_init=True, v_threshold=0.5)
    x = torch.randn(1, 4, 1, 16, 16)  # T = 1: eq. (8) holds exactly per element
    st = block_statistics(net, x, torch.arange(4), lambda o, t: torch.nn.functional.cross_entropy(o.mean(0), t))
    pred = eq15_block_prediction(st, v_threshold=0.5, surrogate=ArcTan(2.0))
    assert np.isnan(pred[st.downsample]).all()
    # V_th = 0.5: every element is multiplied by 0.288 per block, so the prediction is exact
    np.testing.assert_allclose(pred[1:6], st.grad_norm[1:6], rtol=1e-4)
    np.testing.assert_allclose(st.grad_norm[1:5] / st.grad_norm[2:6], 0.2884, rtol=1e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="k"):
        eq8_product(torch.zeros(2), -1, v_threshold=1.0, surrogate=ArcTan())
    with pytest.raises(ValueError, match="binary"):
        identity_chain_gradient(torch.full((1, 1, 1, 2, 2), 0.5), 2)
    with pytest.raises(ValueError, match="phi"):
        eq15_product_norm(10, 1.5, 1.0, 0.1, 2)
