"""Pure-torch reference dynamics of the spiking neurons (functional core).

The unified discrete-time model of SEW ResNet (Fang et al., 2021), eqs. (1)-(3):

    H[t] = f(V[t-1], X[t])                 charge         (eq. 1)
    S[t] = Θ(H[t] - V_th)                  fire           (eq. 2)
    V[t] = H[t](1 - S[t]) + V_reset S[t]   hard reset     (eq. 3)
    V[t] = H[t] - V_th S[t]                soft reset     (subtract the threshold; OTTT eq. 2)

with the charge function ``f``

    IF:                    H = V + X                                  (SEW ResNet eq. 4)
    LIF, decay_input=True:  H = V + (X - (V - V_reset)) / τ            (SEW ResNet eq. 5)
    LIF, decay_input=False: H = V - (V - V_reset) / τ + X              (OTTT eq. 2, ATSN: λ = 1 - 1/τ)

For soft reset, ``V_reset`` in the leak term is 0. Two more neurons build on these:

    MLF (Qu et al. 2024, sec. 3.1): K LIF levels with thresholds V_th,k, driven by the same X,
        each with its own potential, hard reset; output δ = Σ_k S_k          (:func:`mlf_step`)
    non-spiking integrator: V[t] = λ V[t-1] + X[t], no spike, no reset
        (ATSN eq. 8 output layer; OTTT's output layer, threshold ∞)           (:func:`integrator_step`)

These functions are the reference every faster implementation (the Numba kernels in
:mod:`snnlab.neurons.kernels`) is tested against, and what runs on non-CPU devices and in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import math

import torch

from snnlab.checks import check_bool, check_finite, check_positive
from snnlab.surrogate import ArcTan, Surrogate

__all__ = [
    "NeuronParams",
    "NeuronTrace",
    "if_charge",
    "lif_charge",
    "fire_and_reset",
    "neuron_step",
    "simulate",
    "mlf_level_params",
    "mlf_step",
    "integrator_step",
]


def _fixed_parameter(name: str, value):
    """A neuron parameter as a Python number: a one-element tensor is read once; one that requires a
    gradient is refused (these parameters are fixed numbers, and the Numba kernels could not pass a
    gradient to them)."""
    if isinstance(value, torch.Tensor):
        if value.requires_grad:
            raise TypeError(
                f"{name} is a tensor that requires grad, but {name} is a fixed number in snnlab's neurons "
                f"(neither backend passes a gradient to it). Pass float({name}.detach()); to learn the time "
                f"constant use PLIFNode.")
        if value.numel() != 1:
            raise TypeError(f"{name} must be a number, got a tensor of shape {tuple(value.shape)}.")
        return value.item()
    try:
        import numpy as np

        if isinstance(value, np.generic) and not isinstance(value, np.bool_):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    return value


@dataclass(frozen=True)
class NeuronParams:
    """Parameters shared by IF, LIF and PLIF neurons.

    Attributes:
        v_threshold: firing threshold V_th (> 0).
        v_reset: reset potential for a hard reset; ``None`` selects the soft reset V ← H - V_th·S.
        tau: membrane time constant τ (> 1 for a leak; ignored by IF). PLIF learns it.
        decay_input: LIF charge convention: ``True`` decays the input as in SEW ResNet eq. (5),
            ``False`` adds it undecayed as in OTTT eq. (2) and ATSN.
        detach_reset: cut the gradient through the reset (SEW ResNet and OTTT train this way).
    """

    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    tau: float = 2.0
    decay_input: bool = True
    detach_reset: bool = False

    def __post_init__(self) -> None:
        # every number becomes a plain float here, so the Numba kernels and the torch reference
        # read the same value and fail the same way (the NaN policy covers parameters too)
        v_threshold = check_positive("v_threshold", _fixed_parameter("v_threshold", self.v_threshold))
        tau = check_positive("tau", _fixed_parameter("tau", self.tau))
        if tau < 1.0:
            raise ValueError(
                f"tau must be >= 1 (the leak per step is 1/tau; tau < 1 would overshoot), got {tau}."
            )
        v_reset = None
        if self.v_reset is not None:
            raw = _fixed_parameter("v_reset", self.v_reset)
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise TypeError(f"v_reset must be a float or None (soft reset), got {self.v_reset!r}.")
            v_reset = float(raw)
            if not math.isfinite(v_reset):
                raise ValueError(f"v_reset must be a finite number or None (soft reset), got {v_reset}.")
            if v_reset >= v_threshold:
                raise ValueError(
                    f"v_reset ({v_reset}) must be below v_threshold ({v_threshold}); "
                    f"otherwise a neuron that fired would fire again at once."
                )
        for name in ("decay_input", "detach_reset"):
            check_bool(name, getattr(self, name))
        object.__setattr__(self, "v_threshold", v_threshold)
        object.__setattr__(self, "tau", tau)
        object.__setattr__(self, "v_reset", v_reset)

    @property
    def soft_reset(self) -> bool:
        return self.v_reset is None

    @property
    def leak_target(self) -> float:
        return 0.0 if self.v_reset is None else float(self.v_reset)


class NeuronTrace(NamedTuple):
    """What a neuron did over T steps, each ``[T, ...]``: spikes S, charged H, post-reset V."""

    spikes: torch.Tensor
    h: torch.Tensor
    v: torch.Tensor


def if_charge(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """IF charge, SEW ResNet eq. (4): H = V + X."""
    return v + x


def lif_charge(
    v: torch.Tensor,
    x: torch.Tensor,
    inv_tau: float | torch.Tensor,
    leak_target: float = 0.0,
    decay_input: bool = True,
) -> torch.Tensor:
    """LIF charge: SEW ResNet eq. (5) if ``decay_input`` else OTTT eq. (2).

    ``inv_tau`` is 1/τ, a float or a tensor (PLIF learns it).
    """
    if decay_input:
        return v + (x - (v - leak_target)) * inv_tau
    return v - (v - leak_target) * inv_tau + x


def fire_and_reset(
    h: torch.Tensor, params: NeuronParams, surrogate: Surrogate
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fire (SEW ResNet eq. 2) and reset (eq. 3, or soft reset). Returns ``(S, V)``."""
    spike = surrogate.spike(h - params.v_threshold)
    s_reset = spike.detach() if params.detach_reset else spike
    if params.soft_reset:
        v = h - params.v_threshold * s_reset
    else:
        v = h * (1 - s_reset) + params.v_reset * s_reset
    return spike, v


