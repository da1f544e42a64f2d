"""snnlab.conversion: TTFS / SC-TTFS neurons (kernel vs closed form vs literal definition,
gradients), code books, the error split, BN folding, the conversion pipeline (vectorised vs step
by step), energy, the ANN definitions, and errors on bad input."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from snnlab.conversion import (
    NO_SPIKE, PAPER_THRESHOLDS, RateNeuron, SCTTFSNeuron, ThresholdParams, TTFSNeuron, calibration_rule,
    codebook, conversion_error_parts, convert, decode, energy, energy_improvement, enumerate_patterns,
    evaluate_snn, fine_tune, fold_batchnorm, has_batchnorm, n_patterns, pattern_values, reachable_patterns,
    relu_preactivations, simulate_stepwise, spike_times, thresholds_from_statistics,
)
from snnlab.models.ann import ANN_MODELS, digits_cnn, resnet20, vgg16

ENC = ThresholdParams(1.5, 0.2, 0.45)
K_GRID = np.geomspace(0.05, 3.0, 12)  # a coarser decay grid than the default keeps the tests fast
CAL = ThresholdParams(0.6, -0.1, 0.5)


def literal_times(v, T, enc, cal):
    """Eqs. 9-13 read literally, one neuron, plain Python."""
    r, t_e, t_c = v, NO_SPIKE, NO_SPIKE
    for t in range(T):
        if t_e == NO_SPIKE and r >= enc.alpha * math.exp(-enc.k * t + enc.beta):
            t_e, r = t, r - enc.alpha * math.exp(-enc.k * t + enc.beta)
        if t_e != NO_SPIKE and cal is not None and r >= cal.alpha * math.exp(-cal.k * t + cal.beta):
            t_c = t
            break
    return t_e, t_c


# --- code books --------------------------------------------------------------------------------

@pytest.mark.parametrize("T", range(1, 13))
def test_number_of_patterns_formula_matches_enumeration(T):
    patterns = enumerate_patterns(T)
    assert len(patterns) == len(set(patterns)) == n_patterns(T) == T * (T + 3) // 2
    assert all(0 <= te < T and (tc == NO_SPIKE or te <= tc < T) for te, tc in patterns)
    assert len(enumerate_patterns(T, calibrate=False)) == n_patterns(T, calibrate=False) == T


def test_generic_thresholds_give_n_of_t_distinct_values_and_reachability_matches_a_sweep():
    T = 6
    # a calibration threshold far below the encoding steps: every pattern is reachable
    small_cal = ThresholdParams(0.01, 0.0, 0.37)
    assert len(reachable_patterns(T, ENC, small_cal)) == n_patterns(T)
    assert len(codebook(T, ENC, small_cal)) == n_patterns(T)
    assert len(codebook(T, ENC)) == T
    # with a large calibration threshold some patterns are unreachable; a dense sweep of v through
    # the step-by-step kernel finds exactly the predicted set
    big_cal = ThresholdParams(1.0, 0.8, 1.0)
    predicted = set(reachable_patterns(T, ENC, big_cal))
    assert len(predicted) < n_patterns(T)
    v = torch.linspace(1e-4, 12.0, 400_001, dtype=torch.float64)
    t_e, t_c = spike_times(v, T, ENC, big_cal, backend="numba")
    found = {(a, b) for a, b in zip(t_e.tolist(), t_c.tolist()) if a != NO_SPIKE}
    assert found == predicted
    values = pattern_values(sorted(found), ENC, big_cal)
    np.testing.assert_allclose(np.unique(np.round(values, 12)), codebook(T, ENC, big_cal))


# --- spike times: kernel vs closed form vs literal definition -----------------------------------

@pytest.mark.parametrize("T", [1, 2, 5, 16])
@pytest.mark.parametrize("calibrated", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kernel_matches_closed_form_and_literal_definition(T, calibrated, dtype):
    g = torch.Generator().manual_seed(T)
    v = (torch.randn(20_000, generator=g, dtype=torch.float64) * 1.5).to(dtype)
    v[:5] = torch.tensor([0.0, -1.0, 1e-9, 50.0, float(ENC(T - 1))], dtype=dtype)  # edge cases
    cal = CAL if calibrated else None
    k_e, k_c = spike_times(v, T, ENC, cal, backend="numba")
    c_e, c_c = spike_times(v, T, ENC, cal, backend="torch")
    assert torch.equal(k_e, c_e) and torch.equal(k_c, c_c)
    for value, te, tc in list(zip(v.tolist(), k_e.tolist(), k_c.tolist()))[:300]:
        assert (te, tc) == literal_times(value, T, ENC, cal)
    if not calibrated:
        assert bool((k_c == NO_SPIKE).all())
    assert bool(((k_c == NO_SPIKE) | (k_c >= k_e)).all())  # calibration never precedes encoding


def test_neuron_module_output_shape_spike_count_and_decoded_value():
    neuron = SCTTFSNeuron(5, ENC, CAL)
    v = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    z = neuron(v)
    assert z.shape == v.shape
    t_e, t_c = spike_times(v, 5, ENC, CAL)
    torch.testing.assert_close(z, decode(t_e, t_c, ENC, CAL))
    expected = ((t_e >= 0).int() + (t_c >= 0).int()).reshape(4, -1).sum(1)
    assert torch.equal(neuron.last_spikes, expected)
    assert bool((z <= v.clamp_min(0) + 1e-6).all())  # both spikes subtract from v: never overshoots


# --- gradients (eqs. 21-23) ----------------------------------------------------------------------

def test_threshold_gradients_match_finite_differences_and_eqs_21_23():
    torch.manual_seed(0)
    T = 6
    neuron = SCTTFSNeuron(T, ENC, CAL, backend="torch").double()
    v = torch.rand(300, dtype=torch.float64) * 3
    w = torch.randn(300, dtype=torch.float64)
    t_e, t_c = spike_times(v, T, ENC, CAL)
    # keep neurons away from the spike-time boundaries so a small step does not move a spike
    th_e = torch.tensor(ENC(t_e.clamp_min(0).numpy()))
    keep = (t_e >= 0) & ((v - th_e).abs() > 1e-3) & (v < 1e3)
    v, w = v[keep], w[keep]
    loss = (w * neuron(v)).sum()
    loss.backward()
    eps = 1e-7
    for name in ("alpha_e", "beta_e", "k_e", "alpha_c", "beta_c", "k_c"):
        p = getattr(neuron, name)
        with torch.no_grad():
            base = float(p)
            p.fill_(base + eps)
            up = float((w * neuron(v)).sum())
            p.fill_(base - eps)
            down = float((w * neuron(v)).sum())
            p.fill_(base)
        assert float(p.grad) == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-7), name
    # eqs. 21-23 in closed form: dz/dalpha = e^{-kt+beta}, dz/dk = -t theta(t), dz/dbeta = theta(t)
    alpha, beta, k = (float(p.detach()) for p in neuron.encode_params)  # the float32-rounded initial values
    t_e, t_c = spike_times(v, T, (alpha, beta, k), neuron.calibrate_params)
    te, fe = t_e.clamp_min(0).double(), (t_e >= 0).double()
    theta_e = alpha * torch.exp(-k * te + beta)
    assert float(neuron.alpha_e.grad) == pytest.approx(float((w * fe * theta_e / alpha).sum()), rel=1e-9)
    assert float(neuron.k_e.grad) == pytest.approx(float((w * fe * -te * theta_e).sum()), rel=1e-9)
    assert float(neuron.beta_e.grad) == pytest.approx(float((w * fe * theta_e).sum()), rel=1e-9)


def test_straight_through_gradient_for_the_potential():
    T = 4
    neuron = TTFSNeuron(T, ENC).double()
    low, high = float(ENC(T - 1)), float(ENC(0))
    v = torch.tensor([-1.0, low / 2, (low + high) / 2, high * 2], dtype=torch.float64, requires_grad=True)
    neuron(v).sum().backward()
    assert v.grad.tolist() == [0.0, 0.0, 1.0, 0.0]


# --- eqs. 18-19 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("T", [2, 4, 8])
def test_calibration_never_increases_the_error_and_the_parts_add_up(T):
    v = torch.randn(50_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    enc = ThresholdParams(3.0, 0.0, 0.6)
    cal = calibration_rule(enc)
    z_ttfs = decode(*spike_times(v, T, enc), enc, dtype=torch.float64)
    z_sc = decode(*spike_times(v, T, enc, cal), enc, cal, dtype=torch.float64)
    a = v.clamp_min(0)
    assert bool(((a - z_sc).abs() <= (a - z_ttfs).abs() + 1e-12).all())  # eq. 19, pointwise
    for c in (None, cal):
        parts = conversion_error_parts(v, T, enc, c)
        assert parts["clip_below"] + parts["quantisation"] + parts["clip_above"] == pytest.approx(parts["total"])
        z = z_sc if c is not None else z_ttfs
        assert parts["total"] == pytest.approx(float((a - z).abs().mean()))
    p_ttfs, p_sc = conversion_error_parts(v, T, enc), conversion_error_parts(v, T, enc, cal)
    assert p_sc["clip_below"] == pytest.approx(p_ttfs["clip_below"])  # same lowest level
    assert p_sc["total"] < p_ttfs["total"]


# --- BN folding (eq. 24) -------------------------------------------------------------------------

def _randomise_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))


@pytest.mark.parametrize("build,shape", [(lambda: digits_cnn(width=4, hidden=8), (5, 1, 8, 8)),
                                         (lambda: resnet20(width=4), (3, 3, 16, 16))])
def test_bn_folding_is_exact(build, shape):
    torch.manual_seed(0)
    model = build().double()
    _randomise_bn(model)
    model.eval()
    folded = fold_batchnorm(model)
    assert has_batchnorm(model) and not has_batchnorm(folded)
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(folded(x), model(x), rtol=1e-10, atol=1e-10)


def test_bn_folding_errors():
    with pytest.raises(ValueError, match="could not be folded"):
        fold_batchnorm(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)))
    with pytest.raises(ValueError, match="features"):
        from snnlab.conversion import fold_conv_bn
        fold_conv_bn(nn.Linear(3, 4), nn.BatchNorm1d(5))


# --- the conversion pipeline -------------------------------------------------------------------

def _trained_small_net():
    torch.manual_seed(0)
    model = digits_cnn(width=4, hidden=16).double()
    _randomise_bn(model, seed=3)
    for m in model.modules():  # positive BN bias: most units active, so the SNN has spikes to check
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.bias.data.abs_()
    return model.eval()


@pytest.mark.parametrize("kind", ["sc_ttfs", "ttfs"])
def test_stepwise_simulation_matches_the_vectorised_conversion(kind):
    ann = fold_batchnorm(_trained_small_net())
    x = torch.randn(40, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    T = 5
    thresholds = thresholds_from_statistics(relu_preactivations(ann, x), T, calibrate=kind == "sc_ttfs",
                                            k_grid=K_GRID)
    snn = convert(ann, kind, T=T, thresholds=thresholds).double()
    with torch.no_grad():
        vectorised = snn(x)
    spikes = snn.last_spikes_per_image
    stepwise = simulate_stepwise(snn, x)
    assert stepwise["steps"] == stepwise["latency"] == 4 * T  # 4 spiking layers, delay T each
    assert bool((spikes > 0).all())
    torch.testing.assert_close(stepwise["logits"], vectorised, rtol=1e-9, atol=1e-9)
    assert torch.equal(stepwise["logits"].argmax(1), vectorised.argmax(1))
    assert torch.equal(stepwise["spikes_per_image"], spikes)


def test_converted_net_approaches_the_ann_as_T_grows_and_calibration_helps():
    ann = _trained_small_net()
    x = torch.randn(64, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        target = ann(x)
    pre = relu_preactivations(ann, x)
    errors = {}
    for kind in ("ttfs", "sc_ttfs"):
        for T in (3, 24):
            snn = convert(ann, kind, T=T, thresholds=thresholds_from_statistics(pre, T, calibrate=kind == "sc_ttfs",
                                                                                      k_grid=K_GRID))
            with torch.no_grad():
                errors[kind, T] = float((snn.double()(x) - target).abs().mean())
    assert errors["sc_ttfs", 24] < errors["sc_ttfs", 3]
    assert errors["ttfs", 24] < errors["ttfs", 3]
    assert errors["sc_ttfs", 3] < errors["ttfs", 3]


def test_rate_neuron_time_average_approximates_clipped_relu():
    T, theta = 200, 2.0
    x = torch.linspace(-1, 3, 41)
    neuron = RateNeuron(T, theta)
    out = neuron(x.repeat(T, 1).reshape(T * 1, 41)).reshape(T, 41).mean(0)
    assert (out - x.clamp(0, theta)).abs().max() <= theta / T + 1e-6
    assert int(neuron.last_spikes.sum()) == int(round(float(out.sum()) * T / theta))
    with pytest.raises(ValueError, match="folded into the batch"):
        RateNeuron(3, 1.0)(torch.ones(4, 2))


def test_rate_conversion_latency_and_evaluation():
    ann = _trained_small_net()
    x = torch.randn(16, 1, 8, 8, dtype=torch.float64)
    y = torch.zeros(16, dtype=torch.int64)
    pre = relu_preactivations(ann, x)
    snn = convert(ann, "rate", T=8, thresholds=[float(p.max()) for p in pre])
    result = evaluate_snn(snn, (x, y))
    assert result["latency"] == 8 and result["spikes_per_image"] > 0
    snn = convert(ann, "sc_ttfs", T=3, thresholds="cifar10")
    assert evaluate_snn(snn, (x, y))["latency"] == 3 * 4


def test_fine_tune_trains_thresholds_and_bn_only():
    ann = _trained_small_net().float()
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = ann(x).argmax(1).detach()
    snn = convert(ann, "sc_ttfs", T=4, thresholds=thresholds_from_statistics(relu_preactivations(ann, x), 4, k_grid=K_GRID))
    before = {n: p.detach().clone() for n, p in snn.named_parameters()}
    history = fine_tune(snn, (x, y), epochs=2, lr=1e-2, batch_size=32)
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    changed = {n for n, p in snn.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.endswith("alpha_e") for n in changed) and any(n.endswith("k_c") for n in changed)
    assert any(".bias" in n and "net.1." in n for n in changed)  # a BN shift
    conv_weights = [n for n in before if n.endswith("weight") and n.startswith("net.0.")]
    assert conv_weights and not set(conv_weights) & changed  # conv weights frozen


# --- energy (eq. 25) ---------------------------------------------------------------------------

def test_energy_formula_and_normalisations():
    n, lat = [100.0, 400.0], [50.0, 10.0]
    np.testing.assert_allclose(energy(n, lat, "truenorth", "none"), [0.4 * 100 + 0.6 * 50, 0.4 * 400 + 0.6 * 10])
    np.testing.assert_allclose(energy(n, lat, "spinnaker", "max"), [0.64 * 0.25 + 0.36, 0.64 + 0.36 * 0.2])
    np.testing.assert_allclose(energy(n, lat, (1.0, 0.0), "reference", reference=1), [0.25, 1.0])
    assert energy_improvement(0.2, 1.0) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="one value per method"):
        energy([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="> 0"):
        energy([0.0], [1.0])
    with pytest.raises(ValueError, match="unknown hardware"):
        energy([1.0], [1.0], "loihi")


# --- models ------------------------------------------------------------------------------------

def test_ann_definitions():
    vgg = vgg16(width=8)
    assert sum(isinstance(m, nn.Conv2d) for m in vgg.modules()) == 13
    assert sum(isinstance(m, nn.Linear) for m in vgg.modules()) == 3
    assert sum(isinstance(m, nn.ReLU) for m in vgg.modules()) == 15
    assert vgg.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    res = resnet20(num_classes=100, width=4)
    convs = [m for m in res.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 19 and sum(isinstance(m, nn.ReLU) for m in res.modules()) == 19
    assert res.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    assert set(ANN_MODELS) == {"vgg16", "resnet20", "digits_cnn"}
    # the paper-scale VGG16 has the usual ~15M parameters (13 convs + 512-512-10 head)
    assert 14.5e6 < sum(p.numel() for p in vgg16().parameters()) < 15.5e6
    with pytest.raises(ValueError, match="multiple of 32"):
        vgg16(input_size=40)


def test_resnet_converts_vectorised_but_not_stepwise():
    ann = resnet20(width=2).eval()
    x = torch.randn(2, 3, 8, 8)
    snn = convert(ann, "sc_ttfs", T=3, thresholds="cifar10")
    assert snn(x).shape == (2, 10) and snn.latency == 19 * 3
    with pytest.raises(ValueError, match="fold the BN"):
        simulate_stepwise(snn, x)
    with pytest.raises(ValueError, match="residual blocks"):
        simulate_stepwise(convert(fold_batchnorm(ann), "sc_ttfs", T=3, thresholds="cifar10"), x)


# --- bad input ---------------------------------------------------------------------------------

def test_clear_errors_on_bad_input():
    v = torch.randn(10)
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        ThresholdParams(0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="k must be a finite number > 0"):
        ThresholdParams(1.0, 0.0, -1.0)
    with pytest.raises(TypeError, match="number of timesteps"):
        spike_times(v, 2.5, ENC)
    with pytest.raises(ValueError, match=">= 1"):
        spike_times(v, 0, ENC)
    with pytest.raises(TypeError, match="floating-point"):
        spike_times(torch.ones(3, dtype=torch.int64), 4, ENC)
    with pytest.raises(ValueError, match="non-finite"):
        spike_times(torch.tensor([1.0, float("nan")]), 4, ENC)
    with pytest.raises(ValueError, match="backend='numba' needs"):
        spike_times(v.half(), 4, ENC, backend="numba")
    with pytest.raises(ValueError, match="unknown backend"):
        spike_times(v, 4, ENC, backend="cuda")
    with pytest.raises(TypeError, match="triple"):
        spike_times(v, 4, 3.0)
    with pytest.raises(ValueError, match="use TTFSNeuron"):
        SCTTFSNeuron(4, ENC)
    neuron = TTFSNeuron(4, ENC)
    with torch.no_grad():
        neuron.k_e.fill_(-0.1)
    with pytest.raises(ValueError, match="k_e must stay > 0"):
        neuron(v)
    ann = digits_cnn(width=2, hidden=4)
    with pytest.raises(ValueError, match="one per layer"):
        convert(ann, "ttfs", T=4, thresholds=[(ENC, None)])
    with pytest.raises(ValueError, match="unknown kind"):
        convert(ann, "phase", T=4, thresholds="cifar10")
    with pytest.raises(ValueError, match="give thresholds"):
        convert(ann, "ttfs", T=4)
    with pytest.raises(ValueError, match="no nn.ReLU"):
        convert(nn.Sequential(nn.Linear(2, 2)), "ttfs", T=4, thresholds="cifar10")
    with pytest.raises(ValueError, match="no trainable thresholds"):
        fine_tune(convert(ann, "rate", T=4, thresholds=[1.0] * 4), (torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.int64)))
    assert PAPER_THRESHOLDS["cifar10"][0] == ThresholdParams(2.0, -1.0, 0.8)


def test_ttfs_neuron_with_t2fsnn_kernel_fires_and_decodes_as_t2fsnn():
    """T2FSNN (Park et al. 2020; its code): threshold vth0 * exp(-(t - t_d)/tau), fire at the first
    t with v >= threshold, at most once; the next layer receives exp(-(t - t_d)/tau). A literal
    step-by-step T2FSNN neuron, written here, against snnlab's single-spike TTFSNeuron with
    ThresholdParams.from_t2fsnn: same spike times, and the decoded value is vth0 times T2FSNN's."""
    import math

    from snnlab.conversion import TTFSNeuron

    vth0, tau, t_d, T = 1.7, 3.0, 2.0, 12
    v = torch.rand(2000, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 8 - 1

    def t2fsnn(potential):
        for t in range(T):
            if potential >= vth0 * math.exp(-(t - t_d) / tau):
                return t, math.exp(-(t - t_d) / tau)
        return -1, 0.0

    expected = [t2fsnn(float(p)) for p in v]
    neuron = TTFSNeuron(T, ThresholdParams.from_t2fsnn(vth0, tau, t_d), backend="torch")
    z = neuron(v.clone())
    times = neuron.last_times[0].tolist()
    assert times == [t for t, _ in expected]
    np.testing.assert_allclose(z.detach().numpy(), [vth0 * value for _, value in expected], rtol=1e-6, atol=0)  # float32 parameters
    assert ThresholdParams.from_t2fsnn(2.0, 4.0, 1.0) == ThresholdParams(2.0, 0.25, 0.25)


# ---- conversion parameters validated (issue 18, item 6) -----------------------------------------


@pytest.mark.parametrize("backend", ["torch", "numba"])
@pytest.mark.parametrize("params, needle", [
    ((0.0, 0.0, 1.0), "alpha must be a finite number > 0"),
    ((-1.0, 0.0, 1.0), "alpha must be a finite number > 0"),
    ((1.0, 0.0, 0.0), "k must be a finite number > 0"),
    ((1.0, 0.0, -0.5), "k must be a finite number > 0"),
    ((float("nan"), 0.0, 1.0), "alpha must be a number, got NaN"),
    ((1.0, float("nan"), 1.0), "beta must be a number, got NaN"),
    ((1.0, 0.0, float("nan")), "k must be a number, got NaN"),
    ((1.0, float("inf"), 1.0), "beta must be a finite number"),
])
def test_spike_times_refuses_bad_thresholds(backend, params, needle):
    from snnlab.conversion.ttfs import spike_times

    v = torch.rand(8)
    with pytest.raises(ValueError, match="encode thresholds") as info:
        spike_times(v, 4, params, backend=backend)
    assert needle in str(info.value)
    with pytest.raises(ValueError, match="calibrate thresholds"):
        spike_times(v, 4, (1.0, 0.0, 1.0), params, backend=backend)


def test_spike_times_never_returns_garbage_times():
    """With valid thresholds every time is -1 (no spike) or in [0, T) in both backends."""
    from snnlab.conversion.ttfs import spike_times

    v = torch.cat([torch.rand(100) * 3, torch.tensor([0.0, -1.0, 1e30])])
    for backend in ("torch", "numba"):
        t_e, t_c = spike_times(v, 5, (1.0, 0.0, 0.5), (0.5, 0.0, 0.5), backend=backend)
        for t in (t_e, t_c):
            assert bool(((t == -1) | ((t >= 0) & (t < 5))).all()), backend


def test_a_threshold_parameter_turning_nan_in_fine_tuning_is_caught():
    from snnlab.conversion.ttfs import SCTTFSNeuron

    neuron = SCTTFSNeuron(4, (1.0, 0.0, 0.5), (0.5, 0.0, 0.5))
    neuron(torch.rand(2, 3))
    for name in ("beta_e", "beta_c", "alpha_c", "k_e"):
        layer = SCTTFSNeuron(4, (1.0, 0.0, 0.5), (0.5, 0.0, 0.5))
        with torch.no_grad():
            getattr(layer, name).fill_(float("nan"))
        with pytest.raises(ValueError, match=rf"{name} became nan \(fine-tuning diverged\)"):
            layer(torch.rand(2, 3))
