"""OTTT measurements: the presynaptic trace, gradient similarity, firing rates, memory against T."""

import math

import pytest
import torch

from snnlab.analysis.ottt import (
    LayerFiring,
    cosine_similarity_per_layer,
    firing_rates,
    gradient_similarity,
    mean_firing,
    memory_vs_T,
    presynaptic_trace,
    seed_gap,
    student_t_quantile,
)
from snnlab.models import SpikingMLP
from snnlab.neurons import LIFNode
from snnlab.training import build_loss, compute_gradients


def _mlp(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    model = SpikingMLP((4,), 3, hidden=(6, 5)).to(dtype)
    with torch.no_grad():  # make both hidden layers fire
        model.features[2].weight.mul_(3.0)
        model.features[2].bias.add_(0.9)
    return model


def _data(T=5, B=7, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, 4, generator=g, dtype=torch.float64) * 4).to(dtype), torch.randint(0, 3, (B,), generator=g)


def test_presynaptic_trace_is_the_discounted_sum_of_past_spikes():
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(7, 3, 2, generator=g) < 0.4).double()
    lam = 0.5
    got = presynaptic_trace(s, lam)
    for t in range(7):  # eq. 3 unrolled: â[t] = Σ_{τ<=t} λ^{t-τ} s[τ]
        ref = sum(lam ** (t - k) * s[k] for k in range(t + 1))
        assert torch.allclose(got[t], ref, atol=1e-12)
    assert torch.equal(presynaptic_trace(s, 0.0), s)  # λ = 0: the trace is the spike train
    assert torch.allclose(presynaptic_trace(s, 1.0), s.cumsum(0))  # λ = 1 (IF): the spike count
    with pytest.raises(ValueError):
        presynaptic_trace(s, 1.5)


def test_cosine_similarity_per_layer_values_and_errors():
    a = {"w": torch.tensor([1.0, 2.0, 3.0]), "v": torch.tensor([[1.0, 0.0]]), "z": torch.zeros(2)}
    b = {"w": torch.tensor([2.0, 4.0, 6.0]), "v": torch.tensor([[0.0, 5.0]]), "z": torch.ones(2)}
    got = cosine_similarity_per_layer(a, b)
    assert got["w"] == pytest.approx(1.0) and got["v"] == pytest.approx(0.0) and math.isnan(got["z"])
    c = {"w": torch.tensor([1.0, -1.0, 0.5])}
    ref = torch.nn.functional.cosine_similarity(a["w"], c["w"], dim=0)
    assert cosine_similarity_per_layer(a, c)["w"] == pytest.approx(float(ref), rel=1e-6)
    with pytest.raises(KeyError):
        cosine_similarity_per_layer(a, c, names=["v"])
    with pytest.raises(ValueError, match="shapes"):
        cosine_similarity_per_layer({"w": torch.ones(3)}, {"w": torch.ones(4)})
    with pytest.raises(ValueError, match="share no"):
        cosine_similarity_per_layer({"w": torch.ones(3)}, {"u": torch.ones(3)})


def test_gradient_similarity_is_exactly_one_where_ottt_equals_bptt():
    """With the reset detached and a readout without memory, BPTT's gradient of the weight into the
    last hidden layer is Σ_t g[t] â[t]^T, OTTT's formula: cosine 1. The readout (traced by OTTT, not
    leaky) and the first layer (raw input, untraced) differ from BPTT."""
    model = _mlp()
    x, y = _data()
    loss = build_loss("ottt")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    sim = gradient_similarity(model, x, y, loss)
    assert list(sim) == ["features.0.weight", "features.2.weight", "classifier.weight"]
    assert sim["features.2.weight"] == pytest.approx(1.0, abs=1e-10)
    assert sim["classifier.weight"] < 1 - 1e-4
    assert sim["features.0.weight"] < 1 - 1e-6
    # the model is left as it was: same weights, no gradients, no method attached
    assert all(torch.equal(before[n], p) and p.grad is None for n, p in model.named_parameters())
    assert "_snnlab_method" not in model.__dict__
    ottt = compute_gradients("ottt_a", model, x, y, loss)
    bptt = compute_gradients("bptt", model, x, y, loss)
    assert torch.allclose(ottt["features.2.weight"], bptt["features.2.weight"], atol=1e-12)


def test_firing_rates_count_spikes_per_layer():
    model = _mlp()
    x, _ = _data(T=6)
    layers = firing_rates(model, x)
    assert [layer.name for layer in layers] == ["features.1", "features.3"]
    with torch.no_grad():
        s1 = model.features[1](model.features[0](x))
        model.features[1].reset()
        s1 = model.features[1](model.features[0](x))
        s2 = model.features[3](model.features[2](s1))
    for layer, s in zip(layers, (s1, s2)):
        assert layer.neurons == s.shape[-1]
        assert layer.rate == pytest.approx(float(s.mean()))
        assert layer.spikes_per_neuron == pytest.approx(float(s.sum(0).mean()))
    rate, spikes = mean_firing(layers)
    assert rate == pytest.approx(float((s1.sum() + s2.sum()) / (s1.numel() + s2.numel())))
    assert spikes == pytest.approx(rate * 6)


