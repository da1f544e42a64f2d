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

:meth:`ExitRule.online` gives the per-step form a running network uses (:class:`OnlineExit`): it is
fed one step's outputs at a time and keeps running sums, so the test at step t costs O(B·C) instead
of recomputing the whole history, with the same floating-point operations per sample as the
offline rule (a cumulative sum is a running sum), hence the same decisions bit for bit (tested).

Steps are 1-based in results (``steps`` in 1..T), as in the papers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from snnlab.checks import check_tensor

__all__ = ["ExitResult", "ExitRule", "OnlineExit", "HistoryOnline", "FixedSteps", "first_pass_steps",
           "check_outputs", "check_step_outputs"]


def check_outputs(outputs: torch.Tensor) -> torch.Tensor:
    """Check per-step outputs ``[T, B, C]`` (finite, C >= 2) and return them as float64."""
    check_tensor("outputs [T, B, C]", outputs, dims=3)
    if outputs.shape[0] < 1 or outputs.shape[2] < 2:
        raise ValueError(f"outputs must be [T >= 1, B, C >= 2] per-step outputs, got {tuple(outputs.shape)}.")
    if not torch.isfinite(outputs).all():
        raise ValueError("outputs contain NaN or infinity; exit rules need finite per-step outputs.")
    return outputs.detach().to(torch.float64)


def check_step_outputs(out: torch.Tensor) -> torch.Tensor:
    """Check one step's outputs ``[B, C]`` (finite, C >= 2) and return them as float64."""
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] < 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"one step's outputs must be a tensor [B, C >= 2], got {shape}.")
    if not torch.isfinite(out).all():
        raise ValueError("outputs contain NaN or infinity; exit rules need finite per-step outputs.")
    return out.detach().to(torch.float64)


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

    def online(self, T: int) -> "OnlineExit":
        """The per-step form of this rule for a run of at most ``T`` steps (see :class:`OnlineExit`).

        This fallback keeps the outputs seen so far and re-applies :meth:`passes` to them each step
        (O(t) per step); the rules of snnlab override it with running sums (O(1) per step).
        """
        return HistoryOnline(self, T)


def keeps_rule_of(rule: ExitRule, cls: type) -> bool:
    """Whether ``rule`` decides as ``cls`` does (a subclass that overrides :meth:`~ExitRule.passes` or
    :meth:`~ExitRule.step_predictions` must not inherit ``cls``'s running-sum online form)."""
    return type(rule).passes is cls.passes and type(rule).step_predictions is cls.step_predictions


class OnlineExit:
    """An exit rule applied while the network runs, one step at a time, to the samples still running.

    Each step: :meth:`push` the step's outputs ``[B_alive, C]``; then :meth:`passes` (bool
    ``[B_alive]``: the exit test of this step) and :meth:`predictions` (the class of chosen samples
    if they stop now) read the state; :meth:`select` keeps only the samples that go on. Equal, bit
    for bit, to :meth:`ExitRule.passes` / :meth:`ExitRule.step_predictions` at the same step.
    """

    def __init__(self, T: int) -> None:
        self.T = int(T)
        self.t = 0
        """Steps pushed so far (1-based index of the current step)."""

    def push(self, out: torch.Tensor) -> None:
        """Feed the outputs ``[B_alive, C]`` of the next step."""
        if self.t >= self.T:
            raise ValueError(f"this online rule was made for T = {self.T} steps; step {self.t + 1} was pushed.")
        f = check_step_outputs(out)
        self.t += 1
        self._push(f)

    def _push(self, f: torch.Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def passes(self) -> torch.Tensor:  # pragma: no cover - abstract
        """Boolean ``[B_alive]``: the exit condition holds at the current step."""
        raise NotImplementedError

    def predictions(self, rows: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """int64: the class predicted for the samples ``rows`` (indices into the alive batch) at this step."""
        raise NotImplementedError

    def select(self, keep: torch.Tensor) -> None:  # pragma: no cover - abstract
        """Keep only the samples ``keep`` (int64 indices into the alive batch)."""
        raise NotImplementedError


class HistoryOnline(OnlineExit):
    """The generic per-step form of any :class:`ExitRule`: the rule applied to the history each step."""

    def __init__(self, rule: ExitRule, T: int) -> None:
        super().__init__(T)
        self.rule = rule
        self.history: list[torch.Tensor] = []

    def _push(self, f: torch.Tensor) -> None:
        self.history.append(f)

    def passes(self) -> torch.Tensor:
        return self.rule.passes(torch.stack(self.history))[-1]

    def predictions(self, rows: torch.Tensor) -> torch.Tensor:
        return self.rule.step_predictions(torch.stack([h[rows] for h in self.history]))[-1]

    def select(self, keep: torch.Tensor) -> None:
        self.history = [h[keep] for h in self.history]


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

    def online(self, T: int) -> OnlineExit:
        from snnlab.inference.atsn import RunningReadout

        if not keeps_rule_of(self, FixedSteps):
            return HistoryOnline(self, T)
        return _FixedOnline(T, RunningReadout(self.readout))

    def __repr__(self) -> str:
        return f"FixedSteps(readout={self.readout!r})"


class _FixedOnline(OnlineExit):
    """:class:`FixedSteps` per step: never passes; the readout is kept as running sums."""

    def __init__(self, T: int, readout) -> None:
        super().__init__(T)
        self.readout = readout

    def _push(self, f: torch.Tensor) -> None:
        self.readout.push(f)

    def passes(self) -> torch.Tensor:
        return torch.zeros(self.readout.batch, dtype=torch.bool)

    def predictions(self, rows: torch.Tensor) -> torch.Tensor:
        return self.readout.predictions(rows)

    def select(self, keep: torch.Tensor) -> None:
        self.readout.select(keep)
