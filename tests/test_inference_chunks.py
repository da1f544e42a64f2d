"""Adaptive inference with several steps per network call (``chunk``): same decisions, known extra work."""

import math

import numpy as np
import pytest
import torch

from atsn_cases import atsn_net
from snnlab.inference import ConfidenceExit, EntropyExit, adaptive_inference, confidence_scores, fixed_inference
from snnlab.inference.adaptive import CHUNK_IMAGES, _ChunkChooser, chunk_call_seconds
from snnlab.inference.stepper import LayerStepper, ModuleStepper
from snnlab.neurons import StatefulNode
from snnlab.training import reset_model


_net = atsn_net


def _inputs(kind, n=40, seed=3):
    g = torch.Generator().manual_seed(seed)
    if kind == "static":
        return torch.rand(n, 1, 8, 8, generator=g) * 3
    return torch.rand(n, 4, 1, 8, 8, generator=g) * 3


def _spread_rule(net, x, kind):
    out, _ = fixed_inference(net, x, T=4, kind=kind)
    level = float(confidence_scores(out, "step")[:3].median())
    return ConfidenceExit(level, 1.0), out


@pytest.mark.parametrize("kind", ["static", "events"])
def test_a_call_of_k_steps_equals_k_calls_of_one(kind):
    net = _net()
    x = _inputs(kind, 12)
    one, many = LayerStepper.build(net, x, kind), LayerStepper.build(net, x, kind)
    for stepper in (one, many):
        stepper.add(x, 0, 12)
    expected = []
    for t in range(4):
        expected.append(one.step(None if kind == "static" else x[:, t].contiguous()))
    # step-major frames: row i at its s-th step of the call is row s·n + i
    first = many.step(None if kind == "static" else x[:, :3].transpose(0, 1).reshape(36, 1, 8, 8), 3)
    last = many.step(None if kind == "static" else x[:, 3].contiguous(), 1)
    assert first.shape == (36, 10) and last.shape == (12, 10)
    got = list(first.reshape(3, 12, 10)) + [last]
    for a, b in zip(got, expected):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)
    # the module stepper runs the k steps one call each: the same numbers
    reset_model(net)
    slow = ModuleStepper(net, [m for m in net.modules() if isinstance(m, StatefulNode)], kind)
    slow.add(x, 0, 12)
    out = slow.step(None if kind == "static" else x[:, :3].transpose(0, 1).reshape(36, 1, 8, 8), 3)
    assert torch.allclose(out, first, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["static", "events"])
