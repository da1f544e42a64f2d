"""snnlab bench book and snnlab bench startup: what they time, read and report (on a small book
written here, and on commands whose imports are known)."""

import argparse
import os
import sys
import textwrap

import pytest

from snnlab.bench import book as bench_book
from snnlab.bench import startup

CHAPTER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# {title}

```{{code-cell}} ipython3
import os, time
FIRST = "{title}"
```

```{{code-cell}} ipython3
time.sleep({sleep})
```

```{{code-cell}} ipython3
x = 0
for i in range({loop}):
    x += i
print(os.environ["SNNLAB_QUICK"], os.environ["MPLBACKEND"])
```
"""


@pytest.fixture()
def tiny_book(tmp_path):
    (tmp_path / "_toc.yml").write_text(textwrap.dedent("""\
        format: jb-book
        root: intro
        chapters:
          - file: one
          - file: prose
          - file: two
        """))
    (tmp_path / "intro.md").write_text("# Intro\n\nNo code, no kernelspec.\n")
    (tmp_path / "prose.md").write_text("# Prose only\n")
    (tmp_path / "one.md").write_text(CHAPTER.format(title="one", sleep=0.6, loop=10))
    (tmp_path / "two.md").write_text(CHAPTER.format(title="two", sleep=0.0, loop=3_000_000))
    return tmp_path


def test_chapters_are_the_toc_notebooks_in_order(tiny_book):
    assert [p.stem for p in bench_book.chapters(tiny_book)] == ["one", "two"]
    assert startup.first_cell(tiny_book).startswith("import os, time\nFIRST = \"one\"")
    # a table of contents in parts, with sections, is read in the same reading order
    (tiny_book / "_toc.yml").write_text("format: jb-book\nroot: intro\nparts:\n  - caption: A\n    chapters:\n"
                                        "      - file: prose\n        sections:\n          - file: one\n"
                                        "  - caption: B\n    chapters:\n      - file: two\n")
    assert [p.stem for p in bench_book.chapters(tiny_book)] == ["one", "two"]


def test_bench_book_times_each_chapter_in_a_fresh_kernel(tiny_book):
    args = argparse.Namespace(quick=False, book_dir=str(tiny_book), chapters=None, cell_timeout=120,
                              kernel="python3")
    before = os.environ.get("SNNLAB_QUICK")
    result = bench_book.run(args)
    one, two = result["chapters"]
    assert (one["chapter"], two["chapter"]) == ("one", "two") and result["mode"] == "full"
    # chapter one sleeps 0.6 s in its second code cell: its wall-clock includes it, its slowest cell is it
    assert one["wall_s"] >= 0.6
    assert one["slowest_cells"][0]["code_cell"] == 2 and one["slowest_cells"][0]["seconds"] >= 0.55
    # chapter two's slowest is the loop (CPU), and the kernel's CPU time is counted
    assert two["slowest_cells"][0]["code_cell"] == 3
    assert two["cpu_s"] > 0.05
    assert result["total_wall_s"] == pytest.approx(one["wall_s"] + two["wall_s"])
    target = result["targets"]["chapters_within_make_book_budget"]
    assert target["budget_minutes"] == 35.0 and target["met"] is True
    assert os.environ.get("SNNLAB_QUICK") == before  # the caller's run mode is restored


def test_bench_book_refuses_unknown_chapters(tiny_book):
    args = argparse.Namespace(quick=True, book_dir=str(tiny_book), chapters="one,nope", cell_timeout=60,
                              kernel="python3")
    with pytest.raises(ValueError, match="nope"):
        bench_book.run(args)
    with pytest.raises(FileNotFoundError, match="_toc.yml"):
        bench_book._book_dir(str(tiny_book / "missing"))


def test_startup_lists_every_command_including_sub_commands():
    from snnlab.cli import COMMAND_MODULES

    found = [" ".join(c) for c in startup.commands()]
    for expected in ("info", "bench", "train", "convert", "evaluate", "export", "simulate", "data", "data fetch"):
        assert expected in found
    assert len(found) >= len(COMMAND_MODULES) + 1


def test_startup_sees_which_libraries_a_command_imports():
    # --help must stay light; train --help lists the registry's models, which needs torch
    assert startup.heavy_imports(["--help"]) == []
    assert startup.heavy_imports(["export", "--help"]) == []
    assert "torch" in startup.heavy_imports(["train", "--help"])


def test_startup_timer_reads_wall_clock_and_cpu_of_the_child():
    wall, cpu = startup._seconds([sys.executable, "-c", "import time; time.sleep(0.4)"])
    assert wall >= 0.4 and cpu < wall
    wall, cpu = startup._seconds([sys.executable, "-c", "x = sum(range(20_000_000))"])
    assert cpu > 0.1
    with pytest.raises(RuntimeError, match="failed"):
        startup._seconds([sys.executable, "-c", "raise SystemExit(3)"])


def test_startup_run_reports_every_command_and_the_targets(tiny_book, monkeypatch):
    # the whole benchmark on a book whose first cell is light, without the kernel call (its
    # compilation is what --quick would otherwise spend most of its time on)
    monkeypatch.setattr(startup, "FIRST_KERNEL", "\nassert FIRST == 'one'\n")
    result = startup.run(argparse.Namespace(quick=True, repeats=None, book_dir=str(tiny_book)))
    assert set(result["command_help"]) == {" ".join(c) for c in startup.commands()}
    assert result["command_help"]["export"]["imports"] == [] and "torch" in result["command_help"]["train"]["imports"]
    for flag in ("--help", "--version"):
        row = result["cli"][flag]
        assert row["imports"] == [] and row["runs"] == [row["median_s"]] and row["cpu_median_s"] >= 0
        target = result["targets"][f"snnlab_{flag[2:]}_under_0.5s"]
        assert target["met"] == (row["median_s"] < 0.5)
    for label in ("chapter1_first_cell", "first_cell_and_first_kernel_call"):
        assert set(result[label]) == {"cold", "warm"}
    with pytest.raises(ValueError, match="repeats"):
        startup.run(argparse.Namespace(quick=True, repeats=0, book_dir=str(tiny_book)))
