"""snnlab's kernels as torch.library operators, and snnlab models under torch.compile.

What is checked, and why it can fail:

* ``torch.library.opcheck`` on every operator (schema, fake implementation, autograd registration,
  AOT dispatch), and the fake implementations' shapes under a FakeTensorMode;
* the operator path (what a compiled model runs) against the eager path, bit for bit, for every
  neuron option: spikes, final potentials and every gradient (the eager path is forced onto the
  operators by pretending to compile);
* the operators' gradients against the pure-torch reference (autograd through the equations);
* NaN policy through the operators and in a compiled model: the same ValueError, the state untouched;
* ``torch.compile(model, fullgraph=True)`` (a graph break would be an error) on one model of every
  family of the registry: outputs and every layer's spikes equal eager, gradients equal to float32
  rounding; with Inductor on a small CNN: spikes exactly equal, and the generated code calls the
  snnlab operators between kernels Inductor fused around them;
* the pure-torch path compiles without a graph break.
"""

from __future__ import annotations

import itertools
import re

import pytest
import torch
from torch import nn

from snnlab.models import MODELS, build_model
from snnlab.neurons import (
    IFNode, LIFNode, MLFNode, NonSpikingIntegrator, PLIFNode, StatefulNode, library, ops, reset_states,
)
from snnlab.surrogate import ArcTan, Gaussian, Rectangular, Sigmoid, Triangle

SURROGATES = [ArcTan(2.0), Sigmoid(4.0), Rectangular(1.0), Triangle(1.0), Gaussian(0.5)]


def _x(shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=dtype) * 0.8 + 0.5)


# ------------------------------------------------------------------------------------------------
# the operators themselves
# ------------------------------------------------------------------------------------------------


def _spiking_args(k_tensor=None, charge=2, hard=True, store=True, fresh=False, code=0):
    x = _x((5, 70)).requires_grad_()
    v0 = torch.empty(0) if fresh else (_x((70,), 1) * 0.3).requires_grad_()
    return (x, v0, k_tensor, 0.5, charge, hard, 1.0, 0.0 if hard else 0.0, code, 2.0, 0.0, False, False, store)


@pytest.mark.parametrize("case", [
    dict(), dict(charge=0), dict(charge=1, hard=False), dict(fresh=True, code=3),
    dict(k_tensor=torch.tensor(0.4, requires_grad=True), charge=1, code=1),
])
def test_opcheck_spiking(case):
    torch.library.opcheck(torch.ops.snnlab.spiking_forward.default, _spiking_args(**case))


def test_opcheck_mlf_integrator_and_check():
    x = _x((4, 30)).requires_grad_()
    torch.library.opcheck(torch.ops.snnlab.mlf_forward.default,
                          (x, (_x((3, 30), 2) * 0.2).requires_grad_(), [0.6, 1.6, 2.6], 0.75, 0.0, 2, 1.0, 1.0,
                           False, False))
    torch.library.opcheck(torch.ops.snnlab.integrator_forward.default,
                          (x, _x((30,), 3).requires_grad_(), 0.5, False))
    torch.library.opcheck(torch.ops.snnlab.check_finite.default, (x, "neuron input"))


def test_fake_implementations_give_the_real_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x, v0, k = torch.empty(6, 40), torch.empty(40), torch.empty(())
        s, h, v = torch.ops.snnlab.spiking_forward(x, v0, k, 0.5, 2, True, 1.0, 0.0, 0, 2.0, 0.0, False, False, True)
        assert (s.shape, h.shape, v.shape) == ((6, 40), (6, 40), (40,))
        _, h_none, _ = torch.ops.snnlab.spiking_forward(x, v0, None, 0.5, 2, True, 1.0, 0.0, 0, 2.0, 0.0, False, False,
                                                        False)
        assert h_none.shape == (0, 0)          # inference keeps nothing for a backward
        gx, gv0, dk = torch.ops.snnlab.spiking_backward(s, None, h, v0, k, 0.5, 2, True, 1.0, 0.0, 0, 2.0, 0.0, False,
                                                        False, True)
        assert (gx.shape, gv0.shape, dk.shape) == ((6, 40), (40,), ())
        out, vl = torch.ops.snnlab.mlf_forward(x, torch.empty(3, 0), [0.6, 1.6, 2.6], 0.75, 0.0, 2, 1.0, 1.0, False,
                                               False)
        assert (out.shape, vl.shape) == ((6, 40), (3, 40))
        gx, gv0 = torch.ops.snnlab.mlf_backward(out, None, x, torch.empty(3, 40), [0.6, 1.6, 2.6], 0.75, 0.0, 2, 1.0,
                                                1.0, False, False)
        assert (gx.shape, gv0.shape) == ((6, 40), (3, 40))
        assert torch.ops.snnlab.integrator_forward(x, torch.empty(0), 0.5, False).shape == (6, 40)
        gx, gv0 = torch.ops.snnlab.integrator_backward(x, 0.5, False)
        assert (gx.shape, gv0.shape) == ((6, 40), (40,))
        assert torch.ops.snnlab.check_finite(x, "x").shape == ()


