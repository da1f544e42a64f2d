"""Seeds stacked into one network (snnlab.training.stacked) and ReLU twins (snnlab.models.twins):
each seed of a stack computes what its network computes alone, forward, backward and over
optimiser steps; training reports the steps and samples it ran; a twin is an ordinary ResNet."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from snnlab.layers import BasicBlock
from snnlab.models.seven_b_net import SevenBNet
from snnlab.models.sew_resnet import SpikingResNetLayout
from snnlab.models.twins import ReLU, relu_twin
from snnlab.neurons import BaseNode, PLIFNode
from snnlab.surrogate import Rectangular
from snnlab.models import build_model
from snnlab.training import build_loss, build_method
from snnlab.training.stacked import (
    PerSeed,
    SeedLinear,
    SeedsAsBatch,
    StackedSeeds,
    layer_firing_rates,
    random_temporal_deletion,
    stack_models,
    train_stacked,
)
from snnlab.training.state import reset_model
from snnlab.training.stacked import _SummedOverSeeds

SEEDS = (3, 7, 11)


def resnet():
    # stages (1, 1, 1, 1): three downsample blocks (conv1x1-BN shortcuts) in a small network
    return SpikingResNetLayout(18, kind="sew", num_classes=5, input_shape=(1, 8, 8), width=4, stem="small",
                               stages=(1, 1, 1, 1))


def seven_b():
    # PLIF neurons: one learnable tau per layer and per seed
    return SevenBNet((4, 6), num_classes=5, input_shape=(2, 8, 8), kind="sew", cnf="IAND")


def inputs(build, T=3, B=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (2, 8, 8) if build is seven_b else (1, 8, 8)
    x = torch.rand(T, len(SEEDS), B, *shape, generator=g)
    return (x < 0.3).float() if build is seven_b else x


@pytest.mark.parametrize("build", [resnet, seven_b])
def test_each_seed_of_a_stack_computes_its_own_network(build):
    """Outputs and every parameter's gradient of seed s equal those of the network built alone
    under torch.manual_seed(s), fed x[:, s] (an independent reference: separate modules)."""
    stack = StackedSeeds(build, SEEDS)
    x = inputs(build)
    y = torch.randint(0, 5, (len(SEEDS), x.shape[2]), generator=torch.Generator().manual_seed(1))
    out = stack(x)
    assert out.shape == (x.shape[0], len(SEEDS), x.shape[2], 5)
    loss = sum(nn.functional.cross_entropy(out[:, s].mean(0), y[s]) for s in range(len(SEEDS)))
    loss.backward()
    for s, seed in enumerate(SEEDS):
        torch.manual_seed(seed)
        alone = build()
        o = alone(x[:, s])
        nn.functional.cross_entropy(o.mean(0), y[s]).backward()
        torch.testing.assert_close(out[:, s].detach(), o.detach(), atol=1e-5, rtol=1e-5)
        single = dict(alone.named_parameters())
        stacked = stack.copy_of(s)  # the trained-weights extraction, checked here on the initial weights
        for name, p in stacked.named_parameters():
            torch.testing.assert_close(p, single[name].detach())
        # gradients: find each parameter's slice in the stack
        for name, module in alone.named_modules():
            target = stack.net.get_submodule(name) if name else stack.net
            if isinstance(target, PerSeed):
                torch.testing.assert_close(target.copies[s].w.grad, module.w.grad, atol=1e-5, rtol=1e-4)
            elif isinstance(target, SeedLinear):
                torch.testing.assert_close(target.weight.grad[s], module.weight.grad, atol=1e-5, rtol=1e-4)
            elif isinstance(module, (nn.Conv2d, nn.BatchNorm2d)):
                torch.testing.assert_close(target.weight.grad.chunk(len(SEEDS))[s], module.weight.grad,
                                           atol=1e-5, rtol=1e-4)


def test_sgd_steps_on_a_stack_are_independent_steps():
    """Two SGD-with-momentum steps on the stack leave every seed with the weights that two steps
    on its own network give (momentum and weight decay act element-wise)."""
    seeds = SEEDS[:2]
    stack = StackedSeeds(resnet, seeds)
    opt = torch.optim.SGD(stack.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    alones = []
    for seed in seeds:
        torch.manual_seed(seed)
        m = resnet()
        alones.append((m, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)))
    for step in range(2):
        x = inputs(resnet, seed=step)[:, :len(seeds)]
        y = torch.randint(0, 5, (len(seeds), x.shape[2]), generator=torch.Generator().manual_seed(step))
        reset_model(stack)
        out = stack(x)
        opt.zero_grad()
        sum(nn.functional.cross_entropy(out[:, s].mean(0), y[s]) for s in range(len(seeds))).backward()
        opt.step()
        for s, (m, o) in enumerate(alones):
            reset_model(m)
            o.zero_grad()
            nn.functional.cross_entropy(m(x[:, s]).mean(0), y[s]).backward()
            o.step()
    for s, (m, _) in enumerate(alones):
        got = stack.copy_of(s).state_dict()
        for name, value in m.state_dict().items():
            torch.testing.assert_close(got[name], value, atol=2e-5, rtol=1e-4)


def test_stack_rejects_what_it_cannot_stack():
    with pytest.raises(ValueError, match="architecture"):
        stack_models([resnet(), seven_b()])
    with pytest.raises(TypeError, match="BatchNorm1d"):
        stack_models([nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))] * 2)
    from snnlab.layers.scaled_ws import ScaledWSConv2d
    with pytest.raises(TypeError, match="ScaledWSConv2d"):  # its standardisation would be lost silently
        stack_models([nn.Sequential(ScaledWSConv2d(1, 2, 3))] * 2)
    with pytest.raises(ValueError, match="distinct"):
        StackedSeeds(resnet, [1, 1])
    stack = StackedSeeds(resnet, SEEDS)
    with pytest.raises(ValueError, match=r"S=3"):
        stack(torch.rand(2, 2, 4, 1, 8, 8))
    with pytest.raises(ValueError, match="last dimension"):
        SeedLinear([nn.Linear(3, 2)] * 2)(torch.rand(4, 5))


def test_random_temporal_deletion_keeps_frames_in_order():
    T, N, keep = 6, 500, 4
    x = torch.arange(T, dtype=torch.float32).view(T, 1, 1).expand(T, N, 3).contiguous()
    y = random_temporal_deletion(x, keep, generator=torch.Generator().manual_seed(0))
    assert y.shape == (keep, N, 3)
    frames = y[:, :, 0]
    assert torch.equal(y, frames.unsqueeze(-1).expand_as(y))  # a frame is kept whole
    assert bool((frames[1:] > frames[:-1]).all())  # strictly increasing: in order, no repeats
    # every frame is kept with probability keep / T (= 2/3): 500 samples, 3 binomial sd ~ 0.063
    kept = torch.stack([(frames == t).any(0).float().mean() for t in range(T)])
    assert bool(((kept - keep / T).abs() < 0.07).all())
    with pytest.raises(ValueError, match="keep"):
        random_temporal_deletion(x, 7)


def separable_digits(n=96, seed=0):
    """Two classes a linear layer separates: bright left half or bright right half (8x8)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.2
    x[y == 0, :, :, :4] += 1.0
    x[y == 1, :, :, 4:] += 1.0
    return x, y


