"""Batched adaptive inference: a sample stops being computed at the step its exit rule fires.

:func:`adaptive_inference` runs a network one timestep at a time on a batch. After each step it
asks the exit rule which samples may stop (with exactly the arithmetic of the offline
:meth:`~snnlab.inference.exit_rule.ExitRule.decide`, applied to the outputs seen so far), records
their exit step and prediction, and *removes them from the batch*: the input, the membrane
potential of every neuron layer (:func:`select_samples`) and the running sums shrink, so the next
step computes only the samples still running. The saved work is real: it is timed, and the number
of samples computed at each network call is returned.

**Batch slots (continuous batching).** With ``batch_size`` smaller than the number of samples,
``batch_size`` is the most samples computed together: when samples exit, waiting samples take their
places at once, starting at their own step 1 (their rows of every neuron state start at rest, as a
fresh network's do). The number of network calls then follows the sample-steps actually computed
(about ``sample-steps / batch_size``) instead of ``T`` per batch, which is what makes exits save
wall-clock at small batch sizes, where a network call's fixed cost dominates. This holds for ATSN's
:class:`~snnlab.inference.ConfidenceExit` (the fused path below); other rules run the batches one
after another (each batch as it shrinks).

**Fused exit.** For ``ConfidenceExit`` (step or cumulative reading and prediction, the direct form)
the exit test, the running readout, the recording of the outputs, the predictions and the shrinking
of the running sums are one Numba call per step (:func:`snnlab.inference.exit_kernel.confidence_exit_step`)
after one torch softmax; any other rule runs through its per-step form
(:meth:`~snnlab.inference.exit_rule.ExitRule.online`).

Determinism: eval mode, no gradient; the same inputs give the same exit steps and predictions as
the offline rule on a full fixed-T run (tested), because every layer acts on each sample separately
(BatchNorm in eval mode is an affine map per channel), the neurons are run step by step, and the
rule's per-step form does the offline rule's arithmetic on running sums.

Cost per step beyond the network: one softmax and one Numba call (fused), or a few small tensor
operations (other rules); and, only at steps where some sample exits or joins, one ``index_select``
of the input and of each neuron state (and one concatenation when samples join).

**The network's step** runs through a stepper (:mod:`snnlab.inference.stepper`): for a chain of
conv/BN/linear/LIF/pooling/integrator layers (a model with ``step_layers()``, e.g. ATSN's network)
the fast :class:`~snnlab.inference.stepper.LayerStepper`, which runs the stateless front of a static
image (the layers before the first neuron) once per sample, batched over the slots, and each neuron
layer with its pooling as one Numba call, bit-identical to the module path (tested); otherwise the
model's ``step(x_t)`` if its class defines one, else ``model(x_t[None])[0]``, with the neuron
modules' own states. :func:`fixed_inference` with ``step_by_step=True`` runs the same loop without exits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from snnlab.checks import check_choice, check_tensor, check_timesteps
from snnlab.inference.exit_rule import ExitRule, keeps_rule_of
from snnlab.inference.stepper import make_stepper, rest_value, select_states
from snnlab.neurons import StatefulNode
from snnlab.training.traces import reset_traces

__all__ = ["AdaptiveResult", "select_samples", "step_input", "adaptive_inference", "fixed_inference",
           "compare_wallclock"]


def select_samples(model: nn.Module, keep: torch.Tensor) -> None:
    """Keep only the samples ``keep`` (int64 indices into the batch) in every neuron's state."""
    select_states(_stateful_nodes(model), keep)


def _stateful_nodes(model: nn.Module) -> list[StatefulNode]:
    return [m for m in model.modules() if isinstance(m, StatefulNode)]


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
    """Samples computed at each network call (at most ``T`` calls per batch; the batch shrinks as
    samples exit, and with batch slots waiting samples join it)."""
    seconds: float = 0.0
    """Wall-clock of the whole loop (network, exit tests and batch shrinking)."""
    network_seconds: float = 0.0
    """The part of ``seconds`` spent inside the network's calls; the rest is the exit path (exit
    tests, recording exits, shrinking the batch)."""

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


def _eval_mode(model: nn.Module, modules: list[nn.Module] | None = None) -> tuple[bool, bool]:
    """Put ``model`` in eval mode; returns (its mode before, whether it had to be switched).
    (``model.eval()`` sets an attribute on every module: skipped when all are in eval mode already.)
    ``modules``: ``list(model.modules())`` if the caller has it."""
    switch = any(m.training for m in (model.modules() if modules is None else modules))
    was_training = model.training
    if switch:
        model.eval()
    return was_training, switch


