"""SEW ResNet, Spiking ResNet, plain nets and 7B-Nets: structure, identity mappings, shapes, errors."""

from __future__ import annotations

import pytest
import torch
import torchvision

from snnlab.layers import BasicBlock, Bottleneck, constant_spike_bias, sew_connect, spiking_neuron
from snnlab.models import MODELS, build_model
from snnlab.models.seven_b_net import SevenBNet, seven_b_net, wide_seven_b_net
from snnlab.models.sew_resnet import RESNET_DEPTHS, SpikingResNetLayout
from snnlab.neurons import PLIFNode, reset_states

DEPTHS = sorted(RESNET_DEPTHS)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def spikes(*shape: int, p: float = 0.5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < p).float()


@pytest.mark.parametrize("depth", DEPTHS)
def test_parameter_counts_equal_torchvision(depth):
    """Spiking neurons (IF) add no weights, SEW's downsample SN none either: the SEW ResNet and Spiking
    ResNet of each depth have exactly torchvision's parameter count; the plain net lacks only the
    downsample shortcuts' conv1x1 + BN."""
    with torch.device("meta"):
        ref = getattr(torchvision.models, f"resnet{depth}")()
        sew = MODELS[f"sew_resnet{depth}"]()
        spk = MODELS[f"spiking_resnet{depth}"]()
        plain = MODELS[f"plain_resnet{depth}"]()
    shortcut = sum(n_params(m.downsample) for m in ref.modules() if getattr(m, "downsample", None) is not None)
    assert shortcut > 0
    assert n_params(sew) == n_params(ref)
    assert n_params(spk) == n_params(ref)
    assert n_params(plain) == n_params(ref) - shortcut
    # the downsample shortcut: conv-BN-SN in SEW, conv-BN in Spiking ResNet, none in the plain net
    ds = [b for b in sew.blocks if b.is_downsample]
    assert len(ds) == (4 if depth >= 50 else 3) == len(sew.downsample_indices)
    assert all(b.downsample.sn is not None for b in ds)
    assert all(b.downsample.sn is None for b in spk.blocks if b.is_downsample)
    assert all(b.downsample is None for b in plain.blocks)
    assert len(sew.blocks) == sum(RESNET_DEPTHS[depth][1])


def test_seven_b_net_parameter_counts_match_the_paper():
    """Table 5: 7B-Net 0.13M; Table 6: Wide-7B-Net 1.19M (at 128x128, 11 and 10 classes). The PLIF
    neurons add one learnable scalar each; counted here explicitly."""
    for build, paper in ((seven_b_net, 0.13), (wide_seven_b_net, 1.19)):
        net = build()
        plif = sum(1 for m in net.modules() if isinstance(m, PLIFNode))
        weights = sum(p.numel() for name, p in net.named_parameters() if not name.endswith(".w"))
        assert n_params(net) == weights + plif
        assert round(n_params(net) / 1e6, 2) == paper


def test_seven_b_net_stem_follows_the_authors_code_by_default():
    """The authors' code builds the stem as a 1x1 conv (up_kernel_size=1): 7B-Net has 130,426
    parameters, Wide-7B-Net 1,192,218 (counted by hand: the 3x3 stem's extra weights are
    (9 - 1) x 2 x 32 = 512 and (9 - 1) x 2 x 64 = 1,024)."""
    assert n_params(seven_b_net()) == 130_426
    assert n_params(wide_seven_b_net()) == 1_192_218
    assert n_params(seven_b_net(stem_kernel=3)) == 130_426 + 512
    assert n_params(wide_seven_b_net(stem_kernel=3)) == 1_192_218 + 1_024
    assert seven_b_net().stem[0].conv.kernel_size == (1, 1)


