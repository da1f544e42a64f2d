"""Spiking neuron layers (torch modules) with single-step and multi-step modes.

* single-step mode (``step_mode="s"``): ``forward(x)`` takes one timestep ``[B, ...]`` and keeps
  the membrane potential between calls, until ``reset()``;
* multi-step mode (``step_mode="m"``): ``forward(x_seq)`` takes ``[T, B, ...]`` and returns the
  outputs ``[T, B, ...]`` in one call (one Numba kernel call on CPU float32); the state after the
  last step is kept too.

Call ``reset()`` (or :func:`reset_states` on a whole network) before each new input sequence.

``backend``: ``"auto"`` (Numba kernels on CPU float32, the pure-torch reference elsewhere),
``"numba"`` or ``"torch"``; see :mod:`snnlab.neurons.ops`. Both give the same spikes and, to
float32 rounding, the same gradients. ``cut_temporal_grad`` (set by SLTT/OTTT training methods)
detaches the potential carried into every step, so gradients flow only through the current step;
it works in both backends and both step modes. NaN policy: non-finite input raises ``ValueError``,
and so does a non-finite parameter (``v_threshold``, ``v_reset``, ``tau``, a PLIF's learned ``w``),
with the same message in both backends naming the parameter.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from snnlab.checks import check_choice, check_in_range, check_positive, check_tensor
from snnlab.neurons.functional import NeuronParams, mlf_level_params
from snnlab.neurons.ops import BACKENDS, integrator_multi_step, mlf_multi_step, spiking_multi_step
from snnlab.surrogate import ArcTan, Rectangular, Surrogate, get_surrogate

__all__ = [
    "StatefulNode",
    "BaseNode",
    "IFNode",
    "LIFNode",
    "PLIFNode",
    "MLFNode",
    "NonSpikingIntegrator",
    "reset_states",
]

_STEP_MODES = ("s", "m")


class StatefulNode(nn.Module):
    """What every neuron layer shares: step modes, backend, the temporal cut and the state ``v``."""

    def __init__(self, *, step_mode: str = "s", backend: str = "auto") -> None:
        super().__init__()
        self.step_mode = step_mode
        self.backend = check_choice("backend", backend, BACKENDS)
        # When True, the membrane state carried into each step is detached, so gradients flow
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

    def _state_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return tuple(x.shape)

    def _initial_v(self, x: torch.Tensor) -> torch.Tensor | None:
        """The state before this call's first step, for one timestep ``x`` ``[B, ...]``; None if fresh
        (the operations start at rest themselves, without allocating a state to say so)."""
        if self.v is None:
            return None
        if tuple(self.v.shape) != self._state_shape(x):
            raise ValueError(
                f"input shape {tuple(x.shape)} does not match the stored state {tuple(self.v.shape)}; "
                f"call reset() before feeding a new sequence."
            )
        return self.v

    def _run(self, x_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        """Outputs ``[T, ...]`` and the state after the last step, from ``self._initial_v``."""
        raise NotImplementedError

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        out, self.v = self._run(x.unsqueeze(0))
        return out[0]

    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        out, self.v = self._run(x_seq)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.step_mode == "m":
            check_tensor("multi-step neuron input [T, B, ...]", x, min_dim=2)
            if x.shape[0] < 1:
                raise ValueError(f"multi-step input must have T >= 1 timesteps, got shape {tuple(x.shape)}.")
            return self.multi_step_forward(x)
        check_tensor("single-step neuron input [B, ...]", x, min_dim=1)
        return self.single_step_forward(x)


class BaseNode(StatefulNode):
    """Spiking neurons with one threshold: IF, LIF, PLIF (and MLF, which has one per level)."""

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
        backend: str = "auto",
    ) -> None:
        super().__init__(step_mode=step_mode, backend=backend)
        self.params = NeuronParams(
            v_threshold=v_threshold,
            v_reset=v_reset,
            tau=tau,
            decay_input=decay_input,
            detach_reset=detach_reset,
        )
        self.surrogate = get_surrogate(surrogate)

    def _inv_tau(self) -> float | torch.Tensor | None:
        return None

    def _run(self, x_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return spiking_multi_step(
            x_seq,
            self._initial_v(x_seq[0]),
            self.params,
            self.surrogate,
            kind=self.kind,
            inv_tau=self._inv_tau(),
            cut_temporal_grad=self.cut_temporal_grad,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        p = self.params
        reset = "soft" if p.soft_reset else f"hard(v_reset={p.v_reset})"
        return (
            f"v_threshold={p.v_threshold}, reset={reset}, detach_reset={p.detach_reset}, "
            f"surrogate={self.surrogate}, step_mode={self.step_mode!r}, backend={self.backend!r}"
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

    1/τ = sigmoid(w) with ``w`` a learnable scalar initialised so that τ = ``init_tau``. The Numba
    backward returns ∂L/∂(1/τ) summed over neurons and time; autograd chains it to ``w``.
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
        # the NaN policy for the learned parameter: both backends refuse it, naming it (on the CPU,
        # where reading it costs nothing, and not while torch.compile traces, where reading it would
        # break the graph; elsewhere a NaN reaches the loss, which stops training)
        if (self.w.device.type == "cpu" and not torch.compiler.is_compiling()
                and not math.isfinite(float(self.w.detach()))):
            raise ValueError(f"PLIFNode's learned time-constant parameter w is {float(self.w.detach())} (1/tau = "
                             f"sigmoid(w)): training diverged. Lower the learning rate, or reload a checkpoint.")
        return torch.sigmoid(self.w)

    @property
    def tau(self) -> float:
        return float(1.0 / torch.sigmoid(self.w.detach()))

    def extra_repr(self) -> str:
        return f"tau={self.tau:.4g} (learned), decay_input={self.params.decay_input}, " + super().extra_repr()


class MLFNode(BaseNode):
    """Multi-level firing unit (Qu et al. 2024, sec. 3.1; code langfengQ/MLF-DSResNet).

    ``K = len(thresholds)`` LIF levels driven by the same input, each with its own potential and
    threshold (default 0.6, 1.6, 2.6): ``u_k ← decay·u_k·(1 - o_k) + x``, ``o_k = Θ(u_k - V_th,k)``,
    hard reset to ``v_reset`` (0), decay 0.25 (the paper's k_τ). The output is ``Σ_k o_k`` (0..K),
    and each level's surrogate window is centred on its own threshold, σ'(u_k - V_th,k): the union
    of the windows is wider than one LIF's, which is the paper's point (fewer dormant units).
    The default surrogate is the paper's rectangular window of width 1, height 1.

    The state ``v`` has shape ``[K, B, ...]``. ``params`` holds level 0's parameters with the
    smallest threshold (its ``tau`` gives the decay, ``1 - 1/tau``); ``levels`` all of them.
    """

    kind = "mlf"

    def __init__(
        self,
        thresholds: tuple[float, ...] = (0.6, 1.6, 2.6),
        *,
        decay: float = 0.25,
        v_reset: float = 0.0,
        detach_reset: bool = False,
        surrogate: Surrogate | str = Rectangular(width=1.0),
        step_mode: str = "s",
        backend: str = "auto",
    ) -> None:
        levels = mlf_level_params(tuple(thresholds), decay, v_reset, detach_reset)
        super().__init__(
            v_threshold=min(p.v_threshold for p in levels),
            v_reset=v_reset,
            tau=levels[0].tau,
            decay_input=False,
            detach_reset=detach_reset,
            surrogate=surrogate,
            step_mode=step_mode,
            backend=backend,
        )
        self.levels = levels
        self.decay = float(decay)

    @property
    def thresholds(self) -> tuple[float, ...]:
        return tuple(p.v_threshold for p in self.levels)

    def _state_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (len(self.levels), *x.shape)

    def _run(self, x_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mlf_multi_step(
            x_seq,
            self._initial_v(x_seq[0]),
            self.levels,
            self.surrogate,
            cut_temporal_grad=self.cut_temporal_grad,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        return (
            f"thresholds={self.thresholds}, decay={self.decay}, v_reset={self.levels[0].v_reset}, "
            f"detach_reset={self.params.detach_reset}, surrogate={self.surrogate}, "
            f"step_mode={self.step_mode!r}, backend={self.backend!r}"
        )


class NonSpikingIntegrator(StatefulNode):
    """Output-layer integrator: no spike, no reset; ``V[t] = decay·V[t-1] + X[t]``, output ``V[t]``.

    ATSN (Li et al. 2024) eq. (8): the output layer never resets, ``u_{t+1} = τ·u_t + W s_{t+1}``
    (``decay`` = ATSN's τ). OTTT: the output neurons have an infinite threshold; its code reads
    out ``W s + b`` at every step, which is ``decay=0``. The default ``decay=1`` integrates
    without leak. Not a :class:`BaseNode` (it does not spike), but it has the same step modes,
    ``reset()``, backend and ``cut_temporal_grad``, and :func:`reset_states` resets it.
    """

    kind = "integrator"

    def __init__(self, decay: float = 1.0, *, step_mode: str = "s", backend: str = "auto") -> None:
        super().__init__(step_mode=step_mode, backend=backend)
        self.decay = check_in_range("decay", decay, 0.0, 1.0)

    def _run(self, x_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = integrator_multi_step(
            x_seq,
            self._initial_v(x_seq[0]),
            self.decay,
            cut_temporal_grad=self.cut_temporal_grad,
            backend=self.backend,
        )
        return out, out[-1]

    def extra_repr(self) -> str:
        return f"decay={self.decay}, step_mode={self.step_mode!r}, backend={self.backend!r}"


def reset_states(module: nn.Module) -> None:
    """Reset every neuron layer inside ``module`` (call before each new input sequence)."""
    for m in module.modules():
        if isinstance(m, StatefulNode):
            m.reset()
