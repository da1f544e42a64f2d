"""Batched adaptive inference: a sample stops being computed at the step its exit rule fires.

:func:`adaptive_inference` runs a network one timestep at a time on a batch. After step t it
asks the exit rule which samples may stop (with exactly the arithmetic of the offline
:meth:`~snnlab.inference.exit_rule.ExitRule.decide`, applied to the outputs seen so far), records
their exit step and prediction, and *removes them from the batch*: the input, the membrane
potential of every neuron layer (:func:`select_samples`) and the stored outputs shrink, so step t+1
computes only the samples still running. The saved work is real: it is timed, and the number of
samples computed at each step is returned.

Determinism: eval mode, no gradient; the same inputs give the same exit steps and predictions as
the offline rule on a full fixed-T run (tested), because every layer acts on each sample separately
(BatchNorm in eval mode is an affine map per channel) and the neurons are run step by step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from snnlab.checks import check_choice, check_tensor, check_timesteps
from snnlab.inference.exit_rule import ExitRule
from snnlab.neurons import MLFNode, StatefulNode
from snnlab.training.state import reset_model

__all__ = ["AdaptiveResult", "select_samples", "step_input", "adaptive_inference", "fixed_inference",
           "compare_wallclock"]


def select_samples(model: nn.Module, keep: torch.Tensor) -> None:
    """Keep only the samples ``keep`` (int64 indices into the batch) in every neuron's state."""
    if keep.dtype != torch.long or keep.dim() != 1:
        raise ValueError(f"keep must be a 1-D int64 tensor of batch indices, got {keep.dtype} {tuple(keep.shape)}.")
    for m in model.modules():
        if isinstance(m, StatefulNode) and m.v is not None:
            m.v = m.v[:, keep] if isinstance(m, MLFNode) else m.v[keep]


def step_input(x: torch.Tensor, t: int, kind: str) -> torch.Tensor:
    """The network's input at step t (0-based) as ``[1, B, ...]``: the image itself (direct
    encoding, ``kind="static"``, x ``[B, ...]``) or frame t of event data (x ``[B, T, ...]``)."""
    if kind == "static":
        return x[None]
    return x[:, t][None]


@dataclass
class AdaptiveResult:
    """What :func:`adaptive_inference` returns (steps are 1-based)."""

    steps: torch.Tensor
    """int64 ``[B]``: the step at which each sample exited."""
    predictions: torch.Tensor
    """int64 ``[B]``: the class predicted at the exit."""
    outputs: torch.Tensor
    """``[T, B, C]`` per-step outputs; NaN at the steps a sample did not compute."""
    active: list[int] = field(default_factory=list)
    """Samples computed at each step t = 1..T (the batch shrinks as samples exit)."""
    seconds: float = 0.0
    """Wall-clock of the whole loop (network, exit tests and batch shrinking)."""

    def accuracy(self, targets: torch.Tensor) -> float:
        return float((self.predictions == targets).double().mean())

    @property
    def mean_steps(self) -> float:
        return float(self.steps.double().mean())


def _check_batch(model: nn.Module, x: torch.Tensor, T: int, kind: str) -> int:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}.")
    check_timesteps("T", T)
    check_choice("input kind", kind, ("static", "events"))
    check_tensor("input batch", x, min_dim=2)
    if kind == "events" and x.shape[1] < T:
        raise ValueError(f"event input [B, T', ...] has T' = {x.shape[1]} frames, fewer than T = {T}.")
    return x.shape[0]


