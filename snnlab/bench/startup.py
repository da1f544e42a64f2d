"""Time to first result: the CLI's start-up, and chapter 1's first cell with and without Numba's cache.

Each measurement is a fresh process, timed from the outside (wall-clock of the whole process):

* ``snnlab --help`` and ``snnlab --version`` (target: under 0.5 s; the CLI imports neither torch nor
  Numba for them), next to ``python -c "import torch"``, the floor of any command that computes;
* every command's ``--help`` (``snnlab train --help``, ``snnlab data fetch --help``, ...), with the
  heavy libraries it imports: a command whose options list models or data sets (``train``,
  ``simulate``) imports the package to list them, the others stay light;
* chapter 1's first code cell (its imports and set-up), and that cell followed by the first neuron
  kernel call (a LIF layer's forward and backward), each **cold** (Numba's cache pointed at an empty
  folder, as on a fresh clone, where no kernel has been compiled yet) and **warm** (the same folder,
  now filled: every later start). The kernels are compiled with ``cache=True``, so only the first
  start on a machine pays for their compilation.

Medians over ``--repeats`` runs (the cold runs: each with a new empty cache folder), wall-clock and
CPU time (user+sys of the process, less sensitive to other work on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["add_arguments", "run", "first_cell", "commands", "HEAVY"]

HELP_TARGET_S = 0.5
HEAVY = ("torch", "numba", "numpy", "nir", "sklearn", "matplotlib")
"""Libraries whose import a light start-up avoids."""
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


def commands() -> list[list[str]]:
    """Every ``snnlab`` command and sub-command, as argument lists (``["data", "fetch"]``)."""
    from snnlab.cli import build_parser

    def below(parser: argparse.ArgumentParser, prefix: list[str]) -> list[list[str]]:
        out = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    out.append(prefix + [name])
                    # a lazy parser's sub-commands exist once it is populated (costs only its options)
                    if getattr(child, "_populate", None) is None:
                        out += below(child, prefix + [name])
        return out

    return below(build_parser(), [])


def _seconds(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user+sys) of running ``cmd`` to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _summary(times: list[tuple[float, float]]) -> dict:
    wall = [t[0] for t in times]
    cpu = [t[1] for t in times]
    return {"median_s": statistics.median(wall), "min_s": min(wall), "cpu_median_s": statistics.median(cpu),
            "runs": wall}


def heavy_imports(argv: list[str]) -> list[str]:
    """The :data:`HEAVY` libraries that ``snnlab <argv>`` imports (run in a fresh interpreter)."""
    code = ("import contextlib, io, json, sys\n"
            "from snnlab.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        main({argv!r})\n"
            "    except SystemExit:\n"
            "        pass\n"
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"snnlab {' '.join(argv)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict:
    from snnlab.bench.book import _book_dir

    quick = bool(getattr(args, "quick", False))
    repeats = args.repeats if args.repeats is not None else (1 if quick else 5)
    if repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {repeats}.")
    snnlab = str(Path(sys.executable).with_name("snnlab"))
    load = os.getloadavg()[0]
    cli = {flag: _summary([_seconds([snnlab, flag]) for _ in range(repeats)]) for flag in ("--help", "--version")}
    for flag in cli:
        cli[flag]["imports"] = heavy_imports([flag])
    command_help = {}
    for argv in commands():
        command_help[" ".join(argv)] = {**_summary([_seconds([snnlab, *argv, "--help"]) for _ in range(repeats)]),
                                        "imports": heavy_imports([*argv, "--help"])}
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
        "cli": cli, "command_help": command_help, "imports": imports, **chapter,
        "targets": {f"snnlab_{flag[2:]}_under_{HELP_TARGET_S:g}s": {
            "value": cli[flag]["median_s"], "cpu_s": cli[flag]["cpu_median_s"],
            "met": cli[flag]["median_s"] < HELP_TARGET_S and not cli[flag]["imports"]} for flag in cli},
        "load_average_1m": [load, os.getloadavg()[0]],
    }
