"""``snnlab bench neurons``: its processes, its arithmetic, its targets and its profiler split.

No timing assertions (timings depend on the machine and its load). What is asserted, and can fail:
each configuration really runs in its own process; a configuration's figure is the median of the
processes' minima; targets divide the fastest peer (eager or compiled) by snnlab's best and compare
with the goal; notes for a missed target report the shares measured; the profiler attributes time
to the layer that spent it (forward and backward); workload d builds the same network everywhere
(first-step outputs equal); peak memory covers at least the step's output.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import pytest
import torch

from snnlab.bench import BENCHMARKS, measure, peers
from snnlab.bench import neurons as bench


def _args(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--quick"])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


@pytest.fixture(scope="module")
def result() -> dict:
    # snnlab and its torch path only: the peers are optional extras (pip install -e ".[bench]")
    return bench.run(_args(libraries="snnlab,snnlab-torch", modes="eager"))


def test_registered():
    assert BENCHMARKS["neurons"] == "snnlab.bench.neurons"


def test_every_configuration_runs_in_its_own_process(result):
    json.dumps(result)
    a = result["workload_a"]["results"]
    pids = {name: entry["pids"] for name, entry in a.items()}
    roofline = result["workload_a"]["roofline"]["pids"]
    every = [p for ps in pids.values() for p in ps] + roofline
    assert len(set(every)) == len(every) and os.getpid() not in every
    assert set(a) == {"snnlab", "snnlab-torch"}
    for entry in a.values():
        assert entry["spike_agreement_with_snnlab"] == 1.0          # the same dynamics
        for phase in ("forward", "forward_backward"):
            t = entry[phase]
            assert t["time_s"] == sorted(t["min_s_per_process"])[len(t["min_s_per_process"]) // 2]
            assert all(m <= med for m, med in zip(t["min_s_per_process"], t["median_s_per_process"]))
    ratio = result["workload_a"]["ratios"]["forward_backward"]["snnlab-torch_over_snnlab"]
    assert ratio == pytest.approx(a["snnlab-torch"]["forward_backward"]["time_s"] / a["snnlab"]["forward_backward"]["time_s"])


def test_method_versions_and_load_are_recorded(result):
    assert "fresh Python process" in result["method"]["processes"]
    assert result["versions"]["torch"] == torch.__version__
    assert isinstance(result["load_average_1m_start"], float)
    for entry in result["workload_a"]["results"].values():
        assert all(len(pair) == 2 for pair in entry["load_average_1m_per_process"])
    assert set(result["configurations"]) == {"snnlab", "snnlab-torch"}


def test_workload_d_builds_the_same_network(result):
    d = result["workload_d"]
    # snnlab's torch path is an independent implementation of the same neuron: same first step
    assert d["first_step_outputs_vs_snnlab"]["snnlab-torch"]["equal"] is True
    assert "BatchNormNeuron" in d["built_as"] and "channels_last" in d["built_as"]
    for name, entry in d["results"].items():
        prof = entry["profile"]
        if name == "snnlab":       # BN and LIF fused in one layer, timed as one
            assert prof["conv"] > 0 and prof["bn_neuron"] > 0 and prof["bn"] == prof["neuron"] == 0, name
        else:
            assert prof["conv"] > 0 and prof["neuron"] > 0 and prof["bn"] > 0 and prof["bn_neuron"] == 0, name
        assert prof["conv"] + prof["bn"] + prof["neuron"] + prof["bn_neuron"] <= prof["total_wall_s"] * 1.05
    assert "Norse" in d["not_built_in"]["norse"]


def test_workload_b_and_c(result):
    b = result["workload_b"]["by_n"]["16"]
    assert b["linear_only"]["forward_backward"]["time_s"] > 0
    for entry in b["results"].values():
        assert entry["saved_for_backward_bytes"] > 0 and 0 <= entry["firing_rate"] <= 1
    c = result["workload_c_thread_team"]
    assert [row["neuron_steps"] for row in c["rows"]] == [4096, 65536]
    faster = [row["neuron_steps"] for row in c["rows"] if row["team_speedup"] > 1]
    assert c["smallest_size_where_team_is_faster"] == (min(faster) if faster else None)


# ------------------------------------------------------------------------------------------------
# the arithmetic, on made-up measurements
# ------------------------------------------------------------------------------------------------


def _proc(seconds_min, seconds_median, pid=1):
    return {"result": {"forward_backward": {"min_s": seconds_min, "median_s": seconds_median, "repeats": 3},
                       "firing_rate": 0.2},
            "load_average_1m": [1.0, 1.5], "pid": pid}


def test_aggregate_takes_the_median_of_the_process_minima():
    merged = bench.aggregate([_proc(3.0, 4.0, 1), _proc(1.0, 9.0, 2), _proc(2.0, 2.5, 3)])
    assert merged["forward_backward"]["time_s"] == 2.0
    assert merged["forward_backward"]["min_s_per_process"] == [3.0, 1.0, 2.0]
    assert merged["processes"] == 3 and merged["pids"] == [1, 2, 3] and merged["firing_rate"] == 0.2
    partial = bench.aggregate([_proc(3.0, 4.0), {"error": "boom"}])
    assert partial["forward_backward"]["time_s"] == 3.0 and partial["failed_processes"] == ["boom"]
    assert bench.aggregate([{"error": "boom"}]) == {"error": "boom"}


def test_schedule_orders():
    assert bench.schedule(["a", "b"], 2, "rounds") == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    assert bench.schedule(["a", "b"], 2, "blocks") == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]


def _timing(t):
    return {"time_s": t}


def test_targets_divide_the_fastest_peer_by_snnlabs_best():
    a_results = {"snnlab": {"forward_backward": _timing(2.0)}, "snnlab+compile": {"forward_backward": _timing(1.0)},
                 "spikingjelly": {"forward_backward": _timing(9.0)}, "spikingjelly+compile": {"forward_backward": _timing(3.0)},
                 "snntorch+compile": {"forward_backward": _timing(4.0)}, "snnlab-torch": {"forward_backward": _timing(0.1)}}
    b_results = {"snnlab": {"forward_backward": _timing(1.0), "forward": _timing(0.5)},
                 "norse": {"forward_backward": _timing(1.2), "forward": _timing(0.9)}}
    result = {"workload_a": {"results": a_results, "roofline": {"forward_backward": _timing(0.4)}},
              "workload_b": {"by_n": {"8": {"results": b_results, "linear_only": {"forward_backward": _timing(0.8),
                                                                                    "forward": _timing(0.3)}}}}}
    every_peer = {bench.config_name(lib, c): {"forward_backward": _timing(20.0), "forward": _timing(20.0)}
                  for lib in ("spikingjelly", "snntorch", "norse") for c in (False, True)}
    a_results = {**every_peer, **a_results}
    b_results = {**every_peer, **b_results}
    result = {"workload_a": {"results": a_results, "roofline": {"forward_backward": _timing(0.4)}},
              "workload_b": {"by_n": {"8": {"results": b_results, "linear_only": {"forward_backward": _timing(0.8),
                                                                                    "forward": _timing(0.3)}}}}}
    goals = bench.targets(result)
    a = goals["a_forward_backward_over_best_peer_at_least_2.5"]
    # snnlab-torch is not a peer; the fastest peer is SpikingJelly compiled (3.0), snnlab's best is compiled (1.0)
    assert (a["value"], a["met"], a["best_peer"], a["snnlab_config"]) == (3.0, True, "spikingjelly+compile", "snnlab+compile")
    assert a["status"] == "met" and "missing_peers" not in a
    assert a["snnlab_eager_value"] == 1.5
    roof = goals["a_forward_backward_within_2x_of_copy_roofline"]
    assert roof["value"] == pytest.approx(2.5) and roof["met"] is False and roof["status"] == "missed"
    fb, f = goals["b_n8_forward_backward_over_best_peer_at_least_1.5"], goals["b_n8_forward_over_best_peer_at_least_1.5"]
    assert (fb["value"], fb["status"]) == (pytest.approx(1.2), "missed") and (f["value"], f["status"]) == (pytest.approx(1.8), "met")
    notes = bench.where_the_time_goes(result, goals)
    assert set(notes) == {"a_forward_backward_within_2x_of_copy_roofline", "b_n8_forward_backward_over_best_peer_at_least_1.5"}
    # the Linear takes 0.8 of snnlab's 1.0 s; a free neuron would give at most 1.2 / 0.8 = 1.5x
    assert "80 %" in notes["b_n8_forward_backward_over_best_peer_at_least_1.5"]
    assert "1.5x" in notes["b_n8_forward_backward_over_best_peer_at_least_1.5"]
    nobody = bench.targets({"workload_a": {"results": {"snnlab": {"forward_backward": _timing(1.0)}},
                                           "roofline": {"forward_backward": _timing(1.0)}}})
    alone = nobody["a_forward_backward_over_best_peer_at_least_2.5"]
    assert alone["status"] == "incomplete" and alone["met"] is None and alone["reason"] == "no peer measured"
    assert set(alone["missing_peers"]) == {"spikingjelly", "spikingjelly+compile", "snntorch", "snntorch+compile",
                                           "norse", "norse+compile"}


def test_a_failed_or_missing_peer_makes_a_target_incomplete_not_met():
    """snnlab beats every peer that ran, but one peer timed out and one is not installed: no verdict."""
    results = {"snnlab": {"train_step": _timing(1.0)}, "spikingjelly": {"train_step": _timing(5.0)},
               "snntorch": {"train_step": _timing(6.0)}, "snntorch+compile": {"train_step": _timing(4.0)},
               "spikingjelly+compile": {"error": "timed out after 3600 s"}}
    run = {"workload_d": {"results": results},
           "libraries": {"snnlab": {"available": True}, "spikingjelly": {"available": True},
                         "snntorch": {"available": True}},
           "settings": {"modes": ["eager", "compiled"]}}
    d = bench.targets(run)["d_train_step_over_best_peer_at_least_1.5"]
    assert d["status"] == "incomplete" and d["met"] is None and d["met_among_measured"] is True
    assert d["missing_peers"] == {"spikingjelly+compile": "failed: timed out after 3600 s"}  # Norse is no peer of (d)
    assert "spikingjelly+compile" in d["status_note"] and d["value"] == 4.0
    assert "d_train_step_over_best_peer_at_least_1.5" not in bench.where_the_time_goes(run, {"d_train_step_over_best_peer_at_least_1.5": d})
    a_run = {"workload_a": {"results": {k: {"forward_backward": v["train_step"]} for k, v in results.items()
                                        if "error" not in v}, "roofline": {}},
             "libraries": {"norse": {"available": False, "reason": "No module named 'norse'"}, "spikingjelly": {},
                           "snntorch": {}},
             "settings": {"modes": ["eager"]}}
    a = bench.targets(a_run)["a_forward_backward_over_best_peer_at_least_2.5"]
    assert a["status"] == "incomplete"
    assert a["missing_peers"]["norse"].startswith("not installed: No module named 'norse'")
    assert a["missing_peers"]["spikingjelly+compile"] == "not selected (--modes)"


def test_run_marks_targets_incomplete_when_a_peer_process_fails(monkeypatch):
    """The whole command with fake measurement processes: a peer's process fails, so no target says met."""
    def fake_spawn(spec, timeout):
        if spec["library"] == "snntorch" and spec["compiled"]:
            return {"error": "RuntimeError: inductor failed"}
        seconds = 1.0 if spec["library"] in ("snnlab", "linear-only") else 10.0
        phases = {p: {"min_s": seconds, "median_s": seconds, "repeats": 1} for p in ("forward", "backward", "forward_backward")}
        return {"result": phases, "load_average_1m": [0.0, 0.0], "pid": 1}

    monkeypatch.setattr(bench, "_spawn", fake_spawn)
    monkeypatch.setattr(bench, "availability", lambda lib: {"available": True, "version": "0"})
    out = bench.run(_args(workloads="b", libraries="snnlab,spikingjelly,snntorch,norse", modes="eager,compiled"))
    goals = [g for k, g in out["targets"].items() if k.startswith("b_")]
    assert goals and all(g["status"] == "incomplete" and g["met"] is None for g in goals)
    assert all(set(g["missing_peers"]) == {"snntorch+compile"} for g in goals)
    assert all("inductor failed" in g["missing_peers"]["snntorch+compile"] for g in goals)
    assert out["where_the_time_goes"] == {}


