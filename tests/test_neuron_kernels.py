"""The Numba neuron kernels against the pure-torch reference, and both against independent definitions.

What is checked, and why it can fail:

* every option combination (IF / LIF with either charge / PLIF with either charge; hard reset to 0,
  hard reset to -0.3, soft reset; attached or detached reset; with or without the temporal cut; all
  five surrogates): spikes and charged potentials bit-identical to the reference (the kernels use
  its floating-point order), input / initial-state / PLIF gradients to float32 rounding;
* the reference's gradient against autograd through an unrolled definition written here from the
  papers' equations, with its own surrogate formulas (not snnlab.surrogate);
* ``torch.autograd.gradcheck`` in float64 on the kernels' autograd functions and on the reference:
  the integrator (smooth), and the spiking neurons with a surrogate made consistent with the true
  derivative (see ``test_gradcheck_spiking``);
* MLF with one level equals LIF; MLF against its reference; PLIF's τ gradient;
* what the backward keeps (bytes saved for backward), single- vs multi-step, the temporal cut;
* bad input raises a clear error before any kernel runs or any state changes.

Inputs are continuous random numbers: both implementations compute identical potentials, so an
input cannot land on one side of the threshold in one and the other side in the other.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from snnlab.neurons import (
    IFNode,
    LIFNode,
    MLFNode,
    NeuronParams,
    NonSpikingIntegrator,
    PLIFNode,
    integrator_multi_step,
    mlf_level_params,
    mlf_multi_step,
    reset_states,
    simulate,
    spiking_multi_step,
)
from snnlab.neurons import kernels as K
from snnlab.surrogate import ArcTan, Gaussian, Rectangular, Sigmoid, Triangle

SURROGATES = [ArcTan(2.0), Sigmoid(4.0), Rectangular(1.0), Triangle(1.0), Gaussian(0.5)]
KINDS = [("if", True, False), ("lif", True, False), ("lif", False, False), ("lif", True, True), ("lif", False, True)]
RESETS = [0.0, -0.3, None]  # hard to 0, hard to -0.3, soft

T, B, F = 7, 3, 45  # N = 135: more than one vector width, less than one kernel block


def _tol(dtype=torch.float32):
    return dict(rtol=1e-5, atol=2e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)


def _inputs(seed: int, dtype=torch.float32, shape=(T, B, F)):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 0.8 + 0.45).to(dtype)
    v0 = (torch.rand(shape[1:], generator=g, dtype=torch.float64) * 0.9 - 0.2).to(dtype)
    gs = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    gv = torch.randn(shape[1:], generator=g, dtype=torch.float64).to(dtype)
    return x, v0, gs, gv


def _drive(kind, decay_input, tau):
    """Input scale that makes a neuron fire at a moderate rate (SEW's charge divides X by τ)."""
    return tau if kind == "lif" and decay_input else 1.0


def _run_spiking(backend, x, v0, gs, gv, params, surrogate, kind, plif, cut):
    x = x.clone().requires_grad_()
    v0 = v0.clone().requires_grad_()
    w = torch.tensor(-math.log(params.tau - 1.0), dtype=x.dtype, requires_grad=True) if plif else None
    inv_tau = torch.sigmoid(w) if plif else None
    s, v_last = spiking_multi_step(
        x, v0, params, surrogate, kind=kind, inv_tau=inv_tau, cut_temporal_grad=cut, backend=backend
    )
    ((s * gs).sum() + (v_last * gv).sum()).backward()
    return s.detach(), v_last.detach(), x.grad, v0.grad, (w.grad if plif else None)


COMBOS = list(itertools.product(KINDS, RESETS, [False, True], [False, True], range(len(SURROGATES))))


@pytest.mark.parametrize("kind_spec,v_reset,detach,cut,si", COMBOS)
def test_kernel_matches_reference_every_option(kind_spec, v_reset, detach, cut, si):
    kind, decay_input, plif = kind_spec
    surrogate = SURROGATES[si]
    params = NeuronParams(v_threshold=1.0, v_reset=v_reset, tau=2.5, decay_input=decay_input, detach_reset=detach)
    x, v0, gs, gv = _inputs(100 + COMBOS.index((kind_spec, v_reset, detach, cut, si)))
    x = x * _drive(kind, decay_input, params.tau)
    ker = _run_spiking("numba", x, v0, gs, gv, params, surrogate, kind, plif, cut)
    ref = _run_spiking("torch", x, v0, gs, gv, params, surrogate, kind, plif, cut)
    s_k, s_r = ker[0], ref[0]
    assert 0.05 < float(s_r.mean()) < 0.95, "input should make some but not all neurons fire"
    assert torch.equal(s_k, s_r)
    torch.testing.assert_close(ker[1], ref[1], rtol=0, atol=0)  # same floating-point order
    torch.testing.assert_close(ker[2], ref[2], **_tol())
    if cut:
        assert ref[3] is None or not ref[3].any()
        assert ker[3] is None or not ker[3].any()
    else:
        torch.testing.assert_close(ker[3], ref[3], **_tol())
    if plif:
        torch.testing.assert_close(ker[4], ref[4], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("kind_spec,v_reset", list(itertools.product(KINDS, RESETS)))
def test_kernel_potentials_match_reference_trace(kind_spec, v_reset):
    """The charged potentials H[t] and post-reset V[t] of the kernel equal simulate()'s, bit for bit."""
    kind, decay_input, _ = kind_spec
    params = NeuronParams(v_threshold=0.8, v_reset=v_reset, tau=1.7, decay_input=decay_input)
    x, v0, _, _ = _inputs(7, shape=(T, 300))
    ref = simulate(x, params, ArcTan(), kind=kind, v0=v0)
    prm = K.param_vector(np.float32, v_threshold=0.8, v_reset=params.leak_target, k=1 / 1.7, leak=params.leak_target)
    charge = {("if", True): 0, ("lif", True): 1, ("lif", False): 2}[(kind, decay_input if kind == "lif" else True)]
    s, h, v = np.empty((T, 300), np.float32), np.empty((T, 300), np.float32), np.empty(300, np.float32)
    bad = K.spiking_forward(x.numpy(), v0.numpy(), prm, charge, v_reset is not None, s, h, v, True, 64)
    assert bad == 0
    assert np.array_equal(s, ref.spikes.numpy())
    assert np.array_equal(h, ref.h.numpy())
    assert np.array_equal(v, ref.v[-1].numpy())


@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: type(s).__name__)
def test_kernel_surrogate_formulas_match_snnlab_surrogate(surrogate):
    u = torch.linspace(-3, 3, 2001, dtype=torch.float64)
    for dtype, tdtype in ((np.float32, torch.float32), (np.float64, torch.float64)):
        prm = K.param_vector(dtype, surrogate_spec=surrogate.kernel_spec())
        got = K.surrogate_derivative(u.numpy().astype(dtype), prm)
        want = surrogate.derivative(u.to(tdtype)).numpy()  # same formula, same precision
        # Rectangular: compare away from its two jump points, where float rounding decides
        keep = np.ones_like(want, dtype=bool)
        if isinstance(surrogate, Rectangular):
            keep = np.abs(np.abs(u.numpy()) - surrogate.width / 2) > 1e-3
        # sigmoid: s(1 - s) cancels when s ~ 1, so one ulp of s (torch vs libm exp) is ~1e-6 here
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(got[keep], want[keep], **tol)


def test_kernel_arctan_reproduces_sew_resnet_values():
    # SEW ResNet: V_th=1, α=2 gives σ'(1-V_th)=1, σ'(0-V_th)=0.092; α=3 gives σ'(0)=1.5
    prm2 = K.param_vector(np.float32, surrogate_spec=ArcTan(2.0).kernel_spec())
    prm3 = K.param_vector(np.float32, surrogate_spec=ArcTan(3.0).kernel_spec())
    d2 = K.surrogate_derivative(np.array([0.0, -1.0], np.float32), prm2)
    d3 = K.surrogate_derivative(np.array([0.0], np.float32), prm3)
    assert d2[0] == pytest.approx(1.0) and d2[1] == pytest.approx(0.092, abs=5e-4)
    assert d3[0] == pytest.approx(1.5)


# --- the reference against an unrolled definition written from the papers ------------------------


class _Spike(torch.autograd.Function):
    """Θ(u) forward; the paper's surrogate derivative backward (formulas typed in here)."""

    @staticmethod
    def forward(ctx, u, name, a):
        ctx.save_for_backward(u)
        ctx.name, ctx.a = name, a
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        a = ctx.a
        if ctx.name == "arctan":  # SEW ResNet appendix
            d = (a / 2) / (1 + (math.pi / 2 * a * u) ** 2)
        elif ctx.name == "sigmoid":  # OTTT [0103]
            e = torch.exp(-a * u)
            d = a * e / (1 + e) ** 2
        elif ctx.name == "rect":  # MLF: 1[|u| < a/2] / a
            d = (u.abs() < a / 2).to(u.dtype) / a
        elif ctx.name == "triangle":  # ATSN eq. 14
            d = torch.relu(1 - u.abs() / a)
        else:  # STBP Gaussian, ATSN eq. 4
            d = torch.exp(-(u**2) / (2 * a)) / math.sqrt(2 * math.pi * a)
        return g * d, None, None


UNROLLED_SURROGATES = [("arctan", 2.0, ArcTan(2.0)), ("sigmoid", 4.0, Sigmoid(4.0)), ("rect", 1.0, Rectangular(1.0)),
                       ("triangle", 1.0, Triangle(1.0)), ("gaussian", 0.5, Gaussian(0.5))]


def _unrolled(x, v, kind, decay_input, tau_inv, v_th, v_reset, detach, cut, sname, a):
    """SEW ResNet eqs. (1)-(5) / OTTT eq. (2), one timestep after another."""
    spikes = []
    leak = 0.0 if v_reset is None else v_reset
    for t in range(x.shape[0]):
        if cut:
            v = v.detach()
        if kind == "if":
            h = v + x[t]
        elif decay_input:
            h = v + tau_inv * (x[t] - v + leak)
        else:
            h = (1 - tau_inv) * v + tau_inv * leak + x[t]
        s = _Spike.apply(h - v_th, sname, a)
        r = s.detach() if detach else s
        v = h - v_th * r if v_reset is None else (1 - r) * h + r * v_reset
        spikes.append(s)
    return torch.stack(spikes), v


@pytest.mark.parametrize("kind_spec,v_reset,detach,cut,su", list(itertools.product(
    KINDS, RESETS, [False, True], [False, True], [UNROLLED_SURROGATES[0], UNROLLED_SURROGATES[3]])))
def test_reference_and_kernel_gradients_match_unrolled_definition(kind_spec, v_reset, detach, cut, su):
    kind, decay_input, plif = kind_spec
    sname, a, surrogate = su
    tau = 2.5
    params = NeuronParams(v_threshold=1.0, v_reset=v_reset, tau=tau, decay_input=decay_input, detach_reset=detach)
    x64, v064, gs64, gv64 = _inputs(3, dtype=torch.float64)
    x64 = x64 * _drive(kind, decay_input, tau)

    xu = x64.clone().requires_grad_()
    vu = v064.clone().requires_grad_()
    wu = torch.tensor(-math.log(tau - 1.0), dtype=torch.float64, requires_grad=True)
    k = torch.sigmoid(wu) if plif else 1.0 / tau
    s_u, v_u = _unrolled(xu, vu, kind, decay_input, k, 1.0, v_reset, detach, cut, sname, a)
    ((s_u * gs64).sum() + (v_u * gv64).sum()).backward()

    for backend in ("torch", "numba"):
        got = _run_spiking(backend, x64, v064, gs64, gv64, params, surrogate, kind, plif, cut)
        assert torch.equal(got[0], s_u.detach())
        torch.testing.assert_close(got[2], xu.grad, rtol=1e-9, atol=1e-9)
        if not cut:
            torch.testing.assert_close(got[3], vu.grad, rtol=1e-9, atol=1e-9)
        if plif:
            torch.testing.assert_close(got[4], wu.grad, rtol=1e-9, atol=1e-9)


# --- gradcheck in float64 ---------------------------------------------------------------------------


def _away_from_threshold(seed, shape, params, kind, margin=1e-3):
    """A float64 input whose charged potentials all stay ``margin`` away from V_th (no spike flips)."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(200):
        x = (torch.randn(shape, generator=g, dtype=torch.float64) * 0.8 + 0.45) * _drive(
            kind, params.decay_input, params.tau)
        tr = simulate(x, params, ArcTan(), kind=kind)
        if float((tr.h - params.v_threshold).abs().min()) > margin and 0.1 < float(tr.spikes.mean()) < 0.9:
            return x
    raise AssertionError("could not draw an input away from the threshold")


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("kind_spec,v_reset,detach", list(itertools.product(KINDS, RESETS, [False, True])))
def test_gradcheck_spiking(backend, kind_spec, v_reset, detach):
    """Spikes and final potential, with a surrogate made consistent with the true derivative.

    The spike Θ is piecewise constant, so its true derivative is 0 wherever the potential is not
    on the threshold. A rectangular surrogate narrower than the distance of every potential to the
    threshold (1e-4 < 1e-3) is therefore exactly the true derivative at every point it is evaluated,
    and with it the whole Jacobian (spike path, reset path attached or detached, leak, PLIF's τ)
    must match finite differences. The surrogate terms themselves are checked against the unrolled
    definition above.
    """
    kind, decay_input, plif = kind_spec
    params = NeuronParams(v_threshold=1.0, v_reset=v_reset, tau=2.5, decay_input=decay_input, detach_reset=detach)
    surrogate = Rectangular(width=1e-4)
    x = _away_from_threshold(11, (5, 6), params, kind).requires_grad_()
    v0 = torch.full((6,), params.leak_target, dtype=torch.float64, requires_grad=True)
    w = torch.tensor(-math.log(2.5 - 1.0), dtype=torch.float64, requires_grad=True)

    def f(x, v0, w):
        s, v = spiking_multi_step(x, v0, params, surrogate, kind=kind,
                                  inv_tau=torch.sigmoid(w) if plif else None, backend=backend)
        return s, v

    assert torch.autograd.gradcheck(f, (x, v0, w), eps=1e-6, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("decay", [0.0, 0.5, 1.0])
def test_gradcheck_integrator(backend, decay):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 2, 5, generator=g, dtype=torch.float64, requires_grad=True)
    v0 = torch.randn(2, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, v0: integrator_multi_step(x, v0, decay, backend=backend), (x, v0), eps=1e-6, atol=1e-8
    )


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_gradcheck_mlf(backend):
    levels = mlf_level_params((0.6, 1.6, 2.6), 0.25)
    surrogate = Rectangular(width=1e-4)
    g = torch.Generator().manual_seed(2)
    for _ in range(500):
        x = torch.rand(5, 6, generator=g, dtype=torch.float64) * 3
        out, _ = mlf_multi_step(x, torch.zeros(3, 6, dtype=torch.float64), levels, surrogate, backend="torch")
        # all potentials away from all thresholds: recompute them level by level
        ok = True
        for p in levels:
            tr = simulate(x, p, surrogate, kind="lif")
            ok &= float((tr.h - p.v_threshold).abs().min()) > 1e-3
        if ok and out.sum() > 0:
            break
    x.requires_grad_()
    v0 = torch.zeros(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, v0: mlf_multi_step(x, v0, levels, surrogate, backend=backend), (x, v0), eps=1e-6, atol=1e-7
    )


# --- MLF, PLIF, integrator ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("detach", [False, True])
def test_mlf_with_one_level_equals_lif(backend, detach):
    x, _, gs, _ = _inputs(21)
    outs = []
    for node in (MLFNode((0.7,), decay=0.25, detach_reset=detach, step_mode="m", backend=backend),
                 LIFNode(v_threshold=0.7, tau=1 / (1 - 0.25), decay_input=False, v_reset=0.0,
                         detach_reset=detach, surrogate=Rectangular(1.0), step_mode="m", backend=backend)):
        xx = x.clone().requires_grad_()
        s = node(xx)
        (s * gs).sum().backward()
        outs.append((s.detach(), xx.grad))
    assert torch.equal(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=0, atol=0 if backend == "torch" else 1e-6)


@pytest.mark.parametrize("detach,cut,si", list(itertools.product([False, True], [False, True], range(5))))
def test_mlf_kernel_matches_reference(detach, cut, si):
    levels = mlf_level_params((0.6, 1.6, 2.6), 0.25, 0.0, detach)
    x, _, gs, _ = _inputs(40 + si, shape=(9, 2, 70))
    x = x * 2  # reach the upper levels
    g = torch.Generator().manual_seed(si)
    v0 = torch.rand(3, 2, 70, generator=g) * 0.5
    gv = torch.randn(3, 2, 70, generator=g)
    res = []
    for backend in ("numba", "torch"):
        xx, vv = x.clone().requires_grad_(), v0.clone().requires_grad_()
        out, v_last = mlf_multi_step(xx, vv, levels, SURROGATES[si], cut_temporal_grad=cut, backend=backend)
        ((out * gs).sum() + (v_last * gv).sum()).backward()
        res.append((out.detach(), v_last.detach(), xx.grad, vv.grad))
    assert set(res[1][0].unique().tolist()) == {0.0, 1.0, 2.0, 3.0}
    assert torch.equal(res[0][0], res[1][0])
    assert torch.equal(res[0][1], res[1][1])
    torch.testing.assert_close(res[0][2], res[1][2], **_tol())
    if cut:
        assert res[0][3] is None or not res[0][3].any()
    else:
        torch.testing.assert_close(res[0][3], res[1][3], **_tol())


def test_mlf_levels_widen_the_gradient_window():
    """Qu et al.'s claim at the unit level: more levels, fewer inputs with zero surrogate gradient."""
    x = torch.linspace(0.0, 3.0, 301).reshape(1, 301)
    grads = []
    for th in ((0.6,), (0.6, 1.6, 2.6)):
        xx = x.clone().requires_grad_()
        MLFNode(th, step_mode="m")(xx).sum().backward()
        grads.append(float((xx.grad != 0).float().mean()))
    assert grads[1] > grads[0] * 2


@pytest.mark.parametrize("decay_input", [True, False])
def test_plif_tau_gradient(decay_input):
    """∂L/∂w of PLIF from the kernel equals the reference's and a finite difference (float64)."""
    x, _, gs, _ = _inputs(8)
    grads = {}
    for backend in ("numba", "torch"):
        node = PLIFNode(init_tau=3.0, decay_input=decay_input, step_mode="m", backend=backend)
        (node(x) * gs).sum().backward()
        grads[backend] = node.w.grad.clone()
    assert float(grads["torch"].abs()) > 1e-3
    torch.testing.assert_close(grads["numba"], grads["torch"], rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_integrator_matches_closed_form(backend):
    x, v0, _, _ = _inputs(9)
    out = integrator_multi_step(x, v0, 0.5, backend=backend)
    expect, v = [], v0
    for t in range(T):
        v = 0.5 * v + x[t]
        expect.append(v)
    torch.testing.assert_close(out, torch.stack(expect), rtol=0, atol=0)
    node = NonSpikingIntegrator(decay=0.5, step_mode="s", backend=backend)
    node.v = v0.clone()
    for t in range(T):
        y = node(x[t])
    assert torch.equal(y, out[-1])
    reset_states(torch.nn.Sequential(node))
    assert node.v is None


@pytest.mark.parametrize("cut", [False, True])
def test_integrator_kernel_gradient_and_cut(cut):
    x, v0, gs, _ = _inputs(10)
    res = []
    for backend in ("numba", "torch"):
        xx, vv = x.clone().requires_grad_(), v0.clone().requires_grad_()
        (integrator_multi_step(xx, vv, 0.7, cut_temporal_grad=cut, backend=backend) * gs).sum().backward()
        res.append((xx.grad, vv.grad))
    torch.testing.assert_close(res[0][0], res[1][0], **_tol())
    if cut:
        torch.testing.assert_close(res[0][0], gs)  # only the current step
    else:
        torch.testing.assert_close(res[0][1], res[1][1], **_tol())


# --- modules: step modes, state, the temporal cut, memory --------------------------------------------


@pytest.mark.parametrize("make", [
    lambda m: LIFNode(step_mode=m, backend="numba"),
    lambda m: IFNode(v_reset=None, step_mode=m, backend="numba"),
    lambda m: PLIFNode(step_mode=m, backend="numba"),
    lambda m: MLFNode(step_mode=m, backend="numba"),
    lambda m: NonSpikingIntegrator(0.5, step_mode=m, backend="numba"),
], ids=["lif", "if", "plif", "mlf", "integrator"])
@pytest.mark.parametrize("cut", [False, True])
def test_single_step_equals_multi_step(make, cut):
    x, _, gs, _ = _inputs(12)
    res = []
    for mode in ("s", "m"):
        node = make(mode)
        node.cut_temporal_grad = cut
        xx = x.clone().requires_grad_()
        out = node(xx) if mode == "m" else torch.stack([node(xx[t]) for t in range(T)])
        (out * gs).sum().backward()
        res.append((out.detach(), xx.grad, node.v.detach(), [p.grad for p in node.parameters()]))
    assert torch.equal(res[0][0], res[1][0])
    assert torch.equal(res[0][2], res[1][2])
    torch.testing.assert_close(res[0][1], res[1][1], **_tol())
    for a, b in zip(res[0][3], res[1][3]):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_temporal_cut_keeps_gradient_in_the_current_step(backend):
    x, _, _, _ = _inputs(13)
    node = LIFNode(step_mode="m", backend=backend)
    node.cut_temporal_grad = True
    xx = x.clone().requires_grad_()
    s = node(xx)
    s[4].sum().backward()
    assert not xx.grad[:4].any() and not xx.grad[5:].any()
    assert xx.grad[4].any()


def test_state_carries_across_multi_step_calls_with_gradient():
    """Two multi-step calls without reset() equal one call over the concatenated sequence."""
    x, _, gs, _ = _inputs(14)
    one = LIFNode(step_mode="m", backend="numba")
    two = LIFNode(step_mode="m", backend="numba")
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    (one(xa) * gs).sum().backward()
    out = torch.cat([two(xb[:3]), two(xb[3:])])
    (out * gs).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, **_tol())


def _saved_bytes(fn):
    seen = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.dtype)] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


