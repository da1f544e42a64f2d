"""BatchNormNeuron (fused batch norm + IF/LIF) against the unfused composition run by torch alone.

The reference is ``nn.BatchNorm2d`` on the time-folded input followed by the neuron's pure-torch
path (``backend="torch"``): no snnlab kernel is involved, so a wrong kernel cannot agree with it.
Comparisons run in float64 (the fused kernels take float64 with ``backend="numba"``), where both
compute the same potentials to ~1e-15 and no spike can flip: spikes must be equal, potentials,
gradients and running statistics equal to rounding. Both memory layouts are checked, and the
channels_last output must come back in channels_last.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from snnlab.layers import BatchNormNeuron
from snnlab.neurons import IFNode, LIFNode, PLIFNode
from snnlab.neurons import bn_kernels as BK
from snnlab.surrogate import ArcTan, Rectangular, Sigmoid

SHAPE = (4, 3, 6, 5, 7)          # [T, B, C, H, W]: C*H*W = 210 < one kernel chunk (super-patterns, partial)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(0, 1).contiguous(memory_format=torch.channels_last).reshape(x.shape)


def _input(seed: int, shape=SHAPE, layout: str = "nchw") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 1.7 + 0.4
    return _channels_last(x) if layout == "cl" else x


def _bn(channels: int, seed: int = 0, **kw) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, **kw).double()
    if bn.affine:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            bn.weight.copy_(torch.rand(channels, generator=g, dtype=torch.float64) + 0.5)
            bn.bias.copy_(torch.rand(channels, generator=g, dtype=torch.float64) * 0.6 - 0.3)
    return bn


def _pair(bn: nn.BatchNorm2d, make_neuron):
    fused = BatchNormNeuron(copy.deepcopy(bn), make_neuron(backend="numba"), fuse_from=0)
    ref_bn, ref_neuron = copy.deepcopy(bn), make_neuron(backend="torch")
    return fused, ref_bn, ref_neuron


def _reference(bn: nn.BatchNorm2d, neuron, x: torch.Tensor) -> torch.Tensor:
    y = bn(x.flatten(0, 1))
    return neuron(y.reshape(x.shape))


def _check_step(fused, ref_bn, ref_neuron, x: torch.Tensor, scale: float = 1.0) -> None:
    """One forward and backward (loss ``scale · Σ spikes``) of the fused layer on ``x`` (its layout
    kept) and of the reference on a contiguous copy: equal spikes, input gradients to rounding."""
    xa = x.clone(memory_format=torch.preserve_format).requires_grad_()
    xb = x.detach().contiguous().requires_grad_()
    a, b = fused(xa), _reference(ref_bn, ref_neuron, xb)
    assert torch.equal(a, b)
    (a * scale).sum().backward()
    (b * scale).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-12)


NEURONS = {
    "lif-ottt-hard-detached": lambda **b: LIFNode(tau=2.0, decay_input=False, detach_reset=True, surrogate=ArcTan(2.0),
                                                  step_mode="m", **b),
    "lif-sew-hard-attached": lambda **b: LIFNode(tau=1.5, decay_input=True, v_reset=-0.2, surrogate=Sigmoid(4.0),
                                                 step_mode="m", **b),
    "lif-soft": lambda **b: LIFNode(tau=2.0, v_reset=None, v_threshold=0.8, step_mode="m", **b),
    "if-rect": lambda **b: IFNode(surrogate=Rectangular(1.0), step_mode="m", **b),
}


@pytest.mark.parametrize("layout", ["nchw", "cl"])
@pytest.mark.parametrize("name", list(NEURONS))
def test_training_step_equals_unfused_composition(name, layout):
    x = _input(1, layout=layout)
    fused, ref_bn, ref_neuron = _pair(_bn(SHAPE[2]), NEURONS[name])
    xa = x.clone(memory_format=torch.preserve_format).requires_grad_()
    xb = x.clone().requires_grad_()
    out_a, out_b = fused(xa), _reference(ref_bn, ref_neuron, xb)
    assert out_a.stride() == x.stride()                      # the layout is kept (channels_last stays)
    assert torch.equal(out_a, out_b)
    torch.testing.assert_close(fused.neuron.v, ref_neuron.v, rtol=0, atol=1e-12)
    w = torch.randn(out_a.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    (out_a * w).sum().backward()
    (out_b * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fused.bn.weight.grad, ref_bn.weight.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fused.bn.bias.grad, ref_bn.bias.grad, rtol=1e-10, atol=1e-12)
    for name_ in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(fused.bn, name_), getattr(ref_bn, name_), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw", [dict(affine=False), dict(momentum=None), dict(track_running_stats=False),
                                dict(eps=1e-2, momentum=0.3)])
def test_batch_norm_options_follow_batch_norm(kw):
    """Without affine parameters, with a cumulative average (momentum None), without running
    statistics, with another eps: two training steps, then eval, all as batch norm does."""
    make = NEURONS["lif-ottt-hard-detached"]
    fused, ref_bn, ref_neuron = _pair(_bn(SHAPE[2], **kw), make)
    for seed in (3, 4):
        fused.reset()
        ref_neuron.reset()
        _check_step(fused, ref_bn, ref_neuron, _input(seed, layout="cl"))
    fused.eval()
    ref_bn.eval()
    fused.reset()
    ref_neuron.reset()
    x = _input(5)
    assert torch.equal(fused(x), _reference(ref_bn, ref_neuron, x))
    if ref_bn.running_mean is not None:
        torch.testing.assert_close(fused.bn.running_var, ref_bn.running_var, rtol=1e-12, atol=1e-14)
        assert int(fused.bn.num_batches_tracked) == int(ref_bn.num_batches_tracked) == 2


def test_eval_mode_gradients_use_the_running_statistics():
    make = NEURONS["lif-sew-hard-attached"]
    bn = _bn(SHAPE[2])
    with torch.no_grad():
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.5, 2.0)
    fused, ref_bn, ref_neuron = _pair(bn, make)
    fused.eval()
    ref_bn.eval()
    xa = _input(6).requires_grad_()
    xb = xa.detach().clone().requires_grad_()
    a, b = fused(xa), _reference(ref_bn, ref_neuron, xb)
    assert torch.equal(a, b)
    (a * 1.5).sum().backward()
    (b * 1.5).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fused.bn.weight.grad, ref_bn.weight.grad, rtol=1e-10, atol=1e-12)


def test_state_carries_into_the_next_call_and_temporal_cut():
    """A second call starts from the stored potentials (as the neuron alone does); with the temporal
    cut (SLTT/OTTT) only the current step's gradient flows."""
    make = NEURONS["lif-ottt-hard-detached"]
    fused, ref_bn, ref_neuron = _pair(_bn(SHAPE[2]), make)
    fused.neuron.cut_temporal_grad = ref_neuron.cut_temporal_grad = True
    with torch.no_grad():
        fused(_input(7, layout="cl"))
        _reference(ref_bn, ref_neuron, _input(7))
    _check_step(fused, ref_bn, ref_neuron, _input(8, layout="cl"))


