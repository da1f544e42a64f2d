"""Figures for the MLF chapter: surrogate windows of the levels, dormant fractions, the explorer."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from snnlab.analysis.dormant import DormantLayer, dormant_units, level_windows
from snnlab.surrogate import Surrogate

__all__ = ["plot_level_windows", "plot_dormant_bars", "draw_dormant_explorer", "mlf_levels"]


def mlf_levels(v_th1: float, K: int = 3, spacing: float = 1.0) -> tuple[float, ...]:
    """Thresholds ``v_th1, v_th1 + spacing, ...`` (the paper's 0.6, 1.6, 2.6 is ``mlf_levels(0.6)``)."""
    return tuple(round(v_th1 + k * spacing, 6) for k in range(K))


def plot_level_windows(ax: Axes, thresholds: Sequence[float], surrogate: Surrogate, *, lo: float = -1.0,
                       hi: float = 4.0, potentials: torch.Tensor | None = None) -> None:
    """Each level's σ'(u - V_th,k) along u, shaded, thresholds dashed; optionally a histogram of
    membrane potentials (right axis)."""
    u = torch.linspace(lo, hi, 1001, dtype=torch.float64)
    windows = level_windows(thresholds, surrogate, u).numpy()
    for k, (w, th) in enumerate(zip(windows, thresholds)):
        ax.fill_between(u.numpy(), w, alpha=0.35, color=f"C{k}", label=f"level {k + 1}: σ'(u - {th:g})")
        ax.axvline(th, color=f"C{k}", ls="--", lw=0.8)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("membrane potential u")
    ax.set_ylabel("surrogate gradient σ'")
    if potentials is not None and potentials.numel():
        twin = ax.twinx()
        p = potentials.clamp(lo, hi).numpy()
        twin.hist(p, bins=80, range=(lo, hi), color="0.3", histtype="step", density=True)
        twin.set_yticks([])
        twin.set_ylabel("potentials (histogram)", color="0.3")
    ax.legend(fontsize=9, loc="upper right")


def plot_dormant_bars(ax: Axes, results: Mapping[str, Sequence[DormantLayer]]) -> None:
    """Grouped bars: the dormant fraction of each layer, one colour per network in ``results``."""
    names = [layer.name for layer in next(iter(results.values()))]
    width = 0.8 / len(results)
    x = np.arange(len(names))
    for i, (label, layers) in enumerate(results.items()):
        ax.bar(x + (i - (len(results) - 1) / 2) * width, [l.dormant_fraction for l in layers], width, label=label)
    ax.set_xticks(x, [n.replace(".", "\n") for n in names], fontsize=9)
    ax.set_ylim(0, 1)
    ax.set_ylabel("dormant fraction")
    ax.legend(fontsize=9)


def draw_dormant_explorer(fig: Figure, v_th1: float, width: float, *, inputs: torch.Tensor,
                          build: Callable[[tuple[float, ...], float], torch.nn.Module]) -> dict[str, list[DormantLayer]]:
    """The explorer's frame: LIF (one level at ``v_th1``) and MLF (``v_th1 + 0, 1, 2``) networks from
    ``build(thresholds, surrogate_width)`` at initialisation, run on ``inputs``. Left: the MLF levels'
    windows over the stem's potentials; right: dormant fraction per layer. Returns the results."""
    from snnlab.surrogate import Rectangular

    levels = mlf_levels(v_th1)
    results = {
        f"LIF (V_th={v_th1:g})": dormant_units(build((v_th1,), width), inputs),
        f"MLF (V_th={', '.join(f'{t:g}' for t in levels)})": dormant_units(build(levels, width), inputs),
    }
    ax0, ax1 = fig.subplots(2, 1)
    stem = next(iter(results.values()))[0]
    plot_level_windows(ax0, levels, Rectangular(width), potentials=stem.potentials)
    ax0.set_title(f"windows of width {width:g} over the stem's potentials", fontsize=9)
    plot_dormant_bars(ax1, results)
    means = {k: np.mean([l.dormant_fraction for l in v]) for k, v in results.items()}
    ax1.set_title("dormant units at initialisation: " + ", ".join(f"{k.split(' ')[0]} {v:.2f}" for k, v in means.items()),
                  fontsize=9)
    return results
