"""Checkpoints written atomically, and the random-number state that makes a resume exact."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnlab.errors import CorruptFileError
from snnlab.files import atomic_write, load_torch_file

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

    ``write(fh)`` fills a temporary file in the same directory, which is flushed, fsynced, given
    the user's permissions (umask) and renamed over ``path`` (:func:`snnlab.files.atomic_write`).
    """
    atomic_write(path, write)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, lambda fh: fh.write(text.encode("utf-8")))


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """``torch.save(payload)`` atomically (tmp file + ``os.replace``)."""
    atomic_write_bytes(path, lambda fh: torch.save(payload, fh))


CHECKPOINT_FORMAT = 1
CHECKPOINT_KEYS = ("format", "config", "epoch", "batch", "model", "optimizer", "rng", "history")
_EXPECTED = "a training checkpoint written by snnlab train (torch.save of a dict with 'format': 1)"


def _fix(path: Path) -> str:
    return (f"If the run is yours, restore the file from a backup; otherwise start again in this folder "
            f"with --overwrite (it moves the old run to {path.parent}/previous/, deleting nothing) or use "
            f"another --out-dir.")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *,
                    format: Any = CHECKPOINT_FORMAT, keys: tuple[str, ...] = CHECKPOINT_KEYS,
                    expected: str = _EXPECTED) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (it holds RNG states, so not weights-only).

    ``format`` / ``keys``: what the file must record (``snnlab train``'s by default; ``snnlab
    convert`` passes its own). A missing file raises ``FileNotFoundError``; a directory, a
    truncated or garbage file, or a torch file that is not such a checkpoint raises
    :class:`~snnlab.errors.CorruptFileError` naming the file, what was ``expected`` and the way on.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train without --resume first.")
    state = load_torch_file(path, expected=expected, fix=_fix(path), weights_only=False,
                            map_location=map_location)
    if not isinstance(state, dict) or "format" not in state:
        kind = type(state).__name__
        detail = (f"a torch file holding a {kind}" + (f" with keys {sorted(map(str, state))[:6]}"
                                                       if isinstance(state, dict) else "")
                  + ", not an snnlab checkpoint")
        raise CorruptFileError.describe(path, expected, _fix(path), detail)
    if state["format"] != format:
        raise CorruptFileError.describe(
            path, expected, "Resume it with the snnlab version that wrote it, or start again with --overwrite.",
            f"checkpoint format {state['format']!r}, this snnlab reads format {format!r} here")
    missing = [k for k in keys if k not in state]
    if missing:
        raise CorruptFileError.describe(path, expected, _fix(path), f"the checkpoint lacks {missing}")
    return state
