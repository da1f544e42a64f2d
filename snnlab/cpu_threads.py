"""How many CPU threads snnlab's Numba kernels run on: one budget shared with torch.

torch and Numba each keep their own OpenMP thread team. A training step alternates between them
(a convolution in torch, the neurons in Numba, ...), and each team's threads spin for a while after
their parallel region ends. When the two teams together want more cores than are free, a team's
barrier waits for a thread that is not running, and a call that takes a fraction of a millisecond
can take tens or hundreds of milliseconds. Measured on this project's 2-core machine with two
other busy processes: chapter 3's quick run took 133-171 s with the kernels on 2 threads while torch
was limited to 1, and 38 s with both on 1 thread (the same as the pure-torch neurons).

A second trap, found the same way: Numba starts its thread team on first use (the first kernel, or
even ``numba.get_num_threads()``), and with its OpenMP layer, once torch has run a parallel op, that
start (and Numba's own thread-count changes) can reset torch's thread count to ``NUMBA_NUM_THREADS``
(torch's OpenMP runtime and Numba's share the ``libgomp.so.1`` name). A ``torch.set_num_threads(1)``
made before snnlab's first kernel was silently undone: chapter 3 then ran torch's convolutions on 2
threads on a busy machine (5 ms instead of 0.3 ms each). :func:`start_numba_threads` starts the team
once and puts torch's count back, and :func:`numba_threads` checks it again after each change.

So the kernels never use more threads than torch is allowed (``torch.get_num_threads()``, which a
user sets with ``torch.set_num_threads`` or ``OMP_NUM_THREADS``), nor more than Numba is allowed
(``numba.set_num_threads`` / ``NUMBA_NUM_THREADS``), and they use one thread when the work is too
small to pay for waking the team (:data:`PARALLEL_MIN_WORK`; ``snnlab bench neurons`` measures the
crossover on the machine it runs on).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba
import torch

from snnlab.checks import check_positive_int

__all__ = ["PARALLEL_MIN_WORK", "start_numba_threads", "kernel_thread_count", "numba_threads", "parallel_min_work", "thread_budget",
           "max_threads", "MAX_THREADS_ENV"]

PARALLEL_MIN_WORK = 1 << 16
"""Below this many elements of work (neuron-steps) a kernel runs on one thread."""


_started = False


def start_numba_threads() -> None:
    """Start Numba's thread team (once per process) without changing torch's thread count."""
    global _started
    if _started:
        return
    torch_threads = torch.get_num_threads()  # read before Numba starts: the start overwrites it
    numba.get_num_threads()  # starts the threading layer
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    _started = True


def kernel_thread_count(work: int, min_work: int | None = None) -> int:
    """Threads a kernel over ``work`` elements should use: 1 below ``min_work`` (default
    :data:`PARALLEL_MIN_WORK`), else the smaller of Numba's and torch's current thread counts."""
    start_numba_threads()
    if work < (PARALLEL_MIN_WORK if min_work is None else min_work):
        return 1
    return max(1, min(numba.get_num_threads(), torch.get_num_threads()))


@contextmanager
def numba_threads(work: int, min_work: int | None = None) -> Iterator[int]:
    """Run the Numba calls inside on :func:`kernel_thread_count` threads; yields that count and
    restores Numba's previous setting afterwards."""
    threads = kernel_thread_count(work, min_work)  # starts Numba's team first, if needed
    previous = numba.get_num_threads()
    if threads == previous:
        yield threads
        return
    torch_threads = torch.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield threads
    finally:
        numba.set_num_threads(previous)
        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)


@contextmanager
def parallel_min_work(value: int) -> Iterator[None]:
    """Use ``value`` as :data:`PARALLEL_MIN_WORK` inside (0: always the whole team; a huge value:
    always one thread). ``snnlab bench neurons`` measures the crossover with it."""
    global PARALLEL_MIN_WORK
    if int(value) < 0:
        raise ValueError(f"parallel_min_work needs a work size >= 0 neuron-steps, got {value}.")
    previous, PARALLEL_MIN_WORK = PARALLEL_MIN_WORK, int(value)
    try:
        yield
    finally:
        PARALLEL_MIN_WORK = previous


MAX_THREADS_ENV = "SNNLAB_MAX_THREADS"
"""Environment variable that caps :func:`thread_budget` (``make book`` sets it to 1 in the chapters
it runs two at a time, so that two chapters never want more threads than there are cores)."""


def max_threads() -> int | None:
    """The cap on :func:`thread_budget` from ``SNNLAB_MAX_THREADS`` (None when unset)."""
    import os

    value = os.environ.get(MAX_THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{MAX_THREADS_ENV} must be a positive whole number of threads, got {value!r}")
    return int(value)


@contextmanager
def thread_budget(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads and up to ``n`` Numba threads (at most
    ``SNNLAB_MAX_THREADS`` when that is set); both restored after. Numba's count is set first and
    torch's last, since a Numba change can reset torch's count."""
    check_positive_int("threads", n)
    cap = max_threads()
    n = min(n, cap) if cap is not None else n
    start_numba_threads()
    before = torch.get_num_threads(), numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before[1])
        torch.set_num_threads(before[0])
