"""The reference neuron dynamics (SEW ResNet eqs. 1-5, OTTT eq. 2) against hand computations."""

import pytest
import torch

from snnlab.neurons import IFNode, LIFNode, NeuronParams, PLIFNode, reset_states, simulate
from snnlab.surrogate import ArcTan, Rectangular


def unrolled(x, v_th, tau, v_reset, decay_input, kind):
    """An independent scalar loop over the equations, in plain Python floats."""
    v = 0.0 if v_reset is None else v_reset
    spikes, hs = [], []
    for xt in x:
        if kind == "if":
            h = v + xt
        elif decay_input:
            h = v + (xt - (v - (v_reset or 0.0))) / tau
        else:
            h = v - (v - (v_reset or 0.0)) / tau + xt
        s = 1.0 if h >= v_th else 0.0
        v = (h - v_th * s) if v_reset is None else (h * (1 - s) + v_reset * s)
        spikes.append(s)
        hs.append(h)
    return spikes, hs


@pytest.mark.parametrize("kind", ["if", "lif"])
@pytest.mark.parametrize("v_reset", [0.0, -0.3, None])
@pytest.mark.parametrize("decay_input", [True, False])
def test_simulate_matches_the_equations(kind, v_reset, decay_input):
    torch.manual_seed(0)
    scale = 2.6 if (kind == "lif" and decay_input) else 1.2  # every variant fires, but not always
    x = torch.rand(50, dtype=torch.float64) * scale - 0.2
    params = NeuronParams(v_threshold=0.9, v_reset=v_reset, tau=3.0, decay_input=decay_input)
    trace = simulate(x[:, None], params, ArcTan(), kind=kind)
    spikes, hs = unrolled(x.tolist(), 0.9, 3.0, v_reset, decay_input, kind)
    assert trace.spikes[:, 0].tolist() == spikes
    torch.testing.assert_close(trace.h[:, 0], torch.tensor(hs, dtype=torch.float64))
    assert 0 < sum(spikes) < len(spikes)


def test_lif_with_decayed_input_approaches_the_input_level():
    """SEW ResNet eq. 5 with a constant input below threshold: H -> X, never fires."""
    x = torch.full((200, 1), 0.8)
    trace = simulate(x, NeuronParams(v_threshold=1.0, tau=2.0), kind="lif")
    assert trace.spikes.sum() == 0
    assert float(trace.h[-1]) == pytest.approx(0.8, abs=1e-6)


def test_ottt_lif_integrates_up_to_x_over_one_minus_lambda():
    """OTTT eq. 2 (undecayed input, λ = 1 - 1/τ): V -> X / (1 - λ) without spikes."""
    x = torch.full((200, 1), 0.3)
    trace = simulate(x, NeuronParams(v_threshold=1.0, tau=2.0, decay_input=False, v_reset=None), kind="lif")
    assert trace.spikes.sum() == 0
    assert float(trace.h[-1]) == pytest.approx(0.3 / 0.5, abs=1e-5)


def test_soft_reset_keeps_the_excess_and_hard_reset_drops_it():
    x = torch.tensor([[1.7], [0.0]])
    soft = simulate(x, NeuronParams(v_threshold=1.0, v_reset=None), kind="if")
    hard = simulate(x, NeuronParams(v_threshold=1.0, v_reset=0.0), kind="if")
    assert soft.v[0].item() == pytest.approx(0.7) and hard.v[0].item() == 0.0


def test_if_neuron_is_an_identity_on_binary_input():
    """SEW ResNet, section 3.2: IF with 0 < V_th <= 1 and hard reset to 0 gives SN(S) = S."""
    s = (torch.rand(100, 8) < 0.3).float()
    out = simulate(s, NeuronParams(v_threshold=1.0), kind="if").spikes
    assert torch.equal(out, s)
    lif = simulate(s, NeuronParams(v_threshold=1.0, tau=2.0), kind="lif").spikes
    assert lif.sum() == 0


def test_detach_reset_changes_the_gradient_only():
    torch.manual_seed(1)
    x = torch.rand(20, 5) * 1.5
    grads = {}
    for detach in (False, True):
        xi = x.clone().requires_grad_(True)
        params = NeuronParams(v_threshold=1.0, tau=2.0, detach_reset=detach)
        trace = simulate(xi, params, Rectangular(2.0, 1.0), kind="lif")
        trace.spikes.sum().backward()
        grads[detach] = (trace.spikes.detach(), xi.grad)
    assert torch.equal(grads[False][0], grads[True][0])
    assert not torch.allclose(grads[False][1], grads[True][1])


def test_multistep_module_equals_single_steps_and_state_resets():
    torch.manual_seed(2)
    x = torch.rand(12, 3, 4) * 2
    multi = LIFNode(tau=2.0, step_mode="m")
    single = LIFNode(tau=2.0, step_mode="s")
    out_multi = multi(x)
    out_single = torch.stack([single(xt) for xt in x])
    assert torch.equal(out_multi, out_single)
    assert single.v is not None
    reset_states(torch.nn.Sequential(single, multi))
    assert single.v is None and multi.v is None


def test_module_reads_state_across_calls_until_reset():
    node = IFNode(v_threshold=1.0)
    assert node(torch.tensor([0.6])).item() == 0.0
    assert node(torch.tensor([0.6])).item() == 1.0  # 1.2 >= 1
    node.reset()
    assert node(torch.tensor([0.6])).item() == 0.0