def neuron_step(
    x: torch.Tensor,
    v: torch.Tensor,
    params: NeuronParams,
    surrogate: Surrogate,
    *,
    kind: str = "lif",
    inv_tau: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One timestep of an IF (``kind="if"``) or LIF/PLIF (``kind="lif"``) neuron.

    Returns ``(S[t], H[t], V[t])``. ``inv_tau`` overrides ``1/params.tau`` (PLIF passes its
    learnable value).
    """
    if kind == "if":
        h = if_charge(v, x)
    elif kind == "lif":
        k = (1.0 / params.tau) if inv_tau is None else inv_tau
        h = lif_charge(v, x, k, params.leak_target, params.decay_input)
    else:
        raise ValueError(f"unknown neuron kind {kind!r}; valid: 'if', 'lif'.")
    spike, v_next = fire_and_reset(h, params, surrogate)
    return spike, h, v_next


def simulate(
    x_seq: torch.Tensor,
    params: NeuronParams | None = None,
    surrogate: Surrogate | None = None,
    *,
    kind: str = "lif",
    v0: torch.Tensor | float | None = None,
    inv_tau: float | torch.Tensor | None = None,
) -> NeuronTrace:
    """Run a neuron over a ``[T, ...]`` input and return every spike and potential.

    ``v0`` is the initial potential (default: ``v_reset``, or 0 for a soft reset).
    """
    from snnlab.checks import check_tensor

    check_tensor("x_seq", x_seq, min_dim=1)
    if x_seq.shape[0] < 1:
        raise ValueError(f"x_seq must hold at least one timestep (T >= 1), got shape {tuple(x_seq.shape)}.")
    check_finite("x_seq", x_seq)  # the NaN policy: rejected here as in the neuron modules
    params = params or NeuronParams()
    surrogate = surrogate or ArcTan()
    if v0 is None:
        v = torch.full_like(x_seq[0], params.leak_target)
    elif isinstance(v0, torch.Tensor):
        v = check_finite("v0", v0).expand_as(x_seq[0]).to(x_seq.dtype)
    else:
        v = torch.full_like(x_seq[0], float(v0))
        check_finite("v0", v)
    if isinstance(inv_tau, torch.Tensor):
        check_finite("inv_tau (1/tau)", inv_tau.detach())
    elif inv_tau is not None and not math.isfinite(float(inv_tau)):
        raise ValueError(f"inv_tau (1/tau) must be a finite number, got {inv_tau}.")
    spikes, hs, vs = [], [], []
    for x in x_seq:
        s, h, v = neuron_step(x, v, params, surrogate, kind=kind, inv_tau=inv_tau)
        spikes.append(s)
        hs.append(h)
        vs.append(v)
    return NeuronTrace(torch.stack(spikes), torch.stack(hs), torch.stack(vs))


def mlf_level_params(
    thresholds: tuple[float, ...], decay: float = 0.25, v_reset: float = 0.0, detach_reset: bool = False
) -> tuple[NeuronParams, ...]:
    """One :class:`NeuronParams` per MLF level (Qu et al. 2024; its code: thresholds 0.6, 1.6, 2.6).

    Level k: u_k ← decay·u_k·(1 - o_k) + x, o_k = Θ(u_k - V_th,k) (the paper's k_τ = 0.25), i.e. a LIF
    with the OTTT charge (input not decayed), 1/τ = 1 - decay and a hard reset to ``v_reset``.
    """
    from snnlab.checks import check_in_range

    if not isinstance(thresholds, (tuple, list)) or len(thresholds) < 1:
        raise ValueError(f"thresholds must be a non-empty sequence of positive numbers, got {thresholds!r}.")
    decay = check_in_range("MLF decay", decay, 0.0, 1.0, high_open=True)
    return tuple(
        NeuronParams(
            v_threshold=float(check_positive(f"thresholds[{i}]", th)),
            v_reset=v_reset,
            tau=1.0 / (1.0 - decay),
            decay_input=False,
            detach_reset=detach_reset,
        )
        for i, th in enumerate(thresholds)
    )


def mlf_step(
    x: torch.Tensor, v: torch.Tensor, levels: tuple[NeuronParams, ...], surrogate: Surrogate
) -> tuple[torch.Tensor, torch.Tensor]:
    """One MLF timestep: ``x`` ``[...]``, ``v`` ``[K, ...]``. Returns ``(Σ_k S_k, V_next [K, ...])``.

    Each level fires with its own surrogate window σ'(H_k - V_th,k) (Qu et al. 2024, eq. 3).
    """
    out = None
    v_next = []
    for k, params in enumerate(levels):
        spike, _, vk = neuron_step(x, v[k], params, surrogate, kind="lif")
        out = spike if out is None else out + spike
        v_next.append(vk)
    return out, torch.stack(v_next)


def integrator_step(x: torch.Tensor, v: torch.Tensor, decay: float | torch.Tensor) -> torch.Tensor:
    """Non-spiking integrator, one step: V = decay·V + X (ATSN eq. 8; OTTT output, threshold ∞)."""
    return decay * v + x