def small_cnn():
    return SevenBNet((4,), num_classes=2, input_shape=(1, 8, 8), kind="sew", neuron="if")


def test_train_stacked_learns_and_counts_steps_and_samples():
    (xtr, ytr), (xte, yte) = separable_digits(96, 0), separable_digits(60, 1)
    run = train_stacked(small_cnn, [0, 1], (xtr, ytr, xte, yte), T=2, epochs=3, batch_size=40, lr=0.1)
    assert run.steps == 3 * math.ceil(96 / 40) == 9
    assert run.samples == 3 * 96  # per seed; the last batch of each epoch has 16
    assert run.train_loss.shape == (9, 2) and run.test_samples == 60
    assert min(run.test_accuracy) >= 0.9  # chance is 0.5
    assert run.cpu_seconds > 0


def test_a_seed_trains_the_same_alone_or_in_a_stack():
    """The data order and the initialisation depend on the seed only, so seed 1's losses are the
    same whether it trains alone or next to seed 0."""
    data = (*separable_digits(64, 0), *separable_digits(20, 1))
    both = train_stacked(small_cnn, [0, 1], data, T=2, epochs=1, batch_size=16, lr=0.05)
    alone = train_stacked(small_cnn, [1], data, T=2, epochs=1, batch_size=16, lr=0.05)
    torch.testing.assert_close(both.train_loss[:, 1], alone.train_loss[:, 0], atol=1e-4, rtol=1e-4)


