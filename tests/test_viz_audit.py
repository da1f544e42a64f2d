"""The figure audit (snnlab.viz.audit), the explorers' font report and the run record."""

import json
import subprocess
import sys
import types

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from snnlab.viz import RunRecord, explore  # noqa: E402
from snnlab.viz import audit  # noqa: E402


def test_min_font_size_finds_the_smallest_visible_text():
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], label="line")
    ax.set_title("title", fontsize=14)
    ax.tick_params(labelsize=11)
    ax.legend(fontsize=8.5)
    ax.text(0.5, 0.5, "hidden", fontsize=3, visible=False)
    ax.text(0.5, 0.5, "   ", fontsize=4)  # blank: nothing to read
    assert audit.min_font_size(fig) == 8.5
    assert audit.min_font_size(Figure()) is None  # no text at all


def test_tick_labels_count_once_laid_out():
    fig = Figure()
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    ax.tick_params(axis="x", labelsize=6)  # tick labels get their text only when drawn
    assert audit.min_font_size(fig) == 6


def fake_shell():
    shell = types.SimpleNamespace(events=types.SimpleNamespace(handlers={}))
    shell.events.register = lambda name, fn: shell.events.handlers.setdefault(name, []).append(fn)
    return shell


def run_cell(shell, count, code):
    for fn in shell.events.handlers["pre_run_cell"]:
        fn(None)
    code()
    result = types.SimpleNamespace(execution_count=count, error_in_exec=None, error_before_exec=None)
    for fn in shell.events.handlers["post_run_cell"]:
        fn(result)


def test_the_kernel_log_counts_figures_but_not_explorer_frames(tmp_path, monkeypatch):
    log = tmp_path / "chapter.figures.jsonl"
    monkeypatch.setenv(audit.AUDIT_ENV, str(log))
    shell = fake_shell()
    original = Figure.__init__
    try:
        audit.load_ipython_extension(shell)

        def two_figures():
            fig, ax = plt.subplots(figsize=(6, 2))
            ax.set_xlabel("x", fontsize=9)
            hidden = Figure(figsize=(3, 3)).subplots()
            hidden.set_axis_off()  # no tick labels: the title is the only text
            hidden.set_title("never shown", fontsize=12)
            plt.close("all")

        def explorer_only():
            explore(lambda fig, a: fig.subplots().plot([0, a]), {"a": [1, 2]}).to_html()

        run_cell(shell, 1, two_figures)
        run_cell(shell, 2, explorer_only)
        run_cell(shell, 3, lambda: None)
    finally:
        Figure.__init__ = original
    records = audit.read_log(log)
    assert [r["execution_count"] for r in records] == [1, 2, 3]
    first = records[0]["figures"]
    assert len(first) == 2 and records[1]["figures"] == [] and records[2]["figures"] == []
    assert first[0]["width_in"] == 6 and first[0]["height_in"] == 2 and first[0]["dpi"] == 100
    assert first[0]["min_font_pt"] == 9
    assert first[1]["min_font_pt"] == 12


def notebook(*cells):
    return {"cells": [{"cell_type": "code", "execution_count": i + 1, "source": src, "outputs": outs}
                      for i, (src, outs) in enumerate(cells)]}


PNG = {"output_type": "display_data", "data": {"image/png": "iVBOR...", "text/plain": "<Figure>"}}
TEXT = {"output_type": "stream", "name": "stdout", "text": "hello"}


def test_audit_problems_flags_cells_that_drew_more_than_they_show():
    nb = notebook(("fig, ax = plt.subplots()\nplt.show()", [PNG]),
                  ("plt.figure()\nplt.plot([1])", [TEXT]),
                  ("print(1)", [TEXT]))
    records = [{"execution_count": 1, "figures": [{"min_font_pt": 10}]},
               {"execution_count": 2, "figures": [{"min_font_pt": 10}, {"min_font_pt": 10}]},
               {"execution_count": 3, "figures": []}]
    problems = audit.audit_problems(nb, records, "ch9")
    assert problems == ["ch9, cell [2] ('plt.figure()'...): drew 2 figure(s) but output 0 image(s)"]
    assert audit.audit_problems(nb, records[:1] + records[2:], "ch9") == []
    # a notebook that ran but left no log was never audited: that is a problem too
    assert "recorded nothing" in audit.audit_problems(nb, [], "ch9")[0]


