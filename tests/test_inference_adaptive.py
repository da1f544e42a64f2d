"""Batched adaptive inference, the complexity counter (ATSN eq. 19) and ATSN's network."""

import pytest
import torch
from torch import nn

from atsn_cases import atsn_net
from snnlab.inference import (
    ConfidenceExit,
    EntropyExit,
    FixedSteps,
    SynapticOpCounter,
    adaptive_inference,
    confidence_scores,
    fan_out,
    fixed_inference,
    select_samples,
)
from snnlab.models.atsn_vgg import AtsnVGG, load_atsn_vgg, save_atsn_vgg
from snnlab.neurons import LIFNode, MLFNode, NonSpikingIntegrator
from snnlab.training import reset_model


_net = atsn_net


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(3)
    return torch.rand(40, 1, 8, 8, generator=g) * 3


def _rule_with_spread(net, x):
    """A ConfidenceExit whose threshold sits inside the scores, so exits happen at several steps."""
    out, _ = fixed_inference(net, x, T=4)
    level = float(confidence_scores(out, "step")[:3].median())
    return ConfidenceExit(level, 1.0), out


def test_model_spikes_and_layers(batch):
    net = _net()
    lifs = [m for m in net.modules() if isinstance(m, LIFNode)]
    assert len(lifs) == 3 and all(m.params.v_reset == 0.0 and not m.params.decay_input for m in lifs)
    assert abs((1 - 1 / lifs[0].params.tau) - 0.5) < 1e-12
    assert isinstance(net.output, NonSpikingIntegrator) and net.output.decay == 0.5
    out, _ = fixed_inference(net, batch, T=4)
    assert out.shape == (4, 40, 10) and torch.isfinite(out).all()
    with SynapticOpCounter(net) as counter:
        fixed_inference(net, batch, T=4)
    rates = counter.report().firing_rates
    assert all(0.0 < r < 1.0 for r in rates[1:])  # spiking layers are neither silent nor saturated
    assert isinstance(_net(output="linear").output, nn.Identity)
    with pytest.raises(ValueError):
        AtsnVGG((8, 8), 10)
    with pytest.raises(ValueError):
        AtsnVGG((1, 8, 8), 10, output="spikes")


def test_integrator_output_is_eq8(batch):
    """f_t = τ f_{t-1} + W s_t: the integrator output equals the linear output accumulated with decay."""
    net = _net()
    lin = AtsnVGG((1, 8, 8), 10, channels=(6, 8), hidden=(16,), output="linear")
    lin.load_state_dict(net.state_dict())
    lin.eval()
    f, _ = fixed_inference(net, batch, T=4)
    w, _ = fixed_inference(lin, batch, T=4)
    expected = [w[0]]
    for t in range(1, 4):
        expected.append(0.5 * expected[-1] + w[t])
    assert torch.allclose(f, torch.stack(expected), atol=1e-5)


def test_folded_network_matches(batch):
    net = _net()
    folded = net.folded()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    a, _ = fixed_inference(net, batch, T=4)
    b, _ = fixed_inference(folded, batch, T=4)
    assert torch.allclose(a, b, atol=1e-4)
    assert (a.argmax(-1) == b.argmax(-1)).double().mean() > 0.99


