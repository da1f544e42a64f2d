"""Time-to-first-spike neurons for ANN-to-SNN conversion: TTFS (one spike) and SC-TTFS (an
encoding spike plus at most one calibration spike), SC-TTFS paper (Feng et al. 2024), eqs. 9-17.

Reading implemented here (the paper leaves these open; the chapter states them):

* **Window.** A layer encodes in a window of ``T`` integer steps ``t = 0, ..., T-1``; a neuron
  whose potential stays below the threshold at ``t = T-1`` is silent (eqs. 10, 13). With this
  window a single-spike neuron has ``T`` spike patterns and an SC-TTFS neuron
  ``N(T) = sum_{i=1..T} (i+1)`` (section 3.3), which is how the paper counts them.
* **Thresholds** (eq. 14): ``theta(t) = alpha * exp(-k t + beta)``, one ``(alpha, beta, k)`` for
  the encoding threshold and one for the calibration threshold, per layer. ``alpha`` and ``beta``
  enter only through ``alpha * e^beta`` (they are one degree of freedom written twice); both are
  kept because the paper trains both.
* **Encoding spike** (eq. 9): at the first ``t`` with ``v >= theta_e(t)``; the potential then
  drops by ``theta_e(t_e)`` (eq. 11). **Calibration spike** (eq. 12): at the first ``t >= t_e``
  (the same step allowed) with ``v_r >= theta_c(t)``; then ``v = 0`` (at most two spikes).
  During the encoding window the potential is constant (the layer finished decoding its inputs
  in the previous window), so the spike times are functions of ``v`` alone.
* **Closed form** (eq. 15): ``t = ceil(max(0, (beta - ln(v/alpha)) / k))``, the first integer
  ``t`` with ``theta(t) <= v``. The paper's stabiliser ``tau`` only guards ``ln 0``; here a
  non-positive ``v`` is silent by definition, and a one-step correction against
  ``theta(t)`` makes the closed form agree with eq. 9 exactly despite rounding.
* **Decoding** (eq. 16): the next layer adds ``W * theta_e(t_e)`` and ``W * theta_c(t_c)``, so a
  neuron's decoded output is ``z = theta_e(t_e) + theta_c(t_c)`` (absent spikes add 0).
* **Gradients** (eqs. 21-23): ``z`` is differentiated through ``theta(t)`` at the (fixed,
  integer) spike times: ``dz/dalpha = exp(-k t + beta)``, ``dz/dk = -t theta(t)``,
  ``dz/dbeta = theta(t)``. The paper also trains the BN layers *before* each neuron, which
  needs ``dz/dv``, which the paper does not define; we use the straight-through estimate
  ``dz/dv = 1`` inside the representable range ``[theta_e(T-1), z_max)`` and 0 outside it.

The spike times come from a Numba kernel (:func:`sc_ttfs_times_kernel`, the literal step-by-step
definition, eqs. 9-13) on CPU, or from the closed form in torch (eq. 15) anywhere; the tests check
that the two agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit, prange
from torch import nn

from snnlab.checks import check_choice, check_finite, check_positive, check_real, check_tensor, check_timesteps
from snnlab.cpu_threads import numba_threads

__all__ = [
    "ThresholdParams",
    "threshold",
    "sc_ttfs_times_kernel",
    "spike_times",
    "decode",
    "SCTTFSNeuron",
    "TTFSNeuron",
    "NO_SPIKE",
]

PARALLEL_MIN_WORK = 1 << 18
"""Below this many neuron-steps the kernel runs on one thread."""

NO_SPIKE = -1
"""Spike time of a neuron that does not fire in the window."""


@dataclass(frozen=True)
class ThresholdParams:
    """``theta(t) = alpha * exp(-k t + beta)`` (SC-TTFS eq. 14; T2FSNN's kernel is the case
    ``alpha = vth0``, ``beta = t_d / tau_T2F``, ``k = 1 / tau_T2F``)."""

    alpha: float
    beta: float
    k: float

    def __post_init__(self):
        # thresholds must decay from a positive level: alpha > 0 and k > 0, every value finite
        # (a NaN would make every comparison false: no spike, or an int64 overflow in torch)
        object.__setattr__(self, "alpha", check_positive("alpha", self.alpha))
        object.__setattr__(self, "beta", check_real("beta", self.beta))
        object.__setattr__(self, "k", check_positive("k", self.k))

    @classmethod
    def from_t2fsnn(cls, vth0: float, tau: float, t_d: float = 0.0) -> "ThresholdParams":
        """T2FSNN's threshold kernel ``vth0 * exp(-(t - t_d) / tau)`` (Park et al., DAC 2020; its
        code: an incoming spike at ``t`` adds ``exp(-(t - t_d) / tau)``, the kernel without
        ``vth0``). As ``alpha * exp(-k t + beta)``: ``alpha = vth0``, ``k = 1/tau``,
        ``beta = t_d / tau``. The neuron then fires at T2FSNN's times; its decoded output
        ``theta(t)`` is T2FSNN's kernel value times ``vth0``, the factor T2FSNN folds into the
        next layer's (normalised) weights."""
        check_positive("vth0", vth0)
        check_positive("tau", tau)
        return cls(float(vth0), float(t_d) / float(tau), 1.0 / float(tau))

    def __call__(self, t):
        """The threshold at time(s) ``t`` (NumPy or Python numbers)."""
        return self.alpha * np.exp(-self.k * np.asarray(t, dtype=np.float64) + self.beta)


