"""ATSN's output representation and its confidence exit (Li, Jia, Zhang, Chen 2024).

With ``f_t(x_t)`` the potentials of the non-reset output layer at step t (eq. 8,
:class:`snnlab.neurons.NonSpikingIntegrator`):

    o^t = softmax(f_t(x_t))                                      (eq. 9)
    y_t = (1/t) Σ_{k<=t} o^k                                     (eq. 10, predict argmax y_T)
    CL_t = CL_init · τ_CL^(t-1)                                  (eq. 15)
    T_hat = min({t : max(o^t) > CL_t, 1 <= t < T} ∪ {T})         (eq. 16)

and the division-free hardware form of the same test (eqs. 17-18):

    σ_i^t = exp(f_t(x_t)_i),   exit when  max_i σ_i^t > CL_init · τ_CL^(t-1) · Σ_j σ_j^t.

**Which output does the exit read?** Eq. 16 writes ``max(o^t)``, the softmax of the current step
alone; but sec. 2.1 calls the cumulative ``y_t`` "the output of the network", and the sentence after
eq. 16 tests "the maximum of the network's output at the current step". ``reads="step"`` follows
eq. 16 (and eqs. 17-18, which can only be written for o^t: ``y_t`` averages softmaxes of several
steps, so testing it needs a division per step); ``reads="cumulative"`` follows the text. Either way
the prediction at the exit is ``argmax y_T_hat`` (eq. 10); ``predict="step"`` uses ``argmax o^T_hat``.

All scores are float64 (see :mod:`snnlab.inference.exit_rule`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from snnlab.checks import check_choice, check_in_range, check_timesteps
from snnlab.inference.exit_rule import (
    ExitResult, ExitRule, HistoryOnline, OnlineExit, check_outputs, first_pass_steps, keeps_rule_of,
)

__all__ = [
    "READOUTS",
    "step_probabilities",
    "cumulative_output",
    "mean_logit_probabilities",
    "readout_predictions",
    "RunningReadout",
    "accuracy_by_steps",
    "confidence_levels",
    "confidence_scores",
    "ConfidenceExit",
    "hardware_exit_passes",
    "SweepResult",
    "confidence_sweep",
    "paper_grid",
]

READOUTS = ("mean_logits", "mean_softmax", "step_softmax")
"""How per-step outputs become a class at step t: softmax of the mean output (DTSNN eq. 5, SEW
ResNet, the baseline SNN), the mean of the per-step softmaxes (ATSN eq. 10), or the softmax of step t
alone (ATSN eq. 9)."""

_READS = ("step", "cumulative")


def step_probabilities(outputs: torch.Tensor) -> torch.Tensor:
    """o^t = softmax(f_t(x_t)) for every step, ATSN eq. (9): float64 ``[T, B, C]``."""
    return check_outputs(outputs).softmax(-1)


def cumulative_output(outputs: torch.Tensor) -> torch.Tensor:
    """y_t = (1/t) Σ_{k<=t} o^k for every t, ATSN eq. (10): float64 ``[T, B, C]``."""
    o = step_probabilities(outputs)
    t = torch.arange(1, o.shape[0] + 1, dtype=torch.float64)[:, None, None]
    return o.cumsum(0) / t


def mean_logit_probabilities(outputs: torch.Tensor) -> torch.Tensor:
    """π_t = softmax((1/t) Σ_{k<=t} f_k) for every t, DTSNN eq. (5): float64 ``[T, B, C]``."""
    f = check_outputs(outputs)
    t = torch.arange(1, f.shape[0] + 1, dtype=torch.float64)[:, None, None]
    return (f.cumsum(0) / t).softmax(-1)


def readout_predictions(outputs: torch.Tensor, readout: str = "mean_softmax") -> torch.Tensor:
    """Class predicted from the first t steps, for every t: int64 ``[T, B]`` (see :data:`READOUTS`)."""
    check_choice("readout", readout, READOUTS)
    if readout == "mean_logits":
        return mean_logit_probabilities(outputs).argmax(-1)
    if readout == "mean_softmax":
        return cumulative_output(outputs).argmax(-1)
    return step_probabilities(outputs).argmax(-1)


class RunningReadout:
    """A readout (see :data:`READOUTS`) kept as running sums while a network runs step by step.

    :meth:`push` one step's float64 outputs ``[B, C]``; :meth:`probabilities` and :meth:`predictions`
    then equal row t of :func:`mean_logit_probabilities` / :func:`cumulative_output` /
    :func:`step_probabilities` and of :func:`readout_predictions` bit for bit: the running sum adds
    the steps in the order ``cumsum`` does, and the division by t is the same.
    """

    def __init__(self, readout: str = "mean_softmax") -> None:
        self.readout = check_choice("readout", readout, READOUTS)
        self.t = 0
        self.total: torch.Tensor | None = None   # Σ f_k (mean_logits) or Σ o^k (mean_softmax)
        self.step: torch.Tensor | None = None    # o^t of the current step
        self.batch = 0
        """Samples in the running sums."""

    def push(self, f: torch.Tensor) -> None:
        self.t += 1
        self.batch = f.shape[0]
        if self.readout == "mean_logits":
            term = f
        else:
            self.step = f.softmax(-1)
            term = self.step
        if self.readout != "step_softmax":
            # the first term plus 0.0, as cumsum adds it to 0 (which also turns -0.0 into +0.0)
            self.total = term + 0.0 if self.total is None else self.total + term

    def probabilities(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The readout's class probabilities at the current step, for ``rows`` (default: all)."""
        if self.t == 0:
            raise ValueError("no step has been pushed yet.")
        if self.readout == "step_softmax":
            return self.step if rows is None else self.step[rows]
        total = self.total if rows is None else self.total[rows]
        mean = total / float(self.t)
        return mean.softmax(-1) if self.readout == "mean_logits" else mean

    def predictions(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        return self.probabilities(rows).argmax(-1)

    def select(self, keep: torch.Tensor) -> None:
        self.batch = len(keep)
        if self.total is not None:
            self.total = self.total[keep]
        if self.step is not None:
            self.step = self.step[keep]


def accuracy_by_steps(outputs: torch.Tensor, targets: torch.Tensor, readout: str = "mean_softmax") -> torch.Tensor:
    """Accuracy when inference stops after t = 1..T steps (ATSN Table 5): float64 ``[T]``.

    A network run for t steps produces exactly the first t of its T outputs (it is causal), so the
    fixed-t accuracies of one run of T steps are those of separate runs with T = t.
    """
    predictions = readout_predictions(outputs, readout)
    if targets.shape != predictions.shape[1:]:
        raise ValueError(f"targets {tuple(targets.shape)} must be [B] = {tuple(predictions.shape[1:])}.")
    return (predictions == targets[None]).double().mean(1)


def _check_level(name: str, value: float) -> float:
    return check_in_range(name, value, 0.0, 1.0, low_open=True)


def confidence_levels(T: int, cl_init: float, tau_cl: float) -> torch.Tensor:
    """CL_t = CL_init · τ_CL^(t-1) for t = 1..T, ATSN eq. (15): float64 ``[T]``."""
    check_timesteps("T", T)
    cl_init = _check_level("CL_init", cl_init)
    tau_cl = _check_level("tau_CL", tau_cl)
    t = torch.arange(T, dtype=torch.float64)
    return cl_init * tau_cl ** t


def confidence_scores(outputs: torch.Tensor, reads: str = "step") -> torch.Tensor:
    """max_i o_i^t (``reads="step"``, eq. 16) or max_i y_{t,i} (``"cumulative"``): float64 ``[T, B]``."""
    check_choice("reads", reads, _READS)
    probs = step_probabilities(outputs) if reads == "step" else cumulative_output(outputs)
    return probs.max(-1).values


class ConfidenceExit(ExitRule):
    """ATSN's adaptive timestep rule, eqs. (15)-(16): exit at the first t < T with score_t > CL_t.

    ``reads``: ``"step"`` (max o^t, eq. 16 as written) or ``"cumulative"`` (max y_t, the text).
    ``predict``: ``"cumulative"`` (argmax y_t, eq. 10) or ``"step"`` (argmax o^t).
    ``hardware=True`` evaluates the test in the division-free form of eqs. (17)-(18) (``reads="step"``
    only); it exits at the same steps (tested).
    τ_CL = 1 is the single fixed threshold of plain early exit (the paper's Fig. 7 baseline).
    """

    name = "atsn"

    def __init__(self, cl_init: float = 0.999, tau_cl: float = 0.999, *, reads: str = "step",
                 predict: str = "cumulative", hardware: bool = False) -> None:
        self.cl_init = _check_level("CL_init", cl_init)
        self.tau_cl = _check_level("tau_CL", tau_cl)
        self.reads = check_choice("reads", reads, _READS)
        self.predict = check_choice("predict", predict, _READS)
        if hardware and reads != "step":
            raise ValueError("the hardware form (ATSN eqs. 17-18) tests the current step's output o^t; "
                             "use reads='step' with hardware=True.")
        self.hardware = bool(hardware)

    def passes(self, outputs: torch.Tensor) -> torch.Tensor:
        levels = confidence_levels(outputs.shape[0], self.cl_init, self.tau_cl)
        if self.hardware:
            return hardware_exit_passes(outputs, levels)
        return confidence_scores(outputs, self.reads) > levels[:, None]

    def step_predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        return readout_predictions(outputs, "mean_softmax" if self.predict == "cumulative" else "step_softmax")

    def online(self, T: int) -> OnlineExit:
        if not keeps_rule_of(self, ConfidenceExit):
            return HistoryOnline(self, T)
        return _ConfidenceOnline(self, T)

    def __repr__(self) -> str:
        return (f"ConfidenceExit(cl_init={self.cl_init}, tau_cl={self.tau_cl}, reads={self.reads!r}, "
                f"predict={self.predict!r}, hardware={self.hardware})")


def hardware_exit_passes(outputs: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """ATSN eqs. (17)-(18): ``max_i σ_i^t > CL_t · Σ_j σ_j^t`` with σ^t = exp(f_t), no division.

    Both sides are multiplied by exp(-max_i f_t,i) first (the factor cancels; it keeps exp from
    overflowing, as the hardware's table of exponentials does by its range), so the left side is 1.
    ``levels`` are the CL_t of eq. (15), float ``[T]``. Returns boolean ``[T, B]``.
    """
    f = check_outputs(outputs)
    levels = torch.as_tensor(levels, dtype=torch.float64)
    if levels.shape != (f.shape[0],):
        raise ValueError(f"levels must be [T] = [{f.shape[0]}], got {tuple(levels.shape)}.")
    shift = f.max(-1, keepdim=True).values
    sigma = torch.exp(f - shift)                       # eq. 17 (shifted)
    return sigma.max(-1).values > levels[:, None] * sigma.sum(-1)   # eq. 18


class _ConfidenceOnline(OnlineExit):
    """:class:`ConfidenceExit` per step: one softmax of the current step's ``[B, C]`` and running sums."""

    def __init__(self, rule: ConfidenceExit, T: int) -> None:
        super().__init__(T)
        self.rule = rule
        self.levels = confidence_levels(T, rule.cl_init, rule.tau_cl).tolist()
        # y_t (mean of the softmaxes) serves both the cumulative reading and the eq. 10 prediction
        needs_mean = rule.reads == "cumulative" or rule.predict == "cumulative"
        self.readout = RunningReadout("mean_softmax" if needs_mean else "step_softmax")
        self.f: torch.Tensor | None = None

    def _push(self, f: torch.Tensor) -> None:
        self.f = f
        self.readout.push(f)

    def passes(self) -> torch.Tensor:
        level = self.levels[self.t - 1]
        if self.rule.hardware:   # eqs. 17-18, as in hardware_exit_passes
            sigma = torch.exp(self.f - self.f.max(-1, keepdim=True).values)
            return sigma.max(-1).values > level * sigma.sum(-1)
        probs = self.readout.step if self.rule.reads == "step" else self.readout.probabilities()
        return probs.max(-1).values > level

    def predictions(self, rows: torch.Tensor) -> torch.Tensor:
        if self.rule.predict == "step":
            return self.readout.step[rows].argmax(-1)
        return self.readout.predictions(rows)

    def select(self, keep: torch.Tensor) -> None:
        self.readout.select(keep)


@dataclass
class SweepResult:
    """Accuracy, mean and max exit step over a grid of (CL_init, τ_CL): each ``[n_cl, n_tau]``."""

    cl_inits: np.ndarray
    tau_cls: np.ndarray
    accuracy: np.ndarray
    mean_steps: np.ndarray
    max_steps: np.ndarray


def paper_grid() -> np.ndarray:
    """The paper's hyper-parameter grid for Figs. 5-6: 0.9950 to 0.9998 in steps of 0.0002 (25 values)."""
    return np.round(0.9950 + 0.0002 * np.arange(25), 4)


def confidence_sweep(outputs: torch.Tensor, targets: torch.Tensor, cl_inits: Sequence[float],
                     tau_cls: Sequence[float], *, reads: str = "step", predict: str = "cumulative") -> SweepResult:
    """Evaluate :class:`ConfidenceExit` at every (CL_init, τ_CL) of a grid at once, from stored outputs.

    Vectorised: the scores ``[T, B]`` are computed once and compared with all thresholds
    ``[n_cl, n_tau, T]``; the result at each grid point equals ``ConfidenceExit(cl, tau)(outputs)``.
    """
    cl = torch.as_tensor(np.asarray(cl_inits, dtype=np.float64))
    tau = torch.as_tensor(np.asarray(tau_cls, dtype=np.float64))
    if cl.dim() != 1 or tau.dim() != 1 or not len(cl) or not len(tau):
        raise ValueError("cl_inits and tau_cls must be non-empty 1-D sequences.")
    for name, values in (("CL_init", cl), ("tau_CL", tau)):
        if not ((values > 0) & (values <= 1)).all():
            raise ValueError(f"every {name} must lie in (0, 1], got {values.tolist()}.")
    rule = ConfidenceExit(reads=reads, predict=predict)
    scores = confidence_scores(outputs, reads)                               # [T, B]
    T = scores.shape[0]
    levels = cl[:, None, None] * tau[None, :, None] ** torch.arange(T, dtype=torch.float64)  # [n, m, T]
    steps = first_pass_steps(scores[None, None] > levels[..., None])          # [n, m, B]
    predictions = rule.step_predictions(outputs)                              # [T, B]
    correct = (predictions == targets[None]).double()                         # [T, B]
    flat = (steps - 1).reshape(-1, steps.shape[-1])                           # [n*m, B]
    hit = correct.T.gather(1, flat.T).T.reshape(steps.shape)                  # [n, m, B]
    return SweepResult(
        cl_inits=cl.numpy(), tau_cls=tau.numpy(),
        accuracy=hit.mean(-1).numpy(),
        mean_steps=steps.double().mean(-1).numpy(),
        max_steps=steps.max(-1).values.numpy(),
    )
