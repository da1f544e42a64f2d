#!/usr/bin/env python
"""Build the executed book site with Jupyter Book 1 (offline) and print where to open it.

    python scripts/build_book.py                 # full mode, into book/_build/html
    python scripts/build_book.py --quick         # quick mode (what the tests build)
    python scripts/build_book.py --output DIR    # build into DIR/_build/html

Every chapter is executed; a chapter that raises, or any Sphinx warning, fails the build.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def stage_executed(notebooks: dict[str, Path], staging: Path) -> Path:
    """A copy of book/ in which each chapter ``name.md`` is replaced by an already executed
    ``name.ipynb`` (same outputs the build would compute) and execution is switched off."""
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(BOOK, staging, ignore=shutil.ignore_patterns("_build", ".jupyter_cache"))
    for name, notebook in notebooks.items():
        (staging / f"{name}.md").unlink()
        shutil.copy2(notebook, staging / f"{name}.ipynb")
    config = yaml.safe_load((staging / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    (staging / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return staging


def build(output: Path | None = None, quick: bool = False, executed: dict[str, Path] | None = None) -> Path:
    """Build the site and return the folder holding ``index.html``.

    ``executed`` maps chapter names to notebooks already executed in the same mode (the test
    suite passes the ones nbmake just ran, so each chapter runs once per test session).
    """
    env = dict(os.environ, SNNLAB_QUICK="1" if quick else "0", MPLBACKEND="Agg")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    source = BOOK
    if executed:
        if output is None:
            raise ValueError("building from executed notebooks needs an output folder")
        source = stage_executed(executed, Path(output) / "source")
    command = [str(jupyter_book), "build", str(source), "-W", "-n", "--keep-going"]
    if output is not None:
        command += ["--path-output", str(output)]
    start = time.time()
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    html = (output or BOOK) / "_build" / "html"
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-20000:] + result.stderr[-20000:])
        reports = (output or BOOK) / "_build" / "html" / "reports"
        if reports.is_dir():
            for log in sorted(reports.glob("**/*.err.log")):
                sys.stderr.write(f"\n--- {log.name} ---\n{log.read_text()[-5000:]}")
        raise SystemExit(f"book build failed (exit {result.returncode}); see the messages above.")
    print(f"built the book in {time.time() - start:.0f} s ({'quick' if quick else 'full'} mode)")
    return html


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="run the chapters in quick mode")
    parser.add_argument("--output", type=Path, help="build into OUTPUT/_build/html")
    args = parser.parse_args()
    html = build(args.output.resolve() if args.output else None, args.quick)
    print(f"open the site: file://{html / 'index.html'}")
    print("(it works offline; or serve it: python -m http.server -d " + str(html) + ")")


if __name__ == "__main__":
    main()
