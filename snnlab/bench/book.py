"""The book's chapters as a benchmark: each chapter's wall-clock and CPU time in full mode, as JSON.

Every chapter of ``book/_toc.yml`` that is a notebook is read with Jupytext and executed top to
bottom in a fresh kernel (nbclient), in full mode (what ``make book`` runs; ``--quick``: the test
suite's mode), with matplotlib's Agg backend. Per chapter: wall-clock seconds, CPU seconds of the
kernel process (user + system, read when the kernel has exited), the load average before and after,
and its slowest cells. The totals are compared with the build budget (``make book`` under 35 minutes
on 2 cores, issue 2), which keeps the experiments' growth visible.

Run from a checkout: the chapters are read from ``book/`` next to the package (``--book-dir``
otherwise).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

__all__ = ["add_arguments", "run", "chapters", "BUDGET_MINUTES"]

BUDGET_MINUTES = 35.0
"""``make book`` (full mode, every chapter and the site) must finish within this on 2 cores."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="quick mode (the test suite's), not full mode")
    parser.add_argument("--chapters", default=None, help="comma-separated chapter names (default: every chapter)")
    parser.add_argument("--book-dir", default=None, help="the book's folder (default: book/ of this checkout)")
    parser.add_argument("--cell-timeout", type=int, default=1800, help="seconds a cell may take")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name")


def _book_dir(given: str | None) -> Path:
    import snnlab

    book = Path(given) if given else Path(snnlab.__file__).resolve().parents[1] / "book"
    if not (book / "_toc.yml").is_file():
        raise FileNotFoundError(f"no book at {book} (no _toc.yml); run from a checkout of snnlab or pass --book-dir.")
    return book


def toc_files(book: Path) -> list[str]:
    """Every file named in ``book/_toc.yml``, in reading order (root first): chapters, their
    sections, and parts' chapters (Jupyter Book 1's ``_toc.yml``)."""
    import yaml

    toc = yaml.safe_load((Path(book) / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries) -> None:
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections"))
            for part in entry.get("parts", []) if isinstance(entry, dict) else []:
                walk(part.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return names


def chapters(book: Path) -> list[Path]:
    """The pages of ``_toc.yml`` that are notebooks (Jupytext front matter with a kernelspec), in order."""
    out = []
    for name in toc_files(book):
        path = Path(book) / f"{name}.md"
        text = path.read_text() if path.is_file() else ""
        front = text.split("---", 2)[1] if text.startswith("---") else ""
        if "kernelspec:" in front:
            out.append(path)
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cell_seconds(cell) -> float | None:
    from datetime import datetime

    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def run_chapter(path: Path, *, quick: bool, timeout: int, kernel: str) -> dict:
    """Execute one chapter in a fresh kernel; its times (see the module docstring)."""
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(path)
    previous = {k: os.environ.get(k) for k in ("SNNLAB_QUICK", "MPLBACKEND")}
    os.environ["SNNLAB_QUICK"] = "1" if quick else "0"
    os.environ["MPLBACKEND"] = "Agg"
    load = os.getloadavg()[0]
    cpu, wall = _children_cpu(), time.perf_counter()
    try:
        NotebookClient(notebook, timeout=timeout, kernel_name=kernel, record_timing=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    wall = time.perf_counter() - wall
    code = [c for c in notebook.cells if c.cell_type == "code"]
    cells = [(i, _cell_seconds(c), c.source.strip().splitlines()[0][:80] if c.source.strip() else "")
             for i, c in enumerate(code, start=1)]
    slowest = sorted((c for c in cells if c[1] is not None), key=lambda c: -c[1])[:3]
    return {"chapter": path.stem, "wall_s": wall, "cpu_s": _children_cpu() - cpu, "code_cells": len(cells),
            "slowest_cells": [{"code_cell": i, "seconds": s, "first_line": line} for i, s, line in slowest],
            "load_average_1m": [load, os.getloadavg()[0]]}


def run(args: argparse.Namespace) -> dict:
    quick = bool(getattr(args, "quick", False))
    book = _book_dir(getattr(args, "book_dir", None))
    paths = chapters(book)
    if getattr(args, "chapters", None):
        wanted = [c.strip() for c in args.chapters.split(",") if c.strip()]
        unknown = sorted(set(wanted) - {p.stem for p in paths})
        if unknown:
            raise ValueError(f"unknown chapter(s) {unknown}; valid: {', '.join(p.stem for p in paths)}.")
        paths = [p for p in paths if p.stem in wanted]
    if args.cell_timeout < 1:
        raise ValueError(f"--cell-timeout must be >= 1 second, got {args.cell_timeout}.")
    rows = [run_chapter(p, quick=quick, timeout=args.cell_timeout, kernel=args.kernel) for p in paths]
    total = sum(r["wall_s"] for r in rows)
    result = {
        "mode": "quick" if quick else "full", "book": str(book), "chapters": rows,
        "total_wall_s": total, "total_cpu_s": sum(r["cpu_s"] for r in rows),
        "method": "each chapter in a fresh kernel (nbclient), read with Jupytext; CPU = the kernel process's "
                  "user + system time; the site build itself (Sphinx) is not included",
    }
    if not quick and len(rows) == len(chapters(book)):
        result["targets"] = {"chapters_within_make_book_budget": {
            "value_minutes": total / 60, "budget_minutes": BUDGET_MINUTES, "met": total / 60 < BUDGET_MINUTES,
            "note": "the chapters' execution only; make book adds the Sphinx build (about a minute)"}}
    return result