def threshold(alpha, beta, k, t):
    """Eq. 14 in torch: ``alpha * exp(-k t + beta)`` (differentiable in alpha, beta, k)."""
    return alpha * torch.exp(-k * t + beta)


@njit(parallel=True, cache=True)
def sc_ttfs_times_kernel(v, T, ae, be, ke, ac, bc, kc, calibrate, t_enc, t_cal):
    """Spike times of SC-TTFS (or TTFS when ``calibrate`` is False) neurons, simulated step by
    step as eqs. 9-13 define them. ``v``: contiguous float32/float64 [N] potentials at the start
    of the encoding window; writes int64 times into ``t_enc``/``t_cal`` (``-1``: no spike)."""
    n = v.shape[0]
    for i in prange(n):
        r = np.float64(v[i])
        te = -1
        tc = -1
        for t in range(T):
            if te < 0:
                th = ae * math.exp(-ke * t + be)
                if r >= th:
                    te = t
                    r = r - th
            if te >= 0:
                if not calibrate:
                    break
                thc = ac * math.exp(-kc * t + bc)
                if r >= thc:
                    tc = t
                    break
        t_enc[i] = te
        t_cal[i] = tc


def _check_times_input(v, T, backend):
    check_tensor("v", v)
    check_timesteps("T", T)
    check_choice("backend", backend, ("auto", "numba", "torch"))
    on_cpu = v.device.type == "cpu" and v.dtype in (torch.float32, torch.float64)
    if backend == "numba" and not on_cpu:
        raise ValueError(
            f"backend='numba' needs a float32/float64 CPU tensor, got {v.dtype} on {v.device}; "
            f"use backend='torch' (or 'auto')."
        )
    use_kernel = backend == "numba" or (backend == "auto" and on_cpu)
    if use_kernel:  # NumPy's check is much cheaper than torch's on small CPU arrays
        if not np.isfinite(v.detach().numpy()).all():
            check_finite("v", v)
    else:
        check_finite("v", v)
    return use_kernel


def _param(value):
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def _closed_form_time(v, alpha, beta, k, T):
    """First integer t in [0, T) with alpha*exp(-k t + beta) <= v (eq. 15 plus a one-step
    correction for rounding); NO_SPIKE where there is none."""
    dtype = v.dtype
    tiny = torch.finfo(dtype).tiny
    raw = (beta - torch.log(v.clamp_min(tiny) / alpha)) / k
    t = torch.ceil(raw.clamp(min=0.0, max=float(T))).to(torch.int64)
    th = lambda tt: alpha * torch.exp(-k * tt.to(dtype) + beta)  # noqa: E731
    # one step earlier if that already crosses; one step later if this one does not
    earlier = (t > 0) & (v >= th((t - 1).clamp_min(0)))
    t = torch.where(earlier, t - 1, t)
    later = (t < T) & (v < th(t))
    t = torch.where(later, t + 1, t)
    fired = (t < T) & (v > 0)
    return torch.where(fired, t, torch.full_like(t, NO_SPIKE))


