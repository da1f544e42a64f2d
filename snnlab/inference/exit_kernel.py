"""One Numba call per step for ATSN's confidence exit: record, running readout, exit test, compaction.

:func:`snnlab.inference.adaptive_inference` used to spend most of each step outside the network in
some twenty small torch operations on ``[B_alive, C]`` tensors (a float64 cast and finiteness check,
the softmax, the running sum and its division by t, the maximum, the comparison, the count, the
indices of the exits, their predictions, the recording of the outputs, the shrinking of the running
sums), each costing microseconds of dispatch whatever the batch. :func:`confidence_exit_step` does
all of them but the softmax in one pass over the rows, and also keeps the bookkeeping that lets new
samples join the batch when others leave (each row carries its own step ``t``).

Exactness: the scores, thresholds and predictions are the float64 values of the offline rule
(:class:`~snnlab.inference.ConfidenceExit`). The softmax ``o^t`` is computed by torch exactly as the
rule computes it (``out.to(float64).softmax(-1)``) and passed in; everything after it is IEEE
arithmetic done in the same order as the rule's torch code: the running sum adds ``o^t`` to the sum
of the earlier steps (the first term plus 0.0, as ``cumsum`` does), ``y_t`` divides it by ``t``, the
score is a maximum, the test is ``score > CL_t``, and a prediction is the first index of the maximum
(``argmax``'s tie rule). So every decision equals the offline rule's bit for bit (tested).
"""

from __future__ import annotations

import math

from numba import njit

__all__ = ["confidence_exit_step"]


@njit(cache=True, nogil=True)
def _argmax_scaled(row, scale):
    """First index of the maximum of ``row / scale`` (``scale`` 1.0: of ``row`` itself)."""
    best = 0
    top = row[0] / scale
    for c in range(1, row.shape[0]):
        value = row[c] / scale
        if value > top:
            best = c
            top = value
    return best


@njit(cache=True, nogil=True)
def confidence_exit_step(f, p, total, alive, tstep, levels, outputs, steps, predictions, keep,
                         reads_cumulative, predict_cumulative):
    """One exit step over the ``n`` running rows; returns how many keep running (-1: non-finite ``f``).

    Row ``i`` is sample ``alive[i]`` at its 0-based step ``tstep[i]``; ``f[i]`` are its outputs at that
    step and ``p[i]`` their softmax (float64). For each row: record ``f[i]`` in ``outputs[t, alive[i]]``;
    add ``p[i]`` to the running sum ``total[i]`` (rows of the running samples, compact); test the score
    (``max p[i]``, or ``max total[i] / (t + 1)`` when ``reads_cumulative``) against ``levels[t]``; a row
    that passes, or reaches the last step ``T = len(levels)``, writes its 1-based exit step and its
    prediction (``argmax total[i] / (t + 1)`` when ``predict_cumulative``, else ``argmax p[i]``) to
    ``steps`` / ``predictions`` at ``alive[i]``. The rows that go on are moved to the front of
    ``total``, ``alive`` and ``tstep`` (with ``t + 1``), in order, and their old row numbers written to
    ``keep[:n_keep]`` (to select the same rows of the input and of every neuron state).
    """
    n, C = f.shape
    T = levels.shape[0]
    for i in range(n):
        for c in range(C):
            if not math.isfinite(f[i, c]):
                return -1
    needs_total = reads_cumulative or predict_cumulative
    n_keep = 0
    for i in range(n):
        t = tstep[i]
        sample = alive[i]
        for c in range(C):
            outputs[t, sample, c] = f[i, c]
        if needs_total:
            if t == 0:
                for c in range(C):
                    total[i, c] = p[i, c] + 0.0
            else:
                for c in range(C):
                    total[i, c] = total[i, c] + p[i, c]
        scale = float(t + 1)
        if reads_cumulative:
            score = total[i, 0] / scale
            for c in range(1, C):
                score = max(score, total[i, c] / scale)
        else:
            score = p[i, 0]
            for c in range(1, C):
                score = max(score, p[i, c])
        if t == T - 1 or score > levels[t]:
            steps[sample] = t + 1
            if predict_cumulative:
                predictions[sample] = _argmax_scaled(total[i], scale)
            else:
                predictions[sample] = _argmax_scaled(p[i], 1.0)
        else:
            keep[n_keep] = i
            if needs_total and n_keep != i:
                for c in range(C):
                    total[n_keep, c] = total[i, c]
            alive[n_keep] = sample
            tstep[n_keep] = t + 1
            n_keep += 1
    return n_keep