@pytest.mark.parametrize("chunk", [1, 2, 3, 4, "auto"])
@pytest.mark.parametrize("batch_size", [None, 1, 7])
def test_chunks_decide_as_the_offline_rule(kind, chunk, batch_size):
    net = _net()
    x = _inputs(kind)
    rule, full = _spread_rule(net, x, kind)
    offline = rule(full)
    assert len(set(offline.steps.tolist())) >= 3
    result = adaptive_inference(net, x, rule, T=4, kind=kind, batch_size=batch_size, chunk=chunk)
    assert torch.equal(result.steps, offline.steps)
    assert torch.equal(result.predictions, offline.predictions)
    # outputs are recorded up to each exit and not after it (steps computed after an exit are discarded)
    recorded = ~torch.isnan(result.outputs).any(-1)
    assert torch.equal(recorded, torch.arange(1, 5)[:, None] <= result.steps[None])
    assert torch.allclose(result.outputs[recorded], full[recorded], atol=1e-5)
    assert len(result.call_steps) == len(result.active)
    if chunk != "auto":
        assert set(result.call_steps) == {chunk}
        # each sample joins at a call boundary and computes k steps per call until its exit at step s:
        # ceil(s / k)·k sample-steps (padding past T included)
        expected = sum(math.ceil(s / chunk) * chunk for s in offline.steps.tolist())
        assert sum(result.active) == expected
    slots = min(batch_size or 40, 40)
    assert max(a // k for a, k in zip(result.active, result.call_steps)) <= slots


def test_chooser_minimises_the_expected_time_per_sample():
    # T = 4, one slot; a call of 1 step costs 1.0, of 2 steps 1.5
    chooser = _ChunkChooser({1: 1.0, 2: 1.5}, T=4, slots=1)
    # uniform exit steps 1..4: k = 1 costs 1.0 x (1+2+3+4)/4 = 2.5 per sample; k = 2 costs
    # 1.5 x (1+1+2+2)/4 calls = 2.25
    assert chooser.k == 2
    steps = np.zeros(200, dtype=np.int64)
    steps[:100] = 1                                   # 100 samples exited at step 1, 100 running
    # counts 1 + (100, 0, 0, 0): k = 1: (101 + 2 + 3 + 4) = 110; k = 2: 1.5 x (101 + 1 + 2 + 2) = 159
    assert chooser.update(steps, joined=200, running=100) == 1
    only_one = _ChunkChooser({1: 1.0}, T=4, slots=16)
    assert only_one.k == 1 and only_one.update(steps, 200, 100) == 1


def test_call_times_are_measured_for_the_allowed_chunks_and_cached():
    net = _net()
    x = _inputs("events")
    costs = chunk_call_seconds(net, x, T=4, kind="events", slots=16)
    assert set(costs) == {1, 2, 4} and all(v > 0 for v in costs.values())        # 8 > T; 4·16 <= 128
    assert chunk_call_seconds(net, x, T=4, kind="events", slots=16) is costs       # cached
    wide = chunk_call_seconds(net, x, T=4, kind="events", slots=40)
    assert set(wide) == {k for k in (1, 2, 4) if k == 1 or k * 40 <= CHUNK_IMAGES} == {1, 2}
    assert all(m.v is None for m in net.modules() if isinstance(m, StatefulNode))  # states left at rest


def test_bad_chunks_are_refused():
    net = _net()
    x = _inputs("static")
    rule, _ = _spread_rule(net, x, "static")
    for bad in (0, 5, -1, 2.0, True, "fast"):
        with pytest.raises(ValueError, match="chunk"):
            adaptive_inference(net, x, rule, T=4, chunk=bad)
    with pytest.raises(ValueError, match="ConfidenceExit"):
        adaptive_inference(_net("linear"), x, EntropyExit(0.5), T=4, chunk=2)
    # 'auto' with another rule computes a step per call
    result = adaptive_inference(_net("linear"), x, EntropyExit(0.5), T=4, chunk="auto")
    assert set(result.call_steps) <= {1}


def test_compare_wallclock_times_a_chunked_run_next_to_the_others():
    from snnlab.inference import compare_wallclock

    net = _net()
    x = _inputs("events")
    rule, full = _spread_rule(net, x, "events")
    steps = rule(full).steps.tolist()
    timing = compare_wallclock(net, x, rule, T=4, kind="events", repeats=2, batch_size=8, chunk=2)
    assert timing["adaptive_chunked"] > 0 and 0 < timing["adaptive_chunked_network"] <= timing["adaptive_chunked"]
    assert timing["sample_steps"] == pytest.approx(sum(steps) / (4 * 40))
    assert timing["chunked_sample_steps"] == pytest.approx(sum(math.ceil(s / 2) * 2 for s in steps) / (4 * 40))
    assert timing["chunked_steps_per_call"] == 2 and timing["chunk_calibration_s"] == 0
    auto = compare_wallclock(net, x, rule, T=4, kind="events", repeats=1, batch_size=8, chunk="auto")
    assert 1 <= auto["chunked_steps_per_call"] <= 4
    assert auto["chunked_sample_steps"] >= auto["sample_steps"]
    with pytest.raises(ValueError, match="chunk"):
        compare_wallclock(net, x, rule, T=4, kind="events", repeats=1, chunk=9)


def test_bench_adaptive_refuses_a_bad_chunk_before_training(capsys, monkeypatch):
    import snnlab.data
    import snnlab.inference.ablation
    from snnlab.cli import main

    def no_work(*args, **kwargs):
        raise AssertionError("data loaded or a network trained before --chunk was checked")

    monkeypatch.setattr(snnlab.data, "load_dataset", no_work)
    monkeypatch.setattr(snnlab.inference.ablation, "train_variant", no_work)
    for bad in ("9", "0"):                                       # T = 4 by default
        assert main(["bench", "adaptive", "--quick", "--chunk", bad]) != 0
        assert f"chunk must be an int from 1 to T = 4 (steps per network call) or 'auto', got {bad}" in \
            capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "adaptive", "--chunk", "fast"])           # not 'auto' or an int: argparse's error
    assert "--chunk takes 'auto' or an int" in capsys.readouterr().err
