"""Numba kernels: multi-step neuron dynamics over a ``[T, N]`` input, forward and surrogate backward.

Plain functions over C-contiguous float NumPy arrays (float32 in production; float64 compiles on
first use, which the float64 gradient checks use). Every kernel walks time sequentially and runs
in parallel over neurons: the ``N`` neurons are cut into blocks of ``block`` contiguous
neurons (:func:`block_size`), ``prange`` spreads the blocks over the threads, and the innermost loop runs over the
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
    "block_size",
    "CHARGE_IF",
    "CHARGE_LIF_DECAY_INPUT",
    "CHARGE_LIF",
    "param_vector",
    "surrogate_constants",
    "surrogate_derivative",
    "spiking_forward",
    "spiking_backward",
    "backward_factors",
    "mlf_forward",
    "mlf_backward",
    "integrator_forward",
    "integrator_backward",
]

BLOCK = 32768
"""The largest block of neurons one parallel work item takes (see :func:`block_size`)."""

MIN_BLOCK = 256


def block_size(n_neurons: int, threads: int) -> int:
    """Neurons per parallel work item: large, so that each row segment a block reads per timestep
    is long (hardware prefetchers stop at page boundaries and ramp up per stream: 2 KB segments
    ran at half the speed of 64 KB ones), yet at least about 4 blocks per thread so the threads
    stay balanced. A multiple of 64 neurons (256 bytes) so blocks start on cache-line boundaries."""
    per = n_neurons // (4 * max(threads, 1))
    return int(min(BLOCK, max(MIN_BLOCK, (per // 64) * 64)))

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


@njit(inline="always", cache=True)
def _initial(v0, lo, hi, fill, dtype):
    # the potentials before the first step: v0[lo:hi], or ``fill`` everywhere when v0 is empty
    # (a fresh state: the caller need not allocate and fill an N-vector for it)
    if v0.shape[0] == 0:
        v = np.empty(hi - lo, dtype=dtype)
        v[:] = fill
        return v
    return v0[lo:hi].copy()


@njit(inline="always", cache=True)
def _charge_all(v, x, k, leak, is_if, is_decay_input):
    # the three charges, each in the reference's floating-point order, chosen by selects (no
    # branch in the loop): bit-identical H, and a loop that vectorises; the spare arithmetic is
    # free in a loop bound by memory
    h_if = v + x
    h_sew = v + (x - (v - leak)) * k
    h_ottt = v - (v - leak) * k + x
    return h_if if is_if else (h_sew if is_decay_input else h_ottt)


@njit(inline="always", cache=True)
def _forward_row(xt, st, ht, v, n, k, leak, vth, vreset, one, zero, is_if, is_decay_input, hard, store_h):
    for j in range(n):
        h = _charge_all(v[j], xt[j], k, leak, is_if, is_decay_input)
        spike = (h - vth) >= zero
        st[j] = one if spike else zero
        if store_h:
            ht[j] = h
        reset = vreset if hard else h - vth
        # + (h - h): adds 0 to a finite potential and NaN to a non-finite one, which then stays in
        # the state to the last step: the NaN check costs one add instead of a pass over memory
        v[j] = (reset if spike else h) + (h - h)


@njit(inline="always", cache=True)
def forward_constants(prm, charge):
    """``(vth, vreset, k, leak, one, zero, is_if, is_decay_input)`` from the parameter vector, typed."""
    return (prm[P_VTH], prm[P_VRESET], prm[P_K], prm[P_LEAK], prm[P_ONE], prm[P_ZERO], charge == CHARGE_IF,
            charge == CHARGE_LIF_DECAY_INPUT)


@njit(parallel=True, cache=True, nogil=True)
def spiking_forward(x, v0, prm, charge, hard, s_out, h_out, v_out, store_h, block):
    """IF / LIF / PLIF forward over ``x[T, N]`` from the potentials ``v0[N]`` (empty: all ``V_leak``).

    Writes the spikes ``s_out[T, N]``, the charged potentials ``h_out[T, N]`` when ``store_h``
    (the backward needs them; inference skips the write) and the potential after the last step
    ``v_out[N]``. Returns how many neurons met a non-finite potential (NaN or inf input, or
    overflow); the caller raises on any (snnlab's NaN policy), so it costs no extra memory pass.
    """
    T, N = x.shape
    vth, vreset, k, leak, one, zero, is_if, is_decay_input = forward_constants(prm, charge)
    nblk = (N + block - 1) // block
    bad = 0
    for b in prange(nblk):
        lo = b * block
        hi = min(lo + block, N)
        n = hi - lo
        v = _initial(v0, lo, hi, leak, x.dtype)
        for t in range(T):
            xt = x[t, lo:hi]
            st = s_out[t, lo:hi]
            if store_h:
                _forward_row(xt, st, h_out[t, lo:hi], v, n, k, leak, vth, vreset, one, zero,
                             is_if, is_decay_input, hard, True)
            else:
                _forward_row(xt, st, st, v, n, k, leak, vth, vreset, one, zero,
                             is_if, is_decay_input, hard, False)
        nb = 0
        for j in range(n):
            nb += (v[j] - v[j]) != zero
        v_out[lo:hi] = v
        bad += nb
    return bad


@njit(inline="always", cache=True)
def _sg(x, code, q1, q2, one, zero):
    # σ'(x) for one element; inlined where ``code`` is a compile-time constant (see _by_surrogate)
    if code == 0:
        z = q1 * x
        return q2 / (one + z * z)
    elif code == 1:
        s = one / (one + math.exp(-(q1 * x)))
        return q1 * s * (one - s)
    elif code == 2:
        return q2 if abs(x) < q1 else zero
    elif code == 3:
        return max(one - abs(x) / q1, zero)
    else:
        return math.exp(-(x * x) / q1) / q2


CHUNK = 1024
"""Backward kernels evaluate σ' for a chunk of this many neurons at a time (the buffers stay in L1)."""


@njit(inline="always", cache=True)
def _surrogate_chunk(hrow, vth, sg, n, code, q1, q2, one, zero):
    # σ'(h - V_th) for n elements, one loop per surrogate so each loop has a fixed formula
    if code == 0:
        for j in range(n):
            sg[j] = _sg(hrow[j] - vth, 0, q1, q2, one, zero)
    elif code == 1:
        for j in range(n):
            sg[j] = _sg(hrow[j] - vth, 1, q1, q2, one, zero)
    elif code == 2:
        for j in range(n):
            sg[j] = _sg(hrow[j] - vth, 2, q1, q2, one, zero)
    elif code == 3:
        for j in range(n):
            sg[j] = _sg(hrow[j] - vth, 3, q1, q2, one, zero)
    else:
        for j in range(n):
            sg[j] = _sg(hrow[j] - vth, 4, q1, q2, one, zero)


@njit(cache=True)
def surrogate_derivative(u, prm):
    """σ'(u) for a 1-D array ``u``, exactly as the backward kernels evaluate it (for tests)."""
    out = np.empty_like(u)
    zero = prm[P_ZERO]
    _surrogate_chunk(u, zero, out, u.shape[0], int(prm[P_CODE]), prm[P_Q1], prm[P_Q2], prm[P_ONE], zero)
    return out


@njit(inline="always", cache=True)
def _backward_chunk(ht, gst, gxt, gv, gh, n, code, q1, q2, one, zero, vth, vreset, hardf, attached,
                    dh_dx, dh_dv):
    # one timestep of one chunk; inlined with ``code`` constant (one copy per surrogate), and the
    # options are 0/1 factors: no branch is left in the loop, which vectorises
    for j in range(n):
        hj = ht[j]
        u = hj - vth
        sg = _sg(u, code, q1, q2, one, zero)
        spike = one if u >= zero else zero
        # hard: (1-S) + (V_reset-H)σ';  soft: 1 - V_th σ'  (the σ' terms only if attached)
        dvdh = one - hardf * spike + attached * sg * (hardf * (vreset - hj) - (one - hardf) * vth)
        g = gst[j] * sg + gv[j] * dvdh
        gxt[j] = g * dh_dx
        gv[j] = g * dh_dv
        gh[j] = g


@njit(inline="always", cache=True)
def backward_factors(prm, charge, hard, detach, cut):
    """``(∂H/∂X, ∂H/∂V[t-1], hard as 0/1, attached reset as 0/1)``, typed like ``prm``: the constant
    factors of the surrogate backward (∂H/∂V[t-1] is 0 when the temporal path is ``cut``)."""
    one = prm[P_ONE]
    zero = prm[P_ZERO]
    k = prm[P_K]
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
    return dh_dx, dh_dv, (one if hard else zero), (zero if detach else one)


@njit(parallel=True, cache=True, nogil=True)
def spiking_backward(gs, gv_last, h, v0, prm, charge, hard, detach, cut, gx, gv0, want_dk, block):
    """Surrogate backward of :func:`spiking_forward` from the stored ``h[T, N]``.

    ``gs[T, N]`` is ∂L/∂S, ``gv_last[N]`` ∂L/∂V after the last step (empty: 0). Writes ∂L/∂X into
    ``gx[T, N]`` and ∂L/∂V0 into ``gv0[N]`` (0 when ``cut``). Returns ∂L/∂k summed over neurons
    and time when ``want_dk`` (PLIF's learnable k = 1/τ; accumulated in float64 per block and
    summed in block order, so the result does not depend on the thread count), else 0.
    PLIF's ∂H/∂k is ``X - (V - V_leak) = (H - V)/k`` (SEW charge) or ``V_leak - V`` (OTTT
    charge), with ``V`` the potential before the step, recomputed from ``H[t-1]`` or ``v0``.
    Each timestep of a block goes chunk by chunk (:data:`CHUNK` neurons, whose ∂L/∂H stay in L1
    for PLIF's reduction) through a branch-free loop compiled once per surrogate.
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
    dh_dx, dh_dv, hardf, attached = backward_factors(prm, charge, hard, detach, cut)
    nblk = (N + block - 1) // block
    dk_parts = np.zeros(nblk, dtype=np.float64)  # one partial sum per block: deterministic order
    for b in prange(nblk):
        lo = b * block
        hi = min(lo + block, N)
        gv = _initial(gv_last, lo, hi, zero, h.dtype)
        gh = np.empty(CHUNK, dtype=h.dtype)
        acc = 0.0
        for t in range(T - 1, -1, -1):
            for c0 in range(lo, hi, CHUNK):
                n = min(CHUNK, hi - c0)
                ht = h[t, c0:c0 + n]
                gst = gs[t, c0:c0 + n]
                gxt = gx[t, c0:c0 + n]
                gvc = gv[c0 - lo:c0 - lo + n]
                if code == 0:
                    _backward_chunk(ht, gst, gxt, gvc, gh, n, 0, q1, q2, one, zero, vth, vreset,
                                    hardf, attached, dh_dx, dh_dv)
                elif code == 1:
                    _backward_chunk(ht, gst, gxt, gvc, gh, n, 1, q1, q2, one, zero, vth, vreset,
                                    hardf, attached, dh_dx, dh_dv)
                elif code == 2:
                    _backward_chunk(ht, gst, gxt, gvc, gh, n, 2, q1, q2, one, zero, vth, vreset,
                                    hardf, attached, dh_dx, dh_dv)
                elif code == 3:
                    _backward_chunk(ht, gst, gxt, gvc, gh, n, 3, q1, q2, one, zero, vth, vreset,
                                    hardf, attached, dh_dx, dh_dv)
                else:
                    _backward_chunk(ht, gst, gxt, gvc, gh, n, 4, q1, q2, one, zero, vth, vreset,
                                    hardf, attached, dh_dx, dh_dv)
                if want_dk:
                    for j in range(n):
                        if t == 0:
                            vp = v0[c0 + j] if v0.shape[0] > 0 else leak
                        else:
                            hp = h[t - 1, c0 + j]
                            vp = _reset(hp, (hp - vth) >= zero, vth, vreset, hard)
                        if charge == 1:
                            acc += float(gh[j]) * (float(ht[j]) - float(vp)) / float(k)
                        else:
                            acc += float(gh[j]) * (float(leak) - float(vp))
        gv0[lo:hi] = gv
        dk_parts[b] = acc
    return dk_parts.sum()


@njit(inline="always", cache=True)
def _initial_levels(v0, K, lo, hi, fill, dtype):
    if v0.shape[1] == 0:
        v = np.empty((K, hi - lo), dtype=dtype)
        v[:, :] = fill
        return v
    return v0[:, lo:hi].copy()


@njit(parallel=True, cache=True, nogil=True)
def mlf_forward(x, v0, th, prm, s_out, v_out, block):
    """MLF forward (Qu et al. 2024): ``K`` LIF levels driven by the same input ``x[T, N]``.

    Level ``i`` has its own potential ``v0[i, :]`` and threshold ``th[i]``; the charge is the OTTT
    form ``H = V - (V - V_leak)·k + X`` (decay factor ``1 - k``, 0.25 in the MLF paper), hard
    reset to ``V_reset``. ``s_out[T, N]`` receives the sum of the levels' spikes (0..K),
    ``v_out[K, N]`` the potentials after the last step. Returns how many neurons met a
    non-finite potential (all levels see the same input, so level 0 tells).
    """
    T, N = x.shape
    K = th.shape[0]
    vreset = prm[P_VRESET]
    k = prm[P_K]
    leak = prm[P_LEAK]
    one = prm[P_ONE]
    zero = prm[P_ZERO]
    nblk = (N + block - 1) // block
    bad = 0
    for b in prange(nblk):
        lo = b * block
        hi = min(lo + block, N)
        n = hi - lo
        v = _initial_levels(v0, K, lo, hi, leak, x.dtype)
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
                    vi[j] = (vreset if spike else h) + (h - h)  # NaN check, see spiking_forward
        for j in range(n):
            nb += (v[0, j] - v[0, j]) != zero
        v_out[:, lo:hi] = v
        bad += nb
    return bad


@njit(parallel=True, cache=True, nogil=True)
def mlf_backward(g, gv_last, x, v0, th, prm, detach, cut, gx, gv0, block):
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
    nblk = (N + block - 1) // block
    for b in prange(nblk):
        lo = b * block
        hi = min(lo + block, N)
        n = hi - lo
        hbuf = np.empty((T, K, n), dtype=x.dtype)
        v = _initial_levels(v0, K, lo, hi, leak, x.dtype)
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
        gv = _initial_levels(gv_last, K, lo, hi, zero, x.dtype)
        sg = np.empty(n, dtype=x.dtype)
        for t in range(T - 1, -1, -1):
            gt = g[t, lo:hi]
            gxt = gx[t, lo:hi]
            for j in range(n):
                gxt[j] = zero
            for i in range(K):
                hb, gvi, vth = hbuf[t, i], gv[i], th[i]
                _surrogate_chunk(hb, vth, sg, n, code, q1, q2, one, zero)
                for j in range(n):
                    hj = hb[j]
                    dvdh = (zero if hj - vth >= zero else one) + attached * (vreset - hj) * sg[j]
                    gh = gt[j] * sg[j] + gvi[j] * dvdh
                    gxt[j] += gh
                    gvi[j] = gh * dh_dv
        gv0[:, lo:hi] = gv


@njit(inline="always", cache=True)
def _integrate_row(xt, ot, v, n, d):
    for j in range(n):
        vj = d * v[j] + xt[j]
        ot[j] = vj
        v[j] = vj + (vj - vj)  # NaN check, see spiking_forward (d = 0 would drop an inf)


@njit(parallel=True, cache=True, nogil=True)
def integrator_forward(x, v0, decay, out, block):
    """Non-spiking, non-resetting integrator: ``V[t] = decay·V[t-1] + X[t]``, ``out[t] = V[t]``.

    ATSN eq. (8) (output layer, decay τ); OTTT's output layer (infinite threshold; its code reads
    out ``W s + b`` at every step, i.e. decay 0). ``decay`` is a 1-element array in x's dtype.
    Returns how many neurons met a non-finite potential.
    """
    T, N = x.shape
    d = decay[0]
    zero = d - d
    nblk = (N + block - 1) // block
    bad = 0
    for b in prange(nblk):
        lo = b * block
        hi = min(lo + block, N)
        n = hi - lo
        v = _initial(v0, lo, hi, zero, x.dtype)
        nb = 0
        for t in range(T):
            _integrate_row(x[t, lo:hi], out[t, lo:hi], v, n, d)
        for j in range(n):
            nb += (v[j] - v[j]) != zero
        bad += nb
    return bad


@njit(parallel=True, cache=True, nogil=True)
def integrator_backward(g, decay, cut, gx, gv0, block):
    """Backward of :func:`integrator_forward`: ``∂L/∂X[t] = G[t]``, ``G[t] = g[t] + decay·G[t+1]``
    (no carry when ``cut``). Needs nothing from the forward. Writes ``gx[T, N]`` and ``gv0[N]``."""
    T, N = g.shape
    d = decay[0]
    zero = d - d
    nblk = (N + block - 1) // block
    for b in prange(nblk):
        lo = b * block
        hi = min(lo + block, N)
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
