"""The figure audit: every figure a chapter draws must reach the page, at a readable size.

The book once built with matplotlib's Agg backend: ``plt.show()`` drew nothing, warned nothing,
and the site showed none of its static figures while every test passed. This module lets the
book build and the test suite see what the chapters *draw*, independently of what they output:

* Run inside a chapter's kernel (an IPython extension, loaded from a startup file when
  :data:`AUDIT_ENV` names a log file), it records after every cell each matplotlib figure the
  cell created: its smallest font size (points), its size (inches) and resolution (dpi).
  Figures drawn as frames of an explorer (:func:`embedded_figure`) are not counted: they reach
  the page inside the explorer's HTML.
* :func:`audit_problems` compares that log with the executed notebook: a cell that created a
  figure but has no image output (a figure never displayed, or a non-inline backend) is a problem.
* :func:`kernel_environment` is the environment a chapter's kernel needs for this: matplotlib's
  inline backend (whatever the calling process uses), the startup file, the log's path, and
  progress bars switched off (:func:`silence_notebook_progress`: a tqdm widget left in a page is a
  frozen "0%| 0/32").

:func:`min_font_size` is also what the explorers report (``data-min-font-pt``) so that the
browser check can compute every figure's font size as rendered on the page.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
from pathlib import Path

__all__ = [
    "AUDIT_ENV",
    "INLINE_BACKEND",
    "IMAGE_MIME_TYPES",
    "min_font_size",
    "figure_record",
    "embedded_figure",
    "kernel_environment",
    "read_log",
    "audit_problems",
    "silence_notebook_progress",
    "load_ipython_extension",
]

AUDIT_ENV = "SNNLAB_FIGURE_AUDIT"
"""Environment variable naming the JSON-lines file the kernel appends one record per cell to."""

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
"""The backend a chapter's kernel must use for its figures to become image outputs."""

IMAGE_MIME_TYPES = ("image/png", "image/svg+xml", "image/jpeg")

STARTUP_FILE = "00-snnlab-figure-audit.py"

_EMBEDDED: contextvars.ContextVar[bool] = contextvars.ContextVar("snnlab_embedded_figure", default=False)


@contextlib.contextmanager
def embedded_figure():
    """Figures created inside this block are drawn for embedding elsewhere (an explorer's frames)
    and are not expected to appear as image outputs of their own."""
    token = _EMBEDDED.set(True)
    try:
        yield
    finally:
        _EMBEDDED.reset(token)


def _text_size_renderer(fig):
    """A renderer that draws nothing and records the size of every text it is asked to draw."""
    from matplotlib.backends.backend_agg import RendererAgg

    class TextSizes(RendererAgg):
        def __init__(self):
            width, height = fig.get_size_inches() * fig.dpi
            super().__init__(max(int(width), 1), max(int(height), 1), fig.dpi)
            self.sizes: list[float] = []

        def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
            if str(s).strip() and (gc.get_alpha() is None or gc.get_alpha() > 0):
                self.sizes.append(float(prop.get_size_in_points()))

        def draw_tex(self, gc, x, y, s, prop, angle, *, mtext=None):
            self.draw_text(gc, x, y, s, prop, angle)

        def _nothing(self, *args, **kwargs):
            return None

        draw_path = draw_markers = draw_path_collection = draw_quad_mesh = _nothing
        draw_gouraud_triangles = draw_image = _nothing

    return TextSizes()


def min_font_size(fig) -> float | None:
    """The smallest font size (points) of any text ``fig`` draws: titles, labels, tick labels,
    legends, annotations (texts that are hidden, blank, transparent, or belong to a switched-off
    axis are not drawn and do not count). ``None`` for a figure without text.

    The figure is drawn once by a renderer that only records text sizes (nothing is rasterised)."""
    renderer = _text_size_renderer(fig)
    fig.draw(renderer)
    return min(renderer.sizes) if renderer.sizes else None


def figure_record(fig) -> dict:
    """What the audit records about one figure."""
    width, height = fig.get_size_inches()
    return {"min_font_pt": min_font_size(fig), "dpi": float(fig.dpi), "width_in": round(float(width), 3),
            "height_in": round(float(height), 3)}


