"""snnlab.hardware: hand counts on tiny nets, eq. 19 and torch equality on a trained network,
Numba vs the pure-Python loop, designs, energy tables, and bad input."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from snnlab.hardware import (
    COUNTERS, HOROWITZ_45NM_TABLE, SATA_SIM_TABLE, AcceleratorConfig, EnergyTable, GpuModel, atsn_accelerator,
    compile_network, conventional_accelerator, conventional_with_exit, deploy_fixed_point, exactness_report,
    network_flops, prepare, quantize_input, reference_simulate, simulate,
)
from snnlab.hardware.mapping import shift_add_terms
from snnlab.inference import ConfidenceExit, FixedSteps, SynapticOpCounter, adaptive_inference, fixed_inference
from snnlab.neurons import LIFNode, NonSpikingIntegrator


def _lif():
    return LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0, step_mode="m")


def _tiny_linear():
    """Linear(4->3) + LIF + Linear(3->2) + integrator, weights chosen for a hand count."""
    net = nn.Sequential(nn.Linear(4, 3), _lif(), nn.Linear(3, 2), NonSpikingIntegrator(0.5, step_mode="m"))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0], [0.5, 0, 1, 0]]))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor([[1.0, 0, -1], [0.5, 0.5, 0.5]]))
        net[2].bias.copy_(torch.tensor([0.25, 0.0]))
    return net.eval()


def _layer(result, i, name):
    return result.counters[:, i, COUNTERS.index(name)].sum()


def test_tiny_linear_net_matches_hand_counts():
    net = _tiny_linear()
    x = torch.tensor([[1.0, 0.0, 0.5, 0.0]])
    r = simulate(net, x, T=2, config=atsn_accelerator(adaptive=False), input_shape=(4,), record_spikes=True)
    # hidden layer: u = W x: neuron 0 gets 1 (spikes every step), neuron 1 gets 0.5 (0.5, 0.75: never),
    # neuron 2 gets 0.5 + 0.5 = 1 (spikes every step)
    assert r.spikes["0"][:, 0].tolist() == [[1, 0, 1], [1, 0, 1]]
    # layer 1 per step: 2 non-zero inputs x 3 neurons = 6 accumulates; the 0.5 pixel is a
    # multiply-accumulate (3 multiplies); 3 neuron updates = 3 shifts, 3 bias adds, 3 compares, 6 mux, 9 registers
    expect1 = {"accumulate": 12, "synaptic_ops": 12, "multiply": 6, "shift": 6, "add": 6, "compare": 6, "mux": 12,
               "register": 18, "spikes": 4, "dram": 4, "input_events": 4, "neuron_updates": 6}
    for name, value in expect1.items():
        assert _layer(r, 0, name) == value, name
    # SRAM: image stored (4); t=1: weights+biases 3x5=15, 2 events, 3 potentials saved, 2 spikes out;
    # t=2: 15 + 3 restored, 2, 3, 2
    assert _layer(r, 0, "sram") == 4 + (15 + 2 + 3 + 2) + (18 + 2 + 3 + 2)
    # cycles: load ceil(15/16)=1 then ceil(18/16)=2; update 1; 2 events x 1 cycle (3 neurons on 3 PEs); save 1
    assert _layer(r, 0, "cycles") == (1 + 1 + 2 + 1) + (2 + 1 + 2 + 1)
    # output layer on the AT unit, per step: 2 spikes x 2 outputs = 4 accumulates; update 2 (shift,
    # bias add, 1 mux, no compare); readout 2 interpolations + 2 products (4 multiplies), adds 2+4+1+2,
    # max 1 compare; final argmax 1 compare
    expect2 = {"accumulate": 8, "shift": 4, "multiply": 8, "add": 4 + 18, "compare": 2 + 1, "mux": 4, "dram": 1}
    for name, value in expect2.items():
        assert _layer(r, 1, name) == value, name
    # AT cycles: load 2x4 = 8 words (1 cycle) once; per step update 2 + events 2x2 + readout 2*2+1
    assert _layer(r, 1, "cycles") == 1 + 2 * (2 + 4 + 5)
    # outputs: f1 = W s + b = [0, 1.0] + [0.25, 0]; f2 = 0.5 f1 + W s + b
    f1 = np.array([1 - 1 + 0.25, 1.0])
    np.testing.assert_array_equal(r.outputs[:, 0], [f1, 0.5 * f1 + f1])
    out = net(x.expand(2, 1, 4).contiguous()).detach().double().numpy()
    np.testing.assert_array_equal(r.outputs, out)


def _tiny_conv():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), _lif(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8, 3), NonSpikingIntegrator(0.5, step_mode="m"))
    with torch.no_grad():
        net[0].weight.fill_(0.5)
        net[0].bias.zero_()
        net[4].weight.fill_(0.25)
        net[4].bias.zero_()
    return net.eval()


class _TimeConv(nn.Module):
    """[T, B, ...] wrapper so the tiny conv net runs in torch for the eq. 19 counter."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        T, B = x.shape[:2]
        h = self.net[0](x.flatten(0, 1))
        s = self.net[1](h.reshape(T, B, *h.shape[1:]))
        p = self.net[2](s.flatten(0, 1)).flatten(1)
        return self.net[5](self.net[4](p).reshape(T, B, -1))