def test_layer_firing_rates_per_seed():
    """A zero-initialised Spiking ResNet passes its stem's spikes unchanged, so every block's output
    rate equals the stem's, seed by seed; and the seeds' rates differ (different stems)."""
    build = lambda: SpikingResNetLayout(18, kind="spiking", num_classes=5, input_shape=(1, 8, 8), width=4,  # noqa: E731
                                        stem="small", stages=(2, 1, 1, 1), zero_init=True)
    stack = StackedSeeds(build, SEEDS)
    rates = layer_firing_rates(stack, inputs(resnet, T=4, B=16))
    assert "stem_sn" in rates and all(len(v) == len(SEEDS) for v in rates.values())
    stem = rates["stem_sn"]
    assert 0 < min(stem) and max(stem) < 1 and len(set(stem)) == len(SEEDS)
    assert rates["blocks.1.sns.1"] == pytest.approx(stem)  # blocks 0 and 1: identity region of stage 1


def test_relu_twin_is_he_et_als_resnet_block():
    """The twin of a Spiking ResNet block at T = 1 computes ReLU(BN(conv(ReLU(BN(conv(x))))) + x),
    written here with torch.nn.functional on the block's weights."""
    torch.manual_seed(0)
    block = BasicBlock(4, 4, kind="spiking").eval()
    for bn in (block.convs[0].bn, block.convs[1].bn):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    twin = relu_twin(block).eval()
    x = torch.randn(1, 3, 4, 5, 5)
    F = nn.functional

    def conv_bn(cb, z):
        return F.batch_norm(F.conv2d(z, cb.conv.weight, padding=1), cb.bn.running_mean, cb.bn.running_var,
                            cb.bn.weight, cb.bn.bias, False, 0.0, cb.bn.eps)

    expected = F.relu(conv_bn(block.convs[1], F.relu(conv_bn(block.convs[0], x[0]))) + x[0])
    torch.testing.assert_close(twin(x)[0], expected)
    assert not any(isinstance(m, BaseNode) for m in twin.modules())
    assert any(isinstance(m, BaseNode) for m in block.modules())  # the original is untouched


def test_relu_twin_of_a_seven_b_net_drops_only_plif_parameters():
    net = SevenBNet((4, 4), num_classes=3, input_shape=(2, 8, 8))
    twin = relu_twin(net)
    plif = sum(1 for m in net.modules() if isinstance(m, PLIFNode))
    assert plif > 0
    assert sum(p.numel() for p in twin.parameters()) == sum(p.numel() for p in net.parameters()) - plif
    assert sum(isinstance(m, ReLU) for m in twin.modules()) == plif
    with pytest.raises(ValueError, match="no spiking neuron"):
        relu_twin(nn.Linear(2, 2))


def test_a_diverging_seed_is_recorded_and_frozen():
    """At an absurd learning rate every seed's weights blow up: the run still finishes, records the
    step each seed diverged at, and the frozen (zero) networks output a constant guess."""
    data = (*separable_digits(64, 0), *separable_digits(20, 1))
    build = lambda: SevenBNet((4,), num_classes=2, input_shape=(1, 8, 8), kind="sew", neuron="if",  # noqa: E731
                              surrogate=Rectangular(width=1e30, height=1.0))
    run = train_stacked(build, [0, 1], data, T=2, epochs=2, batch_size=16, lr=1e12, schedule="none")
    assert all(d is not None and 0 <= d < run.steps for d in run.diverged)
    ytest = data[3]
    constant = {float((ytest == 0).float().mean()), float((ytest == 1).float().mean())}
    assert all(any(abs(a - c) < 1e-6 for c in constant) for a in run.test_accuracy)
    calm = train_stacked(small_cnn, [0], data, T=2, epochs=1, batch_size=16, lr=0.05)
    assert calm.diverged == [None]


def ds_resnet_sam():
    # tdBN, MLF units and a spatial attention module on each block's branch (chapter 4's network)
    return build_model("ds_resnet_small", num_classes=5, input_shape=(1, 8, 8), T=3, attention=True)


def test_ds_resnet_with_tdbn_and_attention_stacks_seed_by_seed():
    """tdBN becomes one tdBN over S·C channels and each seed's attention pools over its own
    channels only: every seed's output equals its network's alone (a shared pooling over all
    channels would mix the seeds and fail this)."""
    stack = StackedSeeds(ds_resnet_sam, SEEDS)
    x = inputs(resnet) * 2
    out = stack(x)
    assert sum(isinstance(m, PerSeed) for m in stack.net.modules()) == 2  # one per block
    for s, seed in enumerate(SEEDS):
        torch.manual_seed(seed)
        alone = ds_resnet_sam()
        torch.testing.assert_close(out[:, s], alone(x[:, s]), atol=1e-5, rtol=1e-5)
        got = stack.copy_of(s).state_dict()
        for name, value in alone.state_dict().items():
            torch.testing.assert_close(got[name], value)