def test_firing_rate_of_a_constant_input_matches_the_hand_count():
    """OTTT eq. 2 with λ = 0.5, V_th = 1, soft reset, input 0.6: u = 0.6, 0.9, 1.05 (spike), 0.625,
    0.9125, 1.056 (spike): 2 spikes in 6 steps."""
    neuron = torch.nn.Sequential(LIFNode(tau=2.0, decay_input=False, v_reset=None, step_mode="m"))
    (layer,) = firing_rates(neuron, torch.full((6, 2, 3), 0.6))
    assert layer.rate == pytest.approx(1 / 3) and layer.spikes_per_neuron == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no spiking layers"):
        firing_rates(torch.nn.Linear(3, 3), torch.ones(2, 1, 3))
    with pytest.raises(ValueError):
        mean_firing([])
    assert mean_firing([LayerFiring("a", 1, 0.2, 1.2), LayerFiring("b", 3, 0.6, 3.6)]) == pytest.approx((0.5, 3.0))


def test_memory_vs_T_bptt_grows_and_ottt_stays_flat():
    x = torch.rand(8, 4) * 4
    y = torch.randint(0, 3, (8,))

    def make():
        torch.manual_seed(0)
        return SpikingMLP((4,), 3, hidden=(32, 32))

    rows = memory_vs_T(make, x, y, build_loss("ottt"), timesteps=(2, 8))
    held = {(r["method"], r["T"]): r["saved_bytes"] for r in rows}
    assert held[("bptt", 8)] >= 3.5 * held[("bptt", 2)]
    for m in ("ottt_a", "ottt_o"):
        assert held[(m, 8)] == held[(m, 2)] > 0
        assert held[(m, 8)] < held[("bptt", 8)]
    assert all(r["seconds"] > 0 and r["rss_peak_bytes"] > 0 for r in rows)
    with pytest.raises(ValueError, match="T"):
        memory_vs_T(make, x, y, build_loss("ottt"), timesteps=(0,))
    with pytest.raises(ValueError, match="frames"):
        memory_vs_T(make, torch.rand(8, 2, 4), y, build_loss("ottt"), timesteps=(4,), kind="events")


def test_student_t_quantile_matches_the_table():
    table = {(0.975, 1): 12.7062, (0.975, 2): 4.3027, (0.975, 3): 3.1824, (0.975, 10): 2.2281,
             (0.95, 5): 2.0150, (0.975, 1e6): 1.9600}
    for (p, df), t in table.items():
        assert student_t_quantile(p, df) == pytest.approx(t, abs=2e-4)
    with pytest.raises(ValueError, match="p"):
        student_t_quantile(0.4, 3)
    with pytest.raises(ValueError, match="degrees of freedom"):
        student_t_quantile(0.975, 0)


def test_seed_gap_matches_welch_and_flags_only_significant_gaps():
    a, b = [0.80, 0.84, 0.82], [0.90, 0.86, 0.91, 0.89]
    got = seed_gap(a, b)
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    assert got.mean_a == pytest.approx(float(ta.mean())) and got.std_a == pytest.approx(float(ta.std()))
    assert got.mean_b == pytest.approx(float(tb.mean())) and got.std_b == pytest.approx(float(tb.std()))
    assert got.difference == pytest.approx(float(tb.mean() - ta.mean()))
    va, vb = float(ta.var()) / 3, float(tb.var()) / 4
    assert got.standard_error == pytest.approx(math.sqrt(va + vb))
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)  # Welch-Satterthwaite
    assert got.threshold == pytest.approx(student_t_quantile(0.975, df) * got.standard_error)
    assert got.resolved  # 0.072 apart, threshold about 0.038
    # 3 points apart is 4.2 standard errors, but with 2 degrees of freedom t(0.975) = 4.30: not resolved
    close = seed_gap([0.0, 1.0], [3.0, 4.0])
    assert close.difference / close.standard_error > 4 and not close.resolved
    assert seed_gap([0.0, 1.0], [3.5, 4.5]).resolved
    single = seed_gap([0.80, 0.84, 0.82], [0.95])  # one run against a spread: df = n_a - 1
    assert single.std_b == 0.0 and single.standard_error == pytest.approx(0.02 / math.sqrt(3))
    assert single.threshold == pytest.approx(student_t_quantile(0.975, 2) * single.standard_error)
    with pytest.raises(ValueError, match="two or more"):
        seed_gap([0.8], [0.9])
    with pytest.raises(ValueError, match="at least one"):
        seed_gap([], [0.9, 0.8])