def test_conv_fan_out_at_the_border_and_pooling_are_counted_by_hand():
    net = _tiny_conv()
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1.0      # a corner pixel reaches 2x2 positions in each of 2 channels
    x[0, 0, 1, 1] = 1.0      # an inner pixel reaches 3x3 positions x 2 channels
    r = simulate(net, x, T=1, config=atsn_accelerator(adaptive=False), record_spikes=True)
    assert _layer(r, 0, "synaptic_ops") == 2 * 4 + 2 * 9
    assert _layer(r, 0, "multiply") == 0           # both pixels are 1: accumulate only
    # potentials 0.5 x (number of the two pixels in the window); spikes where both are (u = 1)
    spikes = r.spikes["0"][0, 0].reshape(2, 4, 4)
    expect = np.zeros((4, 4), dtype=np.uint8)
    expect[0:2, 0:2] = 1
    assert (spikes == expect).all()
    # pooling 2x2 -> 2 channels x 2 x 2, 3 compares each; one pooled spike per channel
    assert _layer(r, 0, "compare") == 32 + 8 * 3
    assert _layer(r, 1, "input_events") == 2 and _layer(r, 1, "synaptic_ops") == 2 * 3
    # the same counts as ATSN eq. 19's counter on the torch network
    with SynapticOpCounter(_TimeConv(net)) as counter:
        _TimeConv(net)(x[None])
    assert counter.report().operations == [26.0, 6.0]


def test_output_buffer_full_stalls():
    # 200 neurons on one PE (a 2x2 array = 3 PEs + AT, linear layer of 600 neurons) all spiking
    net = nn.Sequential(nn.Linear(1, 600), _lif(), nn.Linear(600, 2), NonSpikingIntegrator(0.5, step_mode="m"))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.zero_()
        net[2].weight.fill_(0.0)
        net[2].bias.zero_()
    cfg = atsn_accelerator(rows=2, cols=2, pe_memory_bytes=4096, at_memory_bytes=8192, adaptive=False)
    r = simulate(net, torch.ones(1, 1), T=1, config=cfg, input_shape=(1,))
    assert r.mappings[0].per_unit == 200 and r.mappings[0].tiles == 1
    # 200 spikes into a 64-entry buffer: 3 flushes of ceil(64/16) = 4 cycles
    assert _layer(r, 0, "stall_cycles") == 3 * 4
    r2 = simulate(net, torch.ones(1, 1), T=1, config=cfg.replace(out_buffer_bytes=512), input_shape=(1,))
    assert _layer(r2, 0, "stall_cycles") == 0


# ---- a trained network ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained():
    from snnlab.data import load_dataset
    from snnlab.inference.ablation import train_variant

    torch.manual_seed(0)
    train_set = load_dataset("digits", train=True, augment=False)
    net, _ = train_variant("neuron_loss", train_set=train_set, epochs=1, T=4, max_batches=12)
    deployed = deploy_fixed_point(net, 8)
    test_set = load_dataset("digits", train=False)
    x = quantize_input(torch.stack([test_set[i][0] for i in range(120)]), 6)
    return deployed, x


