"""Figures, slider explorers, tables and findings for the book (live in JupyterLab, kernel-free on
the site), and the note on how each page was computed."""

from snnlab.viz.explorer import Explorer, explore
from snnlab.viz.findings import Findings
from snnlab.viz.run_record import RunRecord
from snnlab.viz.tables import Table

__all__ = ["Explorer", "explore", "Findings", "RunRecord", "Table"]
