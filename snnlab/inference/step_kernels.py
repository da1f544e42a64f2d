"""Serial Numba kernels for one inference timestep of a small batch: a neuron layer and its pooling.

:class:`snnlab.inference.stepper.LayerStepper` runs a network one timestep at a time (adaptive
inference calls it once per step). At the batch sizes of adaptive inference a step is bound by
per-call costs, not arithmetic: the multi-step launch of :mod:`snnlab.neurons.launch` (its checks,
buffer pool, thread team, autograd test) and the seven small torch operations of a 2x2 max pooling
cost more than the work. These kernels do one layer's step in one serial call:

* :func:`spiking_step`: IF/LIF over ``x[n, N]`` from ``v_in`` (empty: at rest), writing the new
  potentials, and either the spikes or, with pooling, their 2x2 maximum (floor, as
  ``nn.MaxPool2d(2)``) over ``[n, C, H, W]``;
* :func:`integrator_step`: the non-spiking integrator ``V = decay·V + X``.

Exactness: the per-neuron arithmetic is the multi-step kernels' own inlined code
(:func:`snnlab.neurons.kernels._forward_row`, :func:`~snnlab.neurons.kernels._integrate_row`), so
spikes and potentials are bit-identical to a module call; the maximum of spikes is exact. Both
return how many neurons met a non-finite potential, for the caller to raise (snnlab's NaN policy).
"""

from __future__ import annotations

from numba import njit

from snnlab.neurons.kernels import _forward_row, _integrate_row, forward_constants

__all__ = ["spiking_step", "integrator_step"]


@njit(inline="always", cache=True)
def _start_row(v_out, v_in, i, rest):
    """Row ``i`` of ``v_out`` holding the potentials before the step: ``v_in[i]``, or ``rest`` (no rows)."""
    v = v_out[i]
    if v_in.shape[0] == 0:
        v[:] = rest
    else:
        v[:] = v_in[i]
    return v


@njit(inline="always", cache=True)
def _non_finite(v, zero):
    bad = 0
    for j in range(v.shape[0]):
        bad += (v[j] - v[j]) != zero
    return bad


@njit(cache=True, nogil=True)
def spiking_step(x, v_in, prm, charge, hard, v_out, s_out, pooled, C, H, W):
    """One step of IF/LIF over ``x[n, N]`` (``N = C·H·W``) from ``v_in[n, N]`` (0 rows: at rest).

    Writes ``v_out[n, N]``; without pooling (``pooled`` has 0 rows) the spikes go to ``s_out[n, N]``,
    with it ``s_out`` is a scratch row ``[1, N]`` and ``pooled[n, C, H // 2, W // 2]`` receives the
    maximum of each 2x2 window. Returns the number of non-finite potentials.
    """
    n, N = x.shape
    vth, vreset, k, leak, one, zero, is_if, is_decay_input = forward_constants(prm, charge)
    pool = pooled.shape[0] > 0
    H2, W2 = H // 2, W // 2
    bad = 0
    for i in range(n):
        v = _start_row(v_out, v_in, i, leak)
        st = s_out[0] if pool else s_out[i]
        _forward_row(x[i], st, st, v, N, k, leak, vth, vreset, one, zero, is_if, is_decay_input, hard, False)
        bad += _non_finite(v, zero)
        if pool:
            for c in range(C):
                for a in range(H2):
                    top = st[(c * H + 2 * a) * W:(c * H + 2 * a + 1) * W]
                    below = st[(c * H + 2 * a + 1) * W:(c * H + 2 * a + 2) * W]
                    out = pooled[i, c, a]
                    for b in range(W2):
                        out[b] = max(max(top[2 * b], below[2 * b]), max(top[2 * b + 1], below[2 * b + 1]))
    return bad


@njit(cache=True, nogil=True)
def integrator_step(x, v_in, decay, out, v_out):
    """One step of ``V = decay[0]·V + X`` over ``x[n, N]`` from ``v_in`` (0 rows: 0): ``out`` gets
    the outputs, ``v_out`` the state; returns the number of non-finite potentials."""
    n, N = x.shape
    d = decay[0]
    zero = d - d
    bad = 0
    for i in range(n):
        v = _start_row(v_out, v_in, i, zero)
        _integrate_row(x[i], out[i], v, N, d)
        bad += _non_finite(v, zero)
    return bad