def _torch_spikes(model, x, T):
    spikes = {}
    hooks = [m.register_forward_hook(lambda mod, a, out, n=name: spikes.__setitem__(n, out.detach()))
             for name, m in model.named_modules() if isinstance(m, LIFNode)]
    try:
        out, _ = fixed_inference(model, x, T=T)
    finally:
        for h in hooks:
            h.remove()
    return out, spikes


def test_trained_network_equals_torch_bit_for_bit_fixed_T(trained):
    model, x = trained
    r = simulate(model, x, T=4, config=atsn_accelerator(adaptive=False), record_spikes=True)
    out, spikes = _torch_spikes(model, x, 4)
    np.testing.assert_array_equal(r.outputs, out.double().numpy())
    prog = compile_network(model, (1, 8, 8))
    lif_layers = [l.name for l in prog.layers if l.neuron == "lif"]
    assert len(spikes) == len(lif_layers) == len(r.spikes)
    for (name, s_torch), s_sim in zip(spikes.items(), r.spikes.values()):
        assert s_torch.sum() > 0
        np.testing.assert_array_equal(s_sim, s_torch.flatten(2).numpy().astype(np.uint8))
    fixed = ConfidenceExit(0.999, 0.999).step_predictions(out)[-1]
    np.testing.assert_array_equal(r.predictions, fixed.numpy())
    assert (r.steps == 4).all()
    report = exactness_report(prog, x.numpy(), r.max_abs_potential, 4)
    assert all(row["exact_in_float32"] for row in report)


@pytest.mark.parametrize("cl_init, tau_cl", [(0.999, 0.999), (0.7, 0.95), (0.3, 0.9)])
def test_trained_network_exits_and_predicts_like_confidence_exit(trained, cl_init, tau_cl):
    model, x = trained
    r = simulate(model, x, T=4, cl_init=cl_init, tau_cl=tau_cl)
    rule = ConfidenceExit(cl_init, tau_cl, hardware=True)
    decided = rule(fixed_inference(model, x, T=4)[0])
    np.testing.assert_array_equal(r.steps, decided.steps.numpy())
    np.testing.assert_array_equal(r.predictions, decided.predictions.numpy())
    if cl_init < 0.9:
        assert r.mean_steps < 4
    # eq. 19: the synaptic operations per layer equal the analytic count over the computed steps
    with SynapticOpCounter(model) as counter:
        adaptive_inference(model, x, rule, T=4)
    np.testing.assert_allclose(r.counts("synaptic_ops"), counter.report().operations, rtol=0, atol=0)
    assert r.counts("accumulate").tolist() == counter.report().operations
    # outputs at computed steps are torch's, NaN after the exit
    steps = np.arange(1, 5)[:, None]
    assert np.isnan(r.outputs[steps > r.steps[None]]).all()
    assert not np.isnan(r.outputs[steps <= r.steps[None]]).any()


def test_pure_python_reference_equals_numba(trained):
    model, x = trained
    for cfg in (atsn_accelerator(), conventional_accelerator(), atsn_accelerator(exp_table_entries=64)):
        a = simulate(model, x[:6], T=3, config=cfg, cl_init=0.3, tau_cl=0.9, record_spikes=True)
        b = reference_simulate(model, x[:6], T=3, config=cfg, cl_init=0.3, tau_cl=0.9, record_spikes=True)
        np.testing.assert_array_equal(a.counters, b.counters)
        np.testing.assert_array_equal(a.outputs, b.outputs)
        np.testing.assert_array_equal(a.steps, b.steps)
        np.testing.assert_array_equal(a.predictions, b.predictions)
        for k in a.spikes:
            np.testing.assert_array_equal(a.spikes[k], b.spikes[k])
    with pytest.raises(ValueError, match="max_synapses"):
        reference_simulate(model, x, T=4, max_synapses=1000)


