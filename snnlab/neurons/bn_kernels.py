"""Numba kernels of batch norm fused with an IF/LIF neuron (:class:`snnlab.layers.BatchNormNeuron`).

The unfused pair reads and writes the whole ``[T, B, C, H, W]`` tensor seven times forward (batch
norm: two statistics passes, a read and a write of its output; the neuron: a read of that output,
writes of the spikes and of the potentials ``H`` it keeps for backward) and eight times backward.
Fused, the forward reads the input twice (statistics, then normalise-and-fire) and writes the
spikes; the backward recomputes ``H`` from the input block by block (it needs the input anyway, for
batch norm's backward reductions) and writes the gradient twice (∂L/∂y with the reductions, then
∂L/∂x in place). Nothing is kept for backward but the input, which batch norm keeps anyway.

Layout: the kernels see one step as ``O`` repeats of a *pattern* of ``P = C·I`` neurons, the channel
of pattern position ``p`` being ``p // I``: ``O = B, I = H·W`` for NCHW frames, ``O = B·H·W, I = 1``
for channels_last ones. Per-channel constants arrive expanded to the pattern (``[P]``), so every
inner loop is a contiguous, vectorisable one over memory order, whatever the layout.

Work is cut into items, each a range of patterns ``[o0, o1)`` times a range of positions
``[p0, p1)`` (:func:`plan`); ``prange`` runs groups of items, and each group accumulates its own
float64 partial sums per pattern position (summed in group order afterwards, so results do not
depend on the thread count). The neuron arithmetic is that of :mod:`snnlab.neurons.kernels`
(the same inlined row and chunk functions), applied to ``y = x·a[p] + c[p]``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from snnlab.neurons.kernels import (
    CHUNK,
    P_CODE,
    P_Q1,
    P_Q2,
    _backward_chunk,
    _forward_row,
    backward_factors,
    forward_constants,
)

__all__ = ["CHUNK", "plan", "pattern_sums", "bn_spiking_forward", "bn_spiking_backward", "bn_input_grad"]


def plan(outer: int, pattern: int, groups: int, target: int = 16384) -> np.ndarray:
    """Work items ``[n, 4]`` (``o0, o1, p0, p1``) of about ``target`` neurons, at least ``groups`` of
    them when the step allows: small patterns are grouped whole, large ones cut into position ranges
    (of at least 1024 neurons, so each row segment a kernel streams stays long)."""
    if pattern >= target or outer < groups:
        pieces = max(-(-pattern // target), -(-groups // max(outer, 1)))
        pieces = max(1, min(pieces, pattern // 1024 or 1))
        bounds = [pattern * i // pieces for i in range(pieces + 1)]
        return np.array([(o, o + 1, bounds[i], bounds[i + 1]) for o in range(outer) for i in range(pieces)],
                        dtype=np.int64)
    per = max(1, min(target // pattern, outer // groups))
    return np.array([(o, min(o + per, outer), 0, pattern) for o in range(0, outer, per)], dtype=np.int64)


@njit(inline="always", cache=True)
def _group_rows(s_out, q_out, g):
    """Group ``g``'s rows of the two partial-sum arrays, zeroed."""
    s = s_out[g]
    q = q_out[g]
    s[:] = 0.0
    q[:] = 0.0
    return s, q