@pytest.mark.parametrize("method,loss", [("sltt", "tet"), ("bptt", "tet")])
def test_any_method_on_a_stack_equals_each_seed_trained_alone(method, loss):
    """Two SGD steps of SLTT (one backward per step, temporal cut) or BPTT with TET's loss on the
    stack, seen as one batch of all seeds' samples, leave every seed with the weights and tdBN
    statistics that the same method gives its network alone on its own batches."""
    seeds = SEEDS[:2]
    stack = StackedSeeds(ds_resnet_sam, seeds)
    opt = torch.optim.SGD(stack.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    lf = build_loss(loss, lam=0.0)
    on_stack, summed = build_method(method), _SummedOverSeeds(lf, len(seeds))
    alones = []
    for seed in seeds:
        torch.manual_seed(seed)
        m = ds_resnet_sam()
        alones.append((m, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3), build_method(method)))
    for step in range(2):
        x = inputs(resnet, seed=step)[:, :len(seeds)] * 2
        y = torch.randint(0, 5, (len(seeds), x.shape[2]), generator=torch.Generator().manual_seed(step))
        on_stack.train_step(SeedsAsBatch(stack), x.flatten(1, 2), y.flatten(), summed, opt)
        for s, (m, o, meth) in enumerate(alones):
            meth.train_step(m, x[:, s], y[s], lf, o)
    for s, (m, _, _) in enumerate(alones):
        got = stack.copy_of(s).state_dict()
        for name, value in m.state_dict().items():
            torch.testing.assert_close(got[name], value, atol=2e-5, rtol=1e-4)


def test_train_stacked_with_sltt_and_tet_learns():
    """train_stacked with method='sltt', loss='tet' (chapter 4's +SLTT row) learns a separable
    task far above chance and reports a loss per seed and step."""
    (xtr, ytr), (xte, yte) = separable_digits(96, 0), separable_digits(60, 1)
    build = lambda: build_model("ds_resnet_small", num_classes=2, input_shape=(1, 8, 8), T=2, attention=True)  # noqa: E731
    run = train_stacked(build, [0, 1], (xtr * 2, ytr, xte * 2, yte), T=2, epochs=3, batch_size=32, lr=0.1,
                        method="sltt", loss="tet", loss_options={"lam": 0.0})
    assert run.train_loss.shape == (9, 2) and run.steps == 9
    assert min(run.test_accuracy) >= 0.9  # chance is 0.5
    assert run.train_loss[-3:].mean() < run.train_loss[:3].mean()
    with pytest.raises(ValueError, match="per-step loss"):
        train_stacked(build, [0], (xtr, ytr, xte, yte), T=2, method="sltt", loss="sdt")
    with pytest.raises(ValueError, match="OTTT traces"):
        train_stacked(build, [0], (xtr, ytr, xte, yte), T=2, method="ottt_a", loss="ottt")


def plif_cnn():
    # PLIF neurons: their tau sits in PerSeed copies, which per-seed rates must scale too
    return SevenBNet((4,), num_classes=2, input_shape=(1, 8, 8), kind="sew")


@pytest.mark.parametrize("build", [small_cnn, plif_cnn])
def test_one_learning_rate_per_seed_equals_each_seed_alone_at_its_rate(build):
    """SGD with momentum and weight decay: seed s of a stack with per-seed rates takes the steps it
    takes when trained alone at its own rate (losses at every step and final weights)."""
    data = (*separable_digits(64, 0), *separable_digits(20, 1))
    kw = dict(T=2, epochs=2, batch_size=16, momentum=0.9, weight_decay=1e-2)
    both = train_stacked(build, [0, 1], data, lr=[0.02, 0.3], **kw)
    assert both.lr == [0.02, 0.3]
    for i, (seed, lr) in enumerate(((0, 0.02), (1, 0.3))):
        alone = train_stacked(build, [seed], data, lr=lr, **kw)
        torch.testing.assert_close(both.train_loss[:, i], alone.train_loss[:, 0], atol=1e-4, rtol=1e-4)
        mine, ref = both.network(i).state_dict(), alone.network(0).state_dict()
        for name in ref:
            torch.testing.assert_close(mine[name], ref[name], atol=1e-4, rtol=1e-4, msg=name)


def test_per_seed_learning_rates_are_checked():
    data = (*separable_digits(32, 0), *separable_digits(20, 1))
    with pytest.raises(ValueError, match="one per seed"):
        train_stacked(small_cnn, [0, 1], data, T=2, lr=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="sgd"):
        train_stacked(small_cnn, [0, 1], data, T=2, lr=[0.1, 0.2], optimizer="adam")
    with pytest.raises(ValueError, match="lr"):
        train_stacked(small_cnn, [0, 1], data, T=2, lr=[0.1, -0.2])