def test_small_inputs_run_the_plain_pair(monkeypatch):
    """Below ``fuse_from`` elements the kernels are not called (their fixed cost would dominate)."""
    calls = []
    real = BK.bn_spiking_forward
    monkeypatch.setattr(BK, "bn_spiking_forward", lambda *a: calls.append(1) or real(*a))
    x = torch.rand(2, 2, 3, 4, 4)                                 # 192 elements
    BatchNormNeuron(nn.BatchNorm2d(3), LIFNode(step_mode="m"), fuse_from=193)(x)
    assert calls == []
    BatchNormNeuron(nn.BatchNorm2d(3), LIFNode(step_mode="m"), fuse_from=192)(x)
    assert calls == [1]


def test_large_maps_and_many_work_items():
    """Patterns larger than a kernel chunk (cut into position ranges) and more items than groups."""
    shape = (3, 2, 4, 40, 40)                                 # C*H*W = 6400 > CHUNK, NCHW
    assert shape[2] * shape[3] * shape[4] > BK.CHUNK
    make = NEURONS["lif-sew-hard-attached"]
    fused, ref_bn, ref_neuron = _pair(_bn(shape[2]), make)
    _check_step(fused, ref_bn, ref_neuron, _input(9, shape))


@pytest.mark.parametrize("outer,pattern,groups", [(32, 32768, 8), (1, 5000, 8), (2048, 1024, 8), (3, 210, 4),
                                                  (7, 100000, 2)])
def test_plan_covers_every_neuron_once(outer, pattern, groups):
    seen = np.zeros((outer, pattern), dtype=np.int64)
    for o0, o1, p0, p1 in BK.plan(outer, pattern, groups):
        seen[o0:o1, p0:p1] += 1
    assert (seen == 1).all()


