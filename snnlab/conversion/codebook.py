"""What one TTFS or SC-TTFS neuron can say in a window of T steps (SC-TTFS paper, section 3.3).

A single-spike TTFS neuron fires at one of ``T`` times (or not at all): ``T`` spike patterns.
An SC-TTFS neuron fires its encoding spike at ``t_e`` and then a calibration spike at some
``t_c >= t_e`` or none: for ``t_e = T - i`` that is ``i + 1`` patterns, so
``N(T) = sum_{i=1..T} (i + 1) = T (T + 3) / 2`` patterns in all (the paper's count; the silent
neuron is not counted in either). Each pattern decodes to ``theta_e(t_e) + theta_c(t_c)``
(eq. 16). Which patterns a neuron can actually *produce* depends on the thresholds: after the
encoding spike the residual potential is below ``theta_e(t_e - 1) - theta_e(t_e)``, so a
calibration threshold that starts high may never be reached (:func:`reachable_patterns`).
"""

from __future__ import annotations

import numpy as np

from snnlab.checks import check_timesteps
from snnlab.conversion.ttfs import NO_SPIKE, ThresholdParams

__all__ = ["n_patterns", "enumerate_patterns", "pattern_values", "reachable_patterns", "codebook"]


def n_patterns(T: int, calibrate: bool = True) -> int:
    """``N(T) = sum_{i=1..T} (i+1)`` for SC-TTFS (section 3.3), ``T`` for single-spike TTFS."""
    check_timesteps("T", T)
    return sum(i + 1 for i in range(1, T + 1)) if calibrate else T


def enumerate_patterns(T: int, calibrate: bool = True) -> list[tuple[int, int]]:
    """Every spike pattern ``(t_e, t_c)`` of one neuron in a window of ``T`` steps (``t_c = -1``:
    no calibration spike), the silent neuron excluded; enumerated, not counted by formula."""
    check_timesteps("T", T)
    patterns = []
    for t_e in range(T):
        patterns.append((t_e, NO_SPIKE))
        if calibrate:
            patterns.extend((t_e, t_c) for t_c in range(t_e, T))
    return patterns


def pattern_values(patterns, encode: ThresholdParams, calibrate: ThresholdParams | None = None) -> np.ndarray:
    """Decoded value of each pattern (eq. 16)."""
    values = []
    for t_e, t_c in patterns:
        z = float(encode(t_e))
        if t_c != NO_SPIKE:
            if calibrate is None:
                raise ValueError("a pattern with a calibration spike needs calibration thresholds.")
            z += float(calibrate(t_c))
        values.append(z)
    return np.asarray(values)


def reachable_patterns(T: int, encode: ThresholdParams, calibrate: ThresholdParams | None = None):
    """The patterns some potential ``v > 0`` produces (eqs. 9-13), found exactly: an encoding
    spike at ``t_e > 0`` leaves a residual in ``[0, theta_e(t_e-1) - theta_e(t_e))`` (any residual
    ``>= 0`` when ``t_e = 0``), and a calibration spike at ``t >= t_e`` needs a residual of at
    least ``theta_c(t)``."""
    check_timesteps("T", T)
    reachable = []
    for t_e in range(T):
        reachable.append((t_e, NO_SPIKE))
        if calibrate is None:
            continue
        r_max = np.inf if t_e == 0 else float(encode(t_e - 1) - encode(t_e))
        reachable.extend((t_e, t_c) for t_c in range(t_e, T) if float(calibrate(t_c)) < r_max)
    return reachable


def codebook(T: int, encode: ThresholdParams, calibrate: ThresholdParams | None = None,
             *, reachable_only: bool = True, decimals: int = 12) -> np.ndarray:
    """Sorted distinct decodable values (rounded to ``decimals`` to merge float ties)."""
    patterns = (reachable_patterns(T, encode, calibrate) if reachable_only
                else enumerate_patterns(T, calibrate is not None))
    return np.unique(np.round(pattern_values(patterns, encode, calibrate), decimals))