# ------------------------------------------------------------------------------------------------
# the profiler split and the peak memory, against known costs
# ------------------------------------------------------------------------------------------------


class _SlowConv(torch.nn.Conv2d):
    def forward(self, x):
        time.sleep(0.05)
        return super().forward(x)


class SlowLIFNode(torch.nn.Module):   # named like a neuron: profile_split labels it "neuron"
    def forward(self, x):
        time.sleep(0.08)
        return _SlowBackward.apply(x)


class _SlowBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return (x > 0).float()

    @staticmethod
    def backward(ctx, g):
        time.sleep(0.06)   # the neuron's backward: must be counted as the neuron's
        return g


def test_profile_split_attributes_forward_and_backward_to_the_layer():
    model = torch.nn.Sequential(_SlowConv(1, 2, 3), torch.nn.BatchNorm2d(2), SlowLIFNode(), torch.nn.Flatten(),
                                torch.nn.Linear(2 * 6 * 6, 3))
    x = torch.randn(4, 1, 8, 8)

    def step():
        model.zero_grad()
        model(x).square().sum().backward()

    split = measure.profile_split(model, step, compiled=False)
    assert split["conv"] >= 0.05
    assert 0.14 <= split["neuron"] < split["total_wall_s"]       # forward 0.08 + backward 0.06
    assert split["rest"] < split["total_wall_s"] - 0.19
    assert split["bn"] > 0


