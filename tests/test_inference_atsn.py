"""ATSN / DTSNN exit rules (ATSN eqs. 5-10, 15-18) against hand-written formulas and loops."""

import math

import numpy as np
import pytest
import torch

from snnlab.inference import (
    ConfidenceExit,
    EntropyExit,
    FixedSteps,
    accuracy_by_steps,
    confidence_levels,
    confidence_scores,
    confidence_sweep,
    cumulative_output,
    entropy_sweep,
    first_pass_steps,
    hardware_exit_passes,
    mean_logit_probabilities,
    normalized_entropy,
    paper_grid,
    readout_predictions,
    step_probabilities,
)


@pytest.fixture
def outputs():
    g = torch.Generator().manual_seed(0)
    # spread-out logits so that some samples are confident early and others never
    scale = torch.rand(1, 200, 1, generator=g) * 12
    out = torch.randn(4, 200, 10, generator=g) * scale
    return out.float()


@pytest.fixture
def targets():
    return torch.randint(0, 10, (200,), generator=torch.Generator().manual_seed(1))


def _loop_exit(outputs, cl_init, tau, reads):
    """Eqs. 9, 10, 15, 16 written as a plain loop over samples and steps, in Python floats."""
    T, B, C = outputs.shape
    steps, preds = [], []
    for b in range(B):
        y_sum = [0.0] * C
        for t in range(1, T + 1):
            f = outputs[t - 1, b].double().tolist()
            z = sum(math.exp(v) for v in f)
            o = [math.exp(v) / z for v in f]
            y_sum = [a + c for a, c in zip(y_sum, o)]
            y = [a / t for a in y_sum]
            score = max(o) if reads == "step" else max(y)
            if (t < T and score > cl_init * tau ** (t - 1)) or t == T:
                steps.append(t)
                preds.append(max(range(C), key=lambda i: y[i]))
                break
    return torch.tensor(steps), torch.tensor(preds)


def test_probabilities_match_equations(outputs):
    o = step_probabilities(outputs)
    assert torch.allclose(o.sum(-1), torch.ones(4, 200, dtype=torch.float64))
    y = cumulative_output(outputs)
    assert torch.allclose(y[2], (o[0] + o[1] + o[2]) / 3)                      # eq. 10
    pi = mean_logit_probabilities(outputs)
    assert torch.allclose(pi[1], ((outputs[0] + outputs[1]).double() / 2).softmax(-1))  # DTSNN eq. 5


def test_confidence_levels_eq15():
    levels = confidence_levels(4, 0.99, 0.9)
    assert torch.allclose(levels, torch.tensor([0.99, 0.99 * 0.9, 0.99 * 0.81, 0.99 * 0.729], dtype=torch.float64))
    with pytest.raises(ValueError):
        confidence_levels(4, 1.5, 0.9)
    with pytest.raises(ValueError):
        confidence_levels(0, 0.9, 0.9)


@pytest.mark.parametrize("reads", ["step", "cumulative"])
@pytest.mark.parametrize("cl_init,tau", [(0.9, 0.95), (0.99, 0.999), (0.5, 1.0)])
def test_confidence_exit_matches_loop(outputs, reads, cl_init, tau):
    result = ConfidenceExit(cl_init, tau, reads=reads)(outputs)
    steps, preds = _loop_exit(outputs, cl_init, tau, reads)
    assert torch.equal(result.steps, steps)
    assert torch.equal(result.predictions, preds)
    assert 1 < len(set(steps.tolist()))  # the fixture really exercises early and late exits


def test_reads_differ_and_step_reading_exits_no_later_at_t2(outputs):
    step = ConfidenceExit(0.9, 0.99, reads="step")(outputs)
    cum = ConfidenceExit(0.9, 0.99, reads="cumulative")(outputs)
    assert not torch.equal(step.steps, cum.steps)
    # at t = 1 both readings are the same softmax: the same samples exit at step 1
    assert torch.equal(step.steps == 1, cum.steps == 1)


def test_hardware_form_exits_at_the_same_steps(outputs):
    """Eqs. 17-18 (no division) vs eqs. 9 + 16 (softmax): identical exit steps over a grid."""
    for cl in (0.5, 0.9, 0.99, 0.999, 0.9998):
        for tau in (0.9, 0.995, 0.9998, 1.0):
            soft = ConfidenceExit(cl, tau)(outputs)
            hard = ConfidenceExit(cl, tau, hardware=True)(outputs)
            assert torch.equal(soft.steps, hard.steps)
            assert torch.equal(soft.predictions, hard.predictions)
    # written out without the max-shift, on small logits where exp cannot overflow
    small = outputs[:, :20] / 4
    levels = confidence_levels(4, 0.6, 0.9)
    sigma = small.double().exp()
    literal = sigma.max(-1).values > levels[:, None] * sigma.sum(-1)
    assert torch.equal(hardware_exit_passes(small, levels), literal)
    # large potentials overflow a literal exp in float64 but not the shifted form
    huge = outputs * 200
    assert torch.equal(ConfidenceExit(0.99, 0.99, hardware=True)(huge).steps, ConfidenceExit(0.99, 0.99)(huge).steps)
    with pytest.raises(ValueError, match="reads='step'"):
        ConfidenceExit(reads="cumulative", hardware=True)


