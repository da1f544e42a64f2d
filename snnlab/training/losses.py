"""Losses over per-step outputs ``[T, B, C]`` of a spiking network.

Every loss is a small object with

* ``loss(outputs, target)``: the loss of a whole sequence, ``outputs`` of shape ``[T, B, C]``;
* ``step_loss(output_t, target, t, T)``: the term contributed by step ``t`` (0-based), for the
  online methods (SLTT, OTTT) that run a backward at every step. For a *decomposable* loss
  ``loss(outputs) == sum_t step_loss(outputs[t], t)`` holds exactly (up to float rounding);
  SDT is not decomposable and raises a clear error;
* ``predict(outputs)``: the predicted class per sample, ``[B]``.

``target`` holds class indices ``[B]`` (int64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snnlab.checks import check_choice, check_in_range, check_tensor, check_timesteps

__all__ = [
    "SequenceLoss",
    "SDTLoss",
    "TETLoss",
    "OTTTLoss",
    "ImportanceLoss",
    "importance_weights",
    "LOSSES",
    "build_loss",
]


def _check_outputs(outputs: torch.Tensor, target: torch.Tensor) -> None:
    check_tensor("outputs", outputs, dims=3)
    if not isinstance(target, torch.Tensor) or target.dtype != torch.long:
        raise TypeError("target must be an int64 tensor of class indices [B].")
    if target.dim() != 1 or target.shape[0] != outputs.shape[1]:
        raise ValueError(
            f"outputs [T, B, C] = {tuple(outputs.shape)} and target [B] = {tuple(target.shape)} disagree "
            f"on the batch size B."
        )


def _check_step(output_t: torch.Tensor, target: torch.Tensor, t: int, T: int) -> None:
    check_tensor("output_t", output_t, dims=2)
    check_timesteps("T", T)
    if not 0 <= t < T:
        raise ValueError(f"step t must satisfy 0 <= t < T = {T}, got {t}.")
    if target.dim() != 1 or target.shape[0] != output_t.shape[0]:
        raise ValueError(
            f"output_t [B, C] = {tuple(output_t.shape)} and target [B] = {tuple(target.shape)} disagree on B."
        )


class SequenceLoss:
    """Base class: a loss over ``[T, B, C]`` outputs; see the module docstring."""

    name = "base"
    decomposable = True

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_outputs(outputs, target)
        T = outputs.shape[0]
        return sum(self.step_loss(outputs[t], target, t, T) for t in range(T))

    def step_loss(self, output_t: torch.Tensor, target: torch.Tensor, t: int, T: int) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class with the largest time-averaged output (OTTT: argmax of sum_t u^N[t])."""
        return outputs.mean(0).argmax(-1)

    def __call__(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs, target)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SDTLoss(SequenceLoss):
    """Standard direct training: cross-entropy of the time-averaged output.

    MLF paper (Qu et al., 2024), eq. (7): L_SDT = CE((1/T) sum_t O(t), y). The mean over T sits
    inside the cross-entropy, so the loss does not split into per-step terms: online methods
    (SLTT, OTTT) cannot use it.
    """

    name = "sdt"
    decomposable = False

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_outputs(outputs, target)
        return F.cross_entropy(outputs.mean(0), target)

    def step_loss(self, output_t, target, t, T):  # noqa: D102
        raise ValueError(
            "the SDT loss is the cross-entropy of the time-averaged output and does not split into "
            "per-step terms; online methods (sltt, sltt_k, ottt_a, ottt_o) need a per-step loss: "
            "use 'tet', 'ottt' or 'imp' (or train with method 'bptt')."
        )


class TETLoss(SequenceLoss):
    """Temporal efficient training (Deng et al., 2022; MLF paper eq. 13 for the CE part).

    L_TET = (1/T) sum_t [ (1 - λ) CE(O(t), y) + λ MSE(O(t), φ) ],

    the authors' code: ``(1 - lamb) * mean_t CE(out_t, y) + lamb * MSE(out, phi)`` with φ = 1.0 for
    every logit and λ = 1e-3. MSE averages over the batch and classes. λ = 0 gives MLF eq. (13).
    SLTT's code uses the same form with λ = 0.05.
    """

    name = "tet"

    def __init__(self, lam: float = 1e-3, phi: float = 1.0) -> None:
        self.lam = check_in_range("TET lambda", lam, 0.0, 1.0)
        self.phi = float(phi)

    def step_loss(self, output_t, target, t, T):  # noqa: D102
        _check_step(output_t, target, t, T)
        ce = F.cross_entropy(output_t, target)
        if self.lam == 0.0:
            return ce / T
        mse = F.mse_loss(output_t, torch.full_like(output_t, self.phi))
        return ((1.0 - self.lam) * ce + self.lam * mse) / T

    def __repr__(self) -> str:
        return f"TETLoss(lam={self.lam}, phi={self.phi})"