def test_lr_grid_chooses_on_the_validation_split_never_the_test_set():
    """A rate too small to move the weights loses to a working one; the validation accuracies are
    those of each (rate, seed) trained alone on the documented split; and scrambling the test
    labels changes the test accuracies but not the choice."""
    from snnlab.training.stacked import evaluate_stacked, train_lr_grid

    xtr, ytr = separable_digits(80, 0)
    xte, yte = separable_digits(40, 1)
    kw = dict(T=2, epochs=2, batch_size=16)
    grid = train_lr_grid(small_cnn, [0, 1], (xtr, ytr, xte, yte), lrs=[0.1, 1e-6], validation=0.25, **kw)
    assert grid.lrs == [1e-6, 0.1] and grid.best_lr == 0.1
    assert grid.train_samples == 60 and grid.validation_samples == 20
    assert grid.run.lr == [0.1, 0.1] and grid.run.seeds == [1000, 1001]
    assert grid.mean_validation()[1] > grid.mean_validation()[0]
    order = torch.randperm(80, generator=torch.Generator().manual_seed(0))
    val, fit = order[:20], order[20:]
    alone = train_stacked(small_cnn, [1001], (xtr[fit], ytr[fit], xte, yte), lr=0.1, **kw)
    assert evaluate_stacked(alone.model, xtr[val], ytr[val], T=2)[0] == pytest.approx(grid.validation_accuracy[1][1])
    assert alone.test_accuracy[0] == pytest.approx(grid.run.test_accuracy[1])
    for name, value in alone.network(0).state_dict().items():
        torch.testing.assert_close(grid.run.network(1).state_dict()[name], value, atol=1e-4, rtol=1e-4)
    scrambled = train_lr_grid(small_cnn, [0, 1], (xtr, ytr, xte, 1 - yte), lrs=[0.1, 1e-6], validation=0.25, **kw)
    assert scrambled.best_lr == 0.1 and scrambled.validation_accuracy == grid.validation_accuracy
    # the same networks (the test set plays no part in training): flipped labels, complementary accuracy
    assert scrambled.run.test_accuracy == pytest.approx([1 - a for a in grid.run.test_accuracy])
    with pytest.raises(ValueError, match="validation"):
        train_lr_grid(small_cnn, [0], (xtr, ytr, xte, yte), lrs=[0.1], validation=1.0, **kw)
    with pytest.raises(ValueError, match="sgd"):
        train_lr_grid(small_cnn, [0], (xtr, ytr, xte, yte), lrs=[0.1], optimizer="adam", **kw)


def test_lr_grid_choosing_with_one_seed_reports_the_same_networks_as_the_full_grid():
    """selection_seeds=1 trains the other seeds at the chosen rate only; where both ways choose the
    same rate, every reported seed is the network the full grid trained (losses, accuracy, weights)."""
    from snnlab.training.stacked import train_lr_grid

    xtr, ytr = separable_digits(80, 0)
    xte, yte = separable_digits(40, 1)
    kw = dict(T=2, epochs=2, batch_size=16)
    full = train_lr_grid(small_cnn, [1, 0, 2], (xtr, ytr, xte, yte), lrs=[1e-6, 0.2], **kw)
    cheap = train_lr_grid(small_cnn, [1, 0, 2], (xtr, ytr, xte, yte), lrs=[1e-6, 0.2], selection_seeds=1, **kw)
    assert full.best_lr == cheap.best_lr == 0.2
    assert len(cheap.full.seeds) == 2 and [len(v) for v in cheap.validation_accuracy] == [1, 1]
    assert cheap.run.seeds == full.run.seeds == [1001, 1000, 1002] and cheap.run.lr == [0.2] * 3
    assert cheap.run.test_accuracy == pytest.approx(full.run.test_accuracy, abs=1e-6)
    torch.testing.assert_close(cheap.run.train_loss, full.run.train_loss, atol=1e-4, rtol=1e-4)
    for i in range(3):
        mine, ref = cheap.run.network(i).state_dict(), full.run.network(i).state_dict()
        for name in ref:
            torch.testing.assert_close(mine[name], ref[name], atol=1e-4, rtol=1e-4, msg=name)
    with pytest.raises(ValueError, match="selection_seeds"):
        train_lr_grid(small_cnn, [0, 1], (xtr, ytr, xte, yte), lrs=[0.1], selection_seeds=3, **kw)