def test_operators_reject_non_finite_input():
    args = list(_spiking_args())
    bad = args[0].detach().clone()
    bad[2, 5] = float("nan")
    args[0] = bad
    with pytest.raises(ValueError, match="non-finite"):
        torch.ops.snnlab.spiking_forward(*args)
    with pytest.raises(ValueError, match="non-finite"):
        torch.ops.snnlab.integrator_forward(bad, torch.empty(0), 0.5, False)
    with pytest.raises(ValueError, match="non-finite"):
        torch.ops.snnlab.check_finite(bad, "neuron input")
    assert float(torch.ops.snnlab.check_finite(bad.nan_to_num(), "x")) == 0.0


# ------------------------------------------------------------------------------------------------
# the operator path equals the eager path, and the reference's gradients
# ------------------------------------------------------------------------------------------------

KINDS = [(IFNode, {}), (LIFNode, dict(decay_input=True)), (LIFNode, dict(decay_input=False)),
         (PLIFNode, dict(decay_input=True)), (PLIFNode, dict(decay_input=False))]


def _run(node, x, v0, through_ops: bool, monkeypatch):
    """Spikes, V_T and the gradients of x, v0 and every parameter, from a multi-step call."""
    monkeypatch.setattr(ops, "_compiling", lambda: through_ops)
    node.reset()
    xr = x.clone().requires_grad_()
    v = v0.clone().requires_grad_()
    node.v = v
    out = node(xr)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(9))
    (out * g).sum().backward()
    grads = [xr.grad, v.grad] + [p.grad.clone() for p in node.parameters()]
    for p in node.parameters():
        p.grad = None
    return out.detach(), node.v.detach(), grads


@pytest.mark.parametrize("kind,v_reset,detach,cut", [
    (k, r, d, c) for k, r, d, c in itertools.product(range(len(KINDS)), (0.0, -0.3, None), (False, True), (False, True))
])
def test_operator_path_equals_eager_path(kind, v_reset, detach, cut, monkeypatch):
    cls, extra = KINDS[kind]
    surrogate = SURROGATES[(kind + 2 * (v_reset is None) + detach + 3 * cut) % len(SURROGATES)]
    node = cls(v_reset=v_reset, detach_reset=detach, surrogate=surrogate, step_mode="m", **extra)
    node.cut_temporal_grad = cut
    x, v0 = _x((6, 3, 40), kind), _x((3, 40), 7) * 0.3
    eager = _run(node, x, v0, False, monkeypatch)
    compiled_path = _run(node, x, v0, True, monkeypatch)
    assert torch.equal(eager[0], compiled_path[0]) and torch.equal(eager[1], compiled_path[1])
    for a, b in zip(eager[2], compiled_path[2]):
        assert (a is None and b is None) or torch.equal(a, b)


