"""Conversion sweeps over windows, and each method at matched accuracy (chapter 6, ``snnlab convert``).

A comparison of conversions "at matched accuracy" asks, for each method, for the shortest latency
at which the converted network is as accurate as a bar. Chapter 6 sets the bar from the ANN, not
from the sweep: ``ANN accuracy - tolerance`` (:func:`matched`), so it is a property of the network
being converted, and it is repeated over several trained ANNs (seeds) so that no verdict hangs on a
handful of test images.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from snnlab.checks import check_non_negative
from snnlab.conversion.pipeline import PAPER_THRESHOLDS, convert, evaluate_snn, initial_thresholds

__all__ = ["sweep_conversions", "matched"]


def _thresholds(kind: str, thresholds, preacts: Sequence[torch.Tensor], T: int, max_samples: int):
    """``snnlab convert``'s rule (:func:`initial_thresholds`) for ``"statistics"``, else Table 1's key."""
    if thresholds != "statistics":
        return thresholds
    return initial_thresholds(kind, preacts, T, max_samples=max_samples)


def sweep_conversions(ann: torch.nn.Module, preacts: Sequence[torch.Tensor], test,
                      methods: Mapping[str, tuple[str, Sequence[int], str]], *, max_samples: int = 20_000,
                      keep: bool = False) -> tuple[list[dict], dict]:
    """Convert ``ann`` with every method at every window and evaluate it on all of ``test``.

    ``methods`` maps a label to ``(kind, windows, thresholds)``: ``kind`` is ``"sc_ttfs"``,
    ``"ttfs"`` or ``"rate"``; ``thresholds`` is ``"statistics"`` (from ``preacts``, the ANN's
    pre-activations, as chapter 6 sets them) or a key of :data:`PAPER_THRESHOLDS`. Returns the
    rows (method, kind, T, latency, accuracy, spikes_per_image, correct: test images right) and,
    with ``keep``, the converted networks by ``(label, T)``."""
    rows, nets = [], {}
    n_test = len(test[1]) if isinstance(test, (tuple, list)) else len(test)
    for label, (kind, windows, thresholds) in methods.items():
        if thresholds != "statistics" and thresholds not in PAPER_THRESHOLDS:
            raise ValueError(f"thresholds of {label!r} must be 'statistics' or one of {sorted(PAPER_THRESHOLDS)}, "
                             f"got {thresholds!r}.")
        for T in windows:
            snn = convert(ann, kind, T=T, thresholds=_thresholds(kind, thresholds, preacts, T, max_samples))
            result = evaluate_snn(snn, test)
            rows.append({"method": label, "kind": kind, "T": T, **result,
                         "correct": round(result["accuracy"] * n_test)})
            if keep:
                nets[label, T] = snn
    return rows, nets


def matched(rows: Sequence[dict], bar: float, methods: Sequence[str] | None = None) -> dict[str, dict | None]:
    """For each method (all in ``rows`` by default), the row of smallest latency whose accuracy is
    at least ``bar`` (a fraction), or ``None`` where no window of the sweep reaches it."""
    check_non_negative("bar", bar)
    methods = list(dict.fromkeys(r["method"] for r in rows)) if methods is None else list(methods)
    out = {}
    for m in methods:
        reaching = [r for r in rows if r["method"] == m and r["accuracy"] >= bar - 1e-12]
        out[m] = min(reaching, key=lambda r: (r["latency"], r["T"])) if reaching else None
    return out
