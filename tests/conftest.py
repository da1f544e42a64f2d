"""Test harness: chapters become notebooks that nbmake executes in quick mode.

The book's chapters are Jupytext MyST markdown files (the single source of truth). nbmake only
collects ``.ipynb`` files, so before collection every chapter listed in ``book/_toc.yml`` is
converted into ``tests/_notebooks/`` (git-ignored), where ``--nbmake`` picks it up. The kernels
inherit ``SNNLAB_QUICK=1`` from this process, so every chapter runs its quick mode.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import jupytext
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOK_DIR = Path(__file__).resolve().parent / "_notebooks"


def toc_files() -> list[str]:
    """Every file named in book/_toc.yml, in reading order (root first)."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(entries):
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


def chapter_sources() -> list[Path]:
    """The chapters that are notebooks (Jupytext front matter with a kernelspec)."""
    sources = []
    for name in toc_files():
        path = BOOK / f"{name}.md"
        text = path.read_text() if path.exists() else ""
        front_matter = text.split("---", 2)[1] if text.startswith("---") else ""
        if "kernelspec:" in front_matter:
            sources.append(path)
    return sources


CONVERTED_AT = 0.0


def pytest_configure(config) -> None:
    global CONVERTED_AT
    os.environ["SNNLAB_QUICK"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")
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


def executed_chapters() -> dict[str, Path] | None:
    """The chapter notebooks nbmake executed (without error) in this session, or None if any
    chapter was not executed here (then the site build executes the chapters itself)."""
    executed = {}
    for source in chapter_sources():
        notebook = NOTEBOOK_DIR / f"{source.stem}.ipynb"
        if not notebook.exists() or notebook.stat().st_mtime <= CONVERTED_AT:
            return None
        cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
        ran = all(c.get("execution_count") for c in cells)
        failed = any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", []))
        if not ran or failed:
            return None
        executed[source.stem] = notebook
    return executed
