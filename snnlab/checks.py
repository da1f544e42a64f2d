"""Input checks at snnlab's boundary.

Every public function that takes user input calls these first, so bad input raises a
``ValueError`` / ``TypeError`` that says what was expected and how to fix it, instead of a
cryptic failure deep inside torch or a crash inside a Numba kernel.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "check_positive",
    "check_non_negative",
    "check_in_range",
    "check_tensor",
    "check_positive_int",
    "check_timesteps",
    "check_finite",
    "check_choice",
    "check_real",
    "check_bool",
    "check_seed",
    "SEED_MAX",
]

SEED_MAX = 2**63 - 1
"""Largest seed snnlab accepts: seeds are mixed as signed 64-bit integers (``derive_seed``)."""


def _is_real_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        return True
    return False


def _as_float(name: str, value: Any) -> float:
    if not _is_real_number(value):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r}).")
    number = float(value)
    if math.isnan(number):
        raise ValueError(f"{name} must be a number, got NaN.")
    return number


def check_real(name: str, value: Any) -> float:
    """Return ``value`` as a float, raising unless it is a finite real number (any sign)."""
    number = _as_float(name, value)
    if math.isinf(number):
        raise ValueError(f"{name} must be a finite number, got {number}.")
    return number


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float, raising if it is not a finite number > 0."""
    number = _as_float(name, value)
    if not number > 0 or math.isinf(number):
        raise ValueError(f"{name} must be a finite number > 0, got {number}.")
    return number


def check_non_negative(name: str, value: Any) -> float:
    """Return ``value`` as a float, raising if it is not a finite number >= 0."""
    number = _as_float(name, value)
    if number < 0 or math.isinf(number):
        raise ValueError(f"{name} must be a finite number >= 0, got {number}.")
    return number


def check_in_range(
    name: str, value: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> float:
    """Return ``value`` as a float, raising unless it lies in the given interval."""
    number = _as_float(name, value)
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {number}.")
    return number


def check_tensor(name: str, value: Any, *, min_dim: int = 0, dims: int | None = None) -> torch.Tensor:
    """Raise unless ``value`` is a floating-point tensor of the expected rank."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(value).__name__}. "
            f"Convert it first, e.g. torch.as_tensor(x, dtype=torch.float32)."
        )
    if not value.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (float32 or float64), got dtype {value.dtype}. "
            f"Use x.float()."
        )
    if dims is not None and value.dim() != dims:
        raise ValueError(f"{name} must have {dims} dimensions, got shape {tuple(value.shape)}.")
    if value.dim() < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dimensions, got shape {tuple(value.shape)}."
        )
    return value


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value``, raising unless it is an int >= 1 (TypeError for a non-int, bools included)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= 1, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}.")
    return value


def check_timesteps(name: str, value: Any) -> int:
    """Return ``value`` as an int number of timesteps T >= 1."""
    return check_positive_int(f"{name} (number of timesteps)", value)


def check_finite(name: str, value: torch.Tensor) -> torch.Tensor:
    """Raise if a tensor holds NaN or infinity (snnlab's NaN policy: reject, never propagate)."""
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf). snnlab rejects them at the "
            f"boundary rather than letting them spread through the membrane state; check the data "
            f"or the layer that produced them."
        )
    return value


def check_choice(name: str, value: Any, choices: dict | list | tuple) -> Any:
    """Raise unless ``value`` is one of ``choices``, listing the valid ones."""
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; valid choices: {valid}.")
    return value


def check_bool(name: str, value: Any, *, allow_none: bool = False) -> bool | None:
    """Return ``value`` if it is ``True`` or ``False`` (or ``None`` when allowed); anything else,
    strings such as ``"no"`` or ``"false"`` included, raises ``TypeError`` (``bool("no")`` is True)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        return value
    try:
        import numpy as np

        if isinstance(value, np.bool_):
            return bool(value)
    except ImportError:  # pragma: no cover
        pass
    allowed = "True, False or None" if allow_none else "True or False"
    raise TypeError(f"{name} must be {allowed}, got {value!r} ({type(value).__name__}); on the command line "
                    f"write {name}=True or {name}=False.")


def check_seed(name: str, value: Any) -> int:
    """Return ``value``, raising unless it is an int in ``[0, 2**63 - 1]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int in [0, 2**63 - 1], got {value!r}.")
    if not 0 <= value <= SEED_MAX:
        raise ValueError(f"{name} must lie in [0, 2**63 - 1] ({SEED_MAX}), got {value}.")
    return value
