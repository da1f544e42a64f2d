"""BPTT / SLTT / SLTT-K / OTTT: gradient identities and the errors for networks they cannot run."""

import pytest
import torch
from torch import nn

from snnlab.models import SpikingMLP, build_model, make_neuron
from snnlab.neurons import NonSpikingIntegrator
from snnlab.surrogate import Sigmoid
from snnlab.training.traces import next_step
from snnlab.training import (
    build_loss,
    build_method,
    compute_gradients,
    reset_model,
    set_temporal_cut,
    time_major,
)


# float64 runs the neurons' pure-torch reference; float32 on CPU runs their Numba kernels.
DTYPES = [torch.float64, torch.float32]


def _mlp(hidden=(6, 5), seed=0, dtype=torch.float64, **kw):
    torch.manual_seed(seed)
    return SpikingMLP((4,), 3, hidden=hidden, **kw).to(dtype)


def _cnn(seed=0, bn=False, pool="avg", dtype=torch.float64):
    torch.manual_seed(seed)
    return build_model("spiking_cnn", num_classes=3, input_shape=(2, 6, 6), T=3, channels=(4, 5),
                       bn=bn, pool=pool).to(dtype)


def _data(shape, T, B=5, seed=1, scale=3.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(T, B, *shape, generator=g, dtype=torch.float64) * scale
    y = torch.randint(0, 3, (B,), generator=g)
    return x.to(dtype), y


def _assert_same(a, b, rtol=None, atol=None):
    assert a.keys() == b.keys()
    for k in a:
        single = a[k].dtype == torch.float32
        r = rtol if rtol is not None else (1e-4 if single else 1e-9)
        t = atol if atol is not None else (1e-6 if single else 1e-12)
        assert torch.allclose(a[k], b[k], rtol=r, atol=t), (k, a[k], b[k])


def _unrolled_cut_grads(model, x, y, loss, steps=None, scale=1.0):
    """Reference: autograd through the whole unrolled net with the temporal edges detached."""
    set_temporal_cut(model, True)
    reset_model(model)
    model.zero_grad(set_to_none=True)
    out = model(x)
    T = x.shape[0]
    steps = range(T) if steps is None else steps
    total = sum(loss.step_loss(out[t], y, t, T) for t in steps) * scale
    total.backward()
    set_temporal_cut(model, False)
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make,loss_name", [(_mlp, "tet"), (_mlp, "imp"), (_cnn, "ottt")])
def test_sltt_equals_unrolled_autograd_with_temporal_edges_cut(make, loss_name, dtype):
    model = make(dtype=dtype)
    x, y = _data(model.input_shape, T=4, dtype=dtype)
    loss = build_loss(loss_name)
    sltt = compute_gradients("sltt", model, x, y, loss)
    build_method("bptt").attach(model)
    ref = _unrolled_cut_grads(model, x, y, loss)
    _assert_same(sltt, ref)
    # the cut is real: with T > 1, BPTT's gradient differs
    bptt = compute_gradients("bptt", model, x, y, loss)
    assert any(not torch.allclose(bptt[k], sltt[k]) for k in bptt)


def test_sltt_with_batchnorm_equals_stepwise_unrolled_graph():
    """With BN (per-step statistics under SLTT) the reference is the per-step unrolled graph."""
    model = _cnn(bn=True)
    x, y = _data(model.input_shape, T=3)
    loss = build_loss("tet")
    sltt = compute_gradients("sltt", model, x, y, loss)
    set_temporal_cut(model, True)
    reset_model(model)
    model.zero_grad()
    total = sum(loss.step_loss(model(x[t : t + 1])[0], y, t, 3) for t in range(3))
    total.backward()
    _assert_same(sltt, {n: p.grad for n, p in model.named_parameters()})


@pytest.mark.parametrize("rescale", [False, True])
def test_sltt_k_backpropagates_k_random_steps(rescale):
    """Authors' SLTT-K: the chosen steps' losses as is; rescale=True: times T/K."""
    model = _mlp()
    x, y = _data(model.input_shape, T=5)
    loss = build_loss("tet")
    torch.manual_seed(123)
    chosen = torch.randperm(5)[:2].tolist()
    torch.manual_seed(123)
    model.zero_grad()
    result = build_method("sltt_k", k=2, rescale=rescale).train_step(model, x, y, loss)
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert result.backward_passes == 2
    build_method("bptt").attach(model)
    _assert_same(got, _unrolled_cut_grads(model, x, y, loss, steps=chosen, scale=5 / 2 if rescale else 1.0))
    # K = T is SLTT
    _assert_same(compute_gradients(build_method("sltt_k", k=5, rescale=rescale), model, x, y, loss),
                 compute_gradients("sltt", model, x, y, loss))
    with pytest.raises(ValueError, match="K <= T"):
        build_method("sltt_k", k=6).train_step(model, x, y, loss)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ottt_weight_gradient_equals_the_hand_formula(dtype):
    """OTTT eqs. 3-5: grad W^l = sum_t g_u^{l+1}[t] â^l[t]^T, â[t] = λ â[t-1] + s[t], first layer raw input."""
    model = _mlp(hidden=(6, 5), dtype=dtype)
    with torch.no_grad():  # make both hidden layers fire
        model.features[2].weight.mul_(3.0)
        model.features[2].bias.add_(0.9)
    T, lam = 5, 0.5  # LIF τ = 2
    x, y = _data(model.input_shape, T=T, B=7, scale=4.0, dtype=dtype)
    loss = build_loss("ottt")
    got = compute_gradients("ottt_a", model, x, y, loss)

    W1, b1 = model.features[0].weight.detach(), model.features[0].bias.detach()
    W2, b2 = model.features[2].weight.detach(), model.features[2].bias.detach()
    W3, b3 = model.classifier.weight.detach(), model.classifier.bias.detach()
    sg = Sigmoid(4.0).derivative
    v1 = torch.zeros(7, 6, dtype=dtype)
    v2 = torch.zeros(7, 5, dtype=dtype)
    a1 = torch.zeros_like(v1)
    a2 = torch.zeros_like(v2)
    g = {k: torch.zeros_like(v) for k, v in got.items()}
    fired = [0, 0]
    for t in range(T):
        h1 = lam * v1 + x[t] @ W1.T + b1  # OTTT eq. 2 (input not decayed), soft reset
        s1 = (h1 >= 1).to(dtype)
        v1 = h1 - s1
        h2 = lam * v2 + s1 @ W2.T + b2
        s2 = (h2 >= 1).to(dtype)
        v2 = h2 - s2
        a1 = lam * a1 + s1
        a2 = lam * a2 + s2
        o = (s2 @ W3.T + b3).requires_grad_()
        (go,) = torch.autograd.grad(loss.step_loss(o, y, t, T), o)
        gu2 = (go @ W3) * sg(h2 - 1)
        gu1 = (gu2 @ W2) * sg(h1 - 1)
        g["classifier.weight"] += go.T @ a2
        g["classifier.bias"] += go.sum(0)
        g["features.2.weight"] += gu2.T @ a1
        g["features.2.bias"] += gu2.sum(0)
        g["features.0.weight"] += gu1.T @ x[t]  # first layer: raw input, no trace
        g["features.0.bias"] += gu1.sum(0)
        fired[0] += int(s1.sum())
        fired[1] += int(s2.sum())
    assert min(fired) > 0  # both traces matter
    _assert_same(got, g)
    # and the trace really differs from the instantaneous spikes (SLTT)
    sltt = compute_gradients("sltt", model, x, y, loss)
    assert not torch.allclose(sltt["classifier.weight"], got["classifier.weight"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", [_mlp, lambda dtype: _cnn(bn=True, dtype=dtype)])
def test_at_T1_bptt_sltt_and_ottt_agree(make, dtype):
    model = make(dtype=dtype)
    x, y = _data(model.input_shape, T=1, dtype=dtype)
    loss = build_loss("ottt")
    ref = compute_gradients("bptt", model, x, y, loss)
    for method in ("sltt", "ottt_a", "ottt_o", build_method("sltt_k", k=1)):
        _assert_same(compute_gradients(method, model, x, y, loss), ref)


class _RecordingSGD(torch.optim.SGD):
    def __init__(self, params, **kw):
        super().__init__(params, **kw)
        self.seen = []

    def step(self, closure=None):
        self.seen.append([p.grad.clone() for g in self.param_groups for p in g["params"]])
        return super().step(closure)


def test_ottt_o_steps_every_timestep_and_ottt_a_once():
    model = _mlp()
    x, y = _data(model.input_shape, T=4, scale=4.0)
    loss = build_loss("ottt")
    acc = compute_gradients("ottt_a", model, x, y, loss)
    opt = _RecordingSGD(model.parameters(), lr=0.0)  # lr 0: weights fixed, per-step grads visible
    res = build_method("ottt_o").train_step(model, x, y, loss, opt)
    assert res.optimizer_steps == 4 and res.backward_passes == 4 and len(opt.seen) == 4
    names = [n for n, _ in model.named_parameters()]
    summed = {n: sum(step[i] for step in opt.seen) for i, n in enumerate(names)}
    _assert_same(summed, acc)  # zeroed each step, the per-step gradients add up to OTTT_A's
    opt = _RecordingSGD(model.parameters(), lr=0.0)
    res = build_method("ottt_a").train_step(model, x, y, loss, opt)
    assert res.optimizer_steps == 1 and len(opt.seen) == 1


def test_ottt_o_updates_weights_between_steps():
    """T SGD steps per batch, each on the weights the previous step left: not OTTT_A's one step."""
    model = _mlp()
    x, y = _data(model.input_shape, T=3, scale=4.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    build_method("ottt_o").train_step(model, x, y, build_loss("ottt"), opt)
    model.load_state_dict(before)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    build_method("ottt_a").train_step(model, x, y, build_loss("ottt"), opt)
    after_a = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(before)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    build_method("ottt_o").train_step(model, x, y, build_loss("ottt"), opt)
    assert any(not torch.equal(after_a[k], v) for k, v in model.state_dict().items())


def test_ottt_traces_the_layers_after_neurons_only():
    for pool in ("avg", "max"):
        model = _cnn(bn=True, pool=pool)
        x, _ = _data(model.input_shape, T=2)
        method = build_method("ottt_a")
        method.attach(model, x)
        assert method.traced_layers(model) == ["features.3.layers.0", "classifier"]
        method.detach(model)
        assert method.traced_layers(model) == []


@pytest.mark.parametrize("name", ["bptt", "sltt", "ottt_a", "ottt_o"])
def test_mixed_precision_plumbing(name):
    """A GradScaler scales every backward and unscales before the step: the same update as without;
    bfloat16 autocast runs every method with finite float32 outputs."""
    from snnlab.training import MixedPrecision

    x, y = _data((4,), T=3, scale=4.0, dtype=torch.float32)
    after = []
    for precision in (None, MixedPrecision(scaler=torch.amp.GradScaler("cpu", init_scale=2.0**10))):
        model = _mlp(dtype=torch.float32)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        build_method(name).train_step(model, x, y, build_loss("tet"), opt, precision=precision)
        after.append({k: v.clone() for k, v in model.state_dict().items()})
    _assert_same(after[0], after[1])
    model = _mlp(dtype=torch.float32)
    res = build_method(name).train_step(model, x, y, build_loss("tet"), torch.optim.SGD(model.parameters(), lr=0.1),
                                        precision=MixedPrecision(torch.bfloat16))
    assert res.outputs.dtype == torch.float32 and torch.isfinite(res.outputs).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_ottt_wrapping_survives_a_deep_copy():
    import copy

    model = _mlp()
    x, y = _data(model.input_shape, T=3, scale=4.0)
    loss = build_loss("ottt")
    method = build_method("ottt_a")
    method.attach(model, x)
    twin = copy.deepcopy(model)
    set_temporal_cut(twin, True)
    reset_model(twin)
    twin(x[:1])  # one training step of the copy: its own layers and traces, not the original's
    assert twin.classifier._snnlab_trace_layer.trace is not None
    assert model.classifier._snnlab_trace_layer.trace is None
    assert twin.classifier._snnlab_trace_layer is not model.classifier._snnlab_trace_layer
    twin.zero_grad()
    reset_model(twin)
    for t in range(3):  # the copy, stepped by hand, gives the original's OTTT gradient
        next_step(twin)
        loss.step_loss(twin(x[t : t + 1])[0], y, t, 3).backward()
    _assert_same({n: p.grad for n, p in twin.named_parameters()}, compute_gradients(method, model, x, y, loss))


def test_ottt_wrapping_leaves_inference_and_bptt_unchanged():
    model = _cnn(bn=True).eval()
    x, y = _data(model.input_shape, T=3)
    reset_model(model)
    with torch.no_grad():
        plain = model(x)
    method = build_method("ottt_a")
    method.attach(model, x)
    reset_model(model)
    with torch.no_grad():
        assert torch.equal(model(x), plain)
    model.train()
    ref = compute_gradients("bptt", model, x, y, build_loss("tet"))  # re-attach detaches the traces
    assert method.traced_layers(model) == []
    assert not any(n.cut_temporal_grad for n in model.modules() if hasattr(n, "cut_temporal_grad"))
    assert all(torch.isfinite(v).all() for v in ref.values())


def test_stepwise_calls_match_a_full_sequence_in_eval_mode():
    """The contract the online methods rely on: state is kept between calls."""
    for model in (_mlp(), _cnn(bn=True)):
        model.eval()
        x, _ = _data(model.input_shape, T=4)
        reset_model(model)
        with torch.no_grad():
            full = model(x)
            reset_model(model)
            steps = torch.cat([model(x[t : t + 1]) for t in range(4)])
        assert torch.allclose(full, steps)


class _Bilinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 5)
        self.sn = make_neuron("lif")
        self.bil = nn.Bilinear(5, 5, 3)

    def forward(self, x):
        s = self.sn(self.fc(x))
        return self.bil(s, s)


class _MyLinear(nn.Module):
    """A synaptic layer that is not an nn.Linear subclass."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in) / n_in**0.5)

    def forward(self, x):
        return x @ self.weight.T


def test_ottt_accepts_extra_synaptic_types():
    net = nn.Sequential(nn.Linear(4, 5), make_neuron("lif"), _MyLinear(5, 3)).double()
    x, y = _data((4,), T=3, scale=4.0)
    with pytest.raises(ValueError, match=r"2 \(_MyLinear\).*pass its type in synaptic_types"):
        build_method("ottt_a").train_step(net, x, y, build_loss("tet"))
    method = build_method("ottt_a", synaptic_types=(_MyLinear,))
    got = compute_gradients(method, net, x, y, build_loss("tet"))
    assert method.traced_layers(net) == ["2"]
    reference = nn.Sequential(nn.Linear(4, 5), make_neuron("lif"), nn.Linear(5, 3, bias=False)).double()
    reference.load_state_dict({"0.weight": net[0].weight, "0.bias": net[0].bias, "2.weight": net[2].weight})
    _assert_same(got, compute_gradients("ottt_a", reference, x, y, build_loss("tet")))


def test_networks_ottt_cannot_handle_raise_clear_errors():
    x, y = _data((4,), T=2)
    x = x.float()
    loss = build_loss("tet")
    with pytest.raises(ValueError, match="no snnlab spiking neurons"):
        build_method("ottt_a").train_step(nn.Linear(4, 3), x, y, loss)
    with pytest.raises(ValueError, match=r"bil \(Bilinear\)"):
        build_method("ottt_a").train_step(_Bilinear(), x, y, loss)
    plif = SpikingMLP((4,), 3, hidden=(5,), neuron="plif")
    with pytest.raises(ValueError, match="pass decay"):
        build_method("ottt_a").train_step(plif, x, y, loss)
    build_method("ottt_a", decay=0.5).train_step(plif, x, y, loss)  # explicit λ works
    mixed = nn.Sequential(nn.Linear(4, 5), make_neuron("lif", tau=2.0), nn.Linear(5, 5),
                          make_neuron("lif", tau=4.0), nn.Linear(5, 3))
    with pytest.raises(ValueError, match="different decays"):
        build_method("ottt_a").train_step(mixed, x, y, loss)
    no_synapse = nn.Sequential(nn.Linear(4, 3), make_neuron("if"))
    with pytest.raises(ValueError, match="no synaptic layer"):
        build_method("ottt_a").train_step(no_synapse, x, y, loss)
    # the failed attach left the network untouched
    assert not any(getattr(m, "cut_temporal_grad", False) for m in no_synapse.modules())


def test_method_errors():
    model = _mlp()
    x, y = _data(model.input_shape, T=2)
    with pytest.raises(ValueError, match="per-step loss"):
        build_method("sltt").train_step(model, x, y, build_loss("sdt"))
    build_method("bptt").train_step(model, x, y, build_loss("sdt"))  # BPTT takes SDT
    with pytest.raises(ValueError, match="valid choices: 'bptt', 'sltt', 'sltt_k', 'ottt_a', 'ottt_o'"):
        build_method("stbp")
    with pytest.raises(ValueError, match=r"per-step outputs \[T, B, num_classes\]"):
        build_method("bptt").train_step(nn.Sequential(nn.Flatten(0, 1), nn.Linear(4, 3)), x.float(), y,
                                        build_loss("tet"))
    with pytest.raises(ValueError, match="time-major"):
        build_method("sltt").train_step(model, x, y[:2], build_loss("tet"))
    with pytest.raises(ValueError, match="time-major"):
        model(x[0])


def test_time_major():
    static = torch.rand(3, 1, 4, 4)
    tm = time_major(static, 5, "static")
    assert tm.shape == (5, 3, 1, 4, 4) and torch.equal(tm[4], static)
    events = torch.rand(3, 7, 2, 4, 4)
    assert torch.equal(time_major(events, 5, "events")[6], events[:, 6])
    with pytest.raises(ValueError, match="valid choices"):
        time_major(static, 5, "video")


class _IntegratorNet(nn.Module):
    """Linear -> LIF -> Linear -> leaky non-spiking integrator (decay 0.5): an output with memory."""

    def __init__(self, dtype):
        super().__init__()
        torch.manual_seed(0)
        self.input_shape = (4,)
        self.fc1, self.lif, self.fc2 = nn.Linear(4, 6), make_neuron(), nn.Linear(6, 3)
        self.out = NonSpikingIntegrator(decay=0.5, step_mode="m")
        self.to(dtype)
        with torch.no_grad():
            self.fc1.bias.add_(0.8)  # make the hidden layer fire

    def forward(self, x):
        return self.out(self.fc2(self.lif(self.fc1(x))))


def _cut_unrolled_by_hand(model, x, y, loss):
    """Reference: the network unrolled by hand, one step at a time, every state detached between
    steps (the LIF by its own single-step cut, the integrator by hand: V = 0.5·V.detach() + z)."""
    model.zero_grad(set_to_none=True)
    reset_model(model)
    model.lif.step_mode, model.lif.cut_temporal_grad = "s", True
    T, v, total = x.shape[0], None, 0.0
    for t in range(T):
        z = model.fc2(model.lif(model.fc1(x[t])))
        v = z if v is None else 0.5 * v.detach() + z
        total = total + loss.step_loss(v, y, t, T)
    total.backward()
    model.lif.step_mode, model.lif.cut_temporal_grad = "m", False
    reset_model(model)
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("dtype", DTYPES)
def test_temporal_cut_reaches_a_leaky_output_integrator(dtype):
    """SLTT/OTTT cut every state, the output integrator's too: no gradient through V[t-1]."""
    model = _IntegratorNet(dtype)
    x, y = _data((4,), T=4, B=5, dtype=dtype)
    loss = build_loss("tet")
    ref = _cut_unrolled_by_hand(model, x, y, loss)

    assert set_temporal_cut(model, True) == 2  # the LIF and the integrator
    assert model.out.cut_temporal_grad
    z = model.fc2(model.lif(model.fc1(x)))
    z.retain_grad()
    v = model.out(z)
    v[-1].sum().backward()
    assert torch.count_nonzero(z.grad[:-1]) == 0  # V[T-1] does not reach back to z[t < T-1]
    set_temporal_cut(model, False)
    assert not model.out.cut_temporal_grad and not model.lif.cut_temporal_grad

    _assert_same(compute_gradients("sltt", model, x, y, loss), ref)
    got = compute_gradients("ottt_a", model, x, y, loss)
    build_method("bptt").attach(model)  # plain network again: the cut is cleared
    assert not model.out.cut_temporal_grad
    # OTTT_A differs from SLTT only in the trace of the LIF's spikes (fc2's weight); fc1 sees raw input
    _assert_same({"fc1.weight": got["fc1.weight"]}, {"fc1.weight": ref["fc1.weight"]})
    bptt = compute_gradients("bptt", model, x, y, loss)
    assert not torch.allclose(bptt["fc2.weight"], ref["fc2.weight"])  # the integrator's memory matters


def test_clearing_the_cut_leaves_an_exact_cut_in_place():
    """An integrator with decay 0 has no temporal path: its cut (set by OTTT's VGG) stays on."""
    model = build_model("ottt_vgg", num_classes=3, input_shape=(1, 8, 8), T=2, config=(4, "A", 4))
    assert model.readout.cut_temporal_grad
    set_temporal_cut(model, True)
    set_temporal_cut(model, False)
    assert model.readout.cut_temporal_grad
