#!/usr/bin/env python
"""Build the executed book site with Jupyter Book 1 (offline) and print where to open it.

    python scripts/build_book.py                 # full mode, into book/_build/html
    python scripts/build_book.py --quick         # quick mode (what the tests build)
    python scripts/build_book.py --output DIR    # build into DIR/_build/html
    python scripts/build_book.py --jobs 2        # execute two chapters at a time (what `make book`
                                                 # does; chapters that time code run alone after)
    python scripts/build_book.py --only 03_sew_resnet   # re-execute one chapter, reuse the others
                                                         # from the previous build in the same place

Every chapter is executed first, each in a fresh kernel (the same kernels JupyterLab runs:
matplotlib's inline backend, whatever this process uses), with the figure audit of
``snnlab.viz.audit`` recording every figure each cell draws. A chapter that raises, a figure that
was drawn but never reached the notebook's outputs, or any Sphinx warning fails the build.
The executed notebooks (``_build/executed/``) are then rendered by Jupyter Book with execution off.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
LOG_SUFFIX = ".figures.jsonl"


# -- the chapters ------------------------------------------------------------------------------

def toc_files() -> list[str]:
    """Every file named in book/_toc.yml, in reading order (root first)."""
    from snnlab.bench.book import toc_files as read_toc

    return read_toc(BOOK)


def chapter_sources() -> list[Path]:
    """The pages that are notebooks (Jupytext front matter with a kernelspec), in reading order."""
    from snnlab.bench.book import chapters

    return chapters(BOOK)


def figure_log(notebook: Path) -> Path:
    """Where the figure audit of an executed notebook is kept (next to it)."""
    return Path(notebook).with_suffix(LOG_SUFFIX)


# -- executing ---------------------------------------------------------------------------------

def kernel_env(log: Path, work: Path, quick: bool) -> dict:
    """The environment of a chapter's kernel (see snnlab.viz.audit.kernel_environment)."""
    from snnlab.viz.audit import kernel_environment

    return kernel_environment(log, work / "ipython", base=dict(os.environ, SNNLAB_QUICK="1" if quick else "0"))