def test_designs_differ_only_where_they_should(trained):
    model, x = trained
    atsn = simulate(model, x, T=4, cl_init=0.3, tau_cl=0.95)
    conv_exit = simulate(model, x, T=4, cl_init=0.3, tau_cl=0.95, config=conventional_with_exit())
    conv = simulate(model, x, T=4, config=conventional_accelerator())
    np.testing.assert_array_equal(atsn.steps, conv_exit.steps)
    # multiplier decay: one multiply per neuron update instead of a shift
    updates = conv_exit.counts("neuron_updates", "total")
    assert conv_exit.counts("multiply", "total") == atsn.counts("multiply", "total") + updates
    assert conv_exit.counts("shift", "total") == 0 and atsn.counts("shift", "total") == updates
    assert conv_exit.energy()["total"] > atsn.energy()["total"]
    # conventional: all T steps, the summed-output readout, no AT unit
    assert (conv.steps == 4).all() and all(m.unit == "pe" for m in conv.mappings)
    out = fixed_inference(model, x, T=4)[0]
    np.testing.assert_array_equal(conv.predictions, FixedSteps("mean_logits")(out).predictions.numpy())
    assert conv.counts("synaptic_ops", "total") >= atsn.counts("synaptic_ops", "total")


def test_exp_table_changes_only_the_exit_decision(trained):
    model, x = trained
    exact = simulate(model, x, T=4, config=atsn_accelerator(adaptive=False))
    table = simulate(model, x, T=4, config=atsn_accelerator(adaptive=False, exp_table_entries=16))
    np.testing.assert_array_equal(exact.outputs, table.outputs)
    fine = simulate(model, x, T=4, cl_init=0.3, tau_cl=0.95, config=atsn_accelerator(exp_table_entries=512))
    coarse = simulate(model, x, T=4, cl_init=0.3, tau_cl=0.95, config=atsn_accelerator(exp_table_entries=4))
    ref = simulate(model, x, T=4, cl_init=0.3, tau_cl=0.95)
    assert (fine.steps != ref.steps).sum() <= (coarse.steps != ref.steps).sum()


def test_result_summary_time_and_energy(trained):
    model, x = trained
    cfg = atsn_accelerator(clock_hz=250e6, n_accelerators=2)
    r = simulate(model, x[:10], T=4, config=cfg)
    cycles = r.counts("cycles", "total") / 10
    assert r.latency_s == pytest.approx(cycles / 250e6)
    assert r.fps == pytest.approx(2 * 250e6 / cycles)
    e = r.energy(SATA_SIM_TABLE)
    counts = {k: r.counts(k, "total") / 10 for k in COUNTERS}
    assert e["total"] == pytest.approx(sum(counts[k] * SATA_SIM_TABLE.costs[k] for k in SATA_SIM_TABLE.costs))
    layers = r.per_layer(HOROWITZ_45NM_TABLE)
    assert sum(row["energy"] for row in layers) == pytest.approx(r.energy(HOROWITZ_45NM_TABLE)["total"])
    assert r.joules_per_inference(HOROWITZ_45NM_TABLE) == pytest.approx(r.energy(HOROWITZ_45NM_TABLE)["total"] * 1e-12)
    assert 0 < r.utilisation <= 1 and all(0 <= row["utilisation"] <= 1 for row in layers)
    with pytest.raises(ValueError, match="relative"):
        r.joules_per_inference(SATA_SIM_TABLE)


# Transcribed from the cited sources, not from energy.py: RuokaiYin/SATA_Sim energy_configs.py
# (argparse defaults: --mul 0.239, --acc 0.0389, --add 0.00967, --comp 0.00309, --mux 0.00172,
# --reg 0.0301) and SATA_mem/mem_configs.py (--dram 55.58, --sram 1.95, --spad 0.2779).
SATA_SOURCE = {"multiply": 0.239, "accumulate": 0.0389, "add": 0.00967, "compare": 0.00309, "mux": 0.00172,
               "register": 0.0301, "dram": 55.58, "sram": 1.95, "scratchpad": 0.2779}