def test_backward_keeps_only_what_it_needs():
    T_, N = 6, 1000
    x = torch.randn(T_, N, requires_grad=True)
    lif, _ = _saved_bytes(lambda: LIFNode(step_mode="m")(x))
    assert lif == T_ * N * 4  # H only
    plif, _ = _saved_bytes(lambda: PLIFNode(step_mode="m")(x))
    assert plif == T_ * N * 4 + 4  # H and sigmoid's output (a fresh state is not stored)
    node = PLIFNode(step_mode="m")
    node(x.detach())
    carried, _ = _saved_bytes(lambda: node(x))
    assert carried == T_ * N * 4 + N * 4 + 4  # ... a carried one is: ∂H/∂k at t = 0 needs it
    mlf, _ = _saved_bytes(lambda: MLFNode(step_mode="m")(x))
    assert mlf == T_ * N * 4  # the input only, not 3 x H
    integ, _ = _saved_bytes(lambda: NonSpikingIntegrator(0.5, step_mode="m")(x))
    assert integ == 0
    with torch.no_grad():
        none, _ = _saved_bytes(lambda: LIFNode(step_mode="m")(x))
    assert none == 0
    ref, _ = _saved_bytes(lambda: LIFNode(step_mode="m", backend="torch")(x))
    assert ref > 2 * lif  # the reference keeps several tensors per step


