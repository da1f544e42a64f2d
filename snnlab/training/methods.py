"""Training methods for spiking networks: BPTT, SLTT, SLTT-K, OTTT_A and OTTT_O.

Each method turns one batch into gradients (and optimizer steps) for *any* network built from
snnlab layers, as long as the network

* takes time-major input ``[T, B, ...]`` and returns per-step outputs ``[T, B, C]``, and
* processes time causally, keeping its state between calls until reset: calling it on
  ``x[0:1]``, then ``x[1:2]``, ... gives the same outputs as calling it on ``x`` (the online
  methods run it one step at a time; snnlab neurons keep their membrane between calls).

Methods:

* ``bptt``: backpropagation through the whole unrolled graph; memory grows with T.
* ``sltt`` (Meng et al., 2023; MLF paper eqs. 15-16): the temporal path is cut (every neuron's
  membrane is detached between steps), a backward runs at every step, gradients accumulate, one
  optimizer step per batch. Memory independent of T.
* ``sltt_k``: SLTT where only K randomly chosen steps per batch carry a backward; the others run
  without a graph. As in the authors' code (``train_SLTTK.py``), each chosen step backpropagates
  its per-step loss unchanged (already divided by T), so the gradient is on average K/T of SLTT's;
  ``rescale=True`` multiplies by T/K instead, making it an unbiased estimate of SLTT's gradient.
* ``ottt_a`` / ``ottt_o`` (Xiao et al., 2022; patent CN114998659B, eqs. 3-5): the temporal cut
  plus presynaptic traces (see :mod:`snnlab.training.traces`): the weight gradient at step t is
  ``g_u[t] â[t]^T``. OTTT_A accumulates over the T steps and steps the optimizer once per batch;
  OTTT_O steps it after every timestep.

Online methods need a loss that splits into per-step terms (``tet``, ``ottt``, ``imp``).
Under DistributedDataParallel the per-step backward passes of one batch run under ``no_sync``
except the last one, so gradients are all-reduced once per optimizer step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from snnlab.checks import check_choice, check_tensor, check_timesteps
from snnlab.training.losses import SequenceLoss
from snnlab.training.state import clear_temporal_cut, reset_model, set_temporal_cut
from snnlab.training.traces import SYNAPTIC_TYPES, attach_traces, detach_traces, next_step, traced_layers

__all__ = [
    "StepResult",
    "MixedPrecision",
    "TrainingMethod",
    "BPTT",
    "SLTT",
    "OTTT",
    "METHODS",
    "build_method",
    "compute_gradients",
    "unwrap",
]


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel (or DataParallel) wrapper."""
    return getattr(model, "module", model) if isinstance(
        model, (nn.parallel.DistributedDataParallel, nn.DataParallel)
    ) else model


def _sync(model: nn.Module, sync: bool):
    """``model.no_sync()`` under DDP when ``sync`` is False; a no-op otherwise."""
    if not sync and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def _check_batch(inputs: torch.Tensor, target: torch.Tensor) -> int:
    check_tensor("inputs", inputs, min_dim=2)
    T = check_timesteps("T (inputs.shape[0])", int(inputs.shape[0]))
    if target.dim() != 1 or target.shape[0] != inputs.shape[1]:
        raise ValueError(
            f"inputs must be time-major [T, B, ...] and target [B]; got inputs {tuple(inputs.shape)} and "
            f"target {tuple(target.shape)}."
        )
    return T


def _check_out(out: torch.Tensor, T: int, B: int) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or out.dim() != 3 or out.shape[:2] != (T, B):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"the model must return per-step outputs [T, B, num_classes] = [{T}, {B}, C], got {shape}; "
            f"the training methods and losses need one output per timestep."
        )
    return out


@dataclass
class MixedPrecision:
    """Automatic mixed precision for the methods: forward passes under ``torch.autocast(dtype)``,
    backward passes through a ``GradScaler`` (CUDA AMP, as SEW ResNet and SLTT train). The default,
    ``MixedPrecision()``, is plain full precision."""

    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None

    def autocast(self, device_type: str):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()


_FULL = MixedPrecision()