@pytest.mark.parametrize("block_cls", [BasicBlock, Bottleneck])
@pytest.mark.parametrize("cnf", ["ADD", "AND", "IAND"])
@pytest.mark.parametrize("train", [True, False])
def test_zero_init_sew_block_is_identity(block_cls, cnf, train):
    """SEW ResNet, section 3.3: with the last BN zeroed (AND: bias = V_th), O = g(A, S) = S."""
    c = 4 * block_cls.expansion
    block = block_cls(c, c // block_cls.expansion, 1, kind="sew", cnf=cnf).zero_init_()
    block.train(train)
    seen = []
    block.last_sn.register_forward_hook(lambda m, i, o: seen.append(o))
    s = spikes(3, 2, c, 5, 5)
    assert torch.equal(block(s), s)
    assert torch.equal(seen[0], torch.full_like(s, 1.0 if cnf == "AND" else 0.0))  # A ≡ 1 or A ≡ 0


@pytest.mark.parametrize("cnf", ["AND", "IAND"])
def test_zero_init_identity_holds_for_plif_neurons(cnf):
    """The SEW identity works for every neuron model (section 3.3), here PLIF (τ = 2)."""
    block = BasicBlock(4, 4, 1, kind="sew", cnf=cnf, neuron="plif").zero_init_()
    assert constant_spike_bias(block.last_sn) > 2.0  # X/τ >= V_th needs X >= 2
    s = spikes(4, 2, 4, 3, 3, seed=1)
    assert torch.equal(block(s), s)


def test_spiking_resnet_identity_needs_if_neurons():
    """Eq. (7): zero-init gives O = SN(S) = S for IF with 0 < V_th <= 1, not for LIF (H = S/τ < V_th)."""
    s = spikes(3, 2, 4, 3, 3)
    if_block = BasicBlock(4, 4, 1, kind="spiking").zero_init_()
    assert torch.equal(if_block(s), s)
    lif_block = BasicBlock(4, 4, 1, kind="spiking", neuron="lif").zero_init_()
    out = lif_block(s)
    assert out.sum() < s.sum()  # a single spike charges a LIF neuron only to 1/τ = 0.5 < V_th


def test_add_exceeds_one_and_and_iand_stay_binary():
    torch.manual_seed(0)
    s = spikes(4, 2, 8, 6, 6, p=0.6)
    outputs = {}
    for cnf in ("ADD", "AND", "IAND"):
        torch.manual_seed(0)
        outputs[cnf] = BasicBlock(8, 8, 1, kind="sew", cnf=cnf)(s)
    assert outputs["ADD"].max() == 2.0
    for cnf in ("AND", "IAND"):
        assert set(outputs[cnf].unique().tolist()) == {0.0, 1.0}
    # the same weights give A, so ADD - S = A and AND = A·S, IAND = S - A·S
    a = outputs["ADD"] - s
    assert torch.equal(outputs["AND"], a * s) and torch.equal(outputs["IAND"], s - a * s)


def test_sew_connect_table_1():
    a = torch.tensor([0.0, 0.0, 1.0, 1.0])
    s = torch.tensor([0.0, 1.0, 0.0, 1.0])
    assert sew_connect(a, s, "ADD").tolist() == [0, 1, 1, 2]
    assert sew_connect(a, s, "and").tolist() == [0, 0, 0, 1]
    assert sew_connect(a, s, "IAND").tolist() == [0, 1, 0, 0]  # (1 - A)·S: argument order matters
    with pytest.raises(ValueError, match="connect function"):
        sew_connect(a, s, "OR")
    with pytest.raises(ValueError, match="shapes differ"):
        sew_connect(a, s[:3], "ADD")


@pytest.mark.parametrize("name", ["sew_resnet18", "spiking_resnet34", "plain_resnet18", "sew_resnet50"])
@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 17, 23), (2, 32, 32)])
def test_shapes_any_resolution(name, shape):
    torch.manual_seed(0)
    net = build_model(name, num_classes=7, input_shape=shape, T=2, width=2)
    out = net(torch.rand(2, 3, *shape))
    assert out.shape == (2, 3, 7)
    assert torch.isfinite(out).all()