# Horowitz, ISSCC 2014, 45 nm: SRAM read of 64 bits 10 pJ (8 KB) and 20 pJ (32 KB); DRAM 1.3-2.6 nJ
# per 64 bits; integer add 0.03 pJ (8 bit) and 0.1 pJ (32 bit); multiply 0.2 pJ (8 bit), 3.1 pJ (32 bit).
HOROWITZ_64BIT_PJ = {"sram_8kb": 10.0, "sram_32kb": 20.0, "dram_low": 1300.0, "dram_high": 2600.0}


def test_energy_tables_match_their_sources():
    for name, value in SATA_SOURCE.items():
        assert SATA_SIM_TABLE.costs[name] == value, name
    # SATA-Sim has no shifter: ours must cost less than its adder (a shift is wiring plus a mux)
    assert 0 < SATA_SIM_TABLE.costs["shift"] < SATA_SOURCE["add"]
    # per 16-bit word = a quarter of Horowitz's 64-bit access; DRAM at the midpoint of his range
    assert HOROWITZ_45NM_TABLE.costs["scratchpad"] == HOROWITZ_64BIT_PJ["sram_8kb"] / 4
    assert HOROWITZ_45NM_TABLE.costs["sram"] == HOROWITZ_64BIT_PJ["sram_32kb"] / 4
    assert HOROWITZ_45NM_TABLE.costs["dram"] == (HOROWITZ_64BIT_PJ["dram_low"] + HOROWITZ_64BIT_PJ["dram_high"]) / 2 / 4
    assert 0.03 < HOROWITZ_45NM_TABLE.costs["add"] < 0.1 and 0.2 < HOROWITZ_45NM_TABLE.costs["multiply"] < 3.1
    # a hand count: one LIF update with a one-shift decay and one accumulated spike, SATA-Sim's
    # accounting (add + compare + 2 mux + 3 registers + shift, then accumulate + 3 scratchpad accesses)
    counts = {"add": 1, "compare": 1, "mux": 2, "register": 3, "shift": 1, "accumulate": 1, "scratchpad": 3}
    by_hand = (0.00967 + 0.00309 + 2 * 0.00172 + 3 * 0.0301 + SATA_SIM_TABLE.costs["shift"] + 0.0389 + 3 * 0.2779)
    assert SATA_SIM_TABLE.energy(counts)["total"] == pytest.approx(by_hand, rel=1e-12)


def test_energy_tables_and_gpu_model():
    counts = {"multiply": 2, "accumulate": 10, "dram": 1}
    assert SATA_SIM_TABLE.energy(counts)["total"] == pytest.approx(2 * 0.239 + 10 * 0.0389 + 55.58)
    cheap = SATA_SIM_TABLE.with_costs(dram=0.0)
    assert cheap.energy(counts)["total"] == pytest.approx(2 * 0.239 + 10 * 0.0389)
    with pytest.raises(ValueError, match="lacks"):
        EnergyTable("x", "pJ", {"add": 1.0}, "none")
    with pytest.raises(ValueError, match="unknown cost"):
        SATA_SIM_TABLE.with_costs(divide=1.0)
    prog = compile_network(_tiny_linear(), (4,))
    flops = network_flops(prog, T=3)
    assert flops["per_step"] == 2 * 12 + 3 * 4 + 2 * 6 + 2 * 4
    gpu = GpuModel(power_w=100.0, peak_flops=1e9, utilisation=0.5, launch_overhead_s=0.0)
    est = gpu.estimate(prog, T=3)
    assert est["seconds"] == pytest.approx(flops["total"] / 0.5e9)
    assert est["joules"] == pytest.approx(100.0 * est["seconds"]) and est["fps"] == pytest.approx(1 / est["seconds"])
    with pytest.raises(ValueError, match="utilisation"):
        GpuModel(utilisation=2.0)


