"""Figures and slider explorers for the book (live in JupyterLab, kernel-free on the site)."""

from snnlab.viz.explorer import Explorer, explore
from snnlab.viz.tables import Table

__all__ = ["Explorer", "explore", "Table"]
