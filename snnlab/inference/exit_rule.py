"""What every early-exit rule shares: per-step scores, the first step that passes, the decision.

A rule looks at the per-step outputs of a network, ``outputs`` of shape ``[T, B, C]`` (the
potentials or logits ``f_t(x_t)`` of the output layer at steps t = 1..T), and decides for every
sample the step ``T_hat`` at which inference stops and the class it predicts there:

    T_hat = min({t : passes_t, 1 <= t < T} ∪ {T})        (ATSN eq. 16, DTSNN eq. 7)

Every rule is *causal*: ``passes_t`` and the prediction at t depend only on the outputs of steps
1..t, and are computed with prefix operations (cumulative sums), so the rule gives bit-for-bit the
same answer whether it sees all T steps at once (offline, :meth:`ExitRule.decide`) or the steps
seen so far while the network is still running (online, :func:`snnlab.inference.adaptive_inference`).
Scores and thresholds are float64 (the float32 outputs are cast first), so decisions near a
threshold do not depend on float32 rounding of the softmax.

Steps are 1-based in results (``steps`` in 1..T), as in the papers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from snnlab.checks import check_tensor

__all__ = ["ExitResult", "ExitRule", "FixedSteps", "first_pass_steps", "check_outputs"]


def check_outputs(outputs: torch.Tensor) -> torch.Tensor:
    """Check per-step outputs ``[T, B, C]`` (finite, C >= 2) and return them as float64."""
    check_tensor("outputs [T, B, C]", outputs, dims=3)
    if outputs.shape[0] < 1 or outputs.shape[2] < 2:
        raise ValueError(f"outputs must be [T >= 1, B, C >= 2] per-step outputs, got {tuple(outputs.shape)}.")
    if not torch.isfinite(outputs).all():
        raise ValueError("outputs contain NaN or infinity; exit rules need finite per-step outputs.")
    return outputs.detach().to(torch.float64)


def first_pass_steps(passes: torch.Tensor) -> torch.Tensor:
    """1-based exit step of every sample from a boolean ``passes`` of shape ``[..., T, B]``.

    The first t < T with ``passes[..., t-1, b]`` is the exit; a sample that never passes (or passes
    only at T) runs all T steps (the ``∪ {T}`` of ATSN eq. 16 / DTSNN eq. 7). Returns int64 ``[..., B]``.
    """
    if passes.dtype != torch.bool or passes.dim() < 2:
        raise ValueError(f"passes must be a boolean tensor [..., T, B], got {passes.dtype} {tuple(passes.shape)}.")
    forced = passes.clone()
    forced[..., -1, :] = True  # every sample stops at T at the latest
    # argmax returns the first maximal index, i.e. the first True
    return forced.to(torch.uint8).argmax(dim=-2) + 1


@dataclass
class ExitResult:
    """Exit step (1-based, int64 ``[B]``) and predicted class (int64 ``[B]``) of every sample."""

    steps: torch.Tensor
    predictions: torch.Tensor

    def accuracy(self, targets: torch.Tensor) -> float:
        return float((self.predictions == targets).double().mean())

    @property
    def mean_steps(self) -> float:
        return float(self.steps.double().mean())

    @property
    def max_steps(self) -> int:
        return int(self.steps.max())


class ExitRule:
    """Base class of an exit rule; subclasses define :meth:`passes` and :meth:`step_predictions`."""

    name = "rule"

    def passes(self, outputs: torch.Tensor) -> torch.Tensor:
        """Boolean ``[T, B]``: the exit condition holds at step t (index t-1)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def step_predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        """int64 ``[T, B]``: the class predicted if inference stopped at step t (index t-1)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def decide(self, outputs: torch.Tensor) -> ExitResult:
        """Offline decision from all T per-step outputs ``[T, B, C]``."""
        steps = first_pass_steps(self.passes(outputs))
        predictions = self.step_predictions(outputs).gather(0, (steps - 1)[None])[0]
        return ExitResult(steps, predictions)

    def __call__(self, outputs: torch.Tensor) -> ExitResult:
        return self.decide(outputs)


class FixedSteps(ExitRule):
    """No early exit: every sample runs all T steps (the fixed-T SNN). Predicts with ``readout``."""

    name = "fixed"

    def __init__(self, readout: str = "mean_logits") -> None:
        from snnlab.inference.atsn import READOUTS

        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {', '.join(READOUTS)}, got {readout!r}.")
        self.readout = readout

    def passes(self, outputs: torch.Tensor) -> torch.Tensor:
        out = check_outputs(outputs)
        return torch.zeros(out.shape[:2], dtype=torch.bool)

    def step_predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        from snnlab.inference.atsn import readout_predictions

        return readout_predictions(outputs, self.readout)

    def __repr__(self) -> str:
        return f"FixedSteps(readout={self.readout!r})"
