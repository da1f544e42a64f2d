"""Test harness: chapters become notebooks that nbmake executes in quick mode.

The book's chapters are Jupytext MyST markdown files (the single source of truth). nbmake only
collects ``.ipynb`` files, so before collection every chapter listed in ``book/_toc.yml`` is
converted into ``tests/_notebooks/`` (git-ignored), where ``--nbmake`` picks it up.

Each chapter's kernel gets the environment the book build gives it
(``snnlab.viz.audit.kernel_environment``): ``SNNLAB_QUICK=1``, matplotlib's *inline* backend
(this pytest process may draw with Agg, but that must never reach a kernel: with Agg a chapter's
figures produce no output), progress bars off, and the figure audit, which logs every figure each
cell draws next to the executed notebook (``name.figures.jsonl``). The site test checks that log
against the notebook and the built pages.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = Path(__file__).resolve().parent / "_notebooks"
sys.path.insert(0, str(ROOT / "scripts"))
from build_book import chapter_sources, figure_log, kernel_env, toc_files  # noqa: E402,F401

CONVERTED_AT = 0.0
_SAVED_ENV: dict[str, str | None] = {}


def pytest_configure(config) -> None:
    global CONVERTED_AT
    os.environ["SNNLAB_QUICK"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")  # this process only; kernels get the inline backend
    # nbmake writes the executed notebooks back, so the site test can build from them
    # instead of executing every chapter a second time.
    config.option.overwrite = True
    if NOTEBOOK_DIR.exists():
        shutil.rmtree(NOTEBOOK_DIR)
    NOTEBOOK_DIR.mkdir(parents=True)
    for source in chapter_sources():
        notebook = jupytext.read(source)
        jupytext.write(notebook, NOTEBOOK_DIR / f"{source.stem}.ipynb")
    CONVERTED_AT = time.time()


def _is_chapter(item) -> bool:
    path = Path(str(getattr(item, "fspath", "")))
    return path.suffix == ".ipynb" and path.parent == NOTEBOOK_DIR


def pytest_runtest_setup(item) -> None:
    """A chapter's kernel starts inside nbmake's test: give it the book's kernel environment."""
    if not _is_chapter(item):
        return
    notebook = Path(str(item.fspath))
    log = figure_log(notebook)
    log.unlink(missing_ok=True)
    env = kernel_env(log, NOTEBOOK_DIR, quick=True)
    for key, value in env.items():
        if os.environ.get(key) != value:
            _SAVED_ENV.setdefault(key, os.environ.get(key))
            os.environ[key] = value


def pytest_runtest_teardown(item) -> None:
    if not _is_chapter(item):
        return
    for key, value in _SAVED_ENV.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _SAVED_ENV.clear()


def executed_chapters() -> dict[str, Path] | None:
    """The chapter notebooks nbmake executed (without error) in this session, or None if any
    chapter was not executed here (then the site build executes the chapters itself)."""
    executed = {}
    for source in chapter_sources():
        notebook = NOTEBOOK_DIR / f"{source.stem}.ipynb"
        if not notebook.exists() or notebook.stat().st_mtime <= CONVERTED_AT:
            return None
        if not figure_log(notebook).exists():
            return None
        cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
        ran = all(c.get("execution_count") for c in cells)
        failed = any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", []))
        if not ran or failed:
            return None
        executed[source.stem] = notebook
    return executed
