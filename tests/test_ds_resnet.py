"""tdBN, spatial attention (eq. 18) and DS-ResNet: values against formulas, structure, paper sizes, errors."""

from __future__ import annotations

import pytest
import torch

from snnlab.layers import SpatialAttention, TDBatchNorm, spatial_attention_map
from snnlab.models import MODELS, build_model
from snnlab.models.ds_resnet import DSBlock, ds_resnet20, ds_resnet_small
from snnlab.neurons import MLFNode, reset_states
from snnlab.training import build_loss, build_method


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- tdBN
def test_tdbn_matches_formula_statistics_over_time_batch_space():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 6, 6, generator=g, dtype=torch.float64) * 2 + 1
    bn = TDBatchNorm(5, v_threshold=0.6, alpha=0.5).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5, generator=g)
        bn.bias.uniform_(-0.5, 0.5, generator=g)
    y = bn(x)
    dims = (0, 1, 3, 4)  # time, batch, height, width
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    w, b = bn.weight.view(1, 1, -1, 1, 1), bn.bias.view(1, 1, -1, 1, 1)
    expected = 0.5 * 0.6 * (x - mean) / torch.sqrt(var + bn.eps) * w + b
    torch.testing.assert_close(y, expected)
    # running statistics as in BN (unbiased variance), over all T·B·H·W values
    n = x.numel() / 5
    torch.testing.assert_close(bn.running_mean, 0.1 * mean.flatten())
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * var.flatten() * n / (n - 1))


def test_tdbn_output_std_is_alpha_vth_and_eval_uses_running_stats():
    x = torch.randn(4, 8, 3, 5, 5) * 3 + 2
    bn = TDBatchNorm(3, v_threshold=2.0, alpha=0.5)
    y = bn(x)
    torch.testing.assert_close(y.std(dim=(0, 1, 3, 4), unbiased=False), torch.full((3,), 1.0), atol=1e-3, rtol=0)
    bn.eval()
    z = bn(x)
    expected = 1.0 * (x - bn.running_mean.view(1, 1, -1, 1, 1)) / torch.sqrt(bn.running_var.view(1, 1, -1, 1, 1) + bn.eps)
    torch.testing.assert_close(z, expected)
    # linear-layer features [T, B, C]
    assert TDBatchNorm(7)(torch.randn(2, 3, 7)).shape == (2, 3, 7)


def test_tdbn_gradcheck():
    bn = TDBatchNorm(2, v_threshold=0.6).double()
    x = torch.randn(2, 2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: bn(t), (x,))


def test_tdbn_errors():
    with pytest.raises(ValueError, match="channels"):
        TDBatchNorm(3)(torch.randn(2, 2, 4, 3, 3))
    with pytest.raises(ValueError, match="at least 3"):
        TDBatchNorm(3)(torch.randn(2, 3))
    with pytest.raises(ValueError):
        TDBatchNorm(3, v_threshold=0.0)
    with pytest.raises(ValueError):
        TDBatchNorm(3, alpha=-1.0)


# ---------------------------------------------------------------- spatial attention (eq. 18)
def test_spatial_attention_map_matches_eq18():
    sam = SpatialAttention(7)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        sam.conv.weight.zero_()
        sam.conv.weight[0, 0, 3, 3] = 0.7   # centre tap on the channel mean
        sam.conv.weight[0, 1, 3, 3] = -1.3  # centre tap on the channel max
    x = torch.randn(2, 4, 5, 5, generator=g)
    expected = torch.sigmoid(0.7 * x.mean(1, keepdim=True) - 1.3 * x.amax(1, keepdim=True))
    torch.testing.assert_close(sam.attention_map(x), expected)
    torch.testing.assert_close(sam(x), x * expected)
    # a general kernel against an explicit convolution of the two pooled maps
    sam2 = SpatialAttention(7)
    pooled = torch.cat([x.mean(1, keepdim=True), x.max(1, keepdim=True).values], 1)
    ref = torch.sigmoid(torch.nn.functional.conv2d(pooled, sam2.conv.weight, padding=3))
    torch.testing.assert_close(spatial_attention_map(x, sam2.conv), ref)


def test_spatial_attention_multistep_is_per_step_and_in_unit_interval():
    sam = SpatialAttention(3)
    x = torch.rand(3, 2, 4, 6, 6)
    m = sam.attention_map(x)
    assert m.shape == (3, 2, 1, 6, 6) and float(m.min()) > 0 and float(m.max()) < 1
    for t in range(3):
        torch.testing.assert_close(m[t], sam.attention_map(x[t]))
    torch.testing.assert_close(sam(x), x * m)


