"""Reference rows for accuracy tables: what a network that learned nothing spiking would get.

A spiking network's accuracy means little on its own: on scikit-learn's 8x8 digits a linear
classifier on the raw pixels already gets about 95 %. Chapter 2 introduces that classifier (ridge
regression on one-hot labels, :func:`linear_classifier_accuracy`); the training chapters put it,
and a non-spiking network of the same shape, next to every accuracy they report.
"""

from __future__ import annotations

from snnlab.data.arrays import dataset_arrays

__all__ = ["linear_classifier_accuracy"]


def linear_classifier_accuracy(train_set, test_set, *, alpha: float = 1.0) -> float:
    """Test accuracy of a ridge classifier (scikit-learn's ``RidgeClassifier``, one-hot targets,
    L2 penalty ``alpha``) fitted on the flattened inputs of ``train_set``, all of them, and
    scored on all of ``test_set``. Inputs are divided by the training inputs' standard deviation
    (one number), so ``alpha`` means the same for pixels and event counts."""
    from sklearn.linear_model import RidgeClassifier

    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}.")
    X_train, y_train = dataset_arrays(train_set)
    X_test, y_test = dataset_arrays(test_set)
    X_train, X_test = X_train.flatten(1).double().numpy(), X_test.flatten(1).double().numpy()
    if X_train.shape[1] != X_test.shape[1]:
        raise ValueError(f"train and test inputs differ in size: {X_train.shape[1]} and {X_test.shape[1]} values.")
    scale = float(X_train.std()) or 1.0
    model = RidgeClassifier(alpha=alpha).fit(X_train / scale, y_train.numpy())
    return float(model.score(X_test / scale, y_test.numpy()))
