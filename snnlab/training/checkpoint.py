"""Checkpoints written atomically, and the random-number state that makes a resume exact."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "capture_rng_state",
    "restore_rng_state",
    "seed_everything",
    "derive_seed",
    "atomic_write_bytes",
    "atomic_write_text",
    "save_checkpoint",
    "load_checkpoint",
]


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (e.g. ``(seed, epoch, rank)``), stable across runs and platforms."""
    h = 1469598103934665603
    for p in parts:
        for byte in int(p).to_bytes(8, "little", signed=True):
            h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG state: Python, NumPy, torch CPU and (if present) all CUDA devices."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_write_bytes(path: str | Path, write) -> None:
    """Write a file so that readers see the old or the new content, never a torn one.

    ``write(fh)`` fills a temporary file in the same directory, which is flushed, fsynced and
    renamed over ``path`` with ``os.replace`` (atomic on POSIX and Windows).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, lambda fh: fh.write(text.encode("utf-8")))


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """``torch.save(payload)`` atomically (tmp file + ``os.replace``)."""
    atomic_write_bytes(path, lambda fh: torch.save(payload, fh))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (it holds RNG states, so not weights-only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train without --resume first.")
    return torch.load(path, map_location=map_location, weights_only=False)