def test_peak_memory_covers_the_step_output():
    T, B, n = 64, 16, 512
    child = bench._spawn({"workload": "b", "library": "snnlab", "compiled": False, "threads": 1, "allocator": "default",
                          "params": {"steps": T, "batch": B, "n": n, "warmup": 1, "repeats": 1, "peak_memory": True}},
                         timeout=600)
    assert child["pid"] != os.getpid()
    # the Linear's output and the spikes, float32, must have been resident at once
    assert child["result"]["peak_rss_increase_bytes"] >= 2 * T * B * n * 4


@pytest.mark.slow
def test_compiled_snnlab_runs_in_its_own_process():
    out = bench.run(_args(libraries="snnlab", modes="eager,compiled", workloads="a"))
    results = out["workload_a"]["results"]
    assert set(results) == {"snnlab", "snnlab+compile"}
    compiled = results["snnlab+compile"]
    assert compiled["spike_agreement_with_snnlab"] == 1.0
    assert compiled["forward_backward"]["first_call_s_per_process"][0] > compiled["forward_backward"]["time_s"]


def test_missing_baseline_is_skipped_with_reason(monkeypatch):
    real = bench.availability

    def pretend_missing(lib):
        if lib == "norse":
            return {"available": False, "reason": "ModuleNotFoundError: No module named 'norse'"}
        return real(lib)

    monkeypatch.setattr(bench, "availability", pretend_missing)
    out = bench.run(_args(workloads="c", libraries="snnlab,norse", modes="eager"))
    assert out["libraries"]["norse"]["available"] is False and "norse" in out["libraries"]["norse"]["reason"]
    assert out["configurations"] == ["snnlab"]