def test_save_load_roundtrip(tmp_path, batch):
    net = _net().folded()
    path = save_atsn_vgg(net, tmp_path / "atsn.pt", T=4, note="test")
    loaded, meta = load_atsn_vgg(path)
    assert meta == {"T": 4, "note": "test"}
    assert loaded.options == net.options
    a, _ = fixed_inference(net, batch, T=4)
    b, _ = fixed_inference(loaded, batch, T=4)
    assert torch.equal(a, b)
    with pytest.raises(FileNotFoundError):
        load_atsn_vgg(tmp_path / "missing.pt")
    torch.save({"format": "other"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError):
        load_atsn_vgg(tmp_path / "bad.pt")
    with pytest.raises(TypeError):
        save_atsn_vgg(nn.Linear(2, 2), tmp_path / "x.pt")


@pytest.mark.parametrize("output", ["integrator", "linear"])
def test_adaptive_equals_offline_and_shrinks(batch, output):
    net = _net(output)
    rule, full = _rule_with_spread(net, batch)
    offline = rule(full)
    result = adaptive_inference(net, batch, rule, T=4)
    assert torch.equal(result.steps, offline.steps)
    assert torch.equal(result.predictions, offline.predictions)
    assert len(set(result.steps.tolist())) >= 2
    # the batch shrinks: at step t only the samples that have not exited are computed
    expected_active = [int((offline.steps >= t).sum()) for t in range(1, 5) if (offline.steps >= t).any()]
    assert result.active == expected_active and result.active[-1] < 40
    # computed outputs equal the full run's; the others were never computed (NaN)
    for t in range(4):
        ran = result.steps > t
        assert torch.allclose(result.outputs[t, ran], full[t, ran], atol=1e-5)
        assert torch.isnan(result.outputs[t, ~ran]).all()
    assert result.seconds > 0


def test_adaptive_with_entropy_and_fixed(batch):
    net = _net("linear")
    full, _ = fixed_inference(net, batch, T=4)
    for rule in (EntropyExit(0.5), FixedSteps()):
        offline = rule(full)
        result = adaptive_inference(net, batch, rule, T=4)
        assert torch.equal(result.steps, offline.steps)
        assert torch.equal(result.predictions, offline.predictions)
    assert adaptive_inference(net, batch, FixedSteps(), T=4).active == [40] * 4
    step_out, _ = fixed_inference(net, batch, T=4, step_by_step=True)
    assert torch.allclose(step_out, full, atol=1e-5)


def test_adaptive_input_checks(batch):
    net = _net()
    with pytest.raises(TypeError):
        adaptive_inference(net, batch, "atsn", T=4)
    with pytest.raises(ValueError):
        adaptive_inference(net, batch, ConfidenceExit(), T=0)
    with pytest.raises(ValueError):
        adaptive_inference(net, batch[:, None], ConfidenceExit(), T=4, kind="events")  # 1 frame < T


def test_select_samples_indexes_states():
    lif, mlf, integ = LIFNode(step_mode="m"), MLFNode(step_mode="m"), NonSpikingIntegrator(step_mode="m")
    x = torch.randn(2, 5, 3)
    for m in (lif, mlf, integ):
        m(x)
    before = [lif.v.clone(), mlf.v.clone(), integ.v.clone()]
    model = nn.ModuleList([lif, mlf, integ])
    keep = torch.tensor([4, 1])
    select_samples(model, keep)
    assert torch.equal(lif.v, before[0][keep]) and torch.equal(integ.v, before[2][keep])
    assert torch.equal(mlf.v, before[1][:, keep])
    with pytest.raises(ValueError):
        select_samples(model, torch.tensor([True, False]))


def test_fan_out_exact():
    conv = nn.Conv2d(2, 5, 3, padding=1)
    fan = fan_out(conv, (2, 4, 4))
    assert fan.shape == (2, 4, 4)
    assert fan[0, 0, 0] == 5 * 4 and fan[0, 0, 1] == 5 * 6 and fan[1, 1, 1] == 5 * 9
    assert fan_out(nn.Linear(7, 3), (7,)).tolist() == [3.0] * 7
    with pytest.raises(TypeError):
        fan_out(nn.ReLU(), (3,))


def test_counter_counts_spikes_times_fanout(batch):
    net = _net("linear")
    x = batch[:12]
    rule, full = _rule_with_spread(net, x)
    # per-sample, per-step operations from single-sample fixed runs (step by step)
    per_sample = []
    for b in range(12):
        ops = []
        with SynapticOpCounter(net) as counter:
            reset_model(net)
            for t in range(4):
                net(x[b:b + 1][None])
                ops.append(counter.report().total)
        reset_model(net)
        per_sample.append(torch.tensor(ops).diff(prepend=torch.zeros(1)))
    offline = rule(full)
    expected_adaptive = sum(float(per_sample[b][: offline.steps[b]].sum()) for b in range(12))
    expected_fixed = sum(float(p.sum()) for p in per_sample)
    with SynapticOpCounter(net) as counter:
        adaptive_inference(net, x, rule, T=4)
    assert counter.report().total == pytest.approx(expected_adaptive)
    with SynapticOpCounter(net) as counter:
        fixed_inference(net, x, T=4)
    report = counter.report()
    assert report.total == pytest.approx(expected_fixed)
    assert expected_adaptive < expected_fixed
    # the classifier: every input spike costs out_features operations
    assert report.operations[-1] == pytest.approx(report.nonzero[-1] * 10)
    with pytest.raises(ValueError):
        SynapticOpCounter(nn.ReLU())


def test_compare_wallclock(batch):
    from snnlab.inference import compare_wallclock

    net = _net()
    rule, full = _rule_with_spread(net, batch)
    names = ("fixed", "fixed_stepwise", "adaptive")
    for batch_size in (None, 7):
        timing = compare_wallclock(net, batch, rule, T=4, repeats=2, batch_size=batch_size)
        assert set(timing) == {*names, *(n + "_cpu" for n in names), "adaptive_network", "sample_steps", "batch_size",
                               "network_calls", "fixed_stepwise_calls"}
        assert timing["batch_size"] == (40 if batch_size is None else 7)
        assert all(timing[k] > 0 for k in names)
        assert all(timing[k + "_cpu"] >= 0 for k in names)
        assert 0 < timing["adaptive_network"] <= timing["adaptive"]
        # the rule is per sample: batches of 7 exit exactly as one batch of 40
        assert timing["sample_steps"] == pytest.approx(rule(full).mean_steps / 4)
    for bad in ({"repeats": 0}, {"batch_size": 0}, {"batch_size": 2.5}):
        with pytest.raises(ValueError):
            compare_wallclock(net, batch, rule, T=4, **{"repeats": 1, **bad})


def test_network_seconds_is_part_of_seconds(batch):
    net = _net()
    rule, _ = _rule_with_spread(net, batch)
    result = adaptive_inference(net, batch, rule, T=4)
    assert 0 < result.network_seconds < result.seconds


def test_adaptive_uses_a_subclass_rule_as_written(batch):
    """A subclass that changes the decision must not inherit the parent's running-sum online form."""
    net = _net()
    full, _ = fixed_inference(net, batch, T=4)

    class Stricter(ConfidenceExit):
        def passes(self, outputs):
            return confidence_scores(outputs, "step") > 0.5

    rule = Stricter(0.999999, 1.0)
    offline = rule(full)
    assert not torch.equal(offline.steps, ConfidenceExit(0.999999, 1.0)(full).steps)
    result = adaptive_inference(net, batch, rule, T=4)
    assert torch.equal(result.steps, offline.steps) and torch.equal(result.predictions, offline.predictions)


def test_adaptive_leaves_modes_as_found(batch):
    net = _net()
    net.train()
    rule, _ = _rule_with_spread(net.eval(), batch)
    net.train()
    adaptive_inference(net, batch, rule, T=4)
    assert all(m.training for m in net.modules())
    net.eval()
    net.features[1].train()  # a mixed state: still evaluated in eval mode
    ref = adaptive_inference(_net(), batch, rule, T=4)
    assert torch.equal(adaptive_inference(net, batch, rule, T=4).steps, ref.steps)


@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (2, 3, 5, 7), (1, 2, 2, 2), (5, 16, 4, 4)])
def test_spike_max_pool_equals_max_pool2d(shape):
    from snnlab.models.atsn_vgg import SpikeMaxPool2d

    pool = SpikeMaxPool2d()
    assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 2 and pool.stride == 2
    g = torch.Generator().manual_seed(0)
    for x in ((torch.rand(shape, generator=g) > 0.6).float(), torch.randn(shape, generator=g)):
        x[0, 0, 0, 0] = float("nan")
        with torch.no_grad():
            fast = pool(x)
        assert torch.equal(fast.isnan(), nn.functional.max_pool2d(x, 2).isnan())
        assert torch.equal(fast.nan_to_num(), nn.functional.max_pool2d(x, 2).nan_to_num())
    # with a gradient the pooling is max_pool2d's own (one input of each window gets the gradient)
    x = (torch.rand(shape, generator=g) > 0.6).float().requires_grad_()
    pool(x).sum().backward()
    ref = x.detach().clone().requires_grad_()
    nn.functional.max_pool2d(ref, 2).sum().backward()
    assert torch.equal(x.grad, ref.grad)
    with pytest.raises(RuntimeError):
        pool(torch.rand(1, 1, 1, 1))