def spike_times(v: torch.Tensor, T: int, encode, calibrate=None, *, backend: str = "auto"):
    """Encoding and calibration spike times ``(t_e, t_c)`` (int64, ``-1`` = no spike) of neurons
    with potentials ``v`` (any shape). ``encode``/``calibrate`` are :class:`ThresholdParams` or
    ``(alpha, beta, k)`` triples (numbers or scalar tensors); ``calibrate=None`` is single-spike
    TTFS. ``backend``: ``"numba"`` (step-by-step kernel, CPU), ``"torch"`` (closed form, eq. 15),
    ``"auto"`` (the kernel on CPU)."""
    use_kernel = _check_times_input(v, T, backend)
    ae, be, ke = _checked_triple(encode, "encode")
    cal = calibrate is not None
    ac, bc, kc = _checked_triple(calibrate, "calibrate") if cal else (1.0, 0.0, 1.0)
    if use_kernel:
        flat = v.detach().reshape(-1).contiguous().numpy()
        t_enc = np.empty(flat.shape[0], dtype=np.int64)
        t_cal = np.empty(flat.shape[0], dtype=np.int64)
        with numba_threads(flat.shape[0] * T, PARALLEL_MIN_WORK):
            sc_ttfs_times_kernel(flat, T, ae, be, ke, ac, bc, kc, cal, t_enc, t_cal)
        return (torch.from_numpy(t_enc).reshape(v.shape), torch.from_numpy(t_cal).reshape(v.shape))
    with torch.no_grad():
        v64 = v.detach().to(torch.float64)
        t_e = _closed_form_time(v64, ae, be, ke, T)
        if not cal:
            return t_e, torch.full_like(t_e, NO_SPIKE)
        th_e = ae * torch.exp(-ke * t_e.clamp_min(0).to(torch.float64) + be)
        residual = torch.where(t_e >= 0, v64 - th_e, torch.zeros_like(v64))
        t_c = _closed_form_time(residual, ac, bc, kc, T)
        t_c = torch.where(t_c >= 0, torch.maximum(t_c, t_e), t_c)  # first t >= t_e (eq. 12)
        th_c = ac * torch.exp(-kc * t_c.clamp_min(0).to(torch.float64) + bc)
        t_c = torch.where((t_e >= 0) & (t_c >= 0) & (t_c < T) & (residual >= th_c), t_c,
                          torch.full_like(t_c, NO_SPIKE))
        return t_e, t_c


def _checked_triple(params, name):
    """``(alpha, beta, k)`` as floats, validated as :class:`ThresholdParams` (alpha > 0, k > 0, all
    finite); the error names the layer's ``encode``/``calibrate`` thresholds."""
    values = tuple(_param(p) for p in _triple(params, name))
    try:
        ThresholdParams(*values)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{name} thresholds {values}: {error}") from None
    return values


def _triple(params, name):
    if isinstance(params, ThresholdParams):
        return params.alpha, params.beta, params.k
    try:
        alpha, beta, k = params
    except (TypeError, ValueError):
        raise TypeError(f"{name} thresholds must be ThresholdParams or an (alpha, beta, k) triple, "
                        f"got {params!r}.") from None
    return alpha, beta, k


def decode(t_e: torch.Tensor, t_c: torch.Tensor, encode, calibrate=None, dtype=torch.float32):
    """Decoded value ``theta_e(t_e) + theta_c(t_c)`` (eq. 16; absent spikes add 0). Parameters
    may be tensors with ``requires_grad``: the result is differentiable in them (eqs. 21-23)."""
    ae, be, ke = _triple(encode, "encode")
    z = torch.where(t_e >= 0, threshold(ae, be, ke, t_e.clamp_min(0).to(dtype)), torch.zeros((), dtype=dtype))
    if calibrate is not None:
        ac, bc, kc = _triple(calibrate, "calibrate")
        z = z + torch.where(t_c >= 0, threshold(ac, bc, kc, t_c.clamp_min(0).to(dtype)),
                            torch.zeros((), dtype=dtype))
    return z