def test_auto_backend_uses_kernels_only_for_cpu_float32(monkeypatch):
    calls = []
    real = K.spiking_forward

    def spy(*args):
        calls.append(args[0].dtype)
        return real(*args)

    monkeypatch.setattr(K, "spiking_forward", spy)
    x = torch.rand(3, 4)
    LIFNode(step_mode="m")(x)
    LIFNode(step_mode="m")(x.double())
    LIFNode(step_mode="m", backend="torch")(x)
    assert calls == [np.float32]


def test_kernel_handles_noncontiguous_input_and_many_blocks():
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(K.BLOCK * 2 + 77, 4, generator=g) + 0.5).t()  # [4, N] view, not contiguous; N > 2 blocks
    a = LIFNode(step_mode="m", backend="numba")(x)
    b = LIFNode(step_mode="m", backend="torch")(x)
    assert torch.equal(a, b)



def _channels_last_steps(x: torch.Tensor) -> torch.Tensor:
    """``[T, B, C, H, W]`` with every frame in channels_last (a time-folded channels_last conv's output)."""
    return x.flatten(0, 1).contiguous(memory_format=torch.channels_last).reshape(x.shape)


@pytest.mark.parametrize("make", [lambda: LIFNode(step_mode="m", detach_reset=True),
                                  lambda: PLIFNode(step_mode="m", decay_input=False),
                                  lambda: MLFNode(step_mode="m"),
                                  lambda: NonSpikingIntegrator(0.5, step_mode="m")])