def test_fixed_point_deployment():
    net = _tiny_linear()
    with torch.no_grad():
        net[0].weight.add_(0.001)
    dep = deploy_fixed_point(net, 4)
    w = dep[0].weight.detach()
    assert torch.equal(w * 16, torch.round(w * 16)) and dep.fixed_point_bits == 4
    assert not torch.equal(dep[0].weight, net[0].weight)      # the original is untouched
    assert torch.equal(quantize_input(torch.tensor([0.3]), 2), torch.tensor([0.25]))
    with pytest.raises(ValueError, match="fold BatchNorm"):
        deploy_fixed_point(nn.Sequential(nn.Conv2d(1, 1, 3), nn.BatchNorm2d(1)), 8)
    with pytest.raises(ValueError, match="fractional bits"):
        deploy_fixed_point(net, 40)


def test_shift_add_terms():
    assert shift_add_terms(0.5) == 1 and shift_add_terms(0.75) == 2 and shift_add_terms(0.0) == 0
    with pytest.raises(ValueError, match="k/2\\^s"):
        shift_add_terms(0.9)


def test_bad_input_raises_clear_errors(trained):
    model, x = trained
    with pytest.raises(ValueError, match=r"static input must be \[B, 1, 8, 8\]"):
        simulate(model, x[:, :, :4], T=4)
    with pytest.raises(ValueError, match="event input"):
        simulate(model, x, T=4, kind="events")
    with pytest.raises(ValueError, match="NaN"):
        simulate(model, x * float("nan"), T=4)
    with pytest.raises(ValueError, match="T"):
        simulate(model, x, T=0)
    with pytest.raises(TypeError, match="AcceleratorConfig"):
        simulate(model, x, T=4, config={"rows": 16})
    with pytest.raises(TypeError, match="ReLU"):
        compile_network(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.Identity()), (4,))
    with pytest.raises(TypeError, match="Fold BatchNorm"):
        compile_network(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), _lif(), nn.Flatten(),
                                      nn.Linear(2, 2), nn.Identity()), (1, 3, 3))
    with pytest.raises(ValueError, match="output"):
        compile_network(nn.Sequential(nn.Linear(4, 3), _lif()), (4,))
    with pytest.raises(ValueError, match="expects 5 inputs"):
        compile_network(nn.Sequential(nn.Linear(5, 3), nn.Identity()), (4,))
    soft = LIFNode(tau=2.0, decay_input=False, v_reset=None, step_mode="m")
    with pytest.raises(ValueError, match="hard reset"):
        compile_network(nn.Sequential(nn.Linear(4, 3), soft, nn.Linear(3, 2), nn.Identity()), (4,))
    leaky = nn.Sequential(nn.Linear(4, 3), LIFNode(tau=10.0, decay_input=False, v_reset=0.0, step_mode="m"),
                          nn.Linear(3, 2), nn.Identity())
    with pytest.raises(ValueError, match="shift-and-add"):
        prepare(leaky, atsn_accelerator(), (4,))
    prepare(leaky, conventional_accelerator(), (4,))   # a multiplier can decay by 0.9
    for bad in ({"rows": 0}, {"at_unit": False}, {"exp_table_entries": 1}, {"clock_hz": 0.0}, {"decay": "divide"},
                {"at_units": 2}):
        with pytest.raises(ValueError):
            AcceleratorConfig(**bad)
    assert AcceleratorConfig().n_pe == 255 and math.isclose(AcceleratorConfig().clock_hz, 500e6)


def _row_conv(weight=1.0):
    """Conv 1->1, kernel 3, padding 1 on a 1x6 row: 6 neurons, 2 per PE on a 2x2 array (3 PEs)."""
    net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), _lif(), nn.Flatten(), nn.Linear(6, 2),
                        NonSpikingIntegrator(0.5, step_mode="m"))
    with torch.no_grad():
        net[0].weight.fill_(weight)
        net[0].bias.zero_()
        net[3].weight.fill_(0.0)
        net[3].bias.zero_()
    return net.eval()


