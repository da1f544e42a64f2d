"""Spiking neuron layers (torch modules) with single-step and multi-step modes.

* single-step mode (``step_mode="s"``): ``forward(x)`` takes one timestep ``[B, ...]`` and keeps
  the membrane potential between calls, until ``reset()``;
* multi-step mode (``step_mode="m"``): ``forward(x_seq)`` takes ``[T, B, ...]`` and returns the
  spikes ``[T, B, ...]``; the state after the last step is kept too.

Call ``reset()`` (or :func:`reset_states` on a whole network) before each new input sequence.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from snnlab.checks import check_finite, check_positive, check_tensor
from snnlab.neurons.functional import NeuronParams, neuron_step
from snnlab.surrogate import ArcTan, Surrogate, get_surrogate

__all__ = ["BaseNode", "IFNode", "LIFNode", "PLIFNode", "reset_states"]

_STEP_MODES = ("s", "m")


class BaseNode(nn.Module):
    """Common machinery: parameters, state, step modes and input checks."""

    kind = "lif"

    def __init__(
        self,
        *,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        tau: float = 2.0,
        decay_input: bool = True,
        detach_reset: bool = False,
        surrogate: Surrogate | str = ArcTan(),
        step_mode: str = "s",
    ) -> None:
        super().__init__()
        self.params = NeuronParams(
            v_threshold=v_threshold,
            v_reset=v_reset,
            tau=tau,
            decay_input=decay_input,
            detach_reset=detach_reset,
        )
        self.surrogate = get_surrogate(surrogate)
        self.step_mode = step_mode
        # When True, the membrane state carried to the next step is detached, so gradients flow
        # only through the current step (the temporal cut of SLTT and OTTT). Training methods set it.
        self.cut_temporal_grad = False
        self.v: torch.Tensor | None = None

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, mode: str) -> None:
        if mode not in _STEP_MODES:
            raise ValueError(f"step_mode must be 's' (single step) or 'm' (multi-step), got {mode!r}.")
        self._step_mode = mode

    def reset(self) -> None:
        """Forget the membrane potential (start a new input sequence)."""
        self.v = None

    def _inv_tau(self) -> float | torch.Tensor | None:
        return None

    def _initial_v(self, x: torch.Tensor) -> torch.Tensor:
        if self.v is None or self.v.shape != x.shape:
            if self.v is not None:
                raise ValueError(
                    f"input shape {tuple(x.shape)} differs from the stored state {tuple(self.v.shape)}; "
                    f"call reset() before feeding a new sequence."
                )
            return torch.full_like(x, self.params.leak_target)
        return self.v

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self._initial_v(x)
        if self.cut_temporal_grad:
            v = v.detach()
        spike, _, self.v = neuron_step(
            x, v, self.params, self.surrogate, kind=self.kind, inv_tau=self._inv_tau()
        )
        return spike

    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.single_step_forward(x) for x in x_seq])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("neuron input", x, min_dim=1 if self.step_mode == "s" else 2)
        check_finite("neuron input", x)
        if self.step_mode == "m":
            if x.shape[0] < 1:
                raise ValueError(f"multi-step input must have T >= 1 timesteps, got shape {tuple(x.shape)}.")
            return self.multi_step_forward(x)
        return self.single_step_forward(x)

    def extra_repr(self) -> str:
        p = self.params
        reset = "soft" if p.soft_reset else f"hard(v_reset={p.v_reset})"
        return (
            f"v_threshold={p.v_threshold}, reset={reset}, detach_reset={p.detach_reset}, "
            f"surrogate={self.surrogate}, step_mode={self.step_mode!r}"
        )


class IFNode(BaseNode):
    """Integrate-and-fire neuron, SEW ResNet eq. (4): H = V + X."""

    kind = "if"

    def __init__(self, **kwargs) -> None:
        if "tau" in kwargs or "decay_input" in kwargs:
            raise TypeError("IFNode has no leak: tau and decay_input are LIF parameters.")
        super().__init__(**kwargs)


class LIFNode(BaseNode):
    """Leaky integrate-and-fire neuron: SEW ResNet eq. (5) (``decay_input=True``) or OTTT eq. (2)."""

    kind = "lif"

    def extra_repr(self) -> str:
        return f"tau={self.params.tau}, decay_input={self.params.decay_input}, " + super().extra_repr()


class PLIFNode(BaseNode):
    """Parametric LIF: LIF whose time constant is learned (Fang et al., 2021b; SEW ResNet's 7B-Net).

    1/τ = sigmoid(w) with ``w`` a learnable scalar initialised so that τ = ``init_tau``.
    """

    kind = "lif"

    def __init__(self, init_tau: float = 2.0, **kwargs) -> None:
        if "tau" in kwargs:
            raise TypeError("PLIFNode learns tau: pass init_tau instead of tau.")
        if check_positive("init_tau", init_tau) <= 1.0:
            raise ValueError(f"init_tau must be > 1 (1/tau = sigmoid(w) < 1), got {init_tau}.")
        super().__init__(tau=init_tau, **kwargs)
        self.w = nn.Parameter(torch.tensor(-math.log(init_tau - 1.0)))

    def _inv_tau(self) -> torch.Tensor:
        return torch.sigmoid(self.w)

    @property
    def tau(self) -> float:
        return float(1.0 / torch.sigmoid(self.w.detach()))

    def extra_repr(self) -> str:
        return f"tau={self.tau:.4g} (learned), decay_input={self.params.decay_input}, " + super().extra_repr()


def reset_states(module: nn.Module) -> None:
    """Reset every spiking neuron inside ``module`` (call before each new input sequence)."""
    for m in module.modules():
        if isinstance(m, BaseNode):
            m.reset()
