"""A small pool of large output buffers for the Numba kernels (a CPU caching allocator).

Why: glibc returns every block above its mmap threshold (at most 32 MB) to the operating system when
it is freed, so a fresh ``[T, N]`` float32 output of that size is mapped anew on every call and
each of its 4 KB pages faults and is zeroed on first touch. Measured on the development machine
(one thread), writing a fresh 32 MB spike tensor cost about five times the kernel that fills it.
The pool keeps such buffers once they are free and hands them out again.

How it knows a buffer is free: buffers are NumPy arrays exposed to torch with
``torch.from_numpy``, which holds a reference to the array for as long as any tensor or view
shares its memory. An array whose reference count is back to the pool's own is free; this is
exact (views, autograd's saved tensors and ``retain_graph`` all hold the reference), so a buffer is
never handed out while anything can still read it.

What it costs: freed buffers stay resident, up to :data:`MAX_FREE_BYTES` (then the oldest free
ones are dropped); :func:`release_buffers` drops them all. Buffers below :data:`MIN_BYTES` come from
torch's allocator as usual (small blocks are reused by glibc already).
"""

from __future__ import annotations

import itertools
import math
import sys
import threading
from collections import OrderedDict

import numpy as np
import torch

__all__ = ["MIN_BYTES", "MAX_FREE_BYTES", "empty", "release_buffers", "pooled_bytes"]

MIN_BYTES = 1 << 20
"""Buffers smaller than this (1 MB) are not pooled."""

MAX_FREE_BYTES = 1 << 30
"""At most this many bytes (1 GB) of free buffers are kept."""

_lock = threading.Lock()
_pool: OrderedDict[int, np.ndarray] = OrderedDict()  # key -> array, least recently handed out first
_keys = itertools.count()


def _is_free(key: int) -> bool:
    # references: the pool's dict and getrefcount's argument; torch.from_numpy adds one as long as
    # any tensor, view or storage shares the array's memory (never bind the array to a name here)
    return sys.getrefcount(_pool[key]) <= 2


def empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor of ``shape`` and ``dtype`` (float32/float64), pooled if large."""
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    nbytes = math.prod(int(s) for s in shape) * (4 if np_dtype is np.float32 else 8)
    if nbytes < MIN_BYTES:
        return torch.empty(shape, dtype=dtype)
    shape = tuple(int(s) for s in shape)
    with _lock:
        for key in list(_pool):
            if _pool[key].shape == shape and _pool[key].dtype == np_dtype and _is_free(key):
                _pool.move_to_end(key)
                return torch.from_numpy(_pool[key])
        key = next(_keys)
        _pool[key] = np.empty(shape, dtype=np_dtype)
        _trim()
        return torch.from_numpy(_pool[key])


def _trim() -> None:
    free = [k for k in list(_pool) if _is_free(k)]  # oldest first
    total = sum(_pool[k].nbytes for k in free)
    for key in free:
        if total <= MAX_FREE_BYTES:
            break
        total -= _pool[key].nbytes
        del _pool[key]


def release_buffers() -> int:
    """Drop every free pooled buffer (returning its memory); returns the bytes released."""
    with _lock:
        free = [k for k in list(_pool) if _is_free(k)]
        released = sum(_pool[k].nbytes for k in free)
        for key in free:
            del _pool[key]
    return released


def pooled_bytes() -> tuple[int, int]:
    """``(bytes in use, bytes free)`` of the pooled buffers."""
    with _lock:
        used = free = 0
        for key in list(_pool):
            if _is_free(key):
                free += _pool[key].nbytes
            else:
                used += _pool[key].nbytes
    return used, free