@njit(parallel=True, cache=True, nogil=True)
def pattern_sums(x, s_out, q_out):
    """Partial sums of ``x`` and ``x²`` per pattern position: ``x[R, P]`` (rows: every step's
    patterns), ``s_out, q_out[G, P]`` float64 (one row per group of rows, summed by the caller)."""
    R, P = x.shape
    G = s_out.shape[0]
    for g in prange(G):
        s, q = _group_rows(s_out, q_out, g)
        for r in range(g * R // G, (g + 1) * R // G):
            for p in range(P):
                v = np.float64(x[r, p])
                s[p] += v
                q[p] += v * v


@njit(inline="always", cache=True)
def _initial_item(v0, o0, o1, p0, p1, P, N, fill, dtype):
    # the item's potentials (o-major, then positions): from v0[N] or ``fill`` (v0 empty)
    w = p1 - p0
    v = np.empty((o1 - o0) * w, dtype=dtype)
    if v0.shape[0] == 0:
        v[:] = fill
    else:
        for o in range(o0, o1):
            hi = min(o * P + p1, N)
            if hi > o * P + p0:
                v[(o - o0) * w:(o - o0) * w + hi - o * P - p0] = v0[o * P + p0:hi]
    return v


@njit(inline="always", cache=True)
def _normalise(xrow, a, c, y, n):
    for j in range(n):
        y[j] = xrow[j] * a[j] + c[j]


@njit(parallel=True, cache=True, nogil=True)
def bn_spiking_forward(x, v0, a, c, prm, charge, hard, items, s_out, v_out):
    """``y = x·a[p] + c[p]`` then IF/LIF over ``x[T, N]`` (``N = O·P``) from ``v0[N]`` (empty: at
    rest): spikes into ``s_out[T, N]``, the last potentials into ``v_out[N]``. Returns the number of
    neurons that met a non-finite potential (the caller raises)."""
    T, N = x.shape
    P = a.shape[0]
    vth, vreset, k, leak, one, zero, is_if, is_decay_input = forward_constants(prm, charge)
    nitems = items.shape[0]
    bad = 0
    for it in prange(nitems):
        o0, o1, p0, p1 = items[it, 0], items[it, 1], items[it, 2], items[it, 3]
        w = p1 - p0
        v = _initial_item(v0, o0, o1, p0, p1, P, N, leak, x.dtype)
        y = np.empty(CHUNK, dtype=x.dtype)
        for t in range(T):
            for o in range(o0, o1):
                for q0 in range(p0, min(p1, N - o * P), CHUNK):
                    n = min(CHUNK, p1 - q0, N - o * P - q0)
                    base = o * P + q0
                    _normalise(x[t, base:base + n], a[q0:q0 + n], c[q0:q0 + n], y, n)
                    off = (o - o0) * w + q0 - p0
                    st = s_out[t, base:base + n]
                    _forward_row(y, st, st, v[off:off + n], n, k, leak, vth, vreset, one, zero,
                                 is_if, is_decay_input, hard, False)
        nb = 0
        for o in range(o0, o1):
            for j in range((o - o0) * w, (o - o0) * w + max(0, min(o * P + p1, N) - o * P - p0)):
                nb += (v[j] - v[j]) != zero
        for o in range(o0, o1):
            hi = min(o * P + p1, N)
            if hi > o * P + p0:
                v_out[o * P + p0:hi] = v[(o - o0) * w:(o - o0) * w + hi - o * P - p0]
        bad += nb
    return bad


@njit(inline="always", cache=True)
def _accumulate(gy, x, mean, invstd, s, q, n):
    for j in range(n):
        g = gy[j]
        s[j] += g
        q[j] += g * (x[j] - mean[j]) * invstd[j]


@njit(inline="always", cache=True)
def _item_backward(x, v0, gs, gv_last, a, c, mean, invstd, prm, charge, hard, detach, cut, o0, o1, p0, p1,
                   gy, s_acc, q_acc, code):
    T, N = x.shape
    P = a.shape[0]
    vth, vreset, k, leak, one, zero, is_if, is_decay_input = forward_constants(prm, charge)
    q1 = prm[P_Q1]
    q2 = prm[P_Q2]
    dh_dx, dh_dv, hardf, attached = backward_factors(prm, charge, hard, detach, cut)
    w = p1 - p0
    n_item = (o1 - o0) * w
    # the charged potentials of the item, recomputed from x (the forward's arithmetic)
    h = np.empty((T, n_item), dtype=x.dtype)
    v = _initial_item(v0, o0, o1, p0, p1, P, N, leak, x.dtype)
    y = np.empty(CHUNK, dtype=x.dtype)
    scratch = np.empty(CHUNK, dtype=x.dtype)
    for t in range(T):
        for o in range(o0, o1):
            for q0 in range(p0, min(p1, N - o * P), CHUNK):
                n = min(CHUNK, p1 - q0, N - o * P - q0)
                base = o * P + q0
                off = (o - o0) * w + q0 - p0
                _normalise(x[t, base:base + n], a[q0:q0 + n], c[q0:q0 + n], y, n)
                _forward_row(y, scratch, h[t, off:off + n], v[off:off + n], n, k, leak, vth, vreset, one, zero,
                             is_if, is_decay_input, hard, True)
    s_loc = np.zeros(P, dtype=x.dtype)                   # this item's sums, in the input's precision
    q_loc = np.zeros(P, dtype=x.dtype)                   # (a few hundred terms each; vectorises)
    gv = _initial_item(gv_last, o0, o1, p0, p1, P, N, zero, x.dtype)
    gh = np.empty(CHUNK, dtype=x.dtype)
    for t in range(T - 1, -1, -1):
        for o in range(o0, o1):
            for q0 in range(p0, min(p1, N - o * P), CHUNK):
                n = min(CHUNK, p1 - q0, N - o * P - q0)
                base = o * P + q0
                off = (o - o0) * w + q0 - p0
                gyt = gy[t, base:base + n]
                _backward_chunk(h[t, off:off + n], gs[t, base:base + n], gyt, gv[off:off + n], gh, n, code,
                                q1, q2, one, zero, vth, vreset, hardf, attached, dh_dx, dh_dv)
                _accumulate(gyt, x[t, base:base + n], mean[q0:q0 + n], invstd[q0:q0 + n], s_loc[q0:q0 + n],
                            q_loc[q0:q0 + n], n)
    for p in range(p0, p1):                             # the item's sums join the group's in float64
        s_acc[p] += np.float64(s_loc[p])
        q_acc[p] += np.float64(q_loc[p])


@njit(inline="always", cache=True)
def _groups_backward(x, v0, gs, gv_last, a, c, mean, invstd, prm, charge, hard, detach, cut, items, gy, s_out, q_out,
                     code):
    G = s_out.shape[0]
    nitems = items.shape[0]
    for g in prange(G):
        s_acc, q_acc = _group_rows(s_out, q_out, g)
        for it in range(g * nitems // G, (g + 1) * nitems // G):
            o0, o1, p0, p1 = items[it, 0], items[it, 1], items[it, 2], items[it, 3]
            _item_backward(x, v0, gs, gv_last, a, c, mean, invstd, prm, charge, hard, detach, cut,
                           o0, o1, p0, p1, gy, s_acc, q_acc, code)


def _backward_kernel(code: int):
    """The first backward pass as one parallel kernel for surrogate ``code``: the code is a constant of
    the kernel (a closure variable), so the inlined backward loop keeps no branch and vectorises. Numba
    compiles a kernel on its first call only (and caches it keyed by the code), so a network pays for
    the surrogates it uses: one kernel for all five codes took about 70 s to compile on a cold cache."""

    @njit(parallel=True, cache=True, nogil=True)
    def kernel(x, v0, gs, gv_last, a, c, mean, invstd, prm, charge, hard, detach, cut, items, gy, s_out, q_out):
        _groups_backward(x, v0, gs, gv_last, a, c, mean, invstd, prm, charge, hard, detach, cut, items, gy, s_out,
                         q_out, code)

    return kernel


_BACKWARD_BY_CODE = tuple(_backward_kernel(code) for code in range(5))


def bn_spiking_backward(x, v0, gs, gv_last, a, c, mean, invstd, prm, charge, hard, detach, cut, items, gy,
                        s_out, q_out):
    """First backward pass: ∂L/∂y into ``gy[T, N]`` (the neuron's surrogate backward, from ``H``
    recomputed from ``x``), and per group ``g`` the partial sums ``s_out[g, p] = Σ ∂L/∂y`` and
    ``q_out[g, p] = Σ ∂L/∂y·x̂`` (``x̂ = (x - mean[p])·invstd[p]``; ``mean``, ``invstd`` in the
    input's dtype) per pattern position: in the input's precision within a work item, in float64
    across items.
    ``gs[T, N]`` is ∂L/∂S, ``gv_last[N]`` ∂L/∂V after the last step (empty: 0). Runs the kernel of the
    surrogate's code (``prm[P_CODE]``)."""
    kernel = _BACKWARD_BY_CODE[int(prm[P_CODE])]
    kernel(x, v0, gs, gv_last, a, c, mean, invstd, prm, charge, hard, detach, cut, items, gy, s_out, q_out)


@njit(parallel=True, cache=True, nogil=True)
def bn_input_grad(g, x, k, u, w, groups):
    """Second backward pass, in place: ``g[R, P] <- g·k[p] + x·u[p] + w[p]`` (batch norm's input
    gradient with its reductions folded into the per-position constants)."""
    R, P = g.shape
    for b in prange(groups):
        for r in range(b * R // groups, (b + 1) * R // groups):
            for p in range(P):
                g[r, p] = g[r, p] * k[p] + x[r, p] * u[p] + w[p]
