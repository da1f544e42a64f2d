"""How a chapter is being run: quick mode (tests) or full mode (book build).

The test suite sets ``SNNLAB_QUICK=1`` before it executes the chapters; the book build leaves it
unset. A chapter reads :func:`quick_mode` once at the top and scales its experiments with it;
both modes compute every number the chapter shows.
"""

from __future__ import annotations

import os

__all__ = ["quick_mode", "QUICK_ENV"]

QUICK_ENV = "SNNLAB_QUICK"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def quick_mode() -> bool:
    """True when ``SNNLAB_QUICK`` is set to 1/true/yes/on."""
    raw = os.environ.get(QUICK_ENV, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{QUICK_ENV} must be 1 or 0 (or true/false), got {raw!r}.")
