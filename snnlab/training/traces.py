"""OTTT's presynaptic traces, attached to any network built from snnlab layers.

OTTT (patent CN114998659B, eqs. 3-5; authors' code pkuxmq/OTTT-SNN): the weight gradient of a
synaptic layer at step t is ``g_u[t] · â[t]^T`` with the presynaptic trace

    â[t] = λ â[t-1] + s[t]            (kept without gradient)

and ``g_u[t]`` the gradient at the layer's output backpropagated through the current step only.
The authors run the layer's op twice: once on the spikes (no grad) for the forward *value*, once
on the trace for the *gradient*, and stitch the two with an autograd function whose value is one
and whose gradient goes to the other. The gradient with respect to the layer's input (``W^T g``)
is routed to the spikes, so backpropagation continues to the previous neuron's surrogate.

How this module finds the layers, generically:

* Synaptic layers are ``nn.Linear`` and ``nn.Conv1d/2d/3d`` (and their subclasses, e.g. a
  weight-standardised conv), wherever they sit (inside ``Sequential``s, time-folding wrappers,
  residual blocks). More types can be passed as ``synaptic_types``.
* A probe forward pass decides which of them receive spikes: every neuron's output is marked
  (made to require grad, with every parameter frozen), so a layer's input requires grad exactly
  when it depends on some spiking neuron, through any pooling, flatten, scaling, residual sum or
  concatenation. Layers that see only the raw input are left alone (the authors' first conv sees
  the image, no trace).
* The trace is kept on the layer's *input*, i.e. after the ops between the neuron and the layer.
  For the linear, time-invariant ops used in OTTT (average pooling, flatten, a constant scale)
  this equals the authors' trace of the spikes pushed through the same ops; after a max pool it
  is the trace of what the synapse actually receives.
* λ is the presynaptic neuron's decay: 1 - 1/τ for LIF (0.5 at τ = 2, OTTT's default) and 1 for
  IF. One λ serves the whole network: if the neurons disagree (different τ, learned τ), pass
  ``decay`` explicitly.

A network that cannot be handled raises a ``ValueError`` saying why: no spiking neurons, no
synaptic layer after a neuron, a synaptic layer called twice in one step, or a module with
weights that receives spikes but is neither synaptic, a neuron nor a normalisation layer.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch
from torch import nn

from snnlab.neurons import BaseNode, PLIFNode

__all__ = [
    "SYNAPTIC_TYPES",
    "TraceLayer",
    "stitch",
    "attach_traces",
    "detach_traces",
    "reset_traces",
    "next_step",
    "traced_layers",
    "network_decay",
]

SYNAPTIC_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
"""Layers whose weight gradient OTTT computes from the presynaptic trace."""

# Layers with weights that may receive spikes without a trace (their gradient is instantaneous).
_PASS_THROUGH_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
)

_ATTR = "_snnlab_trace_layer"


class _Stitch(torch.autograd.Function):
    """Value of ``value``; the incoming gradient goes to ``carrier`` (OTTT's ``Replace``)."""

    @staticmethod
    def forward(ctx, value: torch.Tensor, carrier: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return value.view_as(value)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return None, grad


def stitch(value: torch.Tensor, carrier: torch.Tensor) -> torch.Tensor:
    """A tensor equal to ``value`` whose gradient flows to ``carrier`` (same shape)."""
    if value.shape != carrier.shape:
        raise ValueError(f"stitch needs equal shapes, got {tuple(value.shape)} and {tuple(carrier.shape)}.")
    return _Stitch.apply(value, carrier)


@dataclass
class TraceLayer:
    """The state OTTT attaches to one synaptic layer: its trace and the original forward."""

    name: str
    decay: float
    trace: torch.Tensor | None = None
    calls: int = 0

    def reset(self) -> None:
        self.trace = None
        self.calls = 0


def _neuron_decay(node: BaseNode) -> float | None:
    if isinstance(node, PLIFNode):
        return None  # learned: no single constant
    if node.kind == "if":
        return 1.0
    return 1.0 - 1.0 / node.params.tau


def network_decay(model: nn.Module) -> float:
    """The trace decay λ shared by every spiking neuron in ``model`` (1 - 1/τ for LIF, 1 for IF)."""
    decays = set()
    for name, m in model.named_modules():
        if isinstance(m, BaseNode):
            d = _neuron_decay(m)
            if d is None:
                raise ValueError(
                    f"neuron {name or type(m).__name__} learns its time constant ({type(m).__name__}), so "
                    f"OTTT's trace decay λ is not a constant; pass decay=<λ> explicitly (e.g. 0.5)."
                )
            decays.add(round(d, 12))
    if not decays:
        raise ValueError(
            "the network has no snnlab spiking neurons (BaseNode subclasses); OTTT traces presynaptic "
            "spikes, so it needs a spiking network."
        )
    if len(decays) > 1:
        raise ValueError(
            f"the network's neurons have different decays {sorted(decays)}, so one presynaptic trace "
            f"decay λ does not fit all; pass decay=<λ> explicitly."
        )
    return decays.pop()


def _traced_forward(self: nn.Module, x: torch.Tensor, *args, **kwargs):
    """The forward of a traced synaptic layer (bound to the module, so deep copies stay consistent)."""
    original = type(self).forward
    state: TraceLayer = getattr(self, _ATTR)
    if not torch.is_grad_enabled():  # evaluation: plain layer, no trace
        return original(self, x, *args, **kwargs)
    state.calls += 1
    if state.calls > 1:
        raise ValueError(
            f"synaptic layer {state.name!r} was called twice within one timestep; OTTT keeps one "
            f"presynaptic trace per layer, so a layer must be called once per step (the OTTT method "
            f"calls next_step(model) before each step)."
        )
    with torch.no_grad():
        x_value = x.detach()
        if state.trace is None:
            state.trace = x_value
        elif state.trace.shape != x.shape:
            raise ValueError(
                f"layer {state.name!r}: input shape {tuple(x.shape)} differs from its trace "
                f"{tuple(state.trace.shape)}; reset the network (reset_traces) between sequences."
            )
        else:  # a new tensor each step: the previous one may still be saved for a backward
            state.trace = state.decay * state.trace + x_value
        value = original(self, x_value, *args, **kwargs)
    carrier_in = stitch(state.trace, x)  # value: trace; gradient: to the spikes
    carrier_out = original(self, carrier_in, *args, **kwargs)
    return stitch(value, carrier_out)


def _find_spike_receivers(model: nn.Module, probe_input: torch.Tensor, synaptic_types) -> list[str]:
    """Names of synaptic modules whose input depends on a spiking neuron (probe forward)."""
    names = {m: n for n, m in model.named_modules()}
    receivers: dict[str, bool] = {}
    offenders: list[str] = []
    handles = []

    def mark_output(module, inputs, output):
        return output.detach().requires_grad_(True)

    def check_input(module, inputs):
        x = inputs[0] if inputs else None
        if not isinstance(x, torch.Tensor):
            return
        name = names[module]
        if isinstance(module, synaptic_types):
            receivers[name] = receivers.get(name, False) or x.requires_grad
        elif x.requires_grad and not isinstance(module, _PASS_THROUGH_TYPES):
            if any(True for _ in module.parameters(recurse=False)):
                offenders.append(f"{name} ({type(module).__name__})")

    for m in model.modules():
        if isinstance(m, BaseNode):
            handles.append(m.register_forward_hook(mark_output))
        else:
            handles.append(m.register_forward_pre_hook(check_input))
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        model.eval()
        _reset_model(model)
        with torch.enable_grad():
            model(probe_input.detach())
    finally:
        for h in handles:
            h.remove()
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
        _reset_model(model)
    if offenders:
        raise ValueError(
            "OTTT cannot handle these modules: they have weights and receive spikes but are not synaptic "
            f"layers ({', '.join(t.__name__ for t in synaptic_types)}), neurons or normalisation layers: "
            f"{', '.join(sorted(set(offenders)))}. If such a layer is linear in its input, pass its type in "
            f"synaptic_types."
        )
    return [n for n, r in receivers.items() if r]


def _reset_model(model: nn.Module) -> None:
    from snnlab.training.state import reset_model

    reset_model(model)


def attach_traces(
    model: nn.Module,
    probe_input: torch.Tensor,
    *,
    decay: float | None = None,
    synaptic_types: tuple[type[nn.Module], ...] = SYNAPTIC_TYPES,
) -> list[str]:
    """Make every synaptic layer that receives spikes compute its weight gradient from the trace.

    ``probe_input`` is one timestep of input in the model's layout (``[1, B, ...]``); it is run
    once, in eval mode without touching any state. Returns the names of the wrapped layers.
    Undo with :func:`detach_traces`. Raises ``ValueError`` for a network OTTT cannot handle.
    """
    if decay is None:
        decay = network_decay(model)
    elif not 0.0 <= float(decay) <= 1.0:
        raise ValueError(f"trace decay λ must lie in [0, 1], got {decay}.")
    if not any(isinstance(m, BaseNode) for m in model.modules()):
        network_decay(model)  # raises the "no neurons" error
    detach_traces(model)
    names = _find_spike_receivers(model, probe_input, tuple(synaptic_types))
    if not names:
        raise ValueError(
            "no synaptic layer (Linear/Conv) receives spikes in this network, so OTTT has nothing to "
            "trace; is every neuron followed by a layer of a type in synaptic_types?"
        )
    modules = dict(model.named_modules())
    for name in names:
        module = modules[name]
        state = TraceLayer(name=name, decay=float(decay))
        setattr(module, _ATTR, state)
        module.forward = types.MethodType(_traced_forward, module)
    return names


def detach_traces(model: nn.Module) -> None:
    """Remove the OTTT wrapping added by :func:`attach_traces` (a no-op where there is none)."""
    for m in model.modules():
        if hasattr(m, _ATTR):
            delattr(m, _ATTR)
            if "forward" in m.__dict__:
                del m.forward


def reset_traces(model: nn.Module) -> None:
    """Forget every trace (start of a sequence)."""
    for m in model.modules():
        state = getattr(m, _ATTR, None)
        if state is not None:
            state.reset()


def next_step(model: nn.Module) -> None:
    """Allow each traced layer one more call (called by the OTTT method before each timestep)."""
    for m in model.modules():
        state = getattr(m, _ATTR, None)
        if state is not None:
            state.calls = 0


def traced_layers(model: nn.Module) -> list[str]:
    """Names of the layers currently carrying an OTTT trace."""
    return [n for n, m in model.named_modules() if hasattr(m, _ATTR)]