def _resetter(model: nn.Module, modules: list[nn.Module]):
    """A function doing what :func:`snnlab.training.reset_model` does (reset every module whose class
    defines ``reset()``, and every OTTT trace), with the modules found once per call instead of per
    reset."""
    resettable = [m for m in modules if callable(getattr(type(m), "reset", None))]

    def reset() -> None:
        for m in resettable:
            m.reset()
        reset_traces(model)
    return reset


def _fused_rule(rule: ExitRule) -> bool:
    """Whether ``rule`` runs through the fused Numba exit step: ATSN's confidence exit in its direct
    form (a subclass that redefines the decision keeps its own per-step form)."""
    from snnlab.inference.atsn import ConfidenceExit

    return isinstance(rule, ConfidenceExit) and keeps_rule_of(rule, ConfidenceExit) and not rule.hardware


def _check_batch_size(batch_size, n: int) -> int:
    if batch_size is None:
        return n
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1 (or None for one batch), got {batch_size!r}.")
    return min(batch_size, n)


@torch.no_grad()
def adaptive_inference(model: nn.Module, x: torch.Tensor, rule: ExitRule, *, T: int,
                       kind: str = "static", batch_size: int | None = None) -> AdaptiveResult:
    """Run ``model`` on the samples ``x`` step by step, dropping each sample once ``rule`` lets it exit.

    ``model`` maps time-major input ``[t, B, ...]`` to outputs ``[t, B, C]`` and keeps its neuron
    states between calls (snnlab's neurons do); if its class defines ``step(x_t)`` (one timestep
    ``[B, ...] -> [B, C]``, as :class:`~snnlab.models.atsn_vgg.AtsnVGG` does) that is called instead.
    ``T`` is the most steps a sample may take. ``batch_size`` (default: all of ``x``) is the most
    samples computed together: with :class:`~snnlab.inference.ConfidenceExit`, waiting samples take
    the places of those that exit (module docstring); with other rules ``x`` runs in batches of that size.

    Per step, beyond the network: ATSN's rule runs as one fused Numba step after a softmax; other
    rules through their per-step form (:meth:`ExitRule.online`), which tests only the current step's
    outputs against running sums. The batch (input and every neuron state) is changed only at the
    steps where some sample exits (or joins).
    """
    if not isinstance(rule, ExitRule):
        raise TypeError(f"rule must be an ExitRule (ConfidenceExit, EntropyExit, FixedSteps), got {type(rule).__name__}.")
    B = _check_batch(model, x, T, kind)
    slots = _check_batch_size(batch_size, B)
    modules = list(model.modules())
    was_training, switch = _eval_mode(model, modules)
    reset = _resetter(model, modules)
    reset()
    nodes = [m for m in modules if isinstance(m, StatefulNode)]
    try:
        if _fused_rule(rule) and all(rest_value(m) is not None for m in nodes):
            return _fused_inference(model, x, rule, T, kind, slots, nodes)
        parts = []
        for lo in range(0, B, slots):
            if lo:
                reset()
            parts.append(_online_inference(model, x[lo:lo + slots], rule, T, kind, nodes))
        if len(parts) == 1:
            return parts[0]
        return AdaptiveResult(
            torch.cat([r.steps for r in parts]), torch.cat([r.predictions for r in parts]),
            torch.cat([r.outputs for r in parts], 1), [n for r in parts for n in r.active],
            sum(r.seconds for r in parts), sum(r.network_seconds for r in parts),
        )
    finally:
        reset()
        if switch:
            model.train(was_training)