@torch.no_grad()
def adaptive_inference(model: nn.Module, x: torch.Tensor, rule: ExitRule, *, T: int,
                       kind: str = "static") -> AdaptiveResult:
    """Run ``model`` on the batch ``x`` step by step, dropping each sample once ``rule`` lets it exit.

    ``model`` maps time-major input ``[t, B, ...]`` to outputs ``[t, B, C]`` and keeps its neuron
    states between calls (snnlab's neurons do). ``T`` is the most steps a sample may take.
    """
    if not isinstance(rule, ExitRule):
        raise TypeError(f"rule must be an ExitRule (ConfidenceExit, EntropyExit, FixedSteps), got {type(rule).__name__}.")
    B = _check_batch(model, x, T, kind)
    was_training = model.training
    model.eval()
    reset_model(model)
    try:
        start = time.perf_counter()
        alive = torch.arange(B)
        xs = x
        history: list[torch.Tensor] = []             # per-step outputs of the samples still running
        steps = torch.full((B,), T, dtype=torch.long)
        predictions = torch.zeros(B, dtype=torch.long)
        outputs = None
        active: list[int] = []
        for t in range(T):
            out = model(step_input(xs, t, kind))[0]  # [B_alive, C]
            if outputs is None:
                outputs = torch.full((T, B, out.shape[-1]), float("nan"), dtype=out.dtype)
            outputs[t, alive] = out
            history.append(out)
            active.append(len(alive))
            seen = torch.stack(history)               # [t+1, B_alive, C]
            last = t == T - 1
            done = torch.ones(len(alive), dtype=torch.bool) if last else rule.passes(seen)[-1]
            if done.any():
                steps[alive[done]] = t + 1
                predictions[alive[done]] = rule.step_predictions(seen)[-1][done]
            if last or done.all():
                break
            if done.any():
                keep = (~done).nonzero().flatten()
                alive, xs = alive[keep], xs[keep]
                history = [h[keep] for h in history]
                select_samples(model, keep)
        seconds = time.perf_counter() - start
    finally:
        reset_model(model)
        model.train(was_training)
    return AdaptiveResult(steps, predictions, outputs, active, seconds)


@torch.no_grad()
def fixed_inference(model: nn.Module, x: torch.Tensor, *, T: int, kind: str = "static",
                    step_by_step: bool = False) -> tuple[torch.Tensor, float]:
    """All T steps for every sample: per-step outputs ``[T, B, C]`` and the wall-clock seconds.

    ``step_by_step=False`` runs the whole sequence in one call (multi-step neurons, the usual fixed-T
    path); ``True`` runs the same per-step loop as :func:`adaptive_inference` without exits.
    """
    _check_batch(model, x, T, kind)
    was_training = model.training
    model.eval()
    reset_model(model)
    try:
        start = time.perf_counter()
        if step_by_step:
            out = torch.cat([model(step_input(x, t, kind)) for t in range(T)])
        else:
            seq = x[None].expand(T, *x.shape) if kind == "static" else x[:, :T].transpose(0, 1)
            out = model(seq.contiguous())
        seconds = time.perf_counter() - start
    finally:
        reset_model(model)
        model.train(was_training)
    return out, seconds


def compare_wallclock(model: nn.Module, x: torch.Tensor, rule: ExitRule, *, T: int, kind: str = "static",
                      repeats: int = 5) -> dict[str, float]:
    """Median wall-clock and CPU seconds of three ways to classify the batch ``x``:

    ``fixed``: all T steps in one multi-step call (the usual fixed-T path); ``fixed_stepwise``: all T
    steps, one call per step (the adaptive loop without exits); ``adaptive``: :func:`adaptive_inference`.
    Keys ``<name>`` hold wall-clock seconds, ``<name>_cpu`` the CPU seconds of this process
    (``time.process_time``: on a shared machine it leaves out the time the process waited for a core).
    The three are interleaved in every repeat, so a change of machine load hits them alike.
    ``sample_steps`` is the fraction of the T·B sample-steps the adaptive run computed.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}.")
    names = ("fixed", "fixed_stepwise", "adaptive")
    times: dict[str, list[float]] = {k: [] for n in names for k in (n, n + "_cpu")}
    result = None
    for _ in range(repeats):
        for name in names:
            cpu = time.process_time()
            if name == "adaptive":
                result = adaptive_inference(model, x, rule, T=T, kind=kind)
                wall = result.seconds
            else:
                wall = fixed_inference(model, x, T=T, kind=kind, step_by_step=name == "fixed_stepwise")[1]
            times[name + "_cpu"].append(time.process_time() - cpu)
            times[name].append(wall)
    medians = {k: float(torch.tensor(v, dtype=torch.float64).median()) for k, v in times.items()}
    medians["sample_steps"] = sum(result.active) / (T * x.shape[0])
    return medians
