"""Time to first result: the CLI's start-up, and chapter 1's first cell with and without Numba's cache.

Each measurement is a fresh process, timed from the outside (wall-clock of the whole process):

* ``snnlab --help`` and ``snnlab --version`` (target: under 0.5 s; the CLI imports neither torch nor
  Numba for them), next to ``python -c "import torch"``, the floor of any command that computes;
* chapter 1's first code cell (its imports and set-up), and that cell followed by the first neuron
  kernel call (a LIF layer's forward and backward), each **cold** (Numba's cache pointed at an empty
  folder, as on a fresh clone, where no kernel has been compiled yet) and **warm** (the same folder,
  now filled: every later start). The kernels are compiled with ``cache=True``, so only the first
  start on a machine pays for their compilation.

Medians over ``--repeats`` runs (the cold runs: each with a new empty cache folder).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["add_arguments", "run", "first_cell"]

HELP_TARGET_S = 0.5
FIRST_KERNEL = ("\nfrom snnlab.neurons import LIFNode as _LIF\n"
                "_x = torch.rand(8, 4096, requires_grad=True)\n"
                "_LIF(step_mode='m')(_x).sum().backward()\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="one run of each (a structural check)")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each measurement (default 5; quick 1)")
    parser.add_argument("--book-dir", default=None, help="the book's folder (default: book/ of this checkout)")


def first_cell(book: Path) -> str:
    """The source of chapter 1's first code cell."""
    import jupytext

    from snnlab.bench.book import chapters

    first = chapters(book)[0]
    cells = [c for c in jupytext.read(first).cells if c.cell_type == "code"]
    return cells[0].source


def _seconds(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds


def _summary(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": times}


def run(args: argparse.Namespace) -> dict:
    from snnlab.bench.book import _book_dir

    quick = bool(getattr(args, "quick", False))
    repeats = args.repeats if args.repeats is not None else (1 if quick else 5)
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {repeats}.")
    snnlab = str(Path(sys.executable).with_name("snnlab"))
    load = os.getloadavg()[0]
    cli = {flag: _summary([_seconds([snnlab, flag]) for _ in range(repeats)]) for flag in ("--help", "--version")}
    imports = {what: _summary([_seconds([sys.executable, "-c", f"import {what}"]) for _ in range(repeats)])
               for what in ("snnlab", "torch")}
    cell = first_cell(_book_dir(getattr(args, "book_dir", None)))
    env = dict(os.environ, SNNLAB_QUICK="1", MPLBACKEND="Agg")
    chapter: dict[str, dict] = {}
    for label, code in (("chapter1_first_cell", cell), ("first_cell_and_first_kernel_call", cell + FIRST_KERNEL)):
        cold, warm = [], []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(prefix="snnlab-numba-cache-") as cache:
                env_cache = dict(env, NUMBA_CACHE_DIR=cache)
                cold.append(_seconds([sys.executable, "-c", code], env_cache))
                warm.append(_seconds([sys.executable, "-c", code], env_cache))
        chapter[label] = {"cold": _summary(cold), "warm": _summary(warm)}
    return {
        "method": "wall-clock of a fresh process, measured from outside; cold = Numba's cache in a new empty folder "
                  "(NUMBA_CACHE_DIR), warm = the same folder after one run",
        "cli": cli, "imports": imports, **chapter,
        "targets": {f"snnlab_{flag[2:]}_under_{HELP_TARGET_S:g}s": {
            "value": cli[flag]["median_s"], "met": cli[flag]["median_s"] < HELP_TARGET_S} for flag in cli},
        "load_average_1m": [load, os.getloadavg()[0]],
    }