def test_kernel_environment_forces_the_inline_backend(tmp_path):
    env = audit.kernel_environment(tmp_path / "log.jsonl", tmp_path / "ipy", base={"MPLBACKEND": "Agg", "X": "1"})
    assert env["MPLBACKEND"] == audit.INLINE_BACKEND and env["X"] == "1" and env["TQDM_DISABLE"] == "1"
    startup = tmp_path / "ipy" / "profile_default" / "startup" / audit.STARTUP_FILE
    assert "load_ipython_extension" in startup.read_text()


def test_a_real_kernel_records_what_plt_show_displays(tmp_path):
    """End to end: a kernel started with the audit's environment logs the figure and outputs it;
    the same kernel with Agg logs the figure but outputs nothing, and the audit says so."""
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    source = "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(3, 2))\nax.plot([0, 1])\nplt.show()"
    outcomes = {}
    for backend in ("inline", "Agg"):
        log = tmp_path / f"{backend}.jsonl"
        env = audit.kernel_environment(log, tmp_path / "ipy")
        if backend == "Agg":
            env["MPLBACKEND"] = "Agg"
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        NotebookClient(nb, timeout=120, kernel_name="python3").execute(env=env)
        outcomes[backend] = audit.audit_problems(json.loads(nbformat.writes(nb)), audit.read_log(log), backend)
        assert len(audit.read_log(log)[0]["figures"]) == 1
    assert outcomes["inline"] == []
    assert outcomes["Agg"] == ["Agg, cell [1] ('import matplotlib.pyplot as plt'...): drew 1 figure(s) but output 0 image(s)"]


def test_explorer_reports_its_smallest_font_and_resolution():
    def draw(fig, a):
        ax = fig.subplots()
        ax.plot([0, a])
        ax.set_title("t", fontsize=9.5)
        ax.tick_params(labelsize=11)

    html = explore(draw, {"a": [1, 2]}, figsize=(4, 2), dpi=90).to_html()
    assert 'data-min-font-pt="9.5"' in html and 'data-dpi="90"' in html


def test_run_record_marks_steps_and_renders_a_collapsed_note(monkeypatch):
    monkeypatch.setenv("SNNLAB_QUICK", "1")
    record = RunRecord()
    sum(i * i for i in range(200_000))
    step = record.mark("squares")
    assert step > 0
    summary = record.summary()
    assert summary["mode"] == "quick" and summary["wall_s"] >= step and summary["cpu_s"] > 0
    assert [m[0] for m in summary["marks"]] == ["squares"]
    assert summary["versions"]["snnlab"] and summary["cores"] >= 1
    html = record._repr_html_()
    assert html.startswith('<details class="snnlab-run-record"><summary>How this page was computed</summary>')
    assert "step: squares" in html and "load average" in html and "quick" in html
    assert "How this page was computed" in str(record)


def test_run_record_counts_child_processes_cpu_time():
    record = RunRecord()
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True)
    assert record.summary()["cpu_s"] > 0.05


def test_notebook_progress_bars_can_be_switched_off():
    """The book build's kernels keep no tqdm widget (its static image is a frozen "0%| 0/32")."""
    import tqdm.notebook

    original = tqdm.notebook.tqdm_notebook.__init__
    try:
        audit.silence_notebook_progress()
        audit.silence_notebook_progress()  # idempotent
        bar = tqdm.notebook.tqdm(range(3), desc="x", disable=False)
        assert bar.disable
        bar.close()
    finally:
        tqdm.notebook.tqdm_notebook.__init__ = original
