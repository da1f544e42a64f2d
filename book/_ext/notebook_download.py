"""Sphinx extension: every notebook page offers itself as a ``.ipynb`` download, offline.

The chapters are Jupytext markdown files. sphinx-book-theme's download menu lists a ``.ipynb`` only
when a launch service (Binder, Colab, ...) is configured, which this offline book does not use. This
extension copies the notebook MyST-NB executed for each page (``_build/jupyter_execute/<page>.ipynb``,
with its outputs; for a page built from an ``.ipynb`` the source itself) to ``_sources/<page>.ipynb``
and tells the theme, which then adds the ".ipynb" entry to the page's download menu.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def add_notebook_download(app, pagename, templatename, context, doctree):
    if doctree is None or not context.get("sourcename"):
        return
    source = Path(app.env.doc2path(pagename))
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if executed.exists():
        notebook = executed
    elif source.suffix == ".ipynb":
        notebook = source
    else:
        return  # not a notebook page (no kernelspec), nothing to offer
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(notebook, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    # before sphinx-book-theme builds its header buttons (priority 501)
    app.connect("html-page-context", add_notebook_download, priority=500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
