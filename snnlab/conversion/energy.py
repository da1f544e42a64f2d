"""Energy estimate of a spiking network on neuromorphic hardware, SC-TTFS paper eq. 25:
``E = N * E_i + L * E_l`` with ``N`` the spikes per image and ``L`` the inference latency.

The weights ``(E_i, E_l)`` are the paper's shares of routing/computation and of static energy
(after Moradi & Manohar 2018): TrueNorth (0.4, 0.6), SpiNNaker (0.64, 0.36). The paper says the
estimates were "normalised" without saying how. Since ``N`` (~1e5) and ``L`` (~1e2) differ by three
orders of magnitude, the normalisation decides the result, so two readings are offered:

* ``"max"``: ``N`` and ``L`` are each divided by their largest value among the compared methods
  (then both terms live in [0, 1]);
* ``"reference"``: each is divided by one reference method's value (the reference costs 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from snnlab.checks import check_choice

__all__ = ["HARDWARE", "energy", "energy_improvement"]

HARDWARE = {"truenorth": (0.4, 0.6), "spinnaker": (0.64, 0.36)}
"""``(E_i, E_l)`` of SC-TTFS eq. 25."""


def _as_positive_array(name, values):
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name} must hold at least one value.")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {array.tolist()}.")
    return array


def energy(spikes: Sequence[float], latency: Sequence[float], hardware="truenorth",
           normalise: str = "max", reference: int = 0) -> np.ndarray:
    """Eq. 25 for several methods at once; ``hardware`` is a name in :data:`HARDWARE` or an
    ``(E_i, E_l)`` pair; ``normalise`` is ``"max"``, ``"reference"`` (method index ``reference``)
    or ``"none"``."""
    n = _as_positive_array("spikes", spikes)
    lat = _as_positive_array("latency", latency)
    if n.shape != lat.shape:
        raise ValueError(f"spikes and latency need one value per method, got {n.size} and {lat.size}.")
    if isinstance(hardware, str):
        e_i, e_l = HARDWARE[check_choice("hardware", hardware, HARDWARE)]
    else:
        e_i, e_l = (float(w) for w in hardware)
    check_choice("normalise", normalise, ("max", "reference", "none"))
    if normalise == "max":
        n, lat = n / n.max(), lat / lat.max()
    elif normalise == "reference":
        if not 0 <= reference < n.size:
            raise ValueError(f"reference must index one of the {n.size} methods, got {reference}.")
        n, lat = n / n[reference], lat / lat[reference]
    return n * e_i + lat * e_l


def energy_improvement(e_new: float, e_old: float) -> float:
    """Fraction of energy saved, ``1 - E_new / E_old`` (the paper's "about 80% better")."""
    return 1.0 - float(e_new) / float(e_old)