def test_tau_one_is_a_single_threshold(outputs):
    """τ_CL = 1: one fixed threshold at every step, against the plain loop and a hand-made case."""
    rule = ConfidenceExit(0.95, 1.0)
    steps, preds = _loop_exit(outputs, 0.95, 1.0, "step")
    result = rule(outputs)
    assert torch.equal(result.steps, steps) and torch.equal(result.predictions, preds)
    assert 1 < len(set(steps.tolist()))  # the fixture exits at several different steps
    # by hand, 2 classes, T=3: softmax of (0, d) has max 1/(1+e^-d): d=4 -> 0.982 > 0.95, d=2 -> 0.881
    hand = torch.tensor([[[0.0, 2.0], [0.0, 2.0]],      # t=1: both 0.881: no exit
                         [[0.0, 4.0], [0.0, 2.0]],      # t=2: sample 0 at 0.982 exits
                         [[0.0, 2.0], [2.0, 0.0]]])     # t=3 = T: sample 1 stops at T
    r = rule(hand)
    assert r.steps.tolist() == [2, 3]
    assert r.predictions.tolist() == [1, 1]  # sample 1: y_3 = (0.119+0.119+0.881)/3 < (0.881+0.881+0.119)/3
    # with τ_CL = 0.9 the level falls to 0.95·0.9 = 0.855 at t=2, below sample 1's 0.881: it exits there
    assert ConfidenceExit(0.95, 0.9)(hand).steps.tolist() == [2, 2]


def test_first_pass_steps_forces_exit_at_T():
    # [T=3, B=4]: sample 0 passes only at T, 1 at step 1, 2 never, 3 at step 2
    passes = torch.tensor([[False, True, False, False], [False, True, False, True], [True, False, False, False]])
    assert first_pass_steps(passes).tolist() == [3, 1, 3, 2]
    with pytest.raises(ValueError):
        first_pass_steps(passes.int())


def test_sweep_equals_single_rules(outputs, targets):
    grid = paper_grid()
    assert len(grid) == 25 and grid[0] == 0.995 and grid[-1] == 0.9998
    cls, taus = [0.5, 0.9, 0.995, 0.9998], [0.8, 0.99, 1.0]
    for reads in ("step", "cumulative"):
        sweep = confidence_sweep(outputs, targets, cls, taus, reads=reads)
        for i, cl in enumerate(cls):
            for j, tau in enumerate(taus):
                single = ConfidenceExit(cl, tau, reads=reads)(outputs)
                assert sweep.mean_steps[i, j] == single.mean_steps
                assert sweep.max_steps[i, j] == single.max_steps
                assert sweep.accuracy[i, j] == single.accuracy(targets)
    with pytest.raises(ValueError):
        confidence_sweep(outputs, targets, [1.2], [0.9])


def test_entropy_eq6_and_exit(outputs, targets):
    pi = mean_logit_probabilities(outputs)
    e = normalized_entropy(outputs)
    manual = -(pi * pi.log()).sum(-1) / math.log(10)
    assert torch.allclose(e, manual)
    assert float(e.min()) >= 0 and float(e.max()) <= 1 + 1e-12
    # uniform output: entropy 1; a one-hot-like output: ~0
    flat = torch.zeros(2, 1, 10)
    assert torch.allclose(normalized_entropy(flat), torch.ones(2, 1, dtype=torch.float64))
    rule = EntropyExit(0.3)
    result = rule(outputs)
    passes = e < 0.3
    for b in range(outputs.shape[1]):
        hits = [t for t in range(3) if passes[t, b]]
        expected = hits[0] + 1 if hits else 4
        assert result.steps[b] == expected
        assert result.predictions[b] == pi[expected - 1, b].argmax()
    sweep = entropy_sweep(outputs, targets, [0.0, 0.3, 1.0])
    assert sweep["mean_steps"][0] == 4.0 and sweep["mean_steps"][1] == result.mean_steps
    assert sweep["accuracy"][1] == result.accuracy(targets)
    with pytest.raises(ValueError):
        EntropyExit(1.5)


def test_readouts_and_accuracy_by_steps(outputs, targets):
    acc = accuracy_by_steps(outputs, targets, "mean_softmax")
    preds = readout_predictions(outputs, "mean_softmax")
    assert acc.shape == (4,)
    assert acc[3] == (preds[3] == targets).double().mean()
    # at t = 1 all three readouts agree
    for r in ("mean_logits", "step_softmax"):
        assert torch.equal(readout_predictions(outputs, r)[0], preds[0])
    assert torch.equal(FixedSteps("mean_logits")(outputs).steps, torch.full((200,), 4))
    with pytest.raises(ValueError):
        readout_predictions(outputs, "votes")


