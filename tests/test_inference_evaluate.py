"""evaluate_exit (a data set through adaptive inference with eq. 19's counter) and build_exit_rule."""

import pytest
import torch
from torch.utils.data import TensorDataset

from snnlab.inference import (
    ConfidenceExit, EntropyExit, FixedSteps, SynapticOpCounter, adaptive_inference, build_exit_rule, evaluate_exit,
)
from test_inference_adaptive import _net, _rule_with_spread


def test_batches_give_the_same_exits_and_operations_as_one_batch():
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 3
    y = torch.arange(40) % 10
    net = _net()
    rule, outputs = _rule_with_spread(net, x)
    with SynapticOpCounter(net) as counter:
        whole = adaptive_inference(net, x, rule, T=4)
    batched = evaluate_exit(net, TensorDataset(x, y), rule, T=4, batch_size=7)
    assert torch.equal(batched.steps, whole.steps) and torch.equal(batched.predictions, whole.predictions)
    assert batched.operations == pytest.approx(counter.report().total)
    assert torch.equal(batched.targets, y) and batched.accuracy() == whole.accuracy(y)
    assert 1 < batched.mean_steps < 4 and batched.max_steps == int(whole.steps.max())
    assert sum(batched.step_histogram()) == 40 and batched.step_histogram() == \
        torch.bincount(whole.steps, minlength=5)[1:].tolist()
    assert sum(batched.active) == int(whole.steps.sum())  # sample-steps computed = sum of exit steps
    assert batched.seconds >= batched.network_seconds > 0
    plain = evaluate_exit(net, x, rule, T=4, count_operations=False)
    assert plain.complexity is None and plain.operations != plain.operations  # NaN: not counted
    with pytest.raises(ValueError, match="no targets"):
        plain.accuracy()


def test_build_exit_rule():
    assert isinstance(build_exit_rule("fixed", readout="mean_softmax"), FixedSteps)
    atsn = build_exit_rule("atsn", cl_init=0.99, tau_cl=0.98, reads="cumulative")
    assert isinstance(atsn, ConfidenceExit) and (atsn.cl_init, atsn.tau_cl, atsn.reads) == (0.99, 0.98, "cumulative")
    assert build_exit_rule("dtsnn", theta=0.2).theta == 0.2 and isinstance(build_exit_rule("dtsnn", theta=0),
                                                                           EntropyExit)
    with pytest.raises(ValueError, match="theta"):
        build_exit_rule("dtsnn")
    with pytest.raises(ValueError, match="unknown exit rule"):
        build_exit_rule("early")
    with pytest.raises(TypeError, match="tensor of inputs or a Dataset"):
        evaluate_exit(_net(), [1, 2], FixedSteps(), T=2)


@pytest.mark.parametrize("reads", ["step", "cumulative"])
def test_evaluate_runs_atsn_through_the_fused_exit_and_agrees_with_the_offline_rule(monkeypatch, reads):
    # snnlab evaluate --exit atsn goes through evaluate_exit: ATSN's rule must take the fused Numba
    # exit step (one call per network step) and decide exactly as the offline rule on a full run
    import snnlab.inference.exit_kernel as exit_kernel
    from snnlab.inference import confidence_scores, fixed_inference

    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 3
    y = torch.arange(40) % 10
    net = _net()
    full, _ = fixed_inference(net, x, T=4)
    level = float(confidence_scores(full, reads)[:3].median())
    rule = build_exit_rule("atsn", cl_init=level, tau_cl=1.0, reads=reads)
    offline = rule(full)
    calls = []
    real = exit_kernel.confidence_exit_step

    def counted(*args):
        calls.append(args[0].shape[0])
        return real(*args)

    monkeypatch.setattr(exit_kernel, "confidence_exit_step", counted)
    result = evaluate_exit(net, TensorDataset(x, y), rule, T=4, batch_size=16)
    assert torch.equal(result.steps, offline.steps) and torch.equal(result.predictions, offline.predictions)
    assert len(set(result.steps.tolist())) >= 2                    # exits at several steps
    # one kernel call per network step of each batch (3 batches, at most T=4 steps each), over the running rows
    assert int(result.steps.max()) <= len(calls) <= 3 * 4
    assert sum(calls) == sum(result.active) == int(offline.steps.sum())
    # the hardware form (eqs. 17-18) runs through the per-step form, not the kernel, and decides as its
    # offline form (at a score exactly on the level, its rounding may differ from the direct form's)
    if reads != "step":
        return  # the hardware form reads the current step only
    calls.clear()
    hardware_rule = build_exit_rule("atsn", cl_init=level, tau_cl=1.0, hardware=True)
    hardware = evaluate_exit(net, TensorDataset(x, y), hardware_rule, T=4, batch_size=16)
    assert calls == [] and torch.equal(hardware.steps, hardware_rule(full).steps)
