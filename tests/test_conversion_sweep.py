"""Conversion sweeps and matched accuracy (snnlab.conversion.sweep)."""

import pytest
import torch
from torch import nn

from snnlab.conversion import convert, evaluate_snn, relu_preactivations, thresholds_from_statistics
from snnlab.conversion.sweep import matched, sweep_conversions


def _rows():
    return [
        {"method": "A", "T": 2, "latency": 8, "accuracy": 0.80},
        {"method": "A", "T": 3, "latency": 12, "accuracy": 0.95},
        {"method": "A", "T": 4, "latency": 16, "accuracy": 0.97},
        {"method": "B", "T": 8, "latency": 8, "accuracy": 0.90},
        {"method": "B", "T": 16, "latency": 16, "accuracy": 0.94},
    ]


def test_matched_picks_the_shortest_latency_at_or_above_the_bar():
    best = matched(_rows(), 0.95)
    assert best["A"]["T"] == 3  # 0.95 counts as reaching 0.95
    assert best["B"] is None  # never reaches it
    best = matched(_rows(), 0.9, methods=["B"])
    assert list(best) == ["B"] and best["B"]["latency"] == 8


def test_matched_rejects_a_negative_bar():
    with pytest.raises(ValueError):
        matched(_rows(), -0.1)


def _tiny_ann():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))
    x = torch.rand(60, 1, 4, 4)
    y = net(x).argmax(1)  # labels the ANN gets right by construction
    return net.eval(), x, y


def test_sweep_matches_converting_by_hand():
    net, x, y = _tiny_ann()
    pre = relu_preactivations(net, x)
    rows, nets = sweep_conversions(net, pre, (x, y), {"SC": ("sc_ttfs", (2, 5), "statistics"),
                                                       "T1": ("sc_ttfs", (4,), "cifar10")}, keep=True)
    assert [(r["method"], r["T"]) for r in rows] == [("SC", 2), ("SC", 5), ("T1", 4)]
    by_hand = evaluate_snn(convert(net, "sc_ttfs", T=5, thresholds=thresholds_from_statistics(pre, 5, max_samples=20_000)),
                           (x, y))
    assert rows[1]["accuracy"] == pytest.approx(by_hand["accuracy"])
    assert rows[1]["spikes_per_image"] == pytest.approx(by_hand["spikes_per_image"])
    assert rows[1]["correct"] == round(by_hand["accuracy"] * 60)
    assert rows[2]["latency"] == evaluate_snn(convert(net, "sc_ttfs", T=4, thresholds="cifar10"), (x, y))["latency"]
    assert set(nets) == {("SC", 2), ("SC", 5), ("T1", 4)}


def test_sweep_rejects_unknown_thresholds():
    net, x, y = _tiny_ann()
    with pytest.raises(ValueError, match="statistics"):
        sweep_conversions(net, relu_preactivations(net, x), (x, y), {"X": ("ttfs", (4,), "imagenet")})