def test_mlf_and_integrator_operator_paths_equal_eager_and_reference(monkeypatch):
    for make in (lambda b: MLFNode(step_mode="m", backend=b), lambda b: NonSpikingIntegrator(0.5, step_mode="m", backend=b)):
        node, ref = make("auto"), make("torch")
        shape_v = (3, 2, 40) if isinstance(node, MLFNode) else (2, 40)
        x, v0 = _x((5, 2, 40), 3) * 2, _x(shape_v, 4) * 0.3
        eager = _run(node, x, v0, False, monkeypatch)
        through = _run(node, x, v0, True, monkeypatch)
        reference = _run(ref, x, v0, False, monkeypatch)
        assert torch.equal(eager[0], through[0]) and torch.equal(eager[1], through[1])
        assert torch.equal(through[0], reference[0])
        for a, b, r in zip(eager[2], through[2], reference[2]):
            assert torch.equal(a, b)
            torch.testing.assert_close(b, r, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("kind", range(len(KINDS)))
def test_operator_gradients_match_the_torch_reference(kind, monkeypatch):
    cls, extra = KINDS[kind]
    x, v0 = _x((6, 2, 50), 11 + kind), _x((2, 50), 12) * 0.3
    node = cls(step_mode="m", surrogate=SURROGATES[kind], **extra)
    ref = cls(step_mode="m", surrogate=SURROGATES[kind], backend="torch", **extra)
    through = _run(node, x, v0, True, monkeypatch)
    reference = _run(ref, x, v0, False, monkeypatch)
    assert torch.equal(through[0], reference[0])
    for a, b in zip(through[2], reference[2]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=2e-6)


# ------------------------------------------------------------------------------------------------
# models under torch.compile
# ------------------------------------------------------------------------------------------------

# one model per family of the registry (the deeper ResNets repeat the same blocks; `snnlab bench
# compile` covers every entry)
FAMILIES = ["spiking_mlp", "spiking_cnn", "atsn_vgg", "ds_resnet_small", "ottt_vgg", "seven_b_net",
            "sew_resnet18", "spiking_resnet18"]


def test_every_registry_model_belongs_to_a_tested_family():
    family = {name: re.sub(r"\d+$", "", name).replace("wide_", "").replace("_f", "") for name in MODELS}
    tested = {family[name] for name in FAMILIES}
    assert {family[name] for name in MODELS} <= tested | {"plain_resnet", "ds_resnet"}
    from snnlab.bench.compile import check_model  # the benchmark that compiles every entry

    assert callable(check_model)


def _spikes_by_layer(model):
    store, handles = {}, []
    for name, m in model.named_modules():
        if isinstance(m, StatefulNode):
            handles.append(m.register_forward_hook(lambda mod, a, out, name=name: store.__setitem__(name, out)))
    return store, handles


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_compiled_model_equals_eager_without_graph_breaks(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, input_shape=(3, 16, 16), T=2).train()
    x = torch.rand(2, 2, 3, 16, 16) * 2
    store, handles = _spikes_by_layer(model)
    reset_states(model)
    ref = model(x)
    ref.square().sum().backward()
    eager_spikes = dict(store)
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    store.clear()
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")   # a graph break raises here
    reset_states(model)
    out = compiled(x)
    out.square().sum().backward()
    for h in handles:
        h.remove()
    assert torch.equal(out, ref)
    assert sorted(store) == sorted(eager_spikes) and store
    for layer, spikes in eager_spikes.items():
        assert torch.equal(store[layer], spikes), layer
    for p, g in zip(model.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_inductor_fuses_around_snnlab_operators_and_keeps_the_spikes():
    from torch._inductor.utils import run_and_get_code

    torch.manual_seed(0)
    model = build_model("spiking_cnn", num_classes=10, input_shape=(2, 16, 16), T=4, channels=(8, 16)).eval()
    x = (torch.rand(4, 8, 2, 16, 16) < 0.3).float()
    store, handles = _spikes_by_layer(model)
    reset_states(model)
    with torch.no_grad():
        ref = model(x)
    eager_spikes = dict(store)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)

    def run():
        reset_states(model)
        with torch.no_grad():
            return compiled(x)

    out, codes = run_and_get_code(run)
    for h in handles:
        h.remove()
    for layer, spikes in eager_spikes.items():
        assert torch.equal(store[layer], spikes), layer
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    code = "\n".join(codes)
    assert code.count("torch.ops.snnlab.spiking_forward") >= 2          # the neurons stay the kernels
    # Inductor's own loops around them: batch norm fused with the preparation of the neuron's
    # input, pooling of its spikes fused with the next layer's input
    fused = set(re.findall(r"cpp_fused_\w+", code))
    assert any("batch_norm" in k and "spiking_forward" in k for k in fused), fused
    assert any("avg_pool2d" in k for k in fused), fused


def test_compiled_model_rejects_nan_and_keeps_its_state():
    node = LIFNode(step_mode="m")
    compiled = torch.compile(node, fullgraph=True, backend="aot_eager")
    x = _x((3, 2, 10))
    compiled(x)
    before = node.v.clone()
    bad = x.clone()
    bad[1, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        compiled(bad)
    assert torch.equal(node.v, before)


def test_torch_path_compiles_without_a_graph_break_and_keeps_the_nan_check():
    node = LIFNode(step_mode="m", backend="torch")

    def run(x):
        node.reset()
        return node(x)

    explanation = torch._dynamo.explain(run)(_x((3, 2, 10)).requires_grad_())
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(run, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(_x((3, 2, 10))), run(_x((3, 2, 10))))
    bad = _x((3, 2, 10))
    bad[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        compiled(bad)


def test_parameter_vectors_are_memoised_without_lru_cache():
    import functools

    from snnlab.neurons import launch

    for module in (ops, launch, library):
        assert not any(isinstance(v, functools._lru_cache_wrapper) for v in vars(module).values()), module
    a = launch.spiking_vector(torch.float32, 1.0, 0.0, 0.5, (0, 2.0, 0.0))
    assert a is launch.spiking_vector(torch.float32, 1.0, 0.0, 0.5, (0, 2.0, 0.0))
    assert not a.flags.writeable
    assert a is not launch.spiking_vector(torch.float32, 1.0, 0.0, 0.25, (0, 2.0, 0.0))