def test_bad_outputs_raise():
    with pytest.raises(ValueError):
        ConfidenceExit()(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="NaN"):
        ConfidenceExit()(torch.full((2, 3, 4), float("nan")))


def test_exit_explorer_draws_and_reports(outputs, targets):
    from matplotlib.figure import Figure

    from snnlab.viz.atsn import draw_exit_explorer, plot_sweep_heatmap

    fig = Figure()
    shown = draw_exit_explorer(fig, outputs, targets, 0.9, 0.99)
    rule = ConfidenceExit(0.9, 0.99)(outputs)
    assert shown == {"accuracy": rule.accuracy(targets), "mean_steps": rule.mean_steps}
    bars = fig.axes[1].patches
    assert [int(b.get_height()) for b in bars] == torch.bincount(rule.steps, minlength=5)[1:].tolist()
    fig = Figure()
    ax = fig.add_subplot()
    sweep = confidence_sweep(outputs, targets, paper_grid(), paper_grid())
    image = plot_sweep_heatmap(ax, sweep, "mean_steps")
    assert np.array_equal(image.get_array(), sweep.mean_steps)


def test_train_variant_returns_folded_network():
    from snnlab.data import load_dataset
    from snnlab.inference.ablation import VARIANTS, train_variant
    from snnlab.models.atsn_vgg import AtsnVGG

    data = load_dataset("digits", train=True, augment=False)
    net, history = train_variant("neuron_loss", train_set=data, epochs=1, max_batches=1, batch_size=16)
    assert isinstance(net, AtsnVGG) and not net.options["bn"] and not net.training
    assert net.options["output"] == "integrator" and len(history) == 1
    assert set(VARIANTS) == {"baseline", "neuron", "loss", "neuron_loss", "dtsnn"}
    with pytest.raises(ValueError):
        train_variant("atsn", train_set=data, epochs=1)


def _online_decide(rule, outputs, drop_every_exit=True):
    """Feed ``outputs`` step by step to ``rule.online`` as adaptive inference does (exited samples removed)."""
    T, B, _ = outputs.shape
    online = rule.online(T)
    alive = torch.arange(B)
    steps = torch.full((B,), T, dtype=torch.long)
    preds = torch.zeros(B, dtype=torch.long)
    for t in range(T):
        online.push(outputs[t, alive])
        if t == T - 1:
            preds[alive] = online.predictions(torch.arange(len(alive)))
            break
        done = online.passes()
        assert done.dtype == torch.bool and done.shape == (len(alive),)
        rows = done.nonzero().flatten()
        steps[alive[rows]] = t + 1
        preds[alive[rows]] = online.predictions(rows)
        keep = (~done).nonzero().flatten()
        alive = alive[keep]
        online.select(keep)
    return steps, preds


class _CustomRule(FixedSteps):
    """A rule of the user's: no online form of its own (the generic history fallback is used)."""

    def passes(self, outputs):
        return step_probabilities(outputs).max(-1).values > 0.9


@pytest.mark.parametrize("rule", [
    ConfidenceExit(0.9, 0.95), ConfidenceExit(0.99, 1.0, reads="cumulative"),
    ConfidenceExit(0.9, 0.95, predict="step"), ConfidenceExit(0.95, 0.99, hardware=True),
    EntropyExit(0.3), FixedSteps(), FixedSteps("mean_softmax"), FixedSteps("step_softmax"), _CustomRule(),
], ids=repr)
def test_online_form_equals_offline_bit_for_bit(outputs, rule):
    offline = rule(outputs)
    steps, preds = _online_decide(rule, outputs)
    assert len(set(offline.steps.tolist())) >= (1 if isinstance(rule, FixedSteps) and not isinstance(rule, _CustomRule) else 2)
    assert torch.equal(steps, offline.steps) and torch.equal(preds, offline.predictions)


def test_online_form_checks_its_input(outputs):
    online = ConfidenceExit().online(2)
    with pytest.raises(ValueError, match="finite"):
        online.push(torch.full((3, 10), float("nan")))
    with pytest.raises(ValueError, match=r"\[B, C >= 2\]"):
        online.push(torch.zeros(3))
    online.push(outputs[0])
    online.push(outputs[1])
    with pytest.raises(ValueError, match="T = 2"):
        online.push(outputs[2])


def test_running_readout_equals_readouts(outputs):
    from snnlab.inference import RunningReadout

    for readout, probs in (("mean_logits", mean_logit_probabilities), ("mean_softmax", cumulative_output),
                           ("step_softmax", step_probabilities)):
        running = RunningReadout(readout)
        with pytest.raises(ValueError):
            running.probabilities()
        expected = probs(outputs)
        for t in range(4):
            running.push(outputs[t].double())
            assert torch.equal(running.probabilities(), expected[t])
            assert torch.equal(running.predictions(), readout_predictions(outputs, readout)[t])