def test_channels_last_steps_run_in_place_and_keep_their_layout(make, monkeypatch):
    """A channels_last sequence goes to the kernels as a view (no copy in), comes back in channels_last
    (no copy out; the state too), and gives the same outputs and gradients as the contiguous sequence
    through the torch reference, also on a second call that starts from the stored state."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(4, 3, 5, 6, 7, generator=g) * 1.5 + 0.4
    xc = _channels_last_steps(x)
    assert not xc.is_contiguous()
    seen = []
    real = K.spiking_forward, K.mlf_forward, K.integrator_forward
    monkeypatch.setattr(K, "spiking_forward", lambda x2, *a: seen.append(x2.ctypes.data) or real[0](x2, *a))
    monkeypatch.setattr(K, "mlf_forward", lambda x2, *a: seen.append(x2.ctypes.data) or real[1](x2, *a))
    monkeypatch.setattr(K, "integrator_forward", lambda x2, *a: seen.append(x2.ctypes.data) or real[2](x2, *a))
    fast, ref = make(), make()
    ref.backend = "torch"
    if isinstance(fast, PLIFNode):
        ref.load_state_dict(fast.state_dict())
    xa = xc.clone(memory_format=torch.preserve_format).requires_grad_()
    xb = x.clone().requires_grad_()
    outs_a = [fast(xa), fast(xa)]
    outs_b = [ref(xb), ref(xb)]
    assert seen and seen[0] == xa.data_ptr()                     # the kernel read the input's own memory
    for a, b in zip(outs_a, outs_b):
        assert a.stride() == xa.stride()
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert fast.v.stride()[-4:] == xa[0].stride()
    w = torch.randn(x.shape, generator=g)
    sum(((o * w).sum() for o in outs_a)).backward()
    sum(((o * w).sum() for o in outs_b)).backward()
    assert xa.grad.stride() == xa.stride()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=2e-6)


def test_steps_with_time_inside_are_copied_not_misread():
    """A sequence whose time axis is not outermost in memory cannot be read in place: it is copied,
    and the result is still right."""
    g = torch.Generator().manual_seed(12)
    x = torch.randn(3, 5, 4, generator=g).permute(2, 0, 1) + 0.5      # [T=4, 3, 5], time innermost
    a = LIFNode(step_mode="m", backend="numba")(x)
    b = LIFNode(step_mode="m", backend="torch")(x.contiguous())
    assert torch.equal(a, b)

# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("make", [LIFNode, IFNode, PLIFNode, MLFNode, NonSpikingIntegrator])
def test_bad_input_raises_clear_errors(backend, make):
    node = make(step_mode="m", backend=backend)
    with pytest.raises(TypeError, match="floating-point"):
        node(torch.ones(3, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        node(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        node(torch.ones(4))
    with pytest.raises(ValueError, match="T >= 1"):
        node(torch.ones(0, 4))
    good = torch.rand(3, 4)
    node(good)
    state = node.v.clone()
    for bad_value in (float("nan"), float("inf")):
        bad = good.clone()
        bad[1, 2] = bad_value
        with pytest.raises(ValueError, match="non-finite"):
            node(bad)
        assert torch.equal(node.v, state)  # the state is untouched
    with pytest.raises(ValueError, match="reset"):
        node(torch.rand(3, 5))
    single = make(step_mode="s", backend=backend)
    with pytest.raises(ValueError, match="at least 1 dimensions"):
        single(torch.tensor(1.0))


@pytest.mark.parametrize("kwargs,match", [
    (dict(v_threshold=0.0), "v_threshold"),
    (dict(v_threshold=-1.0), "v_threshold"),
    (dict(v_threshold=float("nan")), "NaN"),
    (dict(tau=0.5), "tau"),
    (dict(v_reset=2.0), "v_reset"),
    (dict(backend="cuda"), "backend"),
    (dict(step_mode="x"), "step_mode"),
])
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LIFNode(**kwargs)


def test_bad_mlf_and_integrator_parameters_raise():
    with pytest.raises(ValueError, match="thresholds"):
        MLFNode(thresholds=(0.6, -1.0))
    with pytest.raises(ValueError, match="thresholds"):
        MLFNode(thresholds=())
    with pytest.raises(ValueError, match="decay"):
        MLFNode(decay=1.0)
    with pytest.raises(ValueError, match="decay"):
        NonSpikingIntegrator(decay=1.5)


def test_numba_backend_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="backend='numba'"):
        LIFNode(step_mode="m", backend="numba")(torch.rand(3, 4, dtype=torch.float16))


@pytest.mark.parametrize("which", ["v_last", "spikes"])
def test_gradient_through_one_output_only(which):
    """Autograd passes None for an unused output's gradient (not zeros); both backends agree."""
    x, v0, _, _ = _inputs(15)
    grads = []
    for backend in ("numba", "torch"):
        xx = x.clone().requires_grad_()
        s, v = spiking_multi_step(xx, v0, NeuronParams(), ArcTan(), backend=backend)
        (v.sum() if which == "v_last" else s.sum()).backward()
        grads.append(xx.grad)
    torch.testing.assert_close(grads[0], grads[1], **_tol())
    assert grads[0].abs().sum() > 0


