"""Surrogate gradients: formulas, autograd behaviour, the values SEW ResNet quotes, bad input."""

import math

import pytest
import torch

from snnlab.surrogate import (
    SURROGATES,
    ArcTan,
    Gaussian,
    Rectangular,
    Sigmoid,
    Triangle,
    get_surrogate,
    heaviside,
)

ALL = [ArcTan(2.0), ArcTan(3.0), Sigmoid(4.0), Rectangular(1.0), Rectangular(2.0, 1.0), Triangle(1.0),
       Triangle(0.5), Gaussian(0.5)]


def points_away_from_kinks(surrogate, n=200):
    x = torch.linspace(-3, 3, n, dtype=torch.float64)
    kinks = {Rectangular: [-surrogate.width / 2, surrogate.width / 2] if isinstance(surrogate, Rectangular) else [],
             Triangle: [-surrogate.width, 0.0, surrogate.width] if isinstance(surrogate, Triangle) else []}
    for k in kinks.get(type(surrogate), []):
        x = x[(x - k).abs() > 1e-3]
    return x


@pytest.mark.parametrize("surrogate", ALL, ids=repr)
def test_derivative_is_the_derivative_of_the_primitive(surrogate):
    x = points_away_from_kinks(surrogate).requires_grad_(True)
    (grad,) = torch.autograd.grad(surrogate.primitive(x).sum(), x)
    torch.testing.assert_close(grad, surrogate.derivative(x.detach()), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("surrogate", ALL, ids=repr)
def test_primitive_rises_from_zero_by_the_area_under_the_derivative(surrogate):
    """σ(-∞) = 0 and σ(+∞) = ∫σ' (1 for the normalised surrogates, like the step itself)."""
    far = torch.tensor([-200.0, 200.0], dtype=torch.float64)
    values = surrogate.primitive(far)
    grid = torch.linspace(-200, 200, 2_000_001, dtype=torch.float64)
    area = float(torch.trapezoid(surrogate.derivative(grid), grid))
    assert values[0] == pytest.approx(0.0, abs=0.005)
    assert values[1] == pytest.approx(area, abs=0.005)
    if isinstance(surrogate, (ArcTan, Sigmoid, Gaussian)) or surrogate in (Rectangular(1.0), Triangle(1.0)):
        assert area == pytest.approx(1.0, abs=0.005)


@pytest.mark.parametrize("surrogate", ALL, ids=repr)
def test_spike_is_heaviside_forward_and_surrogate_backward(surrogate):
    x = torch.tensor([-1.3, -0.2, 0.0, 0.4, 2.0], requires_grad=True)
    spikes = surrogate.spike(x)
    assert torch.equal(spikes, torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    (spikes * weights).sum().backward()
    torch.testing.assert_close(x.grad, weights * surrogate.derivative(x.detach()))


@pytest.mark.parametrize(
    "v_th, alpha, u, expected",
    [(1.0, 2.0, 0.0, 0.092), (1.0, 2.0, 1.0, 1.0), (0.5, 2.0, 0.0, 0.288), (0.5, 2.0, 1.0, 0.288),
     (1.0, 3.0, 1.0, 1.5)],
)
def test_arctan_reproduces_the_values_sew_resnet_quotes(v_th, alpha, u, expected):
    value = float(ArcTan(alpha).derivative(torch.tensor(u - v_th, dtype=torch.float64)))
    assert value == pytest.approx(expected, abs=5e-4)


def test_formulas_at_chosen_points():
    x = torch.tensor([0.3], dtype=torch.float64)
    assert float(ArcTan(2.0).derivative(x)) == pytest.approx(2 / (2 * (1 + (math.pi / 2 * 2 * 0.3) ** 2)))
    s = 1 / (1 + math.exp(-4 * 0.3))
    assert float(Sigmoid(4.0).derivative(x)) == pytest.approx(4 * s * (1 - s))
    assert float(Rectangular(1.0).derivative(x)) == 1.0
    assert float(Rectangular(0.5).derivative(x)) == 0.0
    assert float(Rectangular(2.0, height=1.0).derivative(x)) == 1.0  # OTTT's 1[|u-V_th| < V_th], V_th=1
    assert float(Triangle(1.0).derivative(x)) == pytest.approx(0.7)
    assert float(Gaussian(0.5).derivative(x)) == pytest.approx(math.exp(-0.09 / 1.0) / math.sqrt(math.pi))


def test_heaviside_is_one_at_zero():
    assert torch.equal(heaviside(torch.tensor([-1e-7, 0.0, 1e-7])), torch.tensor([0.0, 1.0, 1.0]))


@pytest.mark.parametrize("make", [lambda: ArcTan(0.0), lambda: ArcTan(-2.0), lambda: Sigmoid(float("nan")),
                                  lambda: Rectangular(0.0), lambda: Rectangular(1.0, -1.0),
                                  lambda: Triangle(-1.0), lambda: Gaussian(0.0), lambda: ArcTan("2")])
def test_bad_parameters_raise_clear_errors(make):
    with pytest.raises((ValueError, TypeError), match="must be"):
        make()


def test_get_surrogate_by_name_and_unknown_name():
    assert get_surrogate("arctan", alpha=3.0) == ArcTan(3.0)
    assert get_surrogate(Sigmoid()) == Sigmoid()
    assert set(SURROGATES) == {"arctan", "sigmoid", "rectangular", "triangle", "gaussian"}
    with pytest.raises(ValueError, match="valid names: arctan"):
        get_surrogate("relu")


def test_kernel_specs_are_distinct_and_carry_the_parameters():
    codes = {type(s).code for s in ALL}
    assert codes == {0, 1, 2, 3, 4}
    assert Rectangular(2.0, 1.0).kernel_spec() == (2, 2.0, 1.0)
    assert ArcTan(3.0).kernel_spec() == (0, 3.0, 0.0)


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_zero_derivative_gives_heaviside_spikes_and_no_gradient_in_both_backends(backend):
    """No surrogate: the same spikes as any surrogate, and a gradient of exactly 0 for the input
    and for PLIF's time constant, through the kernels as through the reference."""
    from snnlab.neurons import PLIFNode
    from snnlab.surrogate import ZeroDerivative

    torch.manual_seed(0)
    x = (torch.rand(6, 4, 5) * 2.0).requires_grad_(True)
    outputs = {}
    for surrogate in (ZeroDerivative(), ArcTan(2.0)):
        node = PLIFNode(init_tau=2.0, surrogate=surrogate, step_mode="m", backend=backend)
        out = node(x)
        out.sum().backward()
        outputs[type(surrogate).__name__] = (out.detach(), x.grad.clone(), node.w.grad.clone())
        x.grad = None
    zero, arctan = outputs["ZeroDerivative"], outputs["ArcTan"]
    assert torch.equal(zero[0], arctan[0]) and zero[0].sum() > 0
    assert torch.count_nonzero(zero[1]) == 0 and float(zero[2]) == 0.0
    assert torch.count_nonzero(arctan[1]) > 0 and float(arctan[2]) != 0.0
    assert ZeroDerivative().primitive(torch.tensor([-0.5, 0.0, 0.5])).tolist() == [0.0, 1.0, 1.0]
    assert "zero" not in SURROGATES