class _FigureLog:
    """Counts the figures each cell creates (kernel side; see the module docstring)."""

    def __init__(self, shell, path: Path) -> None:
        from matplotlib.figure import Figure

        self.path = Path(path)
        self.created: list = []
        original = Figure.__init__
        log = self

        def init(fig, *args, **kwargs):
            original(fig, *args, **kwargs)
            if not _EMBEDDED.get():
                log.created.append(fig)

        init.__wrapped__ = original
        Figure.__init__ = init
        shell.events.register("pre_run_cell", self.pre_run_cell)
        shell.events.register("post_run_cell", self.post_run_cell)

    def pre_run_cell(self, info=None) -> None:
        self.created = []

    def post_run_cell(self, result) -> None:
        figures = []
        for fig in self.created:
            try:
                figures.append(figure_record(fig))
            except Exception as error:  # noqa: BLE001 - a broken figure is recorded, not fatal
                figures.append({"error": f"{type(error).__name__}: {error}"})
        record = {"execution_count": result.execution_count, "figures": figures,
                  "error": result.error_in_exec is not None or result.error_before_exec is not None}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        self.created = []


def silence_notebook_progress() -> None:
    """Switch off tqdm's notebook bars in this kernel. ``TQDM_DISABLE=1`` alone does not: the
    notebook bar sets ``disable`` itself, so the environment default never applies, and the bar a
    static page keeps is its first frame, "0%| 0/32", frozen."""
    try:
        import tqdm.notebook as notebook
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return
    cls = notebook.tqdm_notebook
    if getattr(cls.__init__, "_snnlab_silenced", False):
        return
    original = cls.__init__

    def init(self, *args, **kwargs):
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    init._snnlab_silenced = True
    cls.__init__ = init


def load_ipython_extension(shell) -> None:
    """Prepare a chapter's kernel for the book build: start the figure log if :data:`AUDIT_ENV`
    names a file, and switch notebook progress bars off if ``TQDM_DISABLE`` is set."""
    path = os.environ.get(AUDIT_ENV)
    if path and not getattr(shell, "_snnlab_figure_log", None):
        shell._snnlab_figure_log = _FigureLog(shell, Path(path))
    if os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes"):
        silence_notebook_progress()


def ipython_dir(root: Path) -> Path:
    """An IPython directory whose default profile loads the figure audit at kernel start."""
    root = Path(root)
    startup = root / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / STARTUP_FILE).write_text(
        "# Written by snnlab.viz.audit: record the figures every cell draws (see its docstring).\n"
        "import snnlab.viz.audit as _snnlab_audit\n"
        "_snnlab_audit.load_ipython_extension(get_ipython())\n"
        "del _snnlab_audit\n"
    )
    return root


def kernel_environment(log: Path, ipython_root: Path, base: dict | None = None) -> dict:
    """The environment for a chapter's kernel: ``base`` (default: this process's) with the
    inline matplotlib backend, the audit's startup file and log, and tqdm switched off."""
    env = dict(os.environ if base is None else base)
    env["MPLBACKEND"] = INLINE_BACKEND
    env["IPYTHONDIR"] = str(ipython_dir(ipython_root))
    env[AUDIT_ENV] = str(log)
    env["TQDM_DISABLE"] = "1"
    return env


def read_log(path: Path) -> list[dict]:
    """The records a kernel wrote (one per executed cell); ``[]`` if the file does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _image_outputs(cell: dict) -> int:
    return sum(1 for out in cell.get("outputs", []) if any(m in out.get("data", {}) for m in IMAGE_MIME_TYPES))


def audit_problems(notebook: dict, records: list[dict], name: str = "notebook") -> list[str]:
    """Cells of an executed ``notebook`` (nbformat dict) that created more figures than they
    output images, according to the kernel's ``records``. Also a problem: no records at all for
    a notebook that ran code (the audit was not running, so nothing was checked)."""
    cells = [c for c in notebook["cells"] if c.get("cell_type") == "code" and c.get("execution_count")]
    if cells and not records:
        return [f"{name}: the figure audit recorded nothing (was the kernel started with "
                f"snnlab.viz.audit.kernel_environment?)"]
    by_count = {c["execution_count"]: c for c in cells}
    problems = []
    for record in records:
        drawn = len(record["figures"])
        cell = by_count.get(record["execution_count"])
        if not drawn or cell is None:
            continue
        shown = _image_outputs(cell)
        if shown < drawn:
            first = next((line for line in "".join(cell.get("source", "")).splitlines() if line.strip()), "")
            problems.append(f"{name}, cell [{record['execution_count']}] ({first.strip()[:60]!r}...): drew "
                            f"{drawn} figure(s) but output {shown} image(s)")
        for figure in record["figures"]:
            if "error" in figure:
                problems.append(f"{name}, cell [{record['execution_count']}]: a figure could not be measured: "
                                f"{figure['error']}")
    return problems
