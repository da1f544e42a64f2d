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
rule's per-step form does the offline rule's arithmetic on running sums. One caveat: a library
convolution or matrix product may pick another kernel for another number of rows (oneDNN and MKL
do), which can change the last bits of an output. Measured on chapter 7's network: outputs at batch
1 and 64 differ from the one-call run's by at most 1e-6 (and at batch 16 not at all), with every
exit and prediction equal; an output within that distance of a threshold could exit a step apart.

Cost per step beyond the network: one softmax and one Numba call (fused), or a few small tensor
operations (other rules); and, only at steps where some sample exits or joins, one ``index_select``
of the input and of each neuron state (and one concatenation when samples join).

**Chunks (``chunk``).** A network call may compute ``k`` steps of every running sample instead of
one (ATSN's rule only): the stepper runs each convolution once on the ``k·n`` images of the call,
which on a CPU costs less per image than ``k`` calls on ``n`` (a convolution of a few channels on a
few images is mostly fixed cost). The exit test still runs step by step, in order, with the offline
rule's arithmetic, so exit steps, predictions and recorded outputs are the same as with one step per
call (tested); what a chunk costs is the steps computed after a sample's exit inside its last chunk
(computed, then discarded: counted in ``active``). ``chunk="auto"`` picks ``k`` from
:data:`CHUNK_STEPS` by a cost model: the time of one call of ``k`` steps on the batch slots, measured
once per model, input shape, slot count and thread count (:func:`chunk_call_seconds`, a few calls
each, cached), times the calls a sample needs, ``ceil(s / k)`` for a sample exiting at step ``s``,
averaged over the exit steps seen so far in the run (a uniform prior before the first exits).

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
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from snnlab.checks import check_choice, check_tensor, check_timesteps
from snnlab.inference.exit_rule import ExitRule, keeps_rule_of
from snnlab.inference.stepper import LayerStepper, make_stepper, rest_value, select_states
from snnlab.neurons import StatefulNode
from snnlab.training.traces import reset_traces

__all__ = ["AdaptiveResult", "select_samples", "step_input", "adaptive_inference", "fixed_inference",
           "compare_wallclock", "chunk_call_seconds", "check_chunk", "CHUNK_STEPS", "CHUNK_IMAGES"]

CHUNK_STEPS = (1, 2, 4, 8)
"""The steps per network call ``chunk="auto"`` chooses from (those up to T)."""
CHUNK_IMAGES = 128
"""``chunk="auto"`` considers ``k`` steps per call only while ``k`` times the batch slots is at most this
many images (and always ``k = 1``): beyond it a convolution's fixed cost is a small part of a call
(chapter 7 measures the cost per image against the images per call), and the steps computed after
exits would cost more than the calls saved."""


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
    """``[T, B, C]`` per-step outputs; NaN after a sample's exit step (steps a chunk computed after the
    exit are not recorded)."""
    active: list[int] = field(default_factory=list)
    """Sample-steps computed at each network call: the samples running, times the call's steps (one
    step per call unless ``chunk`` says otherwise; the batch shrinks as samples exit, and with batch
    slots waiting samples join it). With chunks, this includes the steps computed after an exit."""
    seconds: float = 0.0
    """Wall-clock of the whole loop (network, exit tests and batch shrinking)."""
    network_seconds: float = 0.0
    """The part of ``seconds`` spent inside the network's calls; the rest is the exit path (exit
    tests, recording exits, shrinking the batch)."""
    call_steps: list[int] = field(default_factory=list)
    """The steps computed by each network call (all 1 without chunks)."""

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


def check_chunk(chunk, T: int, fused: bool = True) -> int | str:
    """``chunk`` if it is 'auto' or an int from 1 to ``T``; k > 1 needs a rule with the fused exit step."""
    if chunk == "auto":
        return chunk
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= T:
        raise ValueError(f"chunk must be an int from 1 to T = {T} (steps per network call) or 'auto', got {chunk!r}.")
    if chunk > 1 and not fused:
        raise ValueError(f"chunk = {chunk} needs ATSN's ConfidenceExit (its fused exit step); other rules compute "
                         "one step per network call (chunk = 1 or 'auto').")
    return chunk


_CALIBRATION: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _chunk_frames(x: torch.Tensor, alive: np.ndarray, tstep: np.ndarray, k: int) -> torch.Tensor:
    """The next ``k`` event frames of the rows (sample ``alive[i]`` at step ``tstep[i]``), step-major
    ``[k·n, ...]``; past the last frame, the last frame again (those steps come after the exit at T
    and are never read)."""
    n = len(alive)
    if k == 1:
        return x[torch.from_numpy(alive), torch.from_numpy(tstep)]
    t = np.minimum(tstep[None, :] + np.arange(k)[:, None], x.shape[1] - 1)
    return x[torch.from_numpy(np.tile(alive, k)), torch.from_numpy(t.reshape(k * n))]


def chunk_call_seconds(model: nn.Module, x: torch.Tensor, *, T: int, kind: str = "static", slots: int,
                       repeats: int = 7) -> dict[int, float]:
    """The wall-clock of one network call of ``k`` steps on ``slots`` samples of ``x``, for each ``k``
    of :data:`CHUNK_STEPS` that ``chunk="auto"`` may choose (``k <= T``, ``k · slots <=`` :data:`CHUNK_IMAGES`,
    and 1): the fastest of ``repeats`` calls after one untimed call (the ``k`` interleaved), on the
    first ``slots`` samples of ``x``, through the stepper adaptive inference uses. Only the fast
    layer stepper computes ``k`` steps in one call; for other models the result is ``{1: ...}``
    alone. Cached per model, input shape, ``kind``, ``slots`` and thread count (the first call of a
    setting measures)."""
    B = _check_batch(model, x, T, kind)
    slots = _check_batch_size(slots, B)
    key = (kind, tuple(x.shape[1:]), x.dtype, slots, T, torch.get_num_threads())
    cache = _CALIBRATION.setdefault(model, {})
    if key in cache:
        return cache[key]
    modules = list(model.modules())
    was_training, switch = _eval_mode(model, modules)
    nodes = [m for m in modules if isinstance(m, StatefulNode)]
    reset = _resetter(model, modules)
    costs: dict[int, float] = {}
    try:
        with torch.no_grad():
            runs = {}
            for k in CHUNK_STEPS:
                if k > T or (k > 1 and k * slots > CHUNK_IMAGES):
                    continue
                stepper = make_stepper(model, nodes, x, kind, slots)
                if k > 1 and not isinstance(stepper, LayerStepper):
                    continue                         # the module stepper computes a step per call
                if not isinstance(stepper, LayerStepper):
                    reset()
                stepper.add(x, 0, slots)
                rows = np.arange(slots, dtype=np.int64)
                frames = None if kind == "static" else _chunk_frames(x, rows, np.zeros(slots, np.int64), k)
                stepper.step(frames, k)              # untimed: first-call set-up
                runs[k] = (stepper, frames, [])
            for _ in range(repeats):                 # interleaved: a change of load hits every k alike
                for k, (stepper, frames, times) in runs.items():
                    start = time.perf_counter()
                    stepper.step(frames, k)
                    times.append(time.perf_counter() - start)
            for k, (stepper, _, times) in runs.items():
                stepper.clear()
                costs[k] = min(times)
    finally:
        reset()
        if switch:
            model.train(was_training)
    cache[key] = costs
    return costs


class _ChunkChooser:
    """``chunk="auto"``: the steps per call that minimise the expected time per sample, from the measured
    call times and the exit steps seen so far (module docstring)."""

    def __init__(self, costs: dict[int, float], T: int, slots: int) -> None:
        steps = np.arange(1, T + 1, dtype=np.float64)
        self.ks = sorted(costs)
        self.per_sample = np.array([costs[k] / (k * slots) for k in self.ks])      # seconds per sample-step
        # steps a sample exiting at step s computes with k steps per call: ceil(s / k)·k, as rows
        self.computed = np.stack([np.ceil(steps / k) * k for k in self.ks])
        self.counts = np.ones(T, dtype=np.float64)                  # a uniform prior before any exit
        self.slots, self.seen = slots, 0
        self.k = self._best()

    def _best(self) -> int:
        return self.ks[int(np.argmin(self.per_sample * (self.computed @ self.counts)))]

    def update(self, steps: np.ndarray, joined: int, running: int) -> int:
        """Re-choose after about a batch of new exits (``steps[:joined]``: 0 for samples still running)."""
        done = joined - running
        if len(self.ks) > 1 and done - self.seen >= self.slots:
            self.counts = 1.0 + np.bincount(steps[:joined], minlength=len(self.counts) + 1)[1:]
            self.seen = done
            self.k = self._best()
        return self.k


def _check_batch_size(batch_size, n: int) -> int:
    if batch_size is None:
        return n
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1 (or None for one batch), got {batch_size!r}.")
    return min(batch_size, n)


@torch.no_grad()
def adaptive_inference(model: nn.Module, x: torch.Tensor, rule: ExitRule, *, T: int,
                       kind: str = "static", batch_size: int | None = None,
                       chunk: int | str = 1) -> AdaptiveResult:
    """Run ``model`` on the samples ``x`` step by step, dropping each sample once ``rule`` lets it exit.

    ``model`` maps time-major input ``[t, B, ...]`` to outputs ``[t, B, C]`` and keeps its neuron
    states between calls (snnlab's neurons do); if its class defines ``step(x_t)`` (one timestep
    ``[B, ...] -> [B, C]``, as :class:`~snnlab.models.atsn_vgg.AtsnVGG` does) that is called instead.
    ``T`` is the most steps a sample may take. ``batch_size`` (default: all of ``x``) is the most
    samples computed together: with :class:`~snnlab.inference.ConfidenceExit`, waiting samples take
    the places of those that exit (module docstring); with other rules ``x`` runs in batches of that size.
    ``chunk`` (ATSN's rule only): the steps each network call computes, 1 to T, or ``"auto"`` to choose
    them by measured cost (module docstring); exits and predictions do not depend on it.

    Per step, beyond the network: ATSN's rule runs as one fused Numba step after a softmax; other
    rules through their per-step form (:meth:`ExitRule.online`), which tests only the current step's
    outputs against running sums. The batch (input and every neuron state) is changed only at the
    steps where some sample exits (or joins).
    """
    if not isinstance(rule, ExitRule):
        raise TypeError(f"rule must be an ExitRule (ConfidenceExit, EntropyExit, FixedSteps), got {type(rule).__name__}.")
    B = _check_batch(model, x, T, kind)
    slots = _check_batch_size(batch_size, B)
    fused = _fused_rule(rule)
    chunk = check_chunk(chunk, T, fused)
    modules = list(model.modules())
    was_training, switch = _eval_mode(model, modules)
    reset = _resetter(model, modules)
    reset()
    nodes = [m for m in modules if isinstance(m, StatefulNode)]
    try:
        if fused and all(rest_value(m) is not None for m in nodes):
            return _fused_inference(model, x, rule, T, kind, slots, nodes, chunk)
        if chunk not in (1, "auto"):
            raise ValueError(f"chunk = {chunk} needs snnlab's neurons (a known rest state) in the network; "
                             "this one runs one step per network call.")
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
            [k for r in parts for k in r.call_steps],
        )
    finally:
        reset()
        if switch:
            model.train(was_training)