class SCTTFSNeuron(nn.Module):
    """A layer of SC-TTFS neurons (SC-TTFS eqs. 9-17) that replaces a ReLU in a converted network.

    ``forward(v)`` takes the potentials accumulated over the decoding window (the ANN's
    pre-activations, any shape) and returns the decoded outputs ``z`` the next layer receives,
    with trainable ``alpha, beta, k`` for the encoding and calibration thresholds (eqs. 21-23)
    and a straight-through gradient for ``v`` (see the module docstring). After each forward,
    ``last_spikes`` holds the number of spikes the layer fired per input (a [B] tensor) and
    ``last_times`` the spike times ``(t_e, t_c)``.
    """

    calibrated = True

    def __init__(self, T: int, encode: ThresholdParams, calibrate: ThresholdParams | None = None,
                 *, backend: str = "auto") -> None:
        super().__init__()
        self.T = check_timesteps("T", T)
        check_choice("backend", backend, ("auto", "numba", "torch"))
        self.backend = backend
        if not isinstance(encode, ThresholdParams):
            encode = ThresholdParams(*encode)
        self.alpha_e = nn.Parameter(torch.tensor(float(encode.alpha)))
        self.beta_e = nn.Parameter(torch.tensor(float(encode.beta)))
        self.k_e = nn.Parameter(torch.tensor(float(encode.k)))
        if self.calibrated:
            if calibrate is None:
                raise ValueError("SCTTFSNeuron needs calibration thresholds; use TTFSNeuron for one spike.")
            if not isinstance(calibrate, ThresholdParams):
                calibrate = ThresholdParams(*calibrate)
            self.alpha_c = nn.Parameter(torch.tensor(float(calibrate.alpha)))
            self.beta_c = nn.Parameter(torch.tensor(float(calibrate.beta)))
            self.k_c = nn.Parameter(torch.tensor(float(calibrate.k)))
        elif calibrate is not None:
            raise ValueError("TTFSNeuron fires one spike; it takes no calibration thresholds.")
        self.last_spikes: torch.Tensor | None = None
        self.last_times: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def encode_params(self):
        return (self.alpha_e, self.beta_e, self.k_e)

    @property
    def calibrate_params(self):
        return (self.alpha_c, self.beta_c, self.k_c) if self.calibrated else None

    def thresholds(self) -> tuple[ThresholdParams, ThresholdParams | None]:
        """The current thresholds as plain numbers."""
        enc = ThresholdParams(*(float(p.detach()) for p in self.encode_params))
        cal = (ThresholdParams(*(float(p.detach()) for p in self.calibrate_params))
               if self.calibrated else None)
        return enc, cal

    def _check_params(self):
        """Every threshold parameter finite, alpha and k > 0: fine-tuning can drive them astray."""
        names = ("alpha_e", "beta_e", "k_e") + (("alpha_c", "beta_c", "k_c") if self.calibrated else ())
        for name in names:
            value = float(getattr(self, name).detach())
            if not math.isfinite(value):
                raise ValueError(f"{name} became {value} (fine-tuning diverged); lower the fine-tuning "
                                 f"learning rate, or convert again.")
            if name[0] in "ak" and not value > 0:
                raise ValueError(f"{name} must stay > 0 (thresholds must decay), got {value}; "
                                 f"lower the fine-tuning learning rate.")

    def max_value(self):
        """The largest decodable output ``theta_e(0) (+ theta_c(0))`` (clip-above level)."""
        top = threshold(*self.encode_params, 0.0)
        if self.calibrated:
            top = top + threshold(*self.calibrate_params, 0.0)
        return top

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        self._check_params()
        t_e, t_c = spike_times(v, self.T, self.encode_params, self.calibrate_params, backend=self.backend)
        t_e, t_c = t_e.to(v.device), t_c.to(v.device)
        z = decode(t_e, t_c, self.encode_params, self.calibrate_params, dtype=v.dtype)
        if v.requires_grad:
            low = threshold(*self.encode_params, float(self.T - 1)).detach()
            inside = (v.detach() >= low) & (v.detach() < self.max_value().detach())
            z = z + (v - v.detach()) * inside.to(v.dtype)
        batch = v.shape[0] if v.dim() > 0 else 1
        fired = (t_e >= 0).to(torch.int64) + (t_c >= 0).to(torch.int64)
        self.last_spikes = fired.reshape(batch, -1).sum(1)
        self.last_times = (t_e, t_c)
        return z

    def extra_repr(self) -> str:
        enc, cal = self.thresholds()
        text = f"T={self.T}, encode=(alpha={enc.alpha:.3g}, beta={enc.beta:.3g}, k={enc.k:.3g})"
        if cal is not None:
            text += f", calibrate=(alpha={cal.alpha:.3g}, beta={cal.beta:.3g}, k={cal.k:.3g})"
        return text


class TTFSNeuron(SCTTFSNeuron):
    """Single-spike TTFS (T2FSNN-style decaying threshold, SC-TTFS eqs. 1-7): the encoding spike
    only, decoded as ``theta_e(t_e)``."""

    calibrated = False

    def __init__(self, T: int, encode: ThresholdParams, *, backend: str = "auto") -> None:
        super().__init__(T, encode, None, backend=backend)