@pytest.mark.parametrize("grad_mode", ["no_grad", "input_without_grad"])
def test_inference_path_equals_training_path(grad_mode):
    """Without a graph to record, the kernels run without the autograd wrapper: same spikes,
    potentials and integrator outputs, no grad_fn, non-finite input still rejected."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(6, 3, 50, generator=g) + 0.5
    params = NeuronParams(v_threshold=1.0, v_reset=0.0, tau=2.0, decay_input=False)
    v0 = torch.rand(3, 50, generator=g)
    s_ref, v_ref = spiking_multi_step(x.clone().requires_grad_(), v0, params, ArcTan())
    i_ref = integrator_multi_step(x.clone().requires_grad_(), v0, 0.5)
    assert s_ref.grad_fn is not None and i_ref.grad_fn is not None
    if grad_mode == "no_grad":
        with torch.no_grad():
            s, v = spiking_multi_step(x.clone().requires_grad_(), v0, params, ArcTan())
            out = integrator_multi_step(x.clone().requires_grad_(), v0, 0.5)
    else:
        s, v = spiking_multi_step(x, v0, params, ArcTan())
        out = integrator_multi_step(x, v0, 0.5)
    assert s.grad_fn is None and v.grad_fn is None and out.grad_fn is None
    assert torch.equal(s, s_ref.detach()) and torch.equal(v, v_ref.detach())
    assert torch.equal(out, i_ref.detach())
    bad = x.clone()
    bad[2, 1, 3] = float("nan")
    with torch.no_grad(), pytest.raises(ValueError, match="non-finite"):
        spiking_multi_step(bad, v0, params, ArcTan())
    with torch.no_grad(), pytest.raises(ValueError, match="non-finite"):
        integrator_multi_step(bad, v0, 0.5)
