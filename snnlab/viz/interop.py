"""Figures and tables of the NIR appendix: a graph's nodes, the assumed-dt sweep, two readers' outputs."""

from __future__ import annotations

import numpy as np

from snnlab.viz.tables import Table

__all__ = ["graph_table", "plot_dt_sweep", "plot_agreement"]


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value)


def graph_table(graph, caption: str = "") -> Table:
    """One row per NIR node: name, type, input -> output shape and its main parameters."""
    from snnlab.interop import describe_graph

    rows = []
    order = _reading_order(graph)
    for row in sorted(describe_graph(graph), key=lambda r: order.get(r["node"], len(order))):
        shapes = " -> ".join("x".join(map(str, s)) if s else "-" for s in (row["input"], row["output"]))
        params = ", ".join(f"{k} {_short(v)}" for k, v in row["parameters"].items())
        rows.append({"node": row["node"], "type": row["type"], "shape (in -> out)": shapes, "parameters": params})
    return Table(rows, caption=caption)


def _reading_order(graph) -> dict[str, int]:
    """Nodes in the order a signal reaches them from the input (breadth first), ties by name."""
    succs: dict[str, list[str]] = {}
    for a, b in graph.edges:
        succs.setdefault(a, []).append(b)
    order: dict[str, int] = {}
    frontier = sorted(n for n, node in graph.nodes.items() if type(node).__name__ == "Input")
    while frontier:
        nxt = []
        for name in frontier:
            if name not in order:
                order[name] = len(order)
                nxt += sorted(succs.get(name, []))
        frontier = [n for n in nxt if n not in order]
    return order


def plot_dt_sweep(axes, rows: list[dict], recorded_dt: float, chance: float | None = None) -> None:
    """Left: spikes per sample of each spiking layer against the dt a reader assumes; right: accuracy
    (with the chance level, when given, as a fraction). The dt the graph was written for is marked."""
    ok = [r for r in rows if r["error"] is None]
    dts = np.array([r["dt"] for r in ok])
    for j, layer in enumerate(ok[0]["spikes_per_sample"] if ok else []):
        axes[0].plot(dts, [r["spikes_per_sample"][layer] for r in ok], "o-", color=f"C{j}", label=layer)
    axes[1].plot(dts, [100 * r["accuracy"] for r in ok], "o-", color="C3")
    if chance is not None:
        axes[1].axhline(100 * chance, color="0.6", lw=1, ls=":", label="chance")
        axes[1].legend(fontsize=9)
    for ax in axes:
        ax.set_xscale("log")
        ax.axvline(recorded_dt, color="0.5", ls="--", lw=1)
        ax.set_xlabel("dt the reader assumes (s)")
    axes[0].set_ylabel("spikes per sample")
    axes[0].legend(fontsize=9, title="layer", title_fontsize=9)
    axes[0].set_title("spikes (dashed: the dt the graph was written for)", fontsize=9)
    axes[1].set_ylabel("test accuracy (%)")
    axes[1].set_title("accuracy", fontsize=9)


def plot_agreement(ax, ours, theirs, *, labels=("snnlab", "SpikingJelly 2.0")) -> float:
    """Scatter of two readers' outputs for the same inputs; returns the largest absolute difference."""
    a, b = np.asarray(ours).ravel(), np.asarray(theirs).ravel()
    ax.scatter(a, b, s=4, alpha=0.4)
    low, high = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    ax.plot([low, high], [low, high], color="0.4", lw=1, ls="--")
    ax.set_xlabel(f"{labels[0]} output")
    ax.set_ylabel(f"{labels[1]} output")
    diff = float(np.abs(a - b).max())
    ax.set_title(f"same graph file, two readers: max |diff| = {diff:.3g}", fontsize=9)
    return diff