def _full_precision(t: torch.Tensor) -> torch.Tensor:
    """Half-precision outputs (under autocast) as float32 for metrics; others unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


@dataclass
class StepResult:
    """What one training step produced."""

    loss: float
    """The sequence loss of the outputs (no grad), comparable across methods."""
    outputs: torch.Tensor
    """Per-step outputs ``[T, B, C]``, detached."""
    backward_passes: int
    optimizer_steps: int


class TrainingMethod:
    """Base class. Subclasses implement :meth:`_run`."""

    name = "base"
    online = False
    temporal_cut = False

    def attach(self, model: nn.Module, example_inputs: torch.Tensor | None = None) -> None:
        """Prepare ``model`` (set the temporal cut, wrap layers). Idempotent."""
        core = unwrap(model)
        detach_traces(core)
        if self.temporal_cut:
            set_temporal_cut(core, True)  # raises for a network without spiking neurons
        else:
            clear_temporal_cut(core)
        core._snnlab_method = self

    def detach(self, model: nn.Module) -> None:
        """Undo :meth:`attach`: plain BPTT-ready network."""
        core = unwrap(model)
        detach_traces(core)
        clear_temporal_cut(core)
        core.__dict__.pop("_snnlab_method", None)

    def check_loss(self, loss_fn: SequenceLoss) -> None:
        if not isinstance(loss_fn, SequenceLoss):
            raise TypeError(
                f"loss_fn must be a snnlab.training.losses.SequenceLoss (use build_loss), got "
                f"{type(loss_fn).__name__}."
            )
        if self.online and not loss_fn.decomposable:
            raise ValueError(
                f"method {self.name!r} runs a backward at every step and needs a per-step loss, but "
                f"{loss_fn.name!r} does not split over time; use 'tet', 'ottt' or 'imp'."
            )

    def train_step(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        target: torch.Tensor,
        loss_fn: SequenceLoss,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        precision: MixedPrecision | None = None,
    ) -> StepResult:
        """One batch: forward, backward(s) and optimizer step(s).

        ``inputs`` is time-major ``[T, B, ...]``. With ``optimizer=None`` the gradients are only
        accumulated into ``.grad`` (nothing is zeroed or stepped): what the gradient tests use.
        ``precision``: autocast and gradient scaling (default: full precision).
        """
        T = _check_batch(inputs, target)
        self.check_loss(loss_fn)
        if getattr(unwrap(model), "_snnlab_method", None) is not self:
            self.attach(model, inputs)
        return self._run(model, inputs, target, loss_fn, optimizer, T, precision or _FULL)

    def _run(self, model, inputs, target, loss_fn, optimizer, T, amp) -> StepResult:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class BPTT(TrainingMethod):
    """Backpropagation through time over the full unrolled graph (one backward per batch)."""

    name = "bptt"

    def _run(self, model, inputs, target, loss_fn, optimizer, T, amp):
        reset_model(unwrap(model))
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        with amp.autocast(inputs.device.type):
            out = _check_out(model(inputs), T, inputs.shape[1])
            loss = loss_fn(out, target)
        amp.backward(loss)
        if optimizer is not None:
            amp.step(optimizer)
        return StepResult(float(loss.detach()), _full_precision(out.detach()), 1, int(optimizer is not None))


def _online_loop(model, inputs, target, loss_fn, optimizer, T, amp, *, backward_steps, scale, per_step_update):
    """Run T single steps; backward at ``backward_steps``; return the step outputs."""
    core = unwrap(model)
    reset_model(core)
    B = inputs.shape[1]
    last = max(backward_steps)
    outs = []
    n_backward = n_steps = 0
    if optimizer is not None and not per_step_update:
        optimizer.zero_grad(set_to_none=True)
    for t in range(T):
        next_step(core)
        if t in backward_steps:
            if optimizer is not None and per_step_update:
                optimizer.zero_grad(set_to_none=True)
            with _sync(model, per_step_update or t == last):
                with amp.autocast(inputs.device.type):
                    out = _check_out(model(inputs[t : t + 1]), 1, B)
                    step_loss = loss_fn.step_loss(out[0], target, t, T)
                amp.backward(step_loss * scale if scale != 1.0 else step_loss)
            n_backward += 1
            if optimizer is not None and per_step_update:
                amp.step(optimizer)
                n_steps += 1
        else:
            with torch.no_grad(), amp.autocast(inputs.device.type):
                out = _check_out(model(inputs[t : t + 1]), 1, B)
        outs.append(out.detach())
    if optimizer is not None and not per_step_update:
        amp.step(optimizer)
        n_steps += 1
    outputs = _full_precision(torch.cat(outs))
    with torch.no_grad():
        loss = float(loss_fn(outputs, target))
    return StepResult(loss, outputs, n_backward, n_steps)


class SLTT(TrainingMethod):
    """Spatial learning through time (Meng et al., 2023): temporal cut, backward at each step.

    ``k=None``: every step carries a backward (SLTT). ``k=K``: only K steps chosen at random per
    batch (torch's global RNG) do (SLTT-K), each with its per-step loss as is (the authors' code) or,
    with ``rescale=True``, scaled by T/K (an unbiased estimate of SLTT's gradient).
    """

    online = True
    temporal_cut = True

    def __init__(self, k: int | None = None, rescale: bool = False) -> None:
        self.k = None if k is None else check_timesteps("SLTT K", k)
        if rescale and k is None:
            raise ValueError("rescale applies to SLTT-K (pass k).")
        self.rescale = bool(rescale)
        self.name = "sltt" if k is None else "sltt_k"

    def _run(self, model, inputs, target, loss_fn, optimizer, T, amp):
        if self.k is None:
            steps, scale = set(range(T)), 1.0
        else:
            if self.k > T:
                raise ValueError(f"SLTT-K needs K <= T, got K = {self.k} and T = {T}.")
            steps = set(torch.randperm(T)[: self.k].tolist())
            scale = T / self.k if self.rescale else 1.0
        return _online_loop(
            model, inputs, target, loss_fn, optimizer, T, amp,
            backward_steps=steps, scale=scale, per_step_update=False,
        )

    def __repr__(self) -> str:
        return f"SLTT(k={self.k}, rescale={self.rescale})"


class OTTT(TrainingMethod):
    """Online training through time (Xiao et al., 2022): temporal cut + presynaptic traces.

    ``mode="A"`` accumulates the per-step gradients and steps once per batch (the authors'
    default); ``mode="O"`` zeroes, backpropagates and steps at every timestep. ``decay`` is the
    trace decay λ (default: the neurons' own, 1 - 1/τ). ``synaptic_types`` adds layer types,
    linear in their input, whose weight gradient should come from the trace (default: Linear, Conv).
    """

    online = True
    temporal_cut = True

    def __init__(self, mode: str = "A", decay: float | None = None,
                 synaptic_types: tuple[type[nn.Module], ...] = ()) -> None:
        self.mode = check_choice("OTTT mode", mode, ("A", "O"))
        self.decay = decay
        self.synaptic_types = SYNAPTIC_TYPES + tuple(synaptic_types)
        self.name = "ottt_a" if mode == "A" else "ottt_o"

    def attach(self, model: nn.Module, example_inputs: torch.Tensor | None = None) -> None:
        if example_inputs is None:
            raise ValueError("OTTT.attach needs example_inputs [T, B, ...] to find the layers that receive spikes.")
        super().attach(model, example_inputs)
        core = unwrap(model)
        try:
            attach_traces(core, example_inputs[:1], decay=self.decay, synaptic_types=self.synaptic_types)
        except Exception:
            self.detach(model)
            raise

    def traced_layers(self, model: nn.Module) -> list[str]:
        """The layers whose weight gradient comes from the trace (after :meth:`attach`)."""
        return traced_layers(unwrap(model))

    def _run(self, model, inputs, target, loss_fn, optimizer, T, amp):
        return _online_loop(
            model, inputs, target, loss_fn, optimizer, T, amp,
            backward_steps=set(range(T)), scale=1.0, per_step_update=self.mode == "O",
        )

    def __repr__(self) -> str:
        return f"OTTT(mode={self.mode!r}, decay={self.decay})"


METHODS: dict[str, type | callable] = {
    "bptt": BPTT,
    "sltt": SLTT,
    "sltt_k": lambda k=2, **kw: SLTT(k=k, **kw),
    "ottt_a": lambda **kw: OTTT(mode="A", **kw),
    "ottt_o": lambda **kw: OTTT(mode="O", **kw),
}
"""Method name -> factory taking the method's options (``sltt_k``: ``k``, ``rescale``; OTTT: ``decay``,
``synaptic_types``)."""


def build_method(name: str | TrainingMethod, **options) -> TrainingMethod:
    """A training method by name: ``bptt``, ``sltt``, ``sltt_k`` (``k=``), ``ottt_a``, ``ottt_o``."""
    if isinstance(name, TrainingMethod):
        if options:
            raise ValueError("pass either a method instance or a name with options, not both.")
        return name
    check_choice("method", name, METHODS)
    options = {k: v for k, v in options.items() if v is not None}
    try:
        return METHODS[name](**options)
    except TypeError as error:
        raise TypeError(f"bad options for method {name!r}: {error}") from None


def compute_gradients(
    method: str | TrainingMethod,
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    loss_fn: SequenceLoss,
) -> dict[str, torch.Tensor]:
    """The gradient one batch gives each parameter under ``method`` (no optimizer step).

    Zeroes the gradients first, leaves the model attached to the method, and returns
    ``{name: grad.clone()}`` (parameters without a gradient are left out).
    """
    method = build_method(method)
    model.zero_grad(set_to_none=True)
    method.train_step(model, inputs, target, loss_fn, optimizer=None)
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