def test_cut_temporal_grad_keeps_only_the_current_step():
    x = torch.tensor([[0.4], [0.4], [0.4]], requires_grad=True)
    node = LIFNode(tau=2.0, decay_input=False, surrogate=Rectangular(10.0, 1.0), step_mode="m")
    node.cut_temporal_grad = True
    node(x)[-1].sum().backward()
    # with the cut, the last output depends on the last input only (dS/dH = 1 inside the window)
    assert x.grad[:, 0].tolist() == [0.0, 0.0, 1.0]


def test_plif_learns_its_time_constant():
    node = PLIFNode(init_tau=2.0, step_mode="m")
    assert node.tau == pytest.approx(2.0)
    x = torch.rand(10, 4, 6) * 2
    node(x).sum().backward()
    assert node.w.grad is not None and node.w.grad.abs() > 0
    ref = simulate(x, NeuronParams(tau=2.0), kind="lif").spikes
    node.reset()
    assert torch.equal(node(x).detach(), ref)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: LIFNode(v_threshold=-1.0), "v_threshold must be"),
        (lambda: LIFNode(v_threshold=0.0), "v_threshold must be"),
        (lambda: LIFNode(tau=0.5), "tau must be >= 1"),
        (lambda: LIFNode(v_reset=2.0), "must be below v_threshold"),
        (lambda: PLIFNode(init_tau=1.0), "init_tau must be > 1"),
        (lambda: IFNode(tau=2.0), "IFNode has no leak"),
        (lambda: LIFNode(step_mode="x"), "step_mode must be"),
        (lambda: LIFNode(surrogate="relu"), "unknown surrogate"),
    ],
)
def test_bad_parameters_raise(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize(
    "x, match",
    [
        ([0.1, 0.2], "must be a torch.Tensor"),
        (torch.ones(3, 2, dtype=torch.int64), "floating-point"),
        (torch.ones(0, 2), "T >= 1"),
        (torch.tensor([[float("nan")], [0.0]]), "non-finite"),
        (torch.ones(4), "at least 2 dimensions"),
    ],
)
def test_bad_input_raises(x, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LIFNode(step_mode="m")(x)


def test_simulate_rejects_empty_sequences_and_non_tensors():
    with pytest.raises(ValueError, match="T >= 1"):
        simulate(torch.ones(0, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        simulate([1.0, 2.0])


# ---- the NaN policy without holes (issue 18, item 5) -------------------------------------------


def test_simulate_rejects_nan_input_and_state():
    x = torch.ones(3, 4)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="x_seq contains 1 non-finite value"):
        simulate(x)
    with pytest.raises(ValueError, match="v0 contains"):
        simulate(torch.ones(3, 4), v0=torch.full((4,), float("inf")))
    with pytest.raises(ValueError, match="v0 contains"):
        simulate(torch.ones(3, 4), v0=float("nan"))


@pytest.mark.parametrize("backend", ["torch", "numba"])
@pytest.mark.parametrize("kwargs, error, needle", [
    ({"v_reset": float("nan")}, ValueError, "v_reset must be a finite number or None"),
    ({"v_reset": float("-inf")}, ValueError, "v_reset must be a finite number or None"),
    ({"v_threshold": float("nan")}, ValueError, "v_threshold must be a number, got NaN"),
    ({"v_threshold": float("inf")}, ValueError, "v_threshold must be a finite number > 0"),
    ({"tau": float("nan")}, ValueError, "tau must be a number, got NaN"),
    ({"v_threshold": torch.tensor(1.0, requires_grad=True)}, TypeError, "v_threshold is a tensor that requires grad"),
    ({"v_reset": torch.tensor(0.0, requires_grad=True)}, TypeError, "v_reset is a tensor that requires grad"),
    ({"decay_input": "yes"}, TypeError, "decay_input must be True or False"),
])
def test_bad_parameters_get_the_same_error_in_both_backends(backend, kwargs, error, needle):
    with pytest.raises(error) as info:
        LIFNode(backend=backend, step_mode="m", **kwargs)
    assert needle in str(info.value) and "neuron input" not in str(info.value)


def test_parameters_become_plain_floats_in_both_backends():
    import numpy as np

    node = LIFNode(v_threshold=torch.tensor(0.5), v_reset=np.float32(-0.25), tau=np.float64(3.0))
    assert (node.params.v_threshold, node.params.v_reset, node.params.tau) == (0.5, -0.25, 3.0)
    assert all(type(v) is float for v in (node.params.v_threshold, node.params.v_reset, node.params.tau))
    x = torch.rand(5, 2, 6) * 2
    outs = [LIFNode(v_threshold=torch.tensor(0.5), v_reset=-0.25, backend=b, step_mode="m")(x) for b in ("torch", "numba")]
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_a_diverged_plif_parameter_is_named(backend):
    node = PLIFNode(backend=backend, step_mode="m")
    with torch.no_grad():
        node.w.fill_(float("nan"))
    with pytest.raises(ValueError, match="PLIFNode's learned time-constant parameter w is nan"):
        node(torch.rand(3, 2, 4))


@pytest.mark.parametrize("cls", ["ArcTan", "Sigmoid", "Gaussian"])
def test_surrogate_alpha_is_finite_and_in_range(cls):
    import snnlab.surrogate as S

    make = getattr(S, cls)
    low, high = S.ALPHA_RANGE
    assert make(low).alpha == low and make(high).alpha == high and type(make(2).alpha) is float
    for bad in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(ValueError, match="alpha"):
            make(bad)
    for bad in (low / 2, high * 2):
        with pytest.raises(ValueError, match=r"must lie in \[0.001, 1000\]"):
            make(bad)
    with pytest.raises(TypeError, match="requires grad"):
        make(torch.tensor(2.0, requires_grad=True))
    with pytest.raises(TypeError):
        make("2")
