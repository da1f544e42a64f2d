"""The memory meter: saved-tensor bytes (unique storages, freed on backward), RSS peak."""

import torch

from snnlab.analysis.memory import MemoryMeter, process_rss_bytes, saved_tensor_bytes
from snnlab.models import build_model
from snnlab.training import build_loss, build_method, time_major


def test_counts_unique_storages_and_frees_them_on_backward():
    w = torch.randn(100, 100, requires_grad=True)
    x = torch.randn(50, 100)
    with MemoryMeter(exclude=[w]) as meter:
        h = x @ w  # saves x and w (w excluded)
        y = torch.tanh(h)  # saves its output y: 50*100 floats
        z = (y * y).sum()  # saves y twice: same storage, counted once
        held = meter.current
        z.backward()
        after = meter.current
    r = meter.report()
    assert held == 2 * 50 * 100 * 4  # x and y, once each
    assert r.saved_bytes_peak == held and after == 0
    assert r.saved_tensors >= 4


def test_views_count_their_whole_storage_once():
    """Saved views of one tensor hold its whole storage, counted once: two slices saved by mul
    hold the 1000-float base (4000 bytes), not 2 x 10 floats, and not 2 x 4000."""
    base = torch.randn(1000) * 1.0  # no grad: only what the muls save is counted
    w = torch.randn(10, requires_grad=True)
    with MemoryMeter(exclude=[w]) as meter:
        loss = (base[:10] * w).sum() + (base[10:20] * w).sum()  # each mul saves its slice of base (and w)
        held = meter.current
        loss.backward()
    assert held == 1000 * 4  # the shared storage, once
    assert meter.report().saved_bytes_peak == 1000 * 4 and meter.current == 0


def test_bptt_grows_with_T_and_sltt_ottt_do_not():
    peaks = {}
    for T in (2, 8):
        torch.manual_seed(0)
        model = build_model("spiking_mlp", num_classes=4, input_shape=(16,), T=T, hidden=(32, 32))
        x = time_major(torch.rand(8, 16) * 3, T, "static")
        y = torch.randint(0, 4, (8,))
        for name in ("bptt", "sltt", "ottt_a"):
            method = build_method(name)
            method.attach(model, x)
            _, report = saved_tensor_bytes(method.train_step, model, x, y, build_loss("tet"),
                                           exclude=[*model.parameters(), x])
            peaks[name, T] = report.saved_bytes_peak
    assert peaks["bptt", 8] >= 3.5 * peaks["bptt", 2]
    assert peaks["sltt", 8] == peaks["sltt", 2] > 0
    assert peaks["ottt_a", 8] == peaks["ottt_a", 2] > 0


def test_process_memory_peak_is_reported():
    with MemoryMeter() as meter:
        big = torch.ones(20_000_000)  # 80 MB touched inside the block
        big += 1
    r = meter.report()
    del big
    assert r.rss_peak_bytes is not None and r.rss_peak_bytes >= 80_000_000
    assert process_rss_bytes() > 0
    assert r.cuda_peak_bytes is None or r.cuda_peak_bytes >= 0
    assert set(r.as_dict()) >= {"saved_bytes_peak", "rss_peak_bytes", "cuda_peak_bytes"}


def test_training_step_cost_sltt_flat_bptt_grows_and_bad_repeats_refused():
    """training_step_cost meters one step after a warm-up: SLTT's bytes held for backward are the
    same at T=2 and T=6 (one step's graph at a time), BPTT's grow with T; repeats must be >= 1."""
    import pytest

    from snnlab.analysis.memory import training_step_cost

    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 8, 8) * 2, torch.randint(0, 10, (8,))
    cost = {}
    for name in ("bptt", "sltt"):
        for T in (2, 6):
            model = build_model("ds_resnet_small", num_classes=10, input_shape=(1, 8, 8), T=T)
            cost[name, T] = training_step_cost(build_method(name), model, time_major(x, T, "static"), y,
                                               build_loss("tet", lam=0.0), repeats=2)
            assert cost[name, T].seconds > 0
    assert cost["sltt", 2].saved_bytes_peak == cost["sltt", 6].saved_bytes_peak > 0
    assert cost["bptt", 6].saved_bytes_peak > 2.5 * cost["bptt", 2].saved_bytes_peak
    with pytest.raises(ValueError, match="repeats"):
        training_step_cost(build_method("bptt"), model, time_major(x, 2, "static"), y, build_loss("sdt"), repeats=0)
