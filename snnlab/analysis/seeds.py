"""Results over seeds: a mean with its 95 % interval, and the gap between two settings.

Every training comparison in the book is run over several seeds; these turn the per-seed numbers
into what a reader can trust, and :class:`snnlab.viz.findings.Findings` writes them
(``Findings.estimate``, ``Findings.gap``).

* :func:`seed_summary` / :func:`mean_interval`: the mean of one setting's results and the
  half-width of its Student-t interval (:class:`SeedSummary`; ``mean_interval`` is the 95 % one).
* :func:`seed_gap`: ``mean(b) - mean(a)`` for two independent sets of runs, Welch's test.
* :func:`paired_gap`: ``b - a`` when run ``i`` of both settings shares seed ``i`` (same
  initialisation and data order): the interval of the mean per-seed difference, which is
  narrower than Welch's when the seeds' luck is shared.
* :func:`student_t_quantile`: Student's t quantile without SciPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from snnlab.checks import check_in_range

__all__ = ["SeedSummary", "seed_summary", "SeedMean", "mean_interval", "SeedGap", "seed_gap", "paired_gap", "student_t_quantile"]


def _values(name: str, values: Sequence[float]) -> list[float]:
    out = [float(v) for v in values]
    for v in out:
        if not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v}.")
    return out


def _mean_std(v: list[float]) -> tuple[float, float]:
    m = sum(v) / len(v)
    return m, (math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0)


@dataclass(frozen=True)
class SeedSummary:
    """One setting over seeds: the mean of per-seed results and its confidence interval
    ``mean ± half_width`` (two-sided Student t; it assumes the per-seed results are independent,
    roughly normal draws)."""

    values: tuple[float, ...]
    mean: float
    std: float
    """Sample standard deviation (ddof 1) over the seeds."""
    half_width: float
    """``t(1 - (1 - confidence)/2, n - 1) · std / sqrt(n)``."""
    confidence: float = 0.95

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def position(self, low: float, high: float | None = None) -> str:
        """Where the interval lies against the value ``low``, or the range ``[low, high]`` (a paper's
        number or range): ``"below"`` or ``"above"`` when it lies wholly on one side, ``"inside"``
        when it lies wholly within the range, else ``"unresolved"`` (it straddles a bound, so these
        seeds cannot tell)."""
        high = low if high is None else high
        if not (math.isfinite(low) and math.isfinite(high)) or high < low:
            raise ValueError(f"need finite low <= high, got low={low}, high={high}.")
        if self.high < low:
            return "below"
        if self.low > high:
            return "above"
        if high > low and low <= self.low and self.high <= high:
            return "inside"
        return "unresolved"

    def describe(self, low: float, high: float | None = None, name: str | None = None) -> str:
        """:meth:`position` in words, for prose: ``"lies below the paper's range"``, ``"straddles zero"``.
        ``name`` names the value or range (default: ``"zero"`` for 0, else ``"the paper's value"`` or
        ``"the paper's range"``)."""
        where = self.position(low, high)
        name = name or ("zero" if (low, high) == (0.0, None) else "the paper's range" if high is not None
                        else "the paper's value")
        return f"straddles {name}" if where == "unresolved" else f"lies {where} {name}"

    def verdict(self, low: float, high: float | None = None, name: str | None = None) -> str:
        """:meth:`position` as a verdict: ``"resolved: above zero"`` or ``"does not resolve at this
        budget (straddles the paper's range)"``."""
        text = self.describe(low, high, name)
        return (f"does not resolve at this budget ({text})" if text.startswith("straddles")
                else f"resolved: {text.removeprefix('lies ')}")

    def format(self, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
        """``"96.9 ± 1.3 %"``-style text: the mean and the interval's half width, times ``scale``."""
        return (f"{scale * self.mean:.{digits}f} ± {scale * self.half_width:.{digits}f}{unit} "
                f"({100 * self.confidence:g} % interval over {self.n} seeds)")


SeedMean = SeedSummary
"""The name :func:`mean_interval` documents (the same class)."""


def seed_summary(values: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Mean, sample standard deviation and the Student-t ``confidence`` interval of the mean of
    ``values`` (one result per seed; at least two)."""
    vals = tuple(_values("every result", values))
    if len(vals) < 2:
        raise ValueError(f"need results from at least two seeds to estimate a spread, got {len(vals)}.")
    check_in_range("confidence", confidence, 0.0, 1.0, low_open=True, high_open=True)
    m, s = _mean_std(list(vals))
    half = student_t_quantile(1 - (1 - confidence) / 2, len(vals) - 1) * s / math.sqrt(len(vals)) if s > 0 else 0.0
    return SeedSummary(vals, m, s, half, float(confidence))


def mean_interval(values: Sequence[float]) -> SeedSummary:
    """The mean of ``values`` (one result per seed, at least two) and its 95 % Student-t interval."""
    return seed_summary(values, 0.95)


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t distribution with ``df`` > 0 degrees of
    freedom: bisection on its CDF, the density integrated by Simpson's rule (to about 1e-6)."""
    p = check_in_range("p", p, 0.5, 1.0, low_open=True, high_open=True)
    if not df > 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}.")
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(t: float, n: int = 2000) -> float:  # 0.5 + the density's integral over [0, t]
        h = t / n
        f = [math.exp(log_c - (df + 1) / 2 * math.log1p((i * h) ** 2 / df)) for i in range(n + 1)]
        return 0.5 + h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        lo, hi = hi, 2 * hi
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


@dataclass
class SeedGap:
    """``b - a`` over seeds: the difference of the means, its standard error and Welch's test."""

    mean_a: float
    std_a: float
    """Sample standard deviation (ddof 1) of ``a`` over its seeds; 0 for a single run."""
    mean_b: float
    std_b: float
    difference: float
    """``mean_b - mean_a``."""
    standard_error: float
    """``sqrt(std_a² / n_a + std_b² / n_b)`` (Welch's)."""
    threshold: float
    """The smallest ``|difference|`` Welch's two-sided t-test calls significant at the 5 % level:
    ``t(0.975, df) · standard_error``, df from the Welch-Satterthwaite formula (inf if both spreads are 0)."""

    @property
    def resolved(self) -> bool:
        """Whether ``|difference|`` exceeds :attr:`threshold` (and is not 0)."""
        return abs(self.difference) > self.threshold


def seed_gap(a: Sequence[float], b: Sequence[float]) -> SeedGap:
    """The gap ``mean(b) - mean(a)`` between two settings' results over seeds, with its standard
    error and Welch's t-test (5 %, two-sided). One side may be a single run (its spread then
    counts as 0, so the error and the degrees of freedom come from the other side alone); at least
    one side needs two or more seeds to have a spread at all."""
    a, b = _values("a", a), _values("b", b)
    if not a or not b:
        raise ValueError("both settings need at least one result.")
    if len(a) < 2 and len(b) < 2:
        raise ValueError("at least one setting needs two or more seeds to estimate the spread between seeds.")

    ma, sa = _mean_std(a)
    mb, sb = _mean_std(b)
    va, vb = sa**2 / len(a), sb**2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return SeedGap(ma, sa, mb, sb, mb - ma, 0.0, 0.0)
    df = (va + vb) ** 2 / sum(v**2 / (n - 1) for v, n in ((va, len(a)), (vb, len(b))) if n > 1 and v > 0)
    return SeedGap(ma, sa, mb, sb, mb - ma, se, student_t_quantile(0.975, df) * se)


def paired_gap(a: Sequence[float], b: Sequence[float]) -> SeedGap:
    """``b - a`` when ``a[i]`` and ``b[i]`` come from the same seed: the mean of the per-seed
    differences and its paired t-test (5 %, two-sided). Returned as a :class:`SeedGap` whose
    ``standard_error`` and ``threshold`` are the paired ones (``std_a``/``std_b`` stay each
    setting's own spread)."""
    a, b = _values("a", a), _values("b", b)
    if len(a) != len(b):
        raise ValueError(f"a paired gap needs one result per seed on both sides, got {len(a)} and {len(b)}.")
    if len(a) < 2:
        raise ValueError(f"a paired gap needs two or more seeds, got {len(a)}.")
    d = [y - x for x, y in zip(a, b)]
    md, sd = _mean_std(d)
    (ma, sa), (mb, sb) = _mean_std(a), _mean_std(b)
    se = sd / math.sqrt(len(d))
    return SeedGap(ma, sa, mb, sb, md, se, student_t_quantile(0.975, len(d) - 1) * se if se > 0 else 0.0)
