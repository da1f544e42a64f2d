"""Results over seeds: the mean with a confidence interval, so a chapter never reports one run.

A training run's accuracy depends on its seed (initialisation, data order). Over ``n`` seeds the
mean accuracy has the two-sided Student-t interval ``mean ± t(1 - (1 - c)/2, n - 1) · s / sqrt(n)``
(``s`` the sample standard deviation), which assumes the per-seed results are independent draws
from one distribution, roughly normal. Comparing two settings over seeds is
:func:`snnlab.analysis.ottt.seed_gap` (Welch's test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from snnlab.analysis.ottt import student_t_quantile
from snnlab.checks import check_in_range

__all__ = ["SeedSummary", "seed_summary"]


@dataclass(frozen=True)
class SeedSummary:
    """The mean of per-seed results and its confidence interval."""

    values: tuple[float, ...]
    mean: float
    std: float
    """Sample standard deviation (ddof 1)."""
    half_width: float
    """Half the width of the ``confidence`` interval of the mean."""
    confidence: float

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def format(self, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
        """``"96.9 ± 1.3 %"``-style text: the mean and the interval's half width, times ``scale``."""
        return (f"{scale * self.mean:.{digits}f} ± {scale * self.half_width:.{digits}f}{unit} "
                f"({100 * self.confidence:g} % interval over {self.n} seeds)")


def seed_summary(values: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Mean, sample standard deviation and the Student-t ``confidence`` interval of the mean of
    ``values`` (one result per seed; at least two)."""
    vals = tuple(float(v) for v in values)
    if len(vals) < 2:
        raise ValueError(f"need results from at least two seeds to estimate a spread, got {len(vals)}.")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"every result must be a finite number, got {list(vals)}.")
    check_in_range("confidence", confidence, 0.0, 1.0, low_open=True, high_open=True)
    n = len(vals)
    mean = sum(vals) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = student_t_quantile(1 - (1 - confidence) / 2, n - 1) * std / math.sqrt(n) if std > 0 else 0.0
    return SeedSummary(vals, mean, std, half, float(confidence))