def test_input_buffers_let_units_work_ahead_and_fill():
    cfg = atsn_accelerator(rows=2, cols=2, adaptive=False)
    x = torch.zeros(1, 1, 1, 6)
    x[0, 0, 0, 0] = 1.0          # reaches neurons 0, 1: two accumulates on PE 0
    x[0, 0, 0, 5] = 1.0          # reaches neurons 4, 5: two accumulates on PE 2
    r = simulate(_row_conv(), x, T=1, config=cfg)
    assert r.mappings[0].per_unit == 2
    # events enter at cycles 0 and 1; PE 0 works 0-2, PE 2 works 1-3: 3 cycles (lockstep would take 4);
    # plus load ceil(2/16) = 1, update 2, save 1
    assert _layer(r, 0, "cycles") == 3 + 1 + 2 + 1
    assert _layer(r, 0, "input_wait_cycles") == 0
    # every pixel set, events enter at cycles 0..5. PE 0 (neurons 0, 1) gets 2, 2, 1 accumulates from
    # events 0-2: busy 0-2, 2-4, 4-5. PE 1 gets 1, 2, 2, 1 from events 1-4: 1-2, 2-4, 4-6, 6-7. PE 2 gets
    # 1, 2, 2 from events 3-5: 3-4, 4-6, 6-8. The phase takes 8 cycles (lockstep: 6 events x 2 = 12).
    full = torch.ones(1, 1, 1, 6)
    big = simulate(_row_conv(0.25), full, T=1, config=cfg)
    assert _layer(big, 0, "cycles") == 8 + 1 + 2 + 1
    # a one-address buffer: the broadcast waits for the busiest PE to start its previous event
    tiny = simulate(_row_conv(0.25), full, T=1, config=cfg.replace(in_buffer_bytes=2))
    assert _layer(tiny, 0, "input_wait_cycles") > 0
    assert _layer(tiny, 0, "cycles") >= _layer(big, 0, "cycles")


def test_event_frames_stream_a_new_frame_every_step():
    net = _tiny_conv()
    g = torch.Generator().manual_seed(0)
    frames = (torch.rand(3, 4, 1, 4, 4, generator=g) < 0.4).float()     # [B, T, C, H, W] binary events
    r = simulate(net, frames, T=4, kind="events", config=atsn_accelerator(adaptive=False), record_spikes=True)
    out = _TimeConv(net)(frames.transpose(0, 1))
    np.testing.assert_array_equal(r.outputs, out.detach().double().numpy())
    # DRAM: every event read once (address events), plus the class written back
    assert r.counts("dram")[0] == frames.sum()
    assert r.counts("input_events")[0] == frames.sum() and r.counts("multiply")[0] == 0
    with pytest.raises(ValueError, match="fewer than T"):
        simulate(net, frames, T=5, kind="events")


def test_small_memories_split_layers_into_tiles_and_stream_weights(trained):
    model, x = trained
    base = simulate(model, x[:20], T=4, config=atsn_accelerator(adaptive=False))
    small = atsn_accelerator(adaptive=False, rows=4, cols=4, pe_memory_bytes=64)
    tiled = simulate(model, x[:20], T=4, config=small)
    assert [m.tiles for m in tiled.mappings[:2]] != [1, 1] and max(m.tiles for m in tiled.mappings) > 1
    assert not all(m.weights_resident for m in tiled.mappings)          # conv 2's kernels do not fit 64 B
    np.testing.assert_array_equal(tiled.outputs, base.outputs)
    np.testing.assert_array_equal(tiled.counts("synaptic_ops"), base.counts("synaptic_ops"))
    assert tiled.cycles_per_inference > base.cycles_per_inference
    # a streamed layer reads every weight it uses from SRAM: at least one SRAM read per accumulate
    streamed = [i for i, m in enumerate(tiled.mappings) if not m.weights_resident]
    for i in streamed:
        assert tiled.counts("sram")[i] >= tiled.counts("accumulate")[i]
    with pytest.raises(ValueError, match="potentials"):
        simulate(model, x[:2], T=1, config=atsn_accelerator(rows=2, cols=2, pe_memory_bytes=2))


def test_config_sizes_must_be_positive_ints():
    with pytest.raises(TypeError, match="rows must be an int >= 1"):
        AcceleratorConfig(rows=16.0)
    with pytest.raises(ValueError, match="bus_words must be >= 1"):
        AcceleratorConfig(bus_words=0)