def test_spatial_attention_errors():
    for k in (0, 4, 2.0, True):
        with pytest.raises(ValueError, match="odd"):
            SpatialAttention(k)
    with pytest.raises(ValueError):
        SpatialAttention()(torch.randn(3, 4, 5))
    with pytest.raises(ValueError):
        SpatialAttention()(torch.randn(1, 2, 3, 4, 5, 6))


# ---------------------------------------------------------------- DS-ResNet
def test_ds_resnet20_has_the_papers_parameter_count():
    """Qu et al. Table 3 lists 4.32 M parameters for MLF + DS-ResNet on CIFAR-10 (4.33 M with their
    changes). Count: stem conv + 9 basic blocks (two 3x3 convs) + two 1x1 shortcuts + tdBN
    scale/shift per conv + classifier."""
    with torch.device("meta"):
        m = ds_resnet20(num_classes=10, input_shape=(3, 32, 32))
        m_sam = ds_resnet20(num_classes=10, input_shape=(3, 32, 32), attention=True)
        m_ends = ds_resnet20(num_classes=10, input_shape=(3, 32, 32), attention="ends")
    convs = 3 * 64 * 9 + 2 * 3 * 64 * 64 * 9  # stem + stage 1
    convs += 64 * 128 * 9 + 5 * 128 * 128 * 9 + 128 * 256 * 9 + 5 * 256 * 256 * 9
    convs += 64 * 128 + 128 * 256  # 1x1 shortcuts
    bn = 2 * (64 + 6 * 64 + 7 * 128 + 7 * 256)
    expected = convs + bn + 256 * 10 + 10
    assert n_params(m) == expected
    assert abs(n_params(m) / 1e6 - 4.32) < 0.01
    assert n_params(m_sam) == expected + 9 * 2 * 49  # one SAM per block: a 7x7 conv, 2 -> 1 channels, no bias
    assert n_params(m_ends) == expected + 2 * 2 * 49  # after the stem and after the last stage


def test_ds_block_mlf_before_addition_gives_integer_sums():
    torch.manual_seed(0)
    block = DSBlock(4, 4)
    s = torch.randint(0, 4, (3, 2, 4, 5, 5)).float()
    out = block(s)
    reset_states(block)
    branch = block.sn2(block.conv2(block.sn1(block.conv1(s))))
    torch.testing.assert_close(out, branch + s)
    assert torch.equal(branch, branch.round()) and float(branch.max()) <= 3 and float(branch.min()) >= 0
    down = DSBlock(4, 8, stride=2)
    assert isinstance(down.shortcut[1], MLFNode)
    y = down(s)
    assert y.shape == (3, 2, 8, 3, 3) and torch.equal(y, y.round()) and float(y.max()) <= 6


def test_ds_resnet_shapes_registry_and_single_level_lif():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 1, 8, 8) * 3
    for name in ("ds_resnet", "ds_resnet_small", "ds_resnet20"):
        assert name in MODELS
    m = build_model("ds_resnet_small", num_classes=10, input_shape=(1, 8, 8), T=4)
    assert m(x).shape == (4, 3, 10)
    ev = build_model("ds_resnet_small", num_classes=10, input_shape=(4, 2, 9, 9), T=4, attention=True)
    assert sum(isinstance(mod, SpatialAttention) for mod in ev.modules()) == 2
    assert ev(torch.rand(4, 3, 2, 9, 9)).shape == (4, 3, 10)
    lif = ds_resnet_small(num_classes=10, input_shape=(1, 8, 8), thresholds=(0.6,))
    units = [mod for mod in lif.modules() if isinstance(mod, MLFNode)]
    assert units and all(u.thresholds == (0.6,) for u in units)
    reset_states(lif)
    out = lif.stem_sn(lif.stem(x))
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_ds_resnet_is_causal_in_eval_mode():
    """The online methods run one step at a time: in eval mode (fixed statistics) that must give
    the multi-step outputs."""
    torch.manual_seed(0)
    m = ds_resnet_small(num_classes=5, input_shape=(1, 8, 8), attention=True).eval()
    x = torch.rand(5, 2, 1, 8, 8) * 3
    with torch.no_grad():
        full = m(x)
        reset_states(m)
        steps = torch.cat([m(x[t : t + 1]) for t in range(5)])
    torch.testing.assert_close(steps, full)


@pytest.mark.parametrize("method,loss", [("bptt", "sdt"), ("sltt", "tet")])
def test_ds_resnet_trains_with_bptt_and_sltt(method, loss):
    torch.manual_seed(0)
    m = ds_resnet_small(num_classes=4, input_shape=(1, 8, 8), attention=True)
    x = torch.rand(3, 8, 1, 8, 8) * 3
    y = torch.randint(0, 4, (8,))
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    before = m.classifier.weight.detach().clone()
    result = build_method(method).train_step(m, x, y, build_loss(loss), opt)
    assert result.outputs.shape == (3, 8, 4)
    assert not torch.equal(before, m.classifier.weight)
    assert m.stem.conv.weight.grad is not None and float(m.stem.conv.weight.grad.abs().sum()) > 0