class OTTTLoss(SequenceLoss):
    """OTTT's instantaneous loss (patent CN114998659B; authors' code):

    L[t] = ((1 - β) CE(u^N[t], y) + β MSE(u^N[t], onehot(y))) / T,   L = sum_t L[t].

    β = 0.05 on CIFAR, 0.001 on DVS-CIFAR10; MSE averages over the batch and classes.
    """

    name = "ottt"

    def __init__(self, beta: float = 0.05) -> None:
        self.beta = check_in_range("OTTT beta", beta, 0.0, 1.0)

    def step_loss(self, output_t, target, t, T):  # noqa: D102
        _check_step(output_t, target, t, T)
        ce = F.cross_entropy(output_t, target)
        if self.beta == 0.0:
            return ce / T
        onehot = F.one_hot(target, output_t.shape[-1]).to(output_t.dtype)
        return ((1.0 - self.beta) * ce + self.beta * F.mse_loss(output_t, onehot)) / T

    def __repr__(self) -> str:
        return f"OTTTLoss(beta={self.beta})"


def importance_weights(T: int, *, index_base: int = 1) -> torch.Tensor:
    """ATSN eqs. (11)-(12): I_t / D with I_t = 1 + exp(-1 - (t+1)/T), D = sum_t I_t.

    The paper sums over t = 1..T (eqs. 12-13), so by default t is 1-based: step 1 (the first)
    gets 1 + exp(-1 - 2/T), step T gets 1 + exp(-2 - 1/T). ``index_base=0`` takes t = 0..T-1, the
    reading in which ``t+1`` is the 1-based step; the weights still decrease with t either way.
    Returns a float64 tensor ``[T]`` summing to 1.
    """
    check_timesteps("T", T)
    check_choice("index_base", index_base, (0, 1))
    t = torch.arange(T, dtype=torch.float64) + index_base
    importance = 1.0 + torch.exp(-1.0 - (t + 1.0) / T)
    return importance / importance.sum()


class ImportanceLoss(SequenceLoss):
    """ATSN's L_imp, eq. (13): L_imp = -(1/B) sum_t (I_t/D) sum_i z_i log(o_i^t),

    with o^t = softmax(f_t(x_t)) the per-step output (eq. 9) and z the one-hot label, so each step
    contributes (I_t/D) CE(O(t), y). Our reading (stated in the chapter): t is 1-based as in the
    paper's sums (``index_base=1``; 0 is the alternative, see :func:`importance_weights`), and
    "lg" is the natural logarithm of the cross-entropy (base 10 would only rescale the loss by
    1/ln 10). Prediction follows eq. (10): argmax of y_T = (1/T) sum_t o^t (mean softmax).
    """

    name = "imp"

    def __init__(self, index_base: int = 1) -> None:
        self.index_base = check_choice("index_base", index_base, (0, 1))

    def step_loss(self, output_t, target, t, T):  # noqa: D102
        _check_step(output_t, target, t, T)
        weight = float(importance_weights(T, index_base=self.index_base)[t])
        return weight * F.cross_entropy(output_t, target)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.softmax(-1).mean(0).argmax(-1)

    def __repr__(self) -> str:
        return f"ImportanceLoss(index_base={self.index_base})"


LOSSES: dict[str, type[SequenceLoss]] = {
    "sdt": SDTLoss,
    "tet": TETLoss,
    "ottt": OTTTLoss,
    "imp": ImportanceLoss,
}
"""Loss name -> class. Options are the class's keyword arguments."""


def build_loss(name: str | SequenceLoss, **options) -> SequenceLoss:
    """A loss by name (``"sdt"``, ``"tet"``, ``"ottt"``, ``"imp"``) with its options, or pass one through."""
    if isinstance(name, SequenceLoss):
        if options:
            raise ValueError("pass either a loss instance or a name with options, not both.")
        return name
    check_choice("loss", name, LOSSES)
    try:
        return LOSSES[name](**options)
    except TypeError as error:
        raise TypeError(f"bad options for loss {name!r}: {error}") from None

