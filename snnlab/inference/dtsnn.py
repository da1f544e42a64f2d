"""DTSNN's entropy exit (Li et al. 2023, as written in ATSN eqs. 5-7; code: SEENN).

    π_t = softmax((1/t) Σ_{k<=t} f_k(x_k))                     (eq. 5)
    E_t = -(1/log C) Σ_i π_{t,i} log π_{t,i}                    (eq. 6, normalised to [0, 1])
    T_hat = min({t : E_t < θ, 1 <= t < T} ∪ {T})                (eq. 7)

The prediction at the exit is argmax π_T_hat. The base of the logarithm cancels in eq. 6 (ATSN
writes lg); 0·log 0 = 0. The authors' code scores 1 - E_t and exits when the score exceeds a
threshold, the same test with θ' = 1 - θ.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from snnlab.checks import check_in_range
from snnlab.inference.atsn import RunningReadout, mean_logit_probabilities
from snnlab.inference.exit_rule import ExitRule, HistoryOnline, OnlineExit, first_pass_steps, keeps_rule_of

__all__ = ["normalized_entropy", "EntropyExit", "entropy_sweep"]


def normalized_entropy(outputs: torch.Tensor) -> torch.Tensor:
    """E_t of DTSNN eq. (6) for every step: float64 ``[T, B]`` in [0, 1]."""
    return _entropy(mean_logit_probabilities(outputs))


def _entropy(pi: torch.Tensor) -> torch.Tensor:
    return -torch.special.xlogy(pi, pi).sum(-1) / math.log(pi.shape[-1])


class EntropyExit(ExitRule):
    """DTSNN eq. (7): exit at the first t < T whose normalised entropy is below ``theta``."""

    name = "dtsnn"

    def __init__(self, theta: float = 0.1) -> None:
        self.theta = check_in_range("theta", theta, 0.0, 1.0)

    def passes(self, outputs: torch.Tensor) -> torch.Tensor:
        return normalized_entropy(outputs) < self.theta

    def step_predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        return mean_logit_probabilities(outputs).argmax(-1)

    def online(self, T: int) -> OnlineExit:
        if not keeps_rule_of(self, EntropyExit):
            return HistoryOnline(self, T)
        return _EntropyOnline(self, T)

    def __repr__(self) -> str:
        return f"EntropyExit(theta={self.theta})"


class _EntropyOnline(OnlineExit):
    """:class:`EntropyExit` per step: π_t from the running sum of the outputs."""

    def __init__(self, rule: EntropyExit, T: int) -> None:
        super().__init__(T)
        self.theta = rule.theta
        self.readout = RunningReadout("mean_logits")

    def _push(self, f: torch.Tensor) -> None:
        self.readout.push(f)

    def passes(self) -> torch.Tensor:
        return _entropy(self.readout.probabilities()) < self.theta

    def predictions(self, rows: torch.Tensor) -> torch.Tensor:
        return self.readout.predictions(rows)

    def select(self, keep: torch.Tensor) -> None:
        self.readout.select(keep)


def entropy_sweep(outputs: torch.Tensor, targets: torch.Tensor, thetas: Sequence[float]) -> dict[str, np.ndarray]:
    """:class:`EntropyExit` at every θ at once: ``{"theta", "accuracy", "mean_steps", "max_steps"}``."""
    theta = torch.as_tensor(np.asarray(thetas, dtype=np.float64))
    if theta.dim() != 1 or not len(theta) or not ((theta >= 0) & (theta <= 1)).all():
        raise ValueError(f"thetas must be a non-empty 1-D sequence in [0, 1], got {thetas!r}.")
    entropy = normalized_entropy(outputs)                                  # [T, B]
    steps = first_pass_steps(entropy[None] < theta[:, None, None])        # [n, B]
    correct = (mean_logit_probabilities(outputs).argmax(-1) == targets[None]).double()  # [T, B]
    hit = correct.T.gather(1, (steps - 1).T).T                             # [n, B]
    return {"theta": theta.numpy(), "accuracy": hit.mean(-1).numpy(),
            "mean_steps": steps.double().mean(-1).numpy(), "max_steps": steps.max(-1).values.numpy()}
