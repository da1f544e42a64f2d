"""The conversion error of one layer split as in SC-TTFS eqs. 18-19: clip below (the ANN's
activation is positive but below the smallest decodable value, so the neuron stays silent),
quantisation (inside the decodable range), and clip above (above the largest decodable value).

The three parts add up to the total ``mean_i |a_i - z_i|`` exactly, where ``a = ReLU(v)`` is the
ANN's activation and ``z`` the decoded SNN output for the same potential ``v``; the paper states
inequalities (bounds) for the same three sets of neurons.
"""

from __future__ import annotations

import numpy as np
import torch

from snnlab.conversion.ttfs import ThresholdParams, spike_times

__all__ = ["conversion_error_parts"]


def conversion_error_parts(v: torch.Tensor, T: int, encode: ThresholdParams,
                           calibrate: ThresholdParams | None = None) -> dict[str, float]:
    """Mean absolute conversion error per neuron, split into ``clip_below``, ``quantisation`` and
    ``clip_above`` (they sum to ``total``), for potentials ``v`` (e.g. an ANN layer's
    pre-activations) and TTFS (``calibrate=None``) or SC-TTFS thresholds."""
    v = v.detach().to(torch.float64).reshape(-1)
    t_e, t_c = spike_times(v, T, encode, calibrate)
    # decode by table look-up (eq. 16): index T holds 0 for "no spike"
    table_e = np.append(encode(np.arange(T)), 0.0)
    z = table_e[t_e.numpy()]
    if calibrate is not None:
        z = z + np.append(calibrate(np.arange(T)), 0.0)[t_c.numpy()]
    z = torch.from_numpy(z)
    a = v.clamp_min(0.0)
    low = float(encode(T - 1))
    high = float(encode(0)) + (float(calibrate(0)) if calibrate is not None else 0.0)
    error = (a - z).abs()
    below = (a > 0) & (a < low)
    above = a >= high
    inside = ~below & ~above
    n = max(v.numel(), 1)
    parts = {
        "clip_below": float(error[below].sum()) / n,
        "quantisation": float(error[inside].sum()) / n,
        "clip_above": float(error[above].sum()) / n,
    }
    parts["total"] = float(error.sum()) / n
    return parts
