"""Sphinx extension: every notebook page offers itself as a ``.ipynb`` download, offline.

sphinx-book-theme's download menu lists a ``.ipynb`` only when the page's source is a notebook or
a launch service (Binder, Colab, ...) is configured, which this offline book does not use. The
chapters are Jupytext markdown files, so:

* a page built from an ``.ipynb`` (``scripts/build_book.py`` renders the executed notebooks):
  the menu's source entry already is the notebook, with its outputs; nothing to add;
* a page built from a ``.md`` notebook (``jupyter-book build book/``, which executes it): the
  notebook MyST-NB executed (``_build/jupyter_execute/<page>.ipynb``, with its outputs) is copied
  to ``_sources/<page>.ipynb`` and the theme is told, which adds a ".ipynb" entry to the menu.

The theme's menu entries are plain links that open in a new tab; ``static/notebook_download.js``
gives every link to a ``.ipynb`` the ``download`` attribute, so that a click saves the notebook
(under its own name) instead of showing its JSON, also from the built files with no server.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SCRIPT = "notebook_download.js"  # in static/ next to this file


def add_notebook_download(app, pagename, templatename, context, doctree):
    if doctree is None or not context.get("sourcename"):
        return
    source = Path(app.env.doc2path(pagename))
    if source.suffix == ".ipynb":
        return  # the theme's source entry is the notebook itself
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.exists():
        return  # not a notebook page (no kernelspec), nothing to offer
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def add_static_path(app, config):
    config.html_static_path.append(str(Path(__file__).parent / "static"))


def setup(app):
    # before sphinx-book-theme builds its header buttons (priority 501)
    app.connect("html-page-context", add_notebook_download, priority=500)
    app.connect("config-inited", add_static_path)
    app.add_js_file(SCRIPT)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