def test_same_weights_in_every_library():
    spec = peers.ConvSpec(channels=(3, 4), size=8, steps=2, batch=2)
    a, b = peers.build_conv_snn("snnlab", spec), peers.build_conv_snn("snnlab-torch", spec)
    peers.copy_weights(a, b)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), (na, nb)
    with pytest.raises(ValueError, match="same weighted layers"):
        peers.copy_weights(a, peers.build_conv_snn("snnlab", peers.ConvSpec(channels=(3,), size=8, steps=2, batch=2)))


def test_snnlab_network_is_the_plain_composition(monkeypatch):
    """snnlab's workload-d network (BatchNormNeuron, channels_last) and the plain one (TimeFolded(conv,
    BN) then the torch-path LIF, default layout) give the same outputs, parameter gradients and running
    statistics from the same weights: the fused layer and the layout change nothing but the speed."""
    from snnlab.neurons import bn_kernels

    spec = peers.ConvSpec(channels=(4, 8), size=32, steps=4, batch=8)     # both layers large enough to fuse
    x, labels = peers.event_frames(spec)
    calls = []
    real = bn_kernels.bn_spiking_backward
    monkeypatch.setattr(bn_kernels, "bn_spiking_backward", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    fused, plain = peers.build_conv_snn("snnlab", spec), peers.build_conv_snn("snnlab-torch", spec)
    peers.copy_weights(plain, fused)
    assert any(type(m).__name__ == "BatchNormNeuron" for m in fused.modules())
    assert next(fused.parameters()).is_contiguous(memory_format=torch.channels_last)
    outs = []
    for model in (fused, plain):
        peers.reset_conv_snn(model)
        out = model(x)
        torch.nn.functional.cross_entropy(out.mean(0), labels).backward()
        outs.append(out.detach())
    assert torch.equal(outs[0], outs[1])
    assert len(calls) == len(spec.channels)                    # the fused kernels ran, in every block
    weighted = [[m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear))]
                for net in (fused, plain)]
    for a, b in zip(*weighted):
        torch.testing.assert_close(a.weight.grad, b.weight.grad, rtol=1e-4, atol=1e-5)
        if isinstance(a, torch.nn.BatchNorm2d):
            torch.testing.assert_close(a.running_var, b.running_var, rtol=1e-5, atol=1e-6)


def test_bad_options_raise():
    for bad, match in ((dict(workloads="e"), "workload"), (dict(order="random"), "order"), (dict(modes="jit"), "mode"),
                       (dict(c_sizes="4"), "c-sizes"), (dict(libraries="brian2"), "library"),
                       (dict(warmup=0), "warmup"), (dict(d_size=2, d_channels="4,4"), "d-size")):
        with pytest.raises(ValueError, match=match):
            bench.run(_args(**bad))
