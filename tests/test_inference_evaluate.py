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