def _fused_inference(model: nn.Module, x: torch.Tensor, rule, T: int, kind: str, slots: int,
                     nodes: list[StatefulNode]) -> AdaptiveResult:
    """:func:`adaptive_inference` for ATSN's confidence exit: the fused exit step and batch slots."""
    from snnlab.inference.atsn import confidence_levels
    from snnlab.inference.exit_kernel import confidence_exit_step

    B = x.shape[0]
    levels = confidence_levels(T, rule.cl_init, rule.tau_cl).numpy()
    reads_cumulative, predict_cumulative = rule.reads == "cumulative", rule.predict == "cumulative"
    start = time.perf_counter()
    stepper = make_stepper(model, nodes, x, kind, slots)
    steps = np.full(B, T, dtype=np.int64)
    predictions = np.zeros(B, dtype=np.int64)
    alive = np.arange(slots, dtype=np.int64)         # rows -> samples; rows [0, n) are running
    tstep = np.zeros(slots, dtype=np.int64)          # each row's 0-based step
    keep = np.empty(slots, dtype=np.int64)
    total = outputs = None
    n, waiting = slots, slots                        # running rows; next sample to join
    active: list[int] = []
    tick = time.perf_counter()
    stepper.add(x, 0, slots)
    network = time.perf_counter() - tick
    while n:
        frames = None if kind == "static" else x[torch.from_numpy(alive[:n]), torch.from_numpy(tstep[:n])]
        tick = time.perf_counter()
        out = stepper.step(frames)                   # [n, C]
        network += time.perf_counter() - tick
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] < 2:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"one step's outputs must be a tensor [B, C >= 2], got {shape}.")
        if outputs is None:
            outputs = torch.full((T, B, out.shape[1]), float("nan"), dtype=out.dtype)
            total = np.empty((slots, out.shape[1]), dtype=np.float64)
        out = out.detach().contiguous()
        probs = out.to(torch.float64).softmax(-1)    # o^t, exactly as the offline rule computes it
        n_keep = confidence_exit_step(out.numpy(), probs.numpy(), total, alive, tstep, levels, outputs.numpy(),
                                      steps, predictions, keep, reads_cumulative, predict_cumulative)
        if n_keep < 0:
            raise ValueError("outputs contain NaN or infinity; exit rules need finite per-step outputs.")
        active.append(n)
        joining = min(slots - n_keep, B - waiting)
        if n_keep == n and not joining:
            continue
        if n_keep < n:
            stepper.keep(keep[:n_keep].copy())
        if joining:
            alive[n_keep:n_keep + joining] = np.arange(waiting, waiting + joining)
            tstep[n_keep:n_keep + joining] = 0
            tick = time.perf_counter()
            stepper.add(x, waiting, waiting + joining)
            network += time.perf_counter() - tick
            waiting += joining
        n = n_keep + joining
    stepper.clear()
    seconds = time.perf_counter() - start
    return AdaptiveResult(torch.from_numpy(steps), torch.from_numpy(predictions), outputs, active, seconds, network)


def _online_inference(model: nn.Module, x: torch.Tensor, rule: ExitRule, T: int, kind: str,
                      nodes: list[StatefulNode]) -> AdaptiveResult:
    """:func:`adaptive_inference` of one batch through the rule's per-step form (any rule)."""
    B = x.shape[0]
    start = time.perf_counter()
    stepper = make_stepper(model, nodes, x, kind)
    online = rule.online(T)
    alive = None                                 # indices of the running samples (None: all B)
    steps = torch.full((B,), T, dtype=torch.long)
    predictions = torch.zeros(B, dtype=torch.long)
    outputs = None
    active: list[int] = []
    tick = time.perf_counter()
    stepper.add(x, 0, B)
    network = time.perf_counter() - tick
    for t in range(T):
        frames = None if kind == "static" else (x[:, t] if alive is None else x[:, t].index_select(0, alive))
        tick = time.perf_counter()
        out = stepper.step(frames)               # [B_alive, C]
        network += time.perf_counter() - tick
        if outputs is None:
            outputs = torch.full((T, B, out.shape[-1]), float("nan"), dtype=out.dtype)
        if alive is None:
            outputs[t] = out
        else:
            outputs[t].index_copy_(0, alive, out)
        n = out.shape[0]
        active.append(n)
        online.push(out)
        if t == T - 1:                           # every sample still running stops at T
            rows = torch.arange(n)
            predictions[rows if alive is None else alive] = online.predictions(rows)
            break
        done = online.passes()
        n_done = int(done.sum())
        if n_done == 0:
            continue
        rows = done.nonzero().flatten()
        exited = rows if alive is None else alive[rows]
        steps[exited] = t + 1
        predictions[exited] = online.predictions(rows)
        if n_done == n:
            break
        keep = (~done).nonzero().flatten()
        alive = keep if alive is None else alive[keep]
        online.select(keep)
        stepper.keep(keep.numpy())
    stepper.clear()
    seconds = time.perf_counter() - start
    return AdaptiveResult(steps, predictions, outputs, active, seconds, network)


