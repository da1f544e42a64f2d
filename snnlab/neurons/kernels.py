"""Numba kernels: multi-step neuron dynamics over a ``[T, N]`` input, forward and surrogate backward.

Plain functions over C-contiguous float NumPy arrays (float32 in production; float64 compiles on
first use, which the float64 gradient checks use). Every kernel walks time sequentially and runs
in parallel over neurons: the ``N`` neurons are cut into blocks of :data:`BLOCK` contiguous
neurons, ``prange`` spreads the blocks over the threads, and the innermost loop runs over the
neurons of a block, contiguous in memory at every timestep, so it streams and vectorises. Each
input element is read once and each output element written once: the kernels are bound by
memory bandwidth, which is what ``snnlab bench neurons`` compares them with (the copy roofline).

Nothing here checks its input: the torch layer (:mod:`snnlab.neurons.ops`) checks shapes, dtypes,
devices and parameters first. The forward formulas are those of the pure-torch reference
(:mod:`snnlab.neurons.functional`) in the same floating-point order, so potentials and spikes are
bit-identical to it; the surrogate derivatives are the formulas of :mod:`snnlab.surrogate`,
selected by ``Surrogate.kernel_spec()`` (see :func:`surrogate_constants`).

Conventions (SEW ResNet eqs. 1-5; OTTT eq. 2; see :mod:`snnlab.neurons.functional`):

* ``charge`` 0 (IF):  ``H = V + X``;  1 (LIF, SEW eq. 5):  ``H = V + (X - (V - V_leak))·k``;
  2 (LIF, OTTT eq. 2):  ``H = V - (V - V_leak)·k + X``; ``k = 1/τ``, ``V_leak`` the reset
  potential (hard reset) or 0 (soft reset).
* ``S = Θ(H - V_th)``; hard reset ``V = V_reset if S else H``; soft reset ``V = H - V_th·S``.
* backward: ``∂L/∂H[t] = ∂L/∂S[t]·σ'(H[t]-V_th) + ∂L/∂V[t]·∂V[t]/∂H[t]``, with
  ``∂V/∂H = (1-S) + (V_reset-H)·σ'`` (hard) or ``1 - V_th·σ'`` (soft), the σ' term dropped when
  the reset is detached; ``∂L/∂V[t-1] = ∂L/∂H[t]·∂H/∂V``, or 0 when the temporal path is cut
  (SLTT, OTTT: the gradient flows only through the current step).

What the backward needs, and so all the autograd functions keep: IF/LIF/PLIF keep ``H``
(4 bytes per neuron-step; ``S`` and the post-reset ``V`` are recomputed from it) and, for PLIF,
the ``N`` initial potentials. MLF keeps only its input ``X`` (often held anyway) and the ``K·N``
initial potentials and recomputes its ``K`` potentials block by block in the backward: 4 bytes
per neuron-step instead of ``4K``. The non-spiking integrator keeps nothing: it is linear.

Parameter vector ``prm`` (dtype of ``x``; built by :func:`param_vector`): indices ``P_*`` below.
Constants travel in it, typed, so float32 arithmetic stays float32 (a float64 literal would
promote it).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = [
    "BLOCK",
    "CHARGE_IF",
    "CHARGE_LIF_DECAY_INPUT",
    "CHARGE_LIF",
    "param_vector",
    "surrogate_constants",
    "surrogate_derivative",
    "spiking_forward",
    "spiking_backward",
    "mlf_forward",
    "mlf_backward",
    "integrator_forward",
    "integrator_backward",
]

BLOCK = 512
"""Neurons per parallel work item (contiguous, so the inner loop streams and vectorises)."""

CHARGE_IF = 0
CHARGE_LIF_DECAY_INPUT = 1
CHARGE_LIF = 2

P_VTH, P_VRESET, P_K, P_LEAK, P_ONE, P_ZERO, P_CODE, P_Q1, P_Q2 = range(9)


def surrogate_constants(code: int, p1: float, p2: float) -> tuple[float, float]:
    """The two constants the kernels' σ' needs, for ``kernel_spec() == (code, p1, p2)``.

    ArcTan (SEW ResNet): σ'(x) = α/(2(1+(π/2·αx)²))  -> (π/2·α, α/2).
    Sigmoid (OTTT, α=4): σ'(x) = α·s(1-s), s = sigmoid(αx) -> (α, 0).
    Rectangular (MLF; OTTT): σ'(x) = h·1[|x| < w/2]  -> (w/2, h).
    Triangle (ATSN eq. 14): σ'(x) = max(0, 1-|x|/w)  -> (w, 0).
    Gaussian (STBP; ATSN eq. 4): σ'(x) = exp(-x²/(2α))/sqrt(2πα) -> (2α, sqrt(2πα)).
    """
    if code == 0:
        return (math.pi / 2 * p1, p1 / 2)
    if code == 1:
        return (p1, 0.0)
    if code == 2:
        return (p1 / 2, p2)
    if code == 3:
        return (p1, 0.0)
    if code == 4:
        return (2 * p1, math.sqrt(2 * math.pi * p1))
    raise ValueError(f"unknown surrogate kernel code {code}; valid codes are 0..4.")


def param_vector(
    dtype, *, v_threshold: float = 1.0, v_reset: float = 0.0, k: float = 0.5, leak: float = 0.0,
    surrogate_spec: tuple[int, float, float] = (0, 2.0, 0.0),
) -> np.ndarray:
    """The typed parameter vector of the kernels (indices ``P_*``)."""
    code, p1, p2 = surrogate_spec
    q1, q2 = surrogate_constants(int(code), float(p1), float(p2))
    return np.array(
        [v_threshold, v_reset, k, leak, 1.0, 0.0, float(code), q1, q2], dtype=dtype
    )


@njit(inline="always", cache=True)
def _charge(v, x, k, leak, charge):
    # The reference's floating-point order (functional.if_charge / lif_charge): bit-identical H.
    if charge == 0:
        return v + x
    elif charge == 1:
        return v + (x - (v - leak)) * k
    else:
        return v - (v - leak) * k + x


@njit(inline="always", cache=True)
def _reset(h, spike, vth, vreset, hard):
    if hard:
        return vreset if spike else h
    return h - vth if spike else h


@njit(parallel=True, cache=True, nogil=True)
def spiking_forward(x, v0, prm, charge, hard, s_out, h_out, v_out, store_h):
    """IF / LIF / PLIF forward over ``x[T, N]`` from the potentials ``v0[N]``.

    Writes the spikes ``s_out[T, N]``, the charged potentials ``h_out[T, N]`` when ``store_h``
    (the backward needs them; inference skips the write) and the potential after the last step
    ``v_out[N]``. Returns how many charged potentials were not finite (the caller raises on any:
    snnlab's NaN policy, checked here without another pass over memory).
    """
    T, N = x.shape
    vth = prm[P_VTH]
    vreset = prm[P_VRESET]
    k = prm[P_K]
    leak = prm[P_LEAK]
    one = prm[P_ONE]
    zero = prm[P_ZERO]
    nblk = (N + BLOCK - 1) // BLOCK
    bad = 0
    for b in prange(nblk):
        lo = b * BLOCK
        hi = min(lo + BLOCK, N)
        n = hi - lo
        v = v0[lo:hi].copy()
        nb = 0
        for t in range(T):
            xt = x[t, lo:hi]
            st = s_out[t, lo:hi]
            if store_h:
                ht = h_out[t, lo:hi]
                for j in range(n):
                    h = _charge(v[j], xt[j], k, leak, charge)
                    spike = (h - vth) >= zero
                    st[j] = one if spike else zero
                    ht[j] = h
                    nb += (h - h) != zero
                    v[j] = _reset(h, spike, vth, vreset, hard)
            else:
                for j in range(n):
                    h = _charge(v[j], xt[j], k, leak, charge)
                    spike = (h - vth) >= zero
                    st[j] = one if spike else zero
                    nb += (h - h) != zero
                    v[j] = _reset(h, spike, vth, vreset, hard)
        v_out[lo:hi] = v
        bad += nb
    return bad


@njit(inline="always", cache=True)
def _surrogate_block(u, sg, n, code, q1, q2, one, zero):
    # σ'(u[j]) for a block, the switch on the surrogate hoisted out of the loops so each vectorises.
    if code == 0:
        for j in range(n):
            z = q1 * u[j]
            sg[j] = q2 / (one + z * z)
    elif code == 1:
        for j in range(n):
            s = one / (one + math.exp(-(q1 * u[j])))
            sg[j] = q1 * s * (one - s)
    elif code == 2:
        for j in range(n):
            sg[j] = q2 if abs(u[j]) < q1 else zero
    elif code == 3:
        for j in range(n):
            sg[j] = max(one - abs(u[j]) / q1, zero)
    else:
        for j in range(n):
            x = u[j]
            sg[j] = math.exp(-(x * x) / q1) / q2


@njit(cache=True)
def surrogate_derivative(u, prm):
    """σ'(u) for a 1-D array ``u``, exactly as the backward kernels evaluate it (for tests)."""
    out = np.empty_like(u)
    _surrogate_block(u, out, u.shape[0], int(prm[P_CODE]), prm[P_Q1], prm[P_Q2], prm[P_ONE], prm[P_ZERO])
    return out


@njit(parallel=True, cache=True, nogil=True)
def spiking_backward(gs, gv_last, h, v0, prm, charge, hard, detach, cut, gx, gv0, want_dk):
    """Surrogate backward of :func:`spiking_forward` from the stored ``h[T, N]``.

    ``gs[T, N]`` is ∂L/∂S, ``gv_last[N]`` ∂L/∂V after the last step. Writes ∂L/∂X into
    ``gx[T, N]`` and ∂L/∂V0 into ``gv0[N]`` (0 when ``cut``). Returns ∂L/∂k summed over neurons
    and time when ``want_dk`` (PLIF's learnable k = 1/τ; accumulated in float64 per block and
    summed in block order, so the result does not depend on the thread count), else 0.
    PLIF's ∂H/∂k is ``X - (V - V_leak) = (H - V)/k`` (SEW charge) or ``V_leak - V`` (OTTT
    charge), with ``V`` the potential before the step, recomputed from ``H[t-1]`` or ``v0``.
    The option switches are turned into 0/1 factors so the inner loop has no branches.
    """
    T, N = h.shape
    vth = prm[P_VTH]
    vreset = prm[P_VRESET]
    k = prm[P_K]
    leak = prm[P_LEAK]
    one = prm[P_ONE]
    zero = prm[P_ZERO]
    code = int(prm[P_CODE])
    q1 = prm[P_Q1]
    q2 = prm[P_Q2]
    if charge == 0:
        dh_dv = one
        dh_dx = one
    elif charge == 1:
        dh_dv = one - k
        dh_dx = k
    else:
        dh_dv = one - k
        dh_dx = one
    if cut:
        dh_dv = zero
    hardf = one if hard else zero
    attached = zero if detach else one
    nblk = (N + BLOCK - 1) // BLOCK
    dk_parts = np.zeros(nblk, dtype=np.float64)  # one partial sum per block: deterministic order
    for b in prange(nblk):
        lo = b * BLOCK
        hi = min(lo + BLOCK, N)
        n = hi - lo
        gv = gv_last[lo:hi].copy()
        u = np.empty(n, dtype=h.dtype)
        sg = np.empty(n, dtype=h.dtype)
        gh = np.empty(n, dtype=h.dtype)
        acc = 0.0
        for t in range(T - 1, -1, -1):
            ht = h[t, lo:hi]
            gst = gs[t, lo:hi]
            gxt = gx[t, lo:hi]
            for j in range(n):
                u[j] = ht[j] - vth
            _surrogate_block(u, sg, n, code, q1, q2, one, zero)
            for j in range(n):
                hj = ht[j]
                spike = one if u[j] >= zero else zero
                # hard: (1-S) + (V_reset-H)σ';  soft: 1 - V_th σ'  (σ' terms only if attached)
                dvdh = one - hardf * spike + attached * sg[j] * (
                    hardf * (vreset - hj) - (one - hardf) * vth
                )
                g = gst[j] * sg[j] + gv[j] * dvdh
                gxt[j] = g * dh_dx
                gv[j] = g * dh_dv
                gh[j] = g
            if want_dk:
                for j in range(n):
                    if t == 0:
                        vp = v0[lo + j]
                    else:
                        hp = h[t - 1, lo + j]
                        vp = _reset(hp, (hp - vth) >= zero, vth, vreset, hard)
                    if charge == 1:
                        acc += float(gh[j]) * (float(ht[j]) - float(vp)) / float(k)
                    else:
                        acc += float(gh[j]) * (float(leak) - float(vp))
        gv0[lo:hi] = gv
        dk_parts[b] = acc
    return dk_parts.sum()


@njit(parallel=True, cache=True, nogil=True)
def mlf_forward(x, v0, th, prm, s_out, v_out):
    """MLF forward (Qu et al. 2024): ``K`` LIF levels driven by the same input ``x[T, N]``.

    Level ``i`` has its own potential ``v0[i, :]`` and threshold ``th[i]``; the charge is the OTTT
    form ``H = V - (V - V_leak)·k + X`` (decay factor ``1 - k``, 0.25 in the MLF paper), hard
    reset to ``V_reset``. ``s_out[T, N]`` receives the sum of the levels' spikes (0..K),
    ``v_out[K, N]`` the potentials after the last step. Returns the non-finite count.
    """
    T, N = x.shape
    K = th.shape[0]
    vreset = prm[P_VRESET]
    k = prm[P_K]
    leak = prm[P_LEAK]
    one = prm[P_ONE]
    zero = prm[P_ZERO]
    nblk = (N + BLOCK - 1) // BLOCK
    bad = 0
    for b in prange(nblk):
        lo = b * BLOCK
        hi = min(lo + BLOCK, N)
        n = hi - lo
        v = v0[:, lo:hi].copy()
        nb = 0
        for t in range(T):
            xt = x[t, lo:hi]
            st = s_out[t, lo:hi]
            for j in range(n):
                st[j] = zero
            for i in range(K):
                vth = th[i]
                vi = v[i]
                for j in range(n):
                    h = _charge(vi[j], xt[j], k, leak, CHARGE_LIF)
                    spike = (h - vth) >= zero
                    st[j] += one if spike else zero
                    nb += (h - h) != zero
                    vi[j] = vreset if spike else h
        v_out[:, lo:hi] = v
        bad += nb
    return bad


@njit(parallel=True, cache=True, nogil=True)
def mlf_backward(g, gv_last, x, v0, th, prm, detach, cut, gx, gv0):
    """Surrogate backward of :func:`mlf_forward`, recomputing the levels' potentials from ``x``.

    ``g[T, N]`` is ∂L/∂(Σ_i S_i); each level's surrogate window is centred on its own threshold:
    ``σ'(H_i - V_th,i)``. Writes ∂L/∂X into ``gx`` and ∂L/∂V0 into ``gv0[K, N]``.
    """
    T, N = x.shape
    K = th.shape[0]
    vreset = prm[P_VRESET]
    k = prm[P_K]
    leak = prm[P_LEAK]
    one = prm[P_ONE]
    zero = prm[P_ZERO]
    code = int(prm[P_CODE])
    q1 = prm[P_Q1]
    q2 = prm[P_Q2]
    dh_dv = zero if cut else one - k
    attached = zero if detach else one
    nblk = (N + BLOCK - 1) // BLOCK
    for b in prange(nblk):
        lo = b * BLOCK
        hi = min(lo + BLOCK, N)
        n = hi - lo
        hbuf = np.empty((T, K, n), dtype=x.dtype)
        v = v0[:, lo:hi].copy()
        for t in range(T):
            xt = x[t, lo:hi]
            for i in range(K):
                vth = th[i]
                vi = v[i]
                hb = hbuf[t, i]
                for j in range(n):
                    h = _charge(vi[j], xt[j], k, leak, CHARGE_LIF)
                    hb[j] = h
                    vi[j] = vreset if (h - vth) >= zero else h
        gv = gv_last[:, lo:hi].copy()
        u = np.empty(n, dtype=x.dtype)
        sg = np.empty(n, dtype=x.dtype)
        for t in range(T - 1, -1, -1):
            gt = g[t, lo:hi]
            gxt = gx[t, lo:hi]
            for j in range(n):
                gxt[j] = zero
            for i in range(K):
                vth = th[i]
                gvi = gv[i]
                hb = hbuf[t, i]
                for j in range(n):
                    u[j] = hb[j] - vth
                _surrogate_block(u, sg, n, code, q1, q2, one, zero)
                for j in range(n):
                    hj = hb[j]
                    dvdh = (zero if u[j] >= zero else one) + attached * (vreset - hj) * sg[j]
                    gh = gt[j] * sg[j] + gvi[j] * dvdh
                    gxt[j] += gh
                    gvi[j] = gh * dh_dv
        gv0[:, lo:hi] = gv


@njit(parallel=True, cache=True, nogil=True)
def integrator_forward(x, v0, decay, out):
    """Non-spiking, non-resetting integrator: ``V[t] = decay·V[t-1] + X[t]``, ``out[t] = V[t]``.

    ATSN eq. (8) (output layer, decay τ); OTTT's output layer (infinite threshold; its code reads
    out ``W s + b`` at every step, i.e. decay 0). ``decay`` is a 1-element array in x's dtype.
    Returns the non-finite count.
    """
    T, N = x.shape
    d = decay[0]
    zero = d - d
    nblk = (N + BLOCK - 1) // BLOCK
    bad = 0
    for b in prange(nblk):
        lo = b * BLOCK
        hi = min(lo + BLOCK, N)
        n = hi - lo
        v = v0[lo:hi].copy()
        nb = 0
        for t in range(T):
            xt = x[t, lo:hi]
            ot = out[t, lo:hi]
            for j in range(n):
                vj = d * v[j] + xt[j]
                ot[j] = vj
                nb += (vj - vj) != zero
                v[j] = vj
        bad += nb
    return bad


@njit(parallel=True, cache=True, nogil=True)
def integrator_backward(g, decay, cut, gx, gv0):
    """Backward of :func:`integrator_forward`: ``∂L/∂X[t] = G[t]``, ``G[t] = g[t] + decay·G[t+1]``
    (no carry when ``cut``). Needs nothing from the forward. Writes ``gx[T, N]`` and ``gv0[N]``."""
    T, N = g.shape
    d = decay[0]
    zero = d - d
    nblk = (N + BLOCK - 1) // BLOCK
    for b in prange(nblk):
        lo = b * BLOCK
        hi = min(lo + BLOCK, N)
        n = hi - lo
        carry = np.zeros(n, dtype=g.dtype)
        for t in range(T - 1, -1, -1):
            gt = g[t, lo:hi]
            gxt = gx[t, lo:hi]
            for j in range(n):
                gj = gt[j] + carry[j]
                gxt[j] = gj
                carry[j] = zero if cut else d * gj
        gv0[lo:hi] = carry