def test_float32_channels_last_statistics_are_accurate():
    """In float32 the fused statistics (float64 sums) match a float64 computation to float32
    rounding on 262,144 values per channel in channels_last, where they decide which neurons spike."""
    g = torch.Generator().manual_seed(10)
    x = _channels_last(torch.randn(8, 32, 4, 32, 32, generator=g) * 0.7 + 2.0)
    layer = BatchNormNeuron(nn.BatchNorm2d(4, momentum=1.0), NEURONS["lif-ottt-hard-detached"](), fuse_from=0)
    layer(x)
    xd = x.double()
    mean = xd.mean((0, 1, 3, 4))
    var = xd.var((0, 1, 3, 4), unbiased=True)
    torch.testing.assert_close(layer.bn.running_mean.double(), mean, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(layer.bn.running_var.double(), var, rtol=1e-6, atol=1e-7)


def test_unfused_fallbacks_compute_the_same():
    """PLIF (learned τ) and the torch backend run the unfused pair: same result as composing them."""
    x = _input(11).float()
    bn = nn.BatchNorm2d(SHAPE[2])
    for neuron in (PLIFNode(step_mode="m"), LIFNode(step_mode="m", backend="torch")):
        layer = BatchNormNeuron(copy.deepcopy(bn), copy.deepcopy(neuron), fuse_from=0)
        ref_bn, ref_neuron = copy.deepcopy(bn), copy.deepcopy(neuron)
        assert torch.equal(layer(x), _reference(ref_bn, ref_neuron, x))


def test_bad_input_and_construction_raise_clear_errors():
    with pytest.raises(TypeError, match="BatchNorm2d"):
        BatchNormNeuron(nn.BatchNorm1d(3), LIFNode(step_mode="m"))
    with pytest.raises(ValueError, match="multi-step"):
        BatchNormNeuron(nn.BatchNorm2d(3), LIFNode(step_mode="s"))
    with pytest.raises(ValueError, match="fuse_from"):
        BatchNormNeuron(nn.BatchNorm2d(3), LIFNode(step_mode="m"), fuse_from=-1)
    layer = BatchNormNeuron(nn.BatchNorm2d(6), LIFNode(step_mode="m"), fuse_from=0)
    with pytest.raises(ValueError, match=r"\[T, B, C, H, W\]"):
        layer(torch.rand(3, 6, 5, 5))
    with pytest.raises(ValueError, match="has 4 channels"):
        layer(torch.rand(2, 3, 4, 5, 5))
    x = torch.rand(2, 3, 6, 5, 5)
    x[1, 0, 2, 3, 3] = float("nan")
    before = layer.bn.running_mean.clone()
    with pytest.raises(ValueError, match="non-finite"):
        layer(x)
    assert layer.neuron.v is None and torch.equal(layer.bn.running_mean, before)


def test_fold_batchnorm_folds_a_batch_norm_neuron_into_the_convolution():
    """For inference: BN folded into the preceding TimeFolded(conv) (SC-TTFS eq. 24), the layer
    replaced by its neuron; the folded network computes the same spikes and readout in eval mode."""
    from snnlab.conversion import fold_batchnorm, has_batchnorm
    from snnlab.models import TimeFolded

    torch.manual_seed(0)
    make = NEURONS["lif-ottt-hard-detached"]
    net = nn.Sequential(TimeFolded(nn.Conv2d(2, 6, 3, padding=1, bias=False)),
                        BatchNormNeuron(_bn(6), make(backend="numba"), fuse_from=0),
                        TimeFolded(nn.MaxPool2d(2)), TimeFolded(nn.Conv2d(6, 4, 3, padding=1)),
                        BatchNormNeuron(_bn(4, seed=1), make(backend="numba"), fuse_from=0)).double()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.01, 0.05)          # small: the normalised input makes spikes
    net = net.to(memory_format=torch.channels_last).eval()
    folded = fold_batchnorm(net)
    assert not has_batchnorm(folded) and not any(isinstance(m, BatchNormNeuron) for m in folded.modules())
    assert isinstance(folded[1], LIFNode) and folded[0].layers.bias is not None
    x = torch.rand(3, 2, 2, 8, 8, dtype=torch.float64) * 3
    for model in (net, folded):
        for m in model.modules():
            if hasattr(m, "reset"):
                m.reset()
    a, b = net(x), folded(x)
    assert torch.equal(a, b) and 0 < a.mean() < 1
    assert 0 < net[1].neuron.v.abs().sum()
    torch.testing.assert_close(net[1].neuron.v, folded[1].v, rtol=1e-10, atol=1e-12)


def test_compiles_without_graph_break_and_equals_eager():
    """Under torch.compile(fullgraph=True) the layer traces the unfused pair (Inductor fuses it
    itself): same spikes as the eager fused kernels, channels_last kept."""
    torch.manual_seed(0)
    def make():
        return BatchNormNeuron(nn.BatchNorm2d(4), LIFNode(step_mode="m", detach_reset=True), fuse_from=0)

    eager, compiled = make(), make()
    x = _channels_last(torch.randn(3, 2, 4, 6, 6) * 2)
    out = torch.compile(compiled, fullgraph=True)(x)
    assert torch.equal(out, eager(x)) and out.stride() == x.stride()