def test_ds_resnet_errors():
    with pytest.raises(ValueError, match="per-step input shape"):
        ds_resnet_small(num_classes=10, input_shape=(8, 8))
    with pytest.raises(ValueError, match="equally long"):
        ds_resnet_small(num_classes=10, input_shape=(1, 8, 8), widths=(8,), blocks=(1, 1))
    m = ds_resnet_small(num_classes=10, input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="expects"):
        m(torch.rand(2, 2, 1, 9, 9))
    with pytest.raises(ValueError, match="5 dimensions"):
        m(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError):
        ds_resnet_small(num_classes=10, input_shape=(1, 8, 8), surrogate_width=0.0)


# ---------------------------------------------------------------- spatial attention passes gradient
def test_spatial_attention_input_gradient_matches_finite_differences():
    """SAM is smooth in its input (away from ties of the channel max): its input gradient,
    which is what reaches the layers beneath it, agrees with central finite differences."""
    torch.manual_seed(0)
    sam = SpatialAttention(3).double()
    x = torch.rand(2, 3, 4, 5, 5, dtype=torch.float64, requires_grad=True)  # [T, B, C, H, W], no ties
    assert torch.autograd.gradcheck(sam, (x,), eps=1e-6, atol=1e-5)


def _saturate(sam: SpatialAttention) -> None:
    """Every map near 0: a strongly negative weight on the channel mean (inputs are >= 0)."""
    with torch.no_grad():
        sam.conv.weight.zero_()
        sam.conv.weight[0, 0] = -50.0


@pytest.mark.parametrize("placement", ["blocks", "ends"])
def test_attention_as_in_chapter4_passes_gradient_to_the_stem(placement):
    """Chapter 4's placement (``attention=True``: SAM on each block's branch, before the shortcut
    addition) keeps a path to the layers beneath it even when every attention map has collapsed to
    0; the stem's gradient then equals the one computed through the shortcuts alone. With a SAM in
    front of the classifier (``"ends"``) a collapsed map cuts every path: the stem gets no gradient."""
    torch.manual_seed(0)
    kw = dict(num_classes=4, input_shape=(1, 8, 8), attention=True if placement == "blocks" else "ends")
    m = ds_resnet_small(**kw)
    sams = [mod for mod in m.modules() if isinstance(mod, SpatialAttention)]
    assert len(sams) == 2
    for sam in sams:
        _saturate(sam)
    x = torch.rand(3, 6, 1, 8, 8) * 3
    y = torch.randint(0, 4, (6,))
    torch.nn.functional.cross_entropy(m(x).mean(0), y).backward()
    g = m.stem.conv.weight.grad
    if placement == "ends":
        assert float(g.abs().max()) < 1e-12
        return
    assert float(g.abs().sum()) > 1e-3
    # the same network with the (saturated) branches cut out by hand: O = shortcut(S)
    ref = ds_resnet_small(**kw)
    ref.load_state_dict(m.state_dict())
    for block in ref.layers:
        block.forward = (lambda b: (lambda s: 0 * b.sn2(b.conv2(b.sn1(b.conv1(s))))
                                    + (s if b.shortcut is None else b.shortcut(s))))(block)
    reset_states(ref)
    torch.nn.functional.cross_entropy(ref(x).mean(0), y).backward()
    torch.testing.assert_close(g, ref.stem.conv.weight.grad, atol=1e-6, rtol=1e-3)


def test_attention_placement_errors():
    with pytest.raises(ValueError, match="attention must be"):
        ds_resnet_small(num_classes=4, input_shape=(1, 8, 8), attention="middle")
    with pytest.raises(ValueError, match="neuron must be"):
        ds_resnet_small(num_classes=4, input_shape=(1, 8, 8), neuron="tanh")


def test_relu_ds_resnet_is_the_ann_of_the_same_shape():
    """``neuron="relu"``: the same parameters as the spiking network, no stateful unit, and each step
    computed on its own (a step's output does not depend on the other steps)."""
    torch.manual_seed(0)
    snn = ds_resnet_small(num_classes=10, input_shape=(2, 9, 9), attention=True)
    ann = ds_resnet_small(num_classes=10, input_shape=(2, 9, 9), attention=True, neuron="relu")
    assert [p.shape for p in snn.parameters()] == [p.shape for p in ann.parameters()]
    assert not any(isinstance(mod, MLFNode) for mod in ann.modules())
    ann.eval()
    x = torch.rand(3, 2, 2, 9, 9)
    with torch.no_grad():
        full = ann(x)
        alone = torch.cat([ann(x[t : t + 1]) for t in range(3)])
    torch.testing.assert_close(full, alone)
