import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from snnlab.analysis.baselines import linear_classifier_accuracy


def _ridge_by_hand(X, Y, alpha):
    """Closed-form ridge regression on one-hot targets in {-1, 1}, with an unpenalised intercept."""
    xm, ym = X.mean(0), Y.mean(0)
    Xc, Yc = X - xm, Y - ym
    W = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ Yc)
    return W, ym - xm @ W


def test_linear_classifier_matches_closed_form_ridge():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 5, generator=g) * 2
    y = torch.arange(90) % 3
    X = centres[y] + torch.randn(90, 5, generator=g) * 1.5
    train, test = TensorDataset(X[:60], y[:60]), TensorDataset(X[60:], y[60:])
    acc = linear_classifier_accuracy(train, test, alpha=2.0)
    Xtr, Xte = X[:60].double().numpy(), X[60:].double().numpy()
    scale = Xtr.std()
    Y = -np.ones((60, 3))
    Y[np.arange(60), y[:60].numpy()] = 1
    W, b = _ridge_by_hand(Xtr / scale, Y, 2.0)
    expected = float(((Xte / scale @ W + b).argmax(1) == y[60:].numpy()).mean())
    assert acc == pytest.approx(expected)
    assert 0.5 < acc <= 1.0  # the classes are separable enough to beat chance (1/3) clearly


def test_linear_classifier_checks_its_input():
    a = TensorDataset(torch.randn(10, 4), torch.arange(10) % 2)
    b = TensorDataset(torch.randn(10, 5), torch.arange(10) % 2)
    with pytest.raises(ValueError, match="differ in size"):
        linear_classifier_accuracy(a, b)
    with pytest.raises(ValueError, match="alpha"):
        linear_classifier_accuracy(a, a, alpha=0)
