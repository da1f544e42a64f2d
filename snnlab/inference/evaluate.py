"""Evaluating a network with an exit rule over a whole data set: what chapter 7's Table 1 and
``snnlab evaluate`` compute.

:func:`evaluate_exit` runs :func:`~snnlab.inference.adaptive_inference` batch by batch (samples leave
the batch when the rule lets them exit), optionally inside a
:class:`~snnlab.inference.SynapticOpCounter` (ATSN eq. 19, counting only the steps each sample
computed), and collects exit steps, predictions, wall-clock and operations. :func:`build_exit_rule`
makes a rule from its command-line name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from snnlab.checks import check_choice, check_positive_int, check_timesteps
from snnlab.inference.adaptive import adaptive_inference
from snnlab.inference.complexity import ComplexityReport, SynapticOpCounter
from snnlab.inference.exit_rule import ExitResult, ExitRule

__all__ = ["EXIT_RULES", "build_exit_rule", "ExitEvaluation", "evaluate_exit"]

EXIT_RULES = ("fixed", "atsn", "dtsnn")
"""``fixed``: all T steps (:class:`FixedSteps`); ``atsn``: ATSN's confidence exit
(:class:`ConfidenceExit`, eqs. 15-16); ``dtsnn``: DTSNN's entropy exit (:class:`EntropyExit`)."""


def build_exit_rule(name: str, *, cl_init: float = 0.999, tau_cl: float = 0.999, theta: float | None = None,
                    readout: str = "mean_logits", reads: str = "step", hardware: bool = False) -> ExitRule:
    """The exit rule ``name`` (see :data:`EXIT_RULES`) with its parameters; ``theta`` is required for
    ``dtsnn``; ``readout`` applies to ``fixed``; ``reads`` and ``hardware`` to ``atsn``."""
    from snnlab.inference.atsn import ConfidenceExit
    from snnlab.inference.dtsnn import EntropyExit
    from snnlab.inference.exit_rule import FixedSteps

    check_choice("exit rule", name, EXIT_RULES)
    if name == "fixed":
        return FixedSteps(readout)
    if name == "atsn":
        return ConfidenceExit(cl_init, tau_cl, reads=reads, hardware=hardware)
    if theta is None:
        raise ValueError("the dtsnn exit needs its entropy threshold theta in [0, 1] (e.g. --theta 0.1).")
    return EntropyExit(theta)


@dataclass
class ExitEvaluation(ExitResult):
    """What :func:`evaluate_exit` returns: every sample's exit step (1-based) and prediction
    (:class:`ExitResult`), and what the run cost."""

    T: int
    targets: torch.Tensor | None = None
    """int64 ``[N]`` when the data carried labels."""
    seconds: float = 0.0
    """Wall-clock of the adaptive loops (network, exit tests and batch shrinking), all batches."""
    network_seconds: float = 0.0
    active: list[int] = field(default_factory=list)
    """Samples computed at each step t = 1..T, summed over batches."""
    complexity: ComplexityReport | None = None
    """ATSN eq. 19's counts, when counted."""

    def accuracy(self, targets: torch.Tensor | None = None) -> float:
        targets = self.targets if targets is None else targets
        if targets is None:
            raise ValueError("no targets: pass them, or evaluate a data set of (x, y) items.")
        return super().accuracy(targets)

    @property
    def operations(self) -> float:
        """Total synaptic operations (eq. 19) over all samples; NaN when not counted."""
        return self.complexity.total if self.complexity is not None else float("nan")

    def step_histogram(self) -> list[int]:
        """How many samples exited at each step t = 1..T."""
        return torch.bincount(self.steps, minlength=self.T + 1)[1:].tolist()


def _batches(data, batch_size: int):
    if isinstance(data, torch.Tensor):
        for i in range(0, len(data), batch_size):
            yield data[i:i + batch_size], None
    elif isinstance(data, Dataset):
        for x, y in DataLoader(data, batch_size=batch_size, shuffle=False):
            yield x, torch.as_tensor(y)
    else:
        raise TypeError(f"data must be a tensor of inputs or a Dataset of (x, y), got {type(data).__name__}.")


@torch.no_grad()
def evaluate_exit(model: nn.Module, data, rule: ExitRule, *, T: int, kind: str = "static",
                  batch_size: int | None = None, count_operations: bool = True) -> ExitEvaluation:
    """Classify every sample of ``data`` with ``model`` under the exit ``rule`` (at most ``T`` steps).

    ``data``: an input tensor ``[N, ...]`` (``[N, T', ...]`` for ``kind="events"``) or a Dataset of
    ``(x, y)``; it is run in batches of ``batch_size`` (default: one batch for a tensor, 256 for a
    Dataset) through :func:`~snnlab.inference.adaptive_inference`. With ``count_operations`` the
    run happens inside a :class:`~snnlab.inference.SynapticOpCounter` (eq. 19; its hooks add to the
    wall-clock, so time a separate run without them).
    """
    check_timesteps("T", T)
    if batch_size is None:
        batch_size = len(data) if isinstance(data, torch.Tensor) else 256
    check_positive_int("batch_size", batch_size)
    counter = SynapticOpCounter(model) if count_operations else None
    steps, predictions, targets = [], [], []
    seconds = network = 0.0
    active = [0] * T
    if counter is not None:
        counter.__enter__()
    try:
        for x, y in _batches(data, batch_size):
            result = adaptive_inference(model, x, rule, T=T, kind=kind)
            steps.append(result.steps)
            predictions.append(result.predictions)
            if y is not None:
                targets.append(y.to(torch.long))
            seconds += result.seconds
            network += result.network_seconds
            for t, n in enumerate(result.active):
                active[t] += n
    finally:
        if counter is not None:
            counter.__exit__(None, None, None)
    if not steps:
        raise ValueError("data holds no samples.")
    return ExitEvaluation(steps=torch.cat(steps), predictions=torch.cat(predictions), T=T,
                          targets=torch.cat(targets) if targets else None, seconds=seconds, network_seconds=network,
                          active=active, complexity=counter.report() if counter is not None else None)
