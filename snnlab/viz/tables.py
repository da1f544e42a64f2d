"""The "paper reports vs measured here" tables every chapter ends with."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

__all__ = ["Table"]


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Table:
    """A small table that renders as HTML in notebooks and the site, and as text elsewhere.

    ``rows`` is a list of mappings with the same keys; ``caption`` should state the scale of the
    measurement (data set, T, epochs, model width) next to the paper's setting.
    """

    def __init__(self, rows: Sequence[Mapping[str, object]], caption: str = "") -> None:
        rows = [dict(r) for r in rows]
        if not rows:
            raise ValueError("a Table needs at least one row.")
        columns = list(rows[0])
        for r in rows:
            if list(r) != columns:
                raise ValueError(f"every row must have the columns {columns}, got {list(r)}.")
        self.rows = rows
        self.columns = columns
        self.caption = caption

    def transposed(self, header: str = "") -> "Table":
        """The same table with rows and columns swapped, for tables with few rows and many
        columns: the first column's values head the new columns, and the other column names fill
        the new first column (headed ``header``). Values keep their formatting."""
        key = self.columns[0]
        names = [_cell(r[key]) for r in self.rows]
        if len(set(names)) != len(names):
            raise ValueError(f"the first column {key!r} repeats a value, so it cannot head columns: {names}.")
        rows = [{header or " ": c, **{n: r[c] for n, r in zip(names, self.rows)}} for c in self.columns[1:]]
        return Table(rows, caption=self.caption)

    def column(self, name: str) -> list:
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; columns: {self.columns}.")
        return [r[name] for r in self.rows]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(r[c]))}</td>" for c in self.columns) + "</tr>"
            for r in self.rows
        )
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return (f'<div class="snnlab-table-wrap" style="max-width:100%;overflow-x:auto"><table class="snnlab-table">'
                f"{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")

    def __str__(self) -> str:
        cells = [[_cell(r[c]) for c in self.columns] for r in self.rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(self.columns)]
        lines = [" | ".join(c.ljust(w) for c, w in zip(self.columns, widths))]
        lines.append("-+-".join("-" * w for w in widths))
        lines += [" | ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
        return (self.caption + "\n" if self.caption else "") + "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)
