"""What a chapter found, written from the numbers its run computed.

Every chapter ends its experiments with a few sentences that say what the measurements show:
where they agree with the paper, where they do not, and what does not resolve at this scale.
:class:`Findings` writes those sentences as Markdown bullets with the numbers inline (MyST and
JupyterLab render the ``$...$`` math in them), so a chapter states each verdict in one short call
instead of assembling it from f-strings and conditionals:

>>> f = Findings()
>>> f.compare("σ'(0 − V_th) at V_th = 1, α = 2", measured=0.0921, paper=0.092, tol=5e-4)  # doctest: +SKIP
>>> f.gap("OTTT_A − BPTT, digits", 1.2, 2.9, n=4, unit="points")                          # doctest: +SKIP
>>> f                                                                                       # doctest: +SKIP

The three verdicts:

* :meth:`compare`: a measured number against the paper's, within a stated tolerance:
  "agrees" / "does not agree".
* :meth:`gap`: a difference with its 95 % interval (over seeds, or over test items):
  "resolved" when the interval excludes zero, "does not resolve at this budget" when it does not.
  :meth:`estimate` writes a mean with its interval, e.g. ``74.1 ± 1.3 % (5 seeds)``.
* :meth:`claim`: a qualitative statement (usually the paper's) and whether it holds in this run.

Numbers are written by :meth:`num` (significant digits, percentages, units, signs, thousands
separators, a true minus sign), so every chapter writes them the same way. Each verdict is also
kept as a record (:attr:`records`) that tests and later analyses can read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Findings", "Verdict"]

MINUS = "\u2212"
_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


@dataclass(frozen=True)
class Verdict:
    """One finding: its kind (``"compare"``, ``"gap"``, ``"claim"`` or ``"note"``), its label,
    whether it came out in the paper's favour / resolved (``ok``; ``None`` for a note) and the
    Markdown sentence."""

    kind: str
    label: str
    ok: bool | None
    text: str
    values: dict = field(default_factory=dict)


def _finite(name: str, value) -> float:
    if isinstance(value, (str, bytes, bool)):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return x


def _decimals_for(x: float, digits: int) -> int:
    """Decimal places that show ``x`` with ``digits`` significant digits (0 for large numbers)."""
    if x == 0:
        return max(digits - 1, 0)
    exponent = math.floor(math.log10(abs(x)))
    return max(digits - 1 - exponent, 0)


def _fixed(x: float, decimals: int, signed: bool) -> str:
    text = f"{abs(x):,.{decimals}f}"
    if float(text.replace(",", "")) == 0:
        return text  # no sign on zero ("-0.0" is noise)
    if x < 0:
        return MINUS + text
    return ("+" + text) if signed else text


def _with_unit(text: str, unit: str) -> str:
    if not unit:
        return text
    if unit == "x":
        return "\u00d7" + text
    return f"{text} {unit}"


class Findings:
    """A list of computed findings that renders as Markdown bullets (see the module docstring).

    Args:
        intro: an optional sentence printed above the bullets.
    """

    def __init__(self, intro: str = "") -> None:
        self.intro = intro
        self.records: list[Verdict] = []

    # -- number formatting ---------------------------------------------------------------------
    @staticmethod
    def num(x, unit: str = "", *, digits: int = 3, decimals: int | None = None, percent: bool = False,
            signed: bool = False) -> str:
        """``x`` for prose: ``digits`` significant digits (or exactly ``decimals`` places), a
        thousands separator from 10,000 on, a true minus sign, ``+`` with ``signed``.

        ``percent=True`` reads ``x`` as a fraction and writes it in percent (0.741 -> "74.1 %").
        ``unit`` follows after a space ("12.5 ms"); ``unit="x"`` writes a factor ("×2.31").
        Very small or very large numbers (|x| < 10⁻³ or ≥ 10⁷) are written as "1.2 × 10⁻⁵".
        """
        x = _finite("x", x)
        if percent:
            x, unit = 100 * x, (unit or "%")
        quoted = digits is None and decimals is None
        if quoted:
            shortest = f"{abs(x):.6g}"
            if "e" not in shortest:
                decimals = len(shortest.split(".")[1]) if "." in shortest else 0
            digits = 6
        if decimals is None and x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e7):
            exponent = math.floor(math.log10(abs(x)))
            mantissa = x / 10**exponent
            if round(abs(mantissa), digits - 1) >= 10:
                exponent, mantissa = exponent + 1, mantissa / 10
            body = _fixed(mantissa, max(digits - 1, 0), signed)
            if quoted and "." in body:
                body = body.rstrip("0").rstrip(".")
            body += " \u00d7 10" + str(exponent).translate(_SUPERSCRIPT)
            return _with_unit(body, unit)
        places = _decimals_for(x, digits) if decimals is None else int(decimals)
        return _with_unit(_fixed(x, places, signed), unit)

    @staticmethod
    def estimate(mean, half_width, *, n: int | None = None, unit: str = "", what: str = "seeds",
                 percent: bool = False, signed: bool = False) -> str:
        """A mean with its 95 % interval: ``"74.1 ± 1.3 % (5 seeds)"``.

        The half-width is written with two significant digits and the mean to the same decimal
        place (a digit finer than the interval resolves is noise). ``percent=True`` reads both as
        fractions. ``n`` (the number of seeds, runs or items, named by ``what``) is appended.
        """
        mean, half_width = _finite("mean", mean), _finite("half_width", half_width)
        if half_width < 0:
            raise ValueError(f"half_width must be >= 0, got {half_width}.")
        if percent:
            mean, half_width, unit = 100 * mean, 100 * half_width, (unit or "%")
        if half_width > 0:
            places = _decimals_for(half_width, 2)
            body = f"{_fixed(mean, places, signed)} \u00b1 {_fixed(half_width, places, False)}"
        else:
            body = f"{Findings.num(mean, signed=signed)} \u00b1 0"
        text = _with_unit(body, unit)
        if n is not None:
            text += f" ({n} {what[:-1] if n == 1 and what.endswith('s') else what})"
        return text

    # -- verdicts ------------------------------------------------------------------------------
    def add(self, text: str, label: str = "") -> "Findings":
        """A free bullet (Markdown; ``$...$`` math allowed), with an optional bold label."""
        self.records.append(Verdict("note", label, None, self._bullet(label, text)))
        return self

    def compare(self, label: str, measured, paper, *, tol, relative: bool = False, unit: str = "",
                digits: int = 3, percent: bool = False, source: str = "the paper", why: str = "") -> "Findings":
        """Measured against the paper's value: agrees when ``|measured - paper| <= tol`` (or
        ``<= tol * |paper|`` with ``relative=True``). ``why`` is added as explanation."""
        m, p, tol = _finite("measured", measured), _finite("paper", paper), _finite("tol", tol)
        if tol < 0:
            raise ValueError(f"tol must be >= 0, got {tol}.")
        allowed = tol * abs(p) if relative else tol
        ok = abs(m - p) <= allowed * (1 + 1e-12)
        fmt = lambda v, **kw: Findings.num(v, unit, percent=percent, **kw)  # noqa: E731
        tolerance = f"{Findings.num(100 * tol, digits=None)} %" if relative else fmt(tol, digits=None)
        text = f"{fmt(m, digits=digits)} here against {source}'s {fmt(p, digits=None)}: "
        if ok:
            text += f"agrees (within \u00b1{tolerance})"
        else:
            text += f"does not agree (off by {fmt(m - p, digits=digits, signed=True)}, tolerance \u00b1{tolerance})"
        return self._record("compare", label, ok, text, why,
                            {"measured": m, "paper": p, "tol": tol, "relative": relative})

    def gap(self, label: str, difference, half_width, *, n: int | None = None, what: str = "seeds",
            unit: str = "points", percent: bool = False, paper=None, source: str = "the paper",
            why: str = "") -> "Findings":
        """A difference with its 95 % interval ``difference ± half_width``: *resolved* when the
        interval excludes zero, else *does not resolve at this budget*. With ``paper`` (the
        paper's difference) a resolved gap is also said to have the paper's sign or the opposite.

        ``difference`` may instead be an object with ``difference`` and ``threshold`` attributes
        (:class:`snnlab.analysis.ottt.SeedGap`); then leave ``half_width`` as ``None``.
        """
        if half_width is None and hasattr(difference, "threshold"):
            difference, half_width = difference.difference, difference.threshold
        d, hw = _finite("difference", difference), _finite("half_width", half_width)
        if hw < 0:
            raise ValueError(f"half_width must be >= 0, got {hw}.")
        resolved = abs(d) > hw
        text = (f"{self.estimate(d, hw, unit=unit, percent=percent, signed=True)} (95 % interval"
                + (f", {n} {what}" if n is not None else "") + "): "
                + ("resolved" if resolved else "does not resolve at this budget"))
        if paper is not None:
            p = _finite("paper", paper)
            paper_text = self.num(p, unit, digits=None, percent=percent, signed=True)
            if resolved and p != 0:
                same = (d > 0) == (p > 0)
                text += f", with {'the same sign as' if same else 'the opposite sign to'} {source}'s {paper_text}"
            else:
                text += f" ({source}: {paper_text})"
        return self._record("gap", label, resolved, text, why,
                            {"difference": d, "half_width": hw, "n": n, "paper": paper})

    def claim(self, label: str, statement: str, holds: bool, *, evidence: str = "", otherwise: str = "",
              why: str = "") -> "Findings":
        """A qualitative statement and whether this run supports it: "``statement``: holds here
        (``evidence``)" or "does not hold here". ``otherwise`` replaces the statement when it
        does not hold (a clearer sentence for the negative case)."""
        holds = bool(holds)
        body = statement if holds or not otherwise else otherwise
        text = f"{body}: {'holds here' if holds else 'does not hold here'}" + (f" ({evidence})" if evidence else "")
        return self._record("claim", label, holds, text, why)

    def _record(self, kind: str, label: str, ok: bool | None, text: str, why: str = "",
                values: dict | None = None) -> "Findings":
        why = why.strip().rstrip(".")
        text += (f". {why}" if why else "") + "."
        self.records.append(Verdict(kind, label, ok, self._bullet(label, text), values or {}))
        return self

    # -- rendering -----------------------------------------------------------------------------
    @staticmethod
    def _bullet(label: str, text: str) -> str:
        text = text.strip()
        if text and not text.endswith((".", "!", "?", ":")):
            text += "."
        return f"**{label}:** {text}" if label else text

    def __getitem__(self, label: str) -> Verdict:
        for record in self.records:
            if record.label == label:
                return record
        raise KeyError(f"no finding labelled {label!r}; labels: {[r.label for r in self.records]}.")

    def _repr_markdown_(self) -> str:
        if not self.records:
            raise ValueError("Findings has nothing to show: add a finding first.")
        lines = [self.intro, ""] if self.intro else []
        lines += [f"* {r.text}" for r in self.records]
        return "\n".join(lines)

    def __str__(self) -> str:
        lines = [self.intro] if self.intro else []
        lines += [f"\u2022 {r.text.replace('**', '')}" for r in self.records]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)