@torch.no_grad()
def fixed_inference(model: nn.Module, x: torch.Tensor, *, T: int, kind: str = "static",
                    step_by_step: bool = False) -> tuple[torch.Tensor, float]:
    """All T steps for every sample: per-step outputs ``[T, B, C]`` and the wall-clock seconds.

    ``step_by_step=False`` runs the whole sequence in one call (multi-step neurons, the usual fixed-T
    path); ``True`` runs the same per-step loop as :func:`adaptive_inference` without exits (the
    model's ``step`` method if its class defines one).
    """
    _check_batch(model, x, T, kind)
    modules = list(model.modules())
    was_training, switch = _eval_mode(model, modules)
    reset = _resetter(model, modules)
    reset()
    try:
        start = time.perf_counter()
        if step_by_step:
            stepper = make_stepper(model, [m for m in modules if isinstance(m, StatefulNode)], x, kind)
            stepper.add(x, 0, len(x))
            out = torch.stack([stepper.step(None if kind == "static" else x[:, t]) for t in range(T)])
            stepper.clear()
        else:
            seq = x[None].expand(T, *x.shape) if kind == "static" else x[:, :T].transpose(0, 1)
            out = model(seq.contiguous())
        seconds = time.perf_counter() - start
    finally:
        reset()
        if switch:
            model.train(was_training)
    return out, seconds


def compare_wallclock(model: nn.Module, x: torch.Tensor, rule: ExitRule, *, T: int, kind: str = "static",
                      repeats: int = 5, batch_size: int | None = None) -> dict[str, float]:
    """Median wall-clock and CPU seconds of three ways to classify every sample of ``x``:

    ``fixed``: all T steps in one multi-step call (the usual fixed-T path); ``fixed_stepwise``: all T
    steps, one call per step (the adaptive loop without exits); ``adaptive``: :func:`adaptive_inference`.
    At most ``batch_size`` samples are computed together (default: all of ``x`` as one batch): the
    fixed-T paths classify ``x`` in batches of that size, adaptive inference in that many batch slots
    (samples join as others exit, for ATSN's rule; see :func:`adaptive_inference`); each time covers
    the whole of ``x``, calls included.
    Keys ``<name>`` hold wall-clock seconds, ``<name>_cpu`` the CPU seconds of this process
    (``time.process_time``: on a shared machine it leaves out the time the process waited for a core).
    The three are interleaved in every repeat, so a change of machine load hits them alike; each runs
    once on the first batch before the timed repeats (loading compiled kernels, first-call set-up).
    ``adaptive_network`` is the wall-clock the adaptive runs spent inside the network (the rest of
    ``adaptive`` is the exit path and the calls' set-up); ``sample_steps`` is the fraction of the
    T·B sample-steps the adaptive runs computed; ``network_calls`` and ``fixed_stepwise_calls`` count
    the network calls of one adaptive run and of the per-step fixed-T loop; ``batch_size`` the batch
    size used.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}.")
    n = _check_batch(model, x, T, kind)
    batch_size = _check_batch_size(batch_size, n)
    batches = [x[i:i + batch_size] for i in range(0, n, batch_size)]
    names = ("fixed", "fixed_stepwise", "adaptive")
    times: dict[str, list[float]] = {k: [] for n in names for k in (n, n + "_cpu")}
    times["adaptive_network"] = []
    result = None
    adaptive_inference(model, batches[0], rule, T=T, kind=kind)          # warm-up, untimed
    for step_by_step in (False, True):
        fixed_inference(model, batches[0], T=T, kind=kind, step_by_step=step_by_step)
    for _ in range(repeats):
        for name in names:
            cpu, wall = time.process_time(), time.perf_counter()
            if name == "adaptive":
                result = adaptive_inference(model, x, rule, T=T, kind=kind, batch_size=batch_size)
            else:
                for xb in batches:
                    fixed_inference(model, xb, T=T, kind=kind, step_by_step=name == "fixed_stepwise")
            times[name].append(time.perf_counter() - wall)
            times[name + "_cpu"].append(time.process_time() - cpu)
            if name == "adaptive":
                times["adaptive_network"].append(result.network_seconds)
    medians = {k: float(torch.tensor(v, dtype=torch.float64).median()) for k, v in times.items()}
    medians["sample_steps"] = sum(result.active) / (T * n)
    medians["network_calls"] = len(result.active)
    medians["fixed_stepwise_calls"] = T * len(batches)
    medians["batch_size"] = batch_size
    return medians