def test_static_stem_runs_once_and_matches_per_step_stem():
    torch.manual_seed(0)
    net = SpikingResNetLayout(18, width=4, num_classes=5, input_shape=(1, 12, 12))
    x = torch.rand(1, 2, 1, 12, 12).expand(3, -1, -1, -1, -1).contiguous()
    calls = []
    handle = net.stem.conv.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    fast = net._stem(x)
    handle.remove()
    assert calls == [2]  # one conv over the B images, not T·B
    reset_states(net)
    slow = net.stem_sn(net.stem(x))
    slow = net.pool(slow.flatten(0, 1)).unflatten(0, x.shape[:2])
    torch.testing.assert_close(fast, slow)


def test_seven_b_net_variants_and_shapes():
    torch.manual_seed(0)
    for kind, cnf in (("sew", "ADD"), ("sew", "IAND"), ("spiking", "ADD"), ("plain", "ADD")):
        net = seven_b_net(num_classes=10, input_shape=(2, 16, 16), channels=(4,) * 5, kind=kind, cnf=cnf)
        assert net(torch.rand(5, 2, 2, 16, 16)).shape == (5, 2, 10)
    net = wide_seven_b_net(num_classes=10, input_shape=(2, 8, 8), channels=(4, 4, 8))
    assert net(torch.rand(2, 1, 2, 8, 8)).shape == (2, 1, 10)
    assert sum(isinstance(m, BasicBlock) for m in net.modules()) == 3


def test_bad_input_raises_clear_errors():
    net = build_model("sew_resnet18", num_classes=3, input_shape=(1, 8, 8), T=2, width=2)
    with pytest.raises(ValueError, match=r"\[T, B, 1, 8, 8\]"):
        net(torch.rand(2, 1, 3, 8, 8))
    with pytest.raises(ValueError):
        net(torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match="depth"):
        SpikingResNetLayout(20)
    with pytest.raises(ValueError, match="connect function"):
        build_model("sew_resnet18", num_classes=3, input_shape=(1, 8, 8), T=2, cnf="XOR")
    with pytest.raises(ValueError, match="block kind"):
        BasicBlock(4, 4, kind="dense")
    with pytest.raises(ValueError, match="stages"):
        SpikingResNetLayout(18, stages=(1, 2, 3))
    with pytest.raises(ValueError, match="plain"):
        build_model("plain_resnet18", num_classes=3, input_shape=(1, 8, 8), T=2, zero_init=True)
    with pytest.raises(ValueError, match="residual block"):
        BasicBlock(4, 4)(torch.rand(2, 4, 3, 3))
    with pytest.raises(ValueError, match="alpha"):
        spiking_neuron(surrogate=__import__("snnlab").surrogate.ArcTan(), alpha=3.0)


def test_cli_registry_builds_every_family():
    for name in ("sew_resnet18", "spiking_resnet18", "plain_resnet18", "seven_b_net", "wide_seven_b_net"):
        net = build_model(name, num_classes=4, input_shape=(4, 2, 8, 8), T=4,
                          **({"width": 2} if "resnet" in name else {"channels": (2, 2)}))
        assert net(torch.rand(4, 1, 2, 8, 8)).shape == (4, 1, 4)


def test_table9_network_pools_after_every_second_block():
    """c32k3s1-BN-IF-{{SEW Block(c32)}*2-MPk2s2}*5-FC10 (SEW ResNet, Table 9): 10 blocks, 5 pools, IF neurons."""
    from snnlab.neurons import IFNode

    net = SevenBNet((32,) * 10, num_classes=10, input_shape=(3, 32, 32), neuron="if", pool_every=2, stem_kernel=3)
    pools = [m for m in net.features if type(m).__name__ == "_SeqMaxPool"]
    assert len(pools) == 5 and len(net.blocks) == 10
    assert net.fc.in_features == 32  # 32x32 halved five times -> 1x1
    assert all(isinstance(m, IFNode) for m in net.modules() if hasattr(m, "params"))
    with pytest.raises(ValueError, match="pool_every"):
        SevenBNet((4,), pool_every=0)