def _fused_inference(model: nn.Module, x: torch.Tensor, rule, T: int, kind: str, slots: int,
                     nodes: list[StatefulNode], chunk: int | str = 1) -> AdaptiveResult:
    """:func:`adaptive_inference` for ATSN's confidence exit: the fused exit step, batch slots, chunks."""
    from snnlab.inference.atsn import confidence_levels
    from snnlab.inference.exit_kernel import confidence_exit_step

    B = x.shape[0]
    levels = confidence_levels(T, rule.cl_init, rule.tau_cl).numpy()
    reads_cumulative, predict_cumulative = rule.reads == "cumulative", rule.predict == "cumulative"
    chooser = None
    if chunk == "auto":
        costs = chunk_call_seconds(model, x, T=T, kind=kind, slots=slots)   # measured once, cached
        chooser = _ChunkChooser(costs, T, slots)
    start = time.perf_counter()
    stepper = make_stepper(model, nodes, x, kind, slots)
    steps = np.zeros(B, dtype=np.int64)              # 0 until the sample exits (every sample does, by T)
    predictions = np.zeros(B, dtype=np.int64)
    alive = np.arange(slots, dtype=np.int64)         # rows -> samples; rows [0, n) are running
    tstep = np.zeros(slots, dtype=np.int64)          # each row's 0-based step
    keep = np.empty(slots, dtype=np.int64)
    total = outputs = None
    n, waiting = slots, slots                        # running rows; next sample to join
    active: list[int] = []
    call_steps: list[int] = []
    k = chooser.k if chooser is not None else chunk
    tick = time.perf_counter()
    stepper.add(x, 0, slots)
    network = time.perf_counter() - tick
    while n:
        if chooser is not None:
            k = chooser.update(steps, waiting, n)
        frames = None if kind == "static" else _chunk_frames(x, alive[:n], tstep[:n], k)
        tick = time.perf_counter()
        out = stepper.step(frames, k)                # [k·n, C], step-major
        network += time.perf_counter() - tick
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != k * n or out.shape[1] < 2:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"a network call of {k} step(s) on {n} samples must return a tensor [{k * n}, C >= 2], "
                             f"got {shape}.")
        if outputs is None:
            outputs = torch.full((T, B, out.shape[1]), float("nan"), dtype=out.dtype)
            total = np.empty((slots, out.shape[1]), dtype=np.float64)
        out = out.detach().contiguous()
        probs = out.to(torch.float64).softmax(-1)    # o^t, exactly as the offline rule computes it
        f_all, p_all = out.numpy(), probs.numpy()
        running, kept = n, None                      # kept: the stepper rows still running (None: all n)
        for s in range(k):                           # the exit test, step by step, in order
            f, p = f_all[s * n:(s + 1) * n], p_all[s * n:(s + 1) * n]
            if kept is not None:
                f, p = f[kept], p[kept]
            n_keep = confidence_exit_step(f, p, total, alive, tstep, levels, outputs.numpy(), steps, predictions,
                                          keep, reads_cumulative, predict_cumulative)
            if n_keep < 0:
                raise ValueError("outputs contain NaN or infinity; exit rules need finite per-step outputs.")
            if n_keep < running:
                kept = keep[:n_keep].copy() if kept is None else kept[keep[:n_keep]]
            running = n_keep
            if not running:
                break
        active.append(k * n)
        call_steps.append(k)
        n_keep = running
        joining = min(slots - n_keep, B - waiting)
        if n_keep == n and not joining:
            continue
        if n_keep < n:
            stepper.keep(kept)
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
    return AdaptiveResult(torch.from_numpy(steps), torch.from_numpy(predictions), outputs, active, seconds, network,
                          call_steps)


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
    return AdaptiveResult(steps, predictions, outputs, active, seconds, network, [1] * len(active))


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
                      repeats: int = 5, batch_size: int | None = None, chunk: int | str = 1) -> dict[str, float]:
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

    With ``chunk`` other than 1, a fourth way is timed in the same repeats: ``adaptive_chunked``,
    adaptive inference with that ``chunk`` (steps per network call, or ``"auto"``), with
    ``adaptive_chunked_cpu``, ``adaptive_chunked_network``, ``chunked_sample_steps`` (the fraction of
    sample-steps it computed, steps after exits included), ``chunked_network_calls``,
    ``chunked_steps_per_call`` (mean) and ``chunk_calibration_s`` (the one-time measurement of the call
    times that ``"auto"`` chooses from; 0 when cached or not needed; not in the timed runs).
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}.")
    n = _check_batch(model, x, T, kind)
    batch_size = _check_batch_size(batch_size, n)
    batches = [x[i:i + batch_size] for i in range(0, n, batch_size)]
    chunked = chunk != 1
    if chunked:
        check_chunk(chunk, T, _fused_rule(rule))
    names = ("fixed", "fixed_stepwise", "adaptive") + (("adaptive_chunked",) if chunked else ())
    times: dict[str, list[float]] = {k: [] for n in names for k in (n, n + "_cpu")}
    times.update({n + "_network": [] for n in names if n.startswith("adaptive")})
    results: dict[str, AdaptiveResult] = {}
    calibration = 0.0
    if chunk == "auto" and _fused_rule(rule):
        start = time.perf_counter()
        chunk_call_seconds(model, x, T=T, kind=kind, slots=batch_size)   # what "auto" reads (cached)
        calibration = time.perf_counter() - start
    adaptive_inference(model, batches[0], rule, T=T, kind=kind)          # warm-up, untimed
    if chunked:
        adaptive_inference(model, batches[0], rule, T=T, kind=kind, chunk=chunk)
    for step_by_step in (False, True):
        fixed_inference(model, batches[0], T=T, kind=kind, step_by_step=step_by_step)
    for _ in range(repeats):
        for name in names:
            cpu, wall = time.process_time(), time.perf_counter()
            if name.startswith("adaptive"):
                results[name] = adaptive_inference(model, x, rule, T=T, kind=kind, batch_size=batch_size,
                                                   chunk=chunk if name == "adaptive_chunked" else 1)
            else:
                for xb in batches:
                    fixed_inference(model, xb, T=T, kind=kind, step_by_step=name == "fixed_stepwise")
            times[name].append(time.perf_counter() - wall)
            times[name + "_cpu"].append(time.process_time() - cpu)
            if name.startswith("adaptive"):
                times[name + "_network"].append(results[name].network_seconds)
    medians = {k: float(torch.tensor(v, dtype=torch.float64).median()) for k, v in times.items()}
    result = results["adaptive"]
    medians["sample_steps"] = sum(result.active) / (T * n)
    medians["network_calls"] = len(result.active)
    medians["fixed_stepwise_calls"] = T * len(batches)
    medians["batch_size"] = batch_size
    if chunked:
        other = results["adaptive_chunked"]
        medians["chunked_sample_steps"] = sum(other.active) / (T * n)
        medians["chunked_network_calls"] = len(other.active)
        medians["chunked_steps_per_call"] = sum(other.call_steps) / len(other.call_steps)
        medians["chunk_calibration_s"] = calibration
    return medians
