"""Figures of the accelerator chapter: per-layer energy, the designs of Fig. 2, the CL explorer."""

from __future__ import annotations

import numpy as np

from snnlab.hardware.energy import MEMORY_LEVELS, OPERATIONS

__all__ = ["plot_layer_energy", "plot_designs", "draw_energy_explorer"]


def plot_layer_energy(ax, result, table, *, title: str = "") -> np.ndarray:
    """Stacked bars: energy per inference of each layer, split by operation and memory level.

    Returns the ``[layers, kinds]`` array drawn (kinds = operations then memory levels).
    """
    from snnlab.hardware.kernel import COUNTERS

    kinds = (*OPERATIONS, *MEMORY_LEVELS)
    values = np.zeros((len(result.layers), len(kinds)))
    for i in range(len(result.layers)):
        c = result.counters[:, i].sum(0)
        e = table.energy({k: float(c[COUNTERS.index(k)]) for k in COUNTERS})
        values[i] = [e[k] / result.samples for k in kinds]
    bottom = np.zeros(len(result.layers))
    x = np.arange(len(result.layers))
    for j, kind in enumerate(kinds):
        if values[:, j].any():
            ax.bar(x, values[:, j], bottom=bottom, label=kind, color=f"C{j % 10}",
                   hatch="//" if kind in MEMORY_LEVELS else None)
            bottom += values[:, j]
    ax.set_xticks(x, [name.replace(".layers", "") for name in result.layers], rotation=15, fontsize=9)
    ax.set_ylabel(f"energy per inference ({table.unit})")
    ax.set_title(title or f"per-layer energy, {table.name}")
    ax.legend(fontsize=9, ncol=2)
    return values


def plot_designs(axes, summaries: dict[str, dict], *, keys=("energy", "cycles", "mean_steps")) -> None:
    """Bars comparing designs: energy per inference, cycles per inference and mean timesteps."""
    names = list(summaries)
    labels = [summaries[n]["design"] for n in names]
    getters = {"energy": lambda s: s["energy_per_inference"]["total"],
               "cycles": lambda s: s["cycles_per_inference"], "mean_steps": lambda s: s["mean_steps"]}
    titles = {"energy": "energy / inference", "cycles": "cycles / inference", "mean_steps": "mean timesteps"}
    if len(axes) != len(keys):
        raise ValueError(f"need one axis per key: {len(keys)} keys, {len(axes)} axes.")
    for ax, key in zip(axes, keys):
        ax.barh(range(len(names)), [getters[key](summaries[n]) for n in names], color=[f"C{i}" for i in range(len(names))])
        ax.set_yticks(range(len(names)), labels)
        ax.invert_yaxis()
        unit = summaries[names[0]]["energy_unit"] if key == "energy" else ""
        ax.set_title(titles[key] + (f" ({unit})" if unit else ""))


def draw_energy_explorer(fig, sweep: dict, cl_init: float, tau_cl: float, *, unit: str = "") -> dict[str, float]:
    """Left: per-layer energy at (CL_init, τ_CL); right: exit-step histogram; above: the thresholds
    CL_t of eq. 15 tested at t < T. Values from :func:`snnlab.hardware.experiments.energy_sweep` at
    the nearest grid point (returned)."""
    i = int(np.argmin(np.abs(sweep["cl_inits"] - cl_init)))
    j = int(np.argmin(np.abs(sweep["tau_cls"] - tau_cl)))
    ax0, ax1 = fig.subplots(1, 2)
    layers = [name.replace(".layers", "") for name in sweep["layers"]]
    top = float(sweep["layer_energy"].max()) * 1.1
    ax0.bar(range(len(layers)), sweep["layer_energy"][i, j], color="C0")
    ax0.set_ylim(0, top)
    ax0.set_xticks(range(len(layers)), layers, fontsize=9)
    ax0.set_ylabel(f"energy per inference{f' ({unit})' if unit else ''}")
    ax0.set_title(f"total {sweep['energy'][i, j]:.4g}\nFPS {sweep['fps'][i, j]:.3g}")
    counts = sweep["exit_counts"][i, j]
    ax1.bar(np.arange(1, len(counts) + 1), counts, color="C2")
    ax1.set_ylim(0, float(sweep["exit_counts"].max()) * 1.05 + 1)
    ax1.set_xticks(range(1, len(counts) + 1))
    ax1.set_xlabel("exit timestep")
    ax1.set_ylabel("samples")
    ax1.set_title(f"accuracy {100 * sweep['accuracy'][i, j]:.2f} %\nmean steps {sweep['mean_steps'][i, j]:.2f}")
    T = len(counts)
    levels = sweep["cl_inits"][i] * sweep["tau_cls"][j] ** np.arange(T)
    fig.suptitle(f"CL_init = {sweep['cl_inits'][i]:g}, τ_CL = {sweep['tau_cls'][j]:g}: thresholds CL_t = "
                 + ", ".join(f"{v:.4f}" for v in levels[:-1]) + " (t = 1.." + str(T - 1) + ")", fontsize=9)
    return {"energy": float(sweep["energy"][i, j]), "mean_steps": float(sweep["mean_steps"][i, j]),
            "accuracy": float(sweep["accuracy"][i, j])}