def test_atsn_vgg_pools_with_spike_max_pool():
    from snnlab.models.atsn_vgg import SpikeMaxPool2d

    net = _net()
    pools = [m for m in net.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 2 and all(isinstance(m, SpikeMaxPool2d) for m in pools)
    assert all(isinstance(m, SpikeMaxPool2d) for m in net.folded().modules() if isinstance(m, nn.MaxPool2d))


def test_bench_adaptive_quick(capsys):
    import json

    from snnlab.cli import main

    assert main(["bench", "adaptive", "--quick"]) == 0
    bench = json.loads(capsys.readouterr().out)["adaptive"]
    assert bench["quick"] and bench["images"] == 64 and set(bench["rules"]) == {"default", "half"}
    assert {(r["rule"], r["batch_size"]) for r in bench["rows"]} == {(n, b) for n in ("default", "half") for b in (16, 64)}
    for row in bench["rows"]:
        assert 0 < row["sample_steps"] <= 1
        assert row["adaptive_over_fixed"] == pytest.approx(row["ms"]["adaptive"] / row["ms"]["fixed"])
        assert 0 <= row["outside_network_share"] < 1
        assert not any(k.endswith("_calls") for k in row["ms"])  # counts are not milliseconds
        assert row["network_calls"]["adaptive"] <= row["network_calls"]["fixed_stepwise"]
        chunked = row["chunked"]                           # chunk="auto" timed in the same repeats
        assert chunked["chunk"] == "auto" and 1 <= chunked["steps_per_call"] <= 4
        assert row["sample_steps"] <= chunked["sample_steps"] <= 1
        assert chunked["adaptive_over_fixed"] == pytest.approx(row["ms"]["adaptive_chunked"] / row["ms"]["fixed"])
    modes = {v["mode"] for v in bench["targets"]["rows"]}
    assert modes <= {"step", "chunked"} and set(bench["targets"]["met"]) == {"step", "chunked"}


@pytest.mark.parametrize("output", ["integrator", "linear"])
def test_step_equals_forward_bit_for_bit(batch, output):
    net = _net(output).folded()
    ref_net = _net(output).folded()
    reset_model(net), reset_model(ref_net)
    for t in range(4):
        x = batch * (1 + 0.3 * t)                      # a different input each step
        with torch.no_grad():
            a, b = net.step(x), ref_net(x[None])[0]
        assert torch.equal(a, b)
        for m, r in zip(net.modules(), ref_net.modules()):
            if isinstance(m, (LIFNode, NonSpikingIntegrator)) and r.v is not None:
                assert torch.equal(m.v, r.v)
    reset_model(net)
    with pytest.raises(ValueError, match="one timestep"):
        net.step(batch[None])
    net.step(batch)
    with pytest.raises(ValueError, match="reset"):
        net.step(batch[:5])
    reset_model(net), reset_model(ref_net)
    # float64 takes the module path, with the same result
    with torch.no_grad():
        assert torch.allclose(net.double().step(batch.double()), ref_net.double()(batch.double()[None])[0])


def test_step_with_bad_input_raises(batch):
    net = _net()
    x = batch.clone()
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        net.step(x)


def test_targets_are_read_against_the_one_call_path():
    from snnlab.bench.adaptive import targets

    def row(rule, b, work, one_call, stepwise, chunked=None):
        return {"rule": rule, "batch_size": b, "sample_steps": work, "adaptive_over_fixed": one_call,
                "adaptive_over_fixed_cpu": one_call, "adaptive_over_fixed_stepwise": stepwise,
                "network_calls": {"adaptive": 10, "fixed_stepwise": 20, "fixed": 5}, "chunked": chunked}

    def chunked(work, one_call, per_call):
        return {"chunk": "auto", "sample_steps": work, "adaptive_over_fixed": one_call,
                "adaptive_over_fixed_cpu": one_call, "adaptive_over_fixed_stepwise": one_call, "steps_per_call": per_call, "network_calls": 4}
    verdicts = targets([row("default", 16, 0.9, 2.0, 2.0),       # > 70 % of the work: no target
                        row("half", 16, 0.5, 0.79, 0.9, chunked(0.6, 0.5, 2.0)),
                        row("half", 64, 0.5, 0.85, 0.6, chunked(0.75, 0.4, 4.0))])   # chunked: > 70 %, no target
    assert [(v["batch_size"], v["mode"], v["met"], v["met_against_stepwise"]) for v in verdicts] == [
        (16, "step", True, False), (16, "chunked", True, True), (64, "step", False, True)]
    assert verdicts[1]["steps_per_call"] == 2.0 and verdicts[1]["network_calls"]["adaptive"] == 4


def test_per_step_cost_fit_recovers_a_line():
    from snnlab.bench.adaptive import per_step_cost

    # 100 images, T = 4: per step 50 µs + 2 µs per sample; ms totals = steps · per-step µs / 1000
    rows = [{"rule": "default", "batch_size": b, "images": 100,
             "ms": {"fixed_stepwise": 4 * -(-100 // b) * (50 + 2 * b) / 1000}} for b in (1, 10, 100)]
    cost = per_step_cost(rows + [{**rows[0], "rule": "half"}], T=4)
    assert cost["fixed_us"] == pytest.approx(50) and cost["per_sample_us"] == pytest.approx(2)
    assert cost["per_step_us"] == pytest.approx({1: 52, 10: 70, 100: 250})
    with pytest.raises(ValueError, match="two batch sizes"):
        per_step_cost(rows[:1], T=4)


def test_pooling_seconds_reports_both():
    from snnlab.bench.adaptive import pooling_seconds

    seconds = pooling_seconds((4, 2, 4, 4), repeats=3)
    assert set(seconds) == {"max_pool2d", "SpikeMaxPool2d"} and all(v > 0 for v in seconds.values())


def test_convolution_cost_reads_each_convolutions_input_and_times_both_paths(batch):
    from snnlab.bench.adaptive import convolution_cost

    net = _net()  # conv(1 -> 6) on 8x8 images, pool, conv(6 -> 8) on the 4x4 spikes
    with torch.no_grad():
        reference = fixed_inference(net, batch[:3], T=4)[0]
    cost = convolution_cost(net, batch, T=4, batch_sizes=(2, 0), repeats=2)
    assert cost["layers"] == [{"layer": "features.0.layers.0", "input": [1, 8, 8]},
                              {"layer": "features.3.layers.0", "input": [6, 4, 4]}]
    assert sorted(cost["by_batch"]) == [2, 40]                      # 0: all of x as one batch
    for entry in cost["by_batch"].values():
        assert entry["per_step_us_per_image"] > 0 and entry["one_call_us_per_image"] > 0
        assert entry["one_call_advantage"] == pytest.approx(entry["per_step_us_per_image"]
                                                            / entry["one_call_us_per_image"])
    assert not any(m._forward_pre_hooks for m in net.modules())      # its hooks are gone
    assert torch.equal(fixed_inference(net, batch[:3], T=4)[0], reference)
    with pytest.raises(ValueError, match="no"):
        convolution_cost(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), batch, T=4)
    with pytest.raises(ValueError, match="repeats"):
        convolution_cost(net, batch, T=4, repeats=0)
    with pytest.raises(ValueError, match="batch sizes"):
        convolution_cost(net, batch, T=4, batch_sizes=(-1,))


def test_runs_leave_every_state_reset_as_reset_model_does(batch):
    from snnlab.neurons import StatefulNode
    from snnlab.training.traces import _ATTR, TraceLayer

    net = _net()
    rule, _ = _rule_with_spread(net, batch)
    marker = TraceLayer(name="classifier", decay=0.5, trace=torch.ones(1), calls=3)
    setattr(net.classifier, _ATTR, marker)            # a trace, as OTTT attaches one
    for run in (lambda: adaptive_inference(net, batch, rule, T=4), lambda: fixed_inference(net, batch, T=4),
                lambda: fixed_inference(net, batch, T=4, step_by_step=True)):
        marker.trace, marker.calls = torch.ones(1), 3
        run()
        assert all(m.v is None for m in net.modules() if isinstance(m, StatefulNode))
        assert marker.trace is None and marker.calls == 0


# --- the fused exit step and batch slots ----------------------------------------------------------


def _spread_rule(net, x, reads="step", predict="cumulative"):
    out, _ = fixed_inference(net, x, T=4)
    level = float(confidence_scores(out, reads)[:3].median())   # a score itself: ties are exercised
    return ConfidenceExit(level, 1.0, reads=reads, predict=predict), out


@pytest.mark.parametrize("reads,predict", [("step", "cumulative"), ("cumulative", "cumulative"),
                                           ("step", "step"), ("cumulative", "step")])
@pytest.mark.parametrize("batch_size", [None, 7, 100])  # batch_size=1: the refill test below
def test_fused_exit_decides_as_the_offline_rule(batch, reads, predict, batch_size):
    from snnlab.inference.adaptive import _fused_rule

    net = _net()
    rule, full = _spread_rule(net, batch, reads, predict)
    assert _fused_rule(rule)
    offline = rule(full)
    result = adaptive_inference(net, batch, rule, T=4, batch_size=batch_size)
    assert torch.equal(result.steps, offline.steps)
    assert torch.equal(result.predictions, offline.predictions)
    assert len(set(result.steps.tolist())) >= 2
    # every sample was computed exactly at its steps 1..exit, and the outputs there are the full run's
    computed = ~torch.isnan(result.outputs).any(-1)                       # [T, B]
    assert torch.equal(computed, torch.arange(1, 5)[:, None] <= result.steps[None])
    assert torch.allclose(result.outputs[computed], full[computed], atol=1e-5)
    assert sum(result.active) == int(offline.steps.sum())               # sample-steps computed
    slots = min(batch_size or 40, 40)
    assert max(result.active) <= slots


def test_batch_slots_refill_and_need_fewer_calls(batch):
    net = _net()
    rule, full = _spread_rule(net, batch)
    offline = rule(full)
    one_at_a_time = adaptive_inference(net, batch, rule, T=4, batch_size=1)
    # one slot: each call computes one sample at one of its steps, so the calls are the sample-steps
    assert one_at_a_time.active == [1] * int(offline.steps.sum())
    assert torch.equal(one_at_a_time.steps, offline.steps)
    assert torch.equal(one_at_a_time.predictions, offline.predictions)
    slots = adaptive_inference(net, batch, rule, T=4, batch_size=8)
    # slots stay full while samples wait; the calls follow the sample-steps, not T per batch of 8
    waiting_phase = slots.active[: len(slots.active) // 2]
    assert all(n == 8 for n in waiting_phase)
    assert len(slots.active) < 4 * 5
    assert len(slots.active) >= -(-int(offline.steps.sum()) // 8)


def test_fused_exit_matches_the_per_step_form_on_events():
    # event input [B, T', ...]: each row reads its own frame t, also after joining the batch late
    from snnlab.inference.adaptive import _online_inference
    from snnlab.neurons import StatefulNode

    net = _net()
    g = torch.Generator().manual_seed(5)
    frames = torch.rand(30, 4, 1, 8, 8, generator=g) * 3
    full, _ = fixed_inference(net, frames, T=4, kind="events")
    level = float(confidence_scores(full, "step")[:3].median())
    rule = ConfidenceExit(level, 1.0)
    offline = rule(full)
    nodes = [m for m in net.modules() if isinstance(m, StatefulNode)]
    generic = _online_inference(net, frames, rule, 4, "events", nodes)
    reset_model(net)
    for batch_size in (None, 4):
        fused = adaptive_inference(net, frames, rule, T=4, kind="events", batch_size=batch_size)
        assert torch.equal(fused.steps, offline.steps) and torch.equal(fused.steps, generic.steps)
        assert torch.equal(fused.predictions, offline.predictions)


def test_other_rules_run_in_batches(batch):
    net = _net("linear")
    full, _ = fixed_inference(net, batch, T=4)
    rule = EntropyExit(0.5)
    offline = rule(full)
    result = adaptive_inference(net, batch, rule, T=4, batch_size=16)
    assert torch.equal(result.steps, offline.steps) and torch.equal(result.predictions, offline.predictions)
    assert max(result.active) <= 16 and sum(result.active) == int(offline.steps.sum())
    hardware = ConfidenceExit(0.9, 0.99, hardware=True)     # the division-free form: its own per-step form
    assert torch.equal(adaptive_inference(net, batch, hardware, T=4, batch_size=16).steps, hardware(full).steps)


def test_fused_exit_rejects_non_finite_outputs_and_bad_batch_size(batch):
    net = _net()
    rule, _ = _spread_rule(net, batch)
    with pytest.raises(ValueError, match="batch_size"):
        adaptive_inference(net, batch, rule, T=4, batch_size=0)

    class Broken(nn.Module):
        def forward(self, x):
            out = torch.zeros(x.shape[0], x.shape[1], 3)
            out[:, 0, 1] = float("nan")
            return out

    with pytest.raises(ValueError, match="non-finite|NaN"):
        adaptive_inference(Broken(), batch, rule, T=4)


def test_exit_kernel_against_a_hand_example():
    # three samples, T = 3, C = 2, the step reading; sample 1 passes at step 1, sample 0 at step 2,
    # sample 2 never (it stops at T); predictions read the mean softmax y_t
    import numpy as np

    from snnlab.inference.exit_kernel import confidence_exit_step

    levels = np.array([0.8, 0.8, 0.8])
    steps, predictions = np.full(3, 3), np.zeros(3, dtype=np.int64)
    total = np.zeros((3, 2))
    alive, tstep, keep = np.arange(3), np.zeros(3, dtype=np.int64), np.empty(3, dtype=np.int64)
    outputs = np.full((3, 3, 2), np.nan, dtype=np.float32)
    p1 = np.array([[0.6, 0.4], [0.1, 0.9], [0.5, 0.5]])
    n = confidence_exit_step(p1.astype(np.float32), p1, total, alive, tstep, levels, outputs, steps, predictions,
                             keep, False, True)
    assert n == 2 and list(keep[:2]) == [0, 2] and list(alive[:2]) == [0, 2] and list(tstep[:2]) == [1, 1]
    assert steps[1] == 1 and predictions[1] == 1
    p2 = np.array([[0.15, 0.85], [0.55, 0.45]])
    n = confidence_exit_step(p2.astype(np.float32), p2, total, alive, tstep, levels, outputs, steps, predictions,
                             keep, False, True)
    # sample 0: y_2 = (0.6 + 0.15, 0.4 + 0.85) / 2 = (0.375, 0.625) -> class 1
    assert n == 1 and steps[0] == 2 and predictions[0] == 1 and alive[0] == 2
    p3 = np.array([[0.5, 0.5]])
    assert confidence_exit_step(p3.astype(np.float32), p3, total, alive, tstep, levels, outputs, steps,
                                predictions, keep, False, True) == 0
    # sample 2: y_3 = (1.55, 1.45) / 3 -> class 0; it ran all T steps
    assert steps[2] == 3 and predictions[2] == 0
    assert np.isnan(outputs[1:, 1]).all() and np.isnan(outputs[2:, 0]).all() and not np.isnan(outputs[:, 2]).any()
    bad = np.array([[np.nan, 0.0]], dtype=np.float32)
    assert confidence_exit_step(bad, p3, total, alive, tstep, levels, outputs, steps, predictions, keep,
                                False, True) == -1


# --- the fast per-step path (LayerStepper) --------------------------------------------------------


def _drive(stepper, x, kind, script):
    """Run ``script`` (("step",) / ("keep", rows) / ("add", sample indices)) on ``stepper``; each row's
    frame is its own step (events). Returns every step's outputs."""
    import numpy as np

    alive, tstep, outs = [], [], []
    for action in script:
        if action[0] == "add":
            stepper.add(x, action[1].start, action[1].stop)
            alive += list(action[1])
            tstep += [0] * len(action[1])
        elif action[0] == "keep":
            rows = np.array(action[1], dtype=np.int64)
            stepper.keep(rows)
            alive, tstep = [alive[r] for r in rows], [tstep[r] for r in rows]
        else:
            frames = None if kind == "static" else x[torch.tensor(alive), torch.tensor(tstep)]
            outs.append(stepper.step(frames).clone())
            tstep = [t + 1 for t in tstep]
    return outs


_SCRIPT = [("add", range(10)), ("step",), ("keep", [0, 2, 3, 7, 9]), ("step",), ("add", range(10, 14)),
           ("step",), ("keep", []), ("add", range(14, 17)), ("step",), ("keep", [2, 0]), ("step",)]


@pytest.mark.parametrize("kind", ["static", "events"])
@pytest.mark.parametrize("output,bn,ahead", [("integrator", True, 0), ("linear", False, 6)])
def test_layer_stepper_equals_the_module_path_bit_for_bit(kind, output, bn, ahead):
    from snnlab.inference.stepper import LayerStepper, ModuleStepper
    from snnlab.neurons import StatefulNode

    net = _net(output, bn=bn)
    g = torch.Generator().manual_seed(11)
    x = torch.rand(17, 1, 8, 8, generator=g) * 3 if kind == "static" else torch.rand(17, 4, 1, 8, 8, generator=g) * 3
    fast = LayerStepper.build(net, x, kind)
    assert fast is not None
    fast.ahead = ahead                    # the front may run on samples that join later
    reset_model(net)
    slow = ModuleStepper(net, [m for m in net.modules() if isinstance(m, StatefulNode)], kind)
    expected = _drive(slow, x, kind, _SCRIPT)
    reset_model(net)
    got = _drive(fast, x, kind, _SCRIPT)
    assert all(m.v is None for m in net.modules() if isinstance(m, StatefulNode))  # states of its own
    assert [tuple(o.shape) for o in got] == [tuple(o.shape) for o in expected]
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    # and the whole sequence equals one multi-step call of the model
    full, _ = fixed_inference(net, x, T=4, kind=kind)
    stepwise, _ = fixed_inference(net, x, T=4, kind=kind, step_by_step=True)
    assert torch.equal(stepwise, full)


def test_layer_stepper_only_where_it_is_exact(batch):
    from snnlab.inference.stepper import LayerStepper

    net = _net()
    assert LayerStepper.build(net, batch, "static") is not None
    assert LayerStepper.build(net, batch.double(), "static") is None            # float64: module path
    assert LayerStepper.build(net, batch[:, :, :4], "static") is None           # wrong shape: module path's error
    handle = net.classifier.register_forward_hook(lambda *a: None)
    assert LayerStepper.build(net, batch, "static") is None                     # hooks see module calls
    handle.remove()
    net.features[1].backend = "torch"
    assert LayerStepper.build(net, batch, "static") is None
    net.features[1].backend = "auto"
    assert LayerStepper.build(net.train(), batch, "static") is None
    assert LayerStepper.build(nn.Sequential(nn.Linear(64, 10)).eval(), batch, "static") is None  # no step_layers


def test_layer_stepper_rejects_non_finite_input(batch):
    from snnlab.inference.stepper import LayerStepper

    net = _net()
    bad = batch.clone()
    bad[3, 0, 2, 2] = float("nan")
    stepper = LayerStepper.build(net, bad, "static")
    stepper.add(bad, 0, len(bad))
    with pytest.raises(ValueError, match="non-finite"):
        stepper.step()