def _sparse_mlp():
    """Linear(64->48) + LIF + Linear(48->10) + integrator with random weights: a hidden linear layer
    whose inputs are sparse, where streaming the weights can beat loading all of them every step."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(64, 48), _lif(), nn.Linear(48, 10), NonSpikingIntegrator(0.5, step_mode="m"))
    return net.eval()


def _memory_sweep(model, x, bus, **kw):
    """Cycles per inference for PE memories from 4 KiB down to 4 B (sizes whose potentials do not fit
    are skipped: the simulator refuses them)."""
    cycles = {}
    for memory in (4096, 2048, 1024, 512, 256, 128, 64, 32, 16, 8, 4):
        config = atsn_accelerator(adaptive=False, bus_words=bus, pe_memory_bytes=memory, **kw)
        try:
            cycles[memory] = simulate(model, x, T=3, config=config, **({"input_shape": (64,)}
                                                                        if x.dim() == 2 else {})).cycles_per_inference
        except ValueError as error:
            assert "potentials" in str(error)
    return cycles


@pytest.mark.parametrize("bus", [1, 16])
def test_less_pe_memory_never_means_fewer_cycles(trained, bus):
    """Physics: a unit with more memory can do whatever one with less can (it may still stream its
    weights), so shrinking the PE memory never makes the chip faster. Streamed weights cost bus
    cycles (one word per accumulate). The old model streamed for free: at bus_words=1 the trained
    network took 12,518 cycles with 1 KiB per PE and 7,804 with 4 B."""
    model, x = trained
    g = torch.Generator().manual_seed(0)
    sparse = (torch.rand(6, 64, generator=g) < 0.15).float() * 2.0
    for net, inputs in ((model, x[:12]), (_sparse_mlp(), sparse)):
        cycles = _memory_sweep(net, inputs, bus)
        sizes = sorted(cycles)  # ascending memory
        assert len(sizes) >= 6
        for small, large in zip(sizes, sizes[1:]):
            assert cycles[small] >= cycles[large], (bus, small, large, cycles)
    # the streamed layers' weights cross the bus: a streamed step costs at least its words / bus_words
    tiny = simulate(model, x[:4], T=2, config=atsn_accelerator(adaptive=False, bus_words=bus, pe_memory_bytes=16))
    for i, mapping in enumerate(tiny.mappings):
        if not mapping.weights_resident and mapping.unit == "pe":
            words = tiny.counts("synaptic_ops")[i]
            assert tiny.counts("cycles")[i] >= words / bus
            assert tiny.counts("streamed_steps")[i] == 4 * 2  # every step of every sample streamed


def test_a_pe_with_room_streams_when_that_is_cheaper(trained):
    """A hidden linear layer uses each weight at most once per step (once per input spike), so
    streaming the weights it uses costs fewer bus cycles than loading all of them into the PEs,
    and the simulator takes the cheaper way; a convolution reuses every kernel weight for many
    input spikes, so its weights stay in the PEs."""
    g = torch.Generator().manual_seed(0)
    sparse = (torch.rand(6, 64, generator=g) < 0.15).float() * 2.0
    r = simulate(_sparse_mlp(), sparse, T=3, config=atsn_accelerator(adaptive=False, bus_words=1),
                 input_shape=(64,))
    assert r.mappings[0].weights_resident                     # 48 neurons' weights fit 1 KiB per PE ...
    assert r.counts("streamed_steps")[0] == 6 * 3             # ... yet streaming them was cheaper every step
    # streamed: one SRAM word per accumulate instead of the 64 x 48 weights + biases loaded every step
    assert r.counts("sram")[0] < 6 * 3 * (64 + 1) * 48
    model, x = trained
    conv = simulate(model, x[:6], T=3, config=atsn_accelerator(adaptive=False))
    assert [compile_network(model, x.shape[1:]).layers[i].kind for i in (0, 1)] == ["conv", "conv"]
    assert conv.counts("streamed_steps")[:2].tolist() == [0, 0]


@pytest.mark.parametrize("clock", ["500e6", float("nan"), float("inf"), -1.0, 0.0, None])
def test_clock_must_be_a_finite_positive_number(clock):
    with pytest.raises((TypeError, ValueError), match="clock_hz"):
        AcceleratorConfig(clock_hz=clock)
