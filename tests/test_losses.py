"""Losses against their formulas (MLF eq. 7, TET, OTTT, ATSN eqs. 11-13)."""

import math

import pytest
import torch
import torch.nn.functional as F

from snnlab.training.losses import (
    ImportanceLoss,
    OTTTLoss,
    SDTLoss,
    TETLoss,
    build_loss,
    importance_weights,
)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(5, 4, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2])
    return out, y


def _ce(logits, y):
    """-(1/B) sum_b log softmax(logits_b)[y_b], written out."""
    logp = logits - torch.logsumexp(logits, -1, keepdim=True)
    return -logp[torch.arange(len(y)), y].mean()


def test_sdt_is_ce_of_the_time_mean(batch):
    out, y = batch
    expected = _ce(out.sum(0) / out.shape[0], y)
    assert torch.allclose(SDTLoss()(out, y), expected)


def test_sdt_refuses_per_step_terms(batch):
    out, y = batch
    with pytest.raises(ValueError, match="does not split"):
        SDTLoss().step_loss(out[0], y, 0, 5)


@pytest.mark.parametrize("lam,phi", [(0.0, 1.0), (1e-3, 1.0), (0.3, 0.5)])
def test_tet_formula(batch, lam, phi):
    out, y = batch
    T = out.shape[0]
    ce = sum(_ce(out[t], y) for t in range(T)) / T
    mse = ((out - phi) ** 2).mean()
    expected = (1 - lam) * ce + lam * mse
    assert torch.allclose(TETLoss(lam=lam, phi=phi)(out, y), expected)


def test_ottt_formula(batch):
    out, y = batch
    T, beta = out.shape[0], 0.05
    onehot = torch.zeros(4, 3, dtype=out.dtype)
    onehot[torch.arange(4), y] = 1
    expected = sum(((1 - beta) * _ce(out[t], y) + beta * ((out[t] - onehot) ** 2).mean()) / T for t in range(T))
    assert torch.allclose(OTTTLoss(beta=beta)(out, y), expected)


def test_importance_weights_formula():
    T = 4
    w1 = importance_weights(T)  # 1-based: t = 1..T
    i1 = torch.tensor([1 + math.exp(-1 - (t + 1) / T) for t in range(1, T + 1)], dtype=torch.float64)
    assert torch.allclose(w1, i1 / i1.sum())
    w0 = importance_weights(T, index_base=0)
    i0 = torch.tensor([1 + math.exp(-1 - (t + 1) / T) for t in range(T)], dtype=torch.float64)
    assert torch.allclose(w0, i0 / i0.sum())
    assert not torch.allclose(w0, w1)
    for w in (w0, w1):  # earlier steps matter more, and D normalises
        assert torch.all(w[:-1] > w[1:]) and math.isclose(float(w.sum()), 1.0)


@pytest.mark.parametrize("base", [0, 1])
def test_imp_formula(batch, base):
    out, y = batch
    T = out.shape[0]
    I = torch.tensor([1 + math.exp(-1 - (t + base + 1) / T) for t in range(T)], dtype=torch.float64)
    z = F.one_hot(y, 3).to(out.dtype)
    o = out.softmax(-1)
    expected = -(1 / 4) * sum(I[t] / I.sum() * (z * o[t].log()).sum() for t in range(T))
    assert torch.allclose(ImportanceLoss(index_base=base)(out, y), expected)


@pytest.mark.parametrize("name", ["tet", "ottt", "imp"])
def test_decomposable_losses_sum_their_steps(batch, name):
    out, y = batch
    loss = build_loss(name)
    T = out.shape[0]
    assert torch.allclose(loss(out, y), sum(loss.step_loss(out[t], y, t, T) for t in range(T)))


def test_predictions():
    out = torch.zeros(3, 1, 3)
    out[0, 0] = torch.tensor([20.0, 0.0, 0.0])  # one very confident step for class 0
    out[1:, 0] = torch.tensor([0.0, 3.0, 0.0])  # two milder ones for class 1
    assert SDTLoss().predict(out).tolist() == [0]  # sum of outputs
    assert ImportanceLoss().predict(out).tolist() == [1]  # mean of softmaxes (ATSN eq. 10)


def test_bad_names_and_inputs(batch):
    out, y = batch
    with pytest.raises(ValueError, match="valid choices: 'sdt', 'tet', 'ottt', 'imp'"):
        build_loss("nope")
    with pytest.raises(ValueError, match="lambda"):
        TETLoss(lam=2.0)
    with pytest.raises(ValueError, match="batch size"):
        TETLoss()(out, y[:2])
    with pytest.raises(TypeError, match="int64"):
        TETLoss()(out, y.float())
    with pytest.raises(ValueError, match="0 <= t < T"):
        TETLoss().step_loss(out[0], y, 5, 5)