def execute_chapter(source: Path, notebook: Path, *, quick: bool, timeout: int = 3600) -> float:
    """Execute the chapter ``source`` (Jupytext .md) in a fresh kernel, write the executed
    notebook to ``notebook`` and its figure audit next to it; return the seconds it took."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = Path(notebook)
    notebook.parent.mkdir(parents=True, exist_ok=True)
    log = figure_log(notebook)
    log.unlink(missing_ok=True)
    nb = jupytext.read(source)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(Path(source).parent)}})
    start = time.perf_counter()
    kernel_log = notebook.with_suffix(".kernel.log")  # the kernel's own messages, kept out of the build's output
    try:
        with open(kernel_log, "w") as stderr:
            client.execute(env=kernel_env(log, notebook.parent, quick), stderr=stderr)
    except CellExecutionError as error:
        nbformat.write(nb, notebook.with_suffix(".failed.ipynb"))
        raise SystemExit(f"{Path(source).name} raised while executing (the notebook so far is in "
                         f"{notebook.with_suffix('.failed.ipynb')}):\n{error}") from None
    nbformat.write(nb, notebook)
    return time.perf_counter() - start


RUN_ALONE = ("01_neurons", "07_atsn")
"""Chapters whose findings rest on wall-clock timings (kernel speed, adaptive inference's time
saved): with ``--jobs`` above 1 they run after the others, with no other chapter beside them."""


def _execute_one(args) -> tuple[str, float]:
    source, notebook, quick = args
    return Path(source).stem, execute_chapter(Path(source), Path(notebook), quick=quick)


_FONT_PROBE = """
import json, os, matplotlib, matplotlib.font_manager as fm
cache = os.path.join(matplotlib.get_cachedir(), f"fontlist-v{fm.FontManager.__version__}.json")
stix = [f.fname for f in fm.fontManager.ttflist if f.name == "STIXGeneral"]
print(json.dumps({"cache": cache, "ok": any(os.path.isfile(p) for p in stix)}))
"""


def _probe_fonts() -> dict:
    done = subprocess.run([sys.executable, "-c", _FONT_PROBE], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_font_cache() -> bool:
    """True if matplotlib's font list (one per user, ``fontlist-v*.json`` in its cache folder, with
    paths) has matplotlib's own fonts. A list written by a matplotlib whose font files were missing
    (an environment half-installed or half-deleted: the list is shared by every environment of the
    user) lacks them; then every chapter's first figure warns "findfont: Font family 'STIXGeneral' not
    found" on stderr and the build fails on it. Such a list is removed
    (matplotlib writes it again) and False returned; if matplotlib still cannot find its fonts, exit."""
    info = _probe_fonts()
    if info["ok"]:
        return True
    Path(info["cache"]).unlink(missing_ok=True)
    print(f"matplotlib's font cache {info['cache']} did not list matplotlib's own fonts (written by an "
          "environment without them?); removed it, matplotlib writes it again", flush=True)
    if not _probe_fonts()["ok"]:
        raise SystemExit("matplotlib cannot find its own fonts (STIXGeneral) even with a fresh font cache; "
                         "reinstall matplotlib in this environment.")
    return False


def execute_all(folder: Path, quick: bool, jobs: int = 1, only: list[str] | None = None) -> dict[str, Path]:
    """Execute every chapter into ``folder``; return {name: executed notebook}. With ``only``,
    execute just those chapters and reuse the others' notebooks already in ``folder`` (a chapter
    never executed there is executed anyway)."""
    folder = Path(folder)
    mode_file = folder / "MODE"
    mode = "quick" if quick else "full"
    if only and mode_file.exists() and mode_file.read_text().strip() != mode:
        raise SystemExit(f"{folder} holds chapters executed in {mode_file.read_text().strip()} mode; "
                         f"--only cannot mix them with {mode} mode (drop --only).")
    sources = chapter_sources()
    unknown = set(only or []) - {src.stem for src in sources}
    if unknown:
        raise SystemExit(f"unknown chapters {sorted(unknown)}; chapters: {[src.stem for src in sources]}")
    work = [(str(src), str(folder / f"{src.stem}.ipynb"), quick) for src in sources
            if not only or src.stem in only or not (folder / f"{src.stem}.ipynb").exists()]
    if work:
        check_font_cache()
    folder.mkdir(parents=True, exist_ok=True)
    mode_file.write_text(mode)
    # with jobs > 1, the chapters that time code on the wall clock run afterwards, one at a time
    alone = [item for item in work if jobs <= 1 or Path(item[0]).stem in RUN_ALONE]
    _execute_together([item for item in work if item not in alone], jobs)
    for item in alone:
        name, seconds = _execute_one(item)
        print(f"  executed {name} in {seconds:.0f} s", flush=True)
    return {src.stem: folder / f"{src.stem}.ipynb" for src in sources}


def _one_thread_each() -> None:
    # chapters that run side by side get one thread each (torch's default and snnlab's
    # thread_budget): two chapters on two threads each oversubscribe two cores and spin-wait
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["SNNLAB_MAX_THREADS"] = "1"


def _execute_together(work: list, jobs: int) -> None:
    if work:
        pool = ProcessPoolExecutor(max_workers=jobs, initializer=_one_thread_each)
        futures = [pool.submit(_execute_one, item) for item in work]
        try:
            for future in as_completed(futures):
                name, seconds = future.result()
                print(f"  executed {name} in {seconds:.0f} s", flush=True)
        except BaseException:
            # one chapter failed: stop the others rather than wait for them (their kernels exit
            # with their parent)
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()


def figure_problems(executed: dict[str, Path]) -> list[str]:
    """Figures drawn but not output, per the audit logs next to the executed notebooks."""
    from snnlab.viz.audit import audit_problems, read_log

    problems = []
    for name, notebook in executed.items():
        nb = json.loads(Path(notebook).read_text())
        problems += audit_problems(nb, read_log(figure_log(notebook)), name)
    return problems


# -- rendering ---------------------------------------------------------------------------------

def stage_executed(notebooks: dict[str, Path], staging: Path) -> Path:
    """A copy of book/ in which each chapter ``name.md`` is replaced by its executed
    ``name.ipynb``, with execution switched off."""
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


def build(output: Path | None = None, quick: bool = False, executed: dict[str, Path] | None = None,
          jobs: int = 1, only: list[str] | None = None) -> Path:
    """Build the site and return the folder holding ``index.html``.

    ``executed`` maps chapter names to notebooks already executed in the same mode, each with its
    figure audit next to it (the test suite passes the ones nbmake just ran, so each chapter
    runs once per test session); otherwise every chapter is executed here.
    """
    root = Path(output) if output is not None else BOOK
    build_dir = root / "_build"
    start = time.time()
    if executed is None:
        print(f"executing {len(chapter_sources())} chapters ({'quick' if quick else 'full'} mode)", flush=True)
        executed = execute_all(build_dir / "executed", quick, jobs, only)
    problems = figure_problems(executed)
    if problems:
        raise SystemExit("figures were drawn that will not appear on the page:\n  " + "\n  ".join(problems))
    source = stage_executed(executed, build_dir / "source")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    command = [str(jupyter_book), "build", str(source), "-W", "-n", "--keep-going", "--path-output", str(root)]
    env = dict(os.environ, SNNLAB_QUICK="1" if quick else "0")
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    html = build_dir / "html"
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-20000:] + result.stderr[-20000:])
        reports = html / "reports"
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
    parser.add_argument("--jobs", type=int, default=1, help="chapters executed at the same time (default 1)")
    parser.add_argument("--only", help="comma-separated chapters to execute; reuse the rest from the last build")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be a whole number of chapters at a time, at least 1, got {args.jobs}")
    only = [name.strip() for name in args.only.split(",")] if args.only else None
    html = build(args.output.resolve() if args.output else None, args.quick, jobs=args.jobs, only=only)
    print(f"open the site: file://{html / 'index.html'}")
    print("(it works offline; or serve it: python -m http.server -d " + str(html) + ")")


if __name__ == "__main__":
    main()
