"""Figures of the conversion chapter (SC-TTFS): code books, one neuron's spikes, the split
conversion error, accuracy against latency."""

from __future__ import annotations

import numpy as np
import torch

from snnlab.conversion.codebook import codebook
from snnlab.conversion.errors import conversion_error_parts
from snnlab.conversion.pipeline import calibration_rule
from snnlab.conversion.ttfs import NO_SPIKE, ThresholdParams, decode, spike_times

__all__ = ["plot_neuron_spikes", "plot_codebooks", "draw_error_explorer", "error_explorer_ylim",
           "plot_error_vs_T", "plot_accuracy_vs_latency"]

PARTS = ("clip_below", "quantisation", "clip_above")
PART_COLOURS = {"clip_below": "tab:blue", "quantisation": "tab:orange", "clip_above": "tab:red"}


def plot_neuron_spikes(ax, potentials, T: int, encode: ThresholdParams, calibrate: ThresholdParams):
    """Encoding and calibration thresholds over the window, and where neurons with the given
    potentials fire (filled: encoding spike, open: calibration spike at the residual)."""
    t = np.arange(T)
    ax.step(t, encode(t), where="mid", color="k", label=r"$\theta_e(t)$")
    ax.step(t, calibrate(t), where="mid", color="grey", ls="--", label=r"$\theta_c(t)$")
    v = torch.tensor(potentials, dtype=torch.float64)
    t_e, t_c = spike_times(v, T, encode, calibrate)
    z = decode(t_e, t_c, encode, calibrate, dtype=torch.float64)
    for i, value in enumerate(potentials):
        colour = f"C{i}"
        ax.axhline(value, color=colour, lw=0.8, alpha=0.6)
        te, tc = int(t_e[i]), int(t_c[i])
        label = f"v={value:.3g} → z={float(z[i]):.3g}"
        if te != NO_SPIKE:
            ax.plot(te, encode(te), "o", color=colour, ms=8, label=label)
            residual = value - float(encode(te))
            if tc != NO_SPIKE:
                ax.plot(tc, residual, "o", mfc="none", color=colour, ms=8)
        else:
            ax.plot([], [], "o", color=colour, label=label + " (silent)")
    ax.set_yscale("log")
    ax.set_xlabel("step t in the encoding window")
    ax.set_ylabel("potential / threshold")
    ax.legend(fontsize=9, loc="upper right")


def plot_codebooks(ax, T: int, settings: dict[str, tuple[ThresholdParams, ThresholdParams | None]]):
    """One row of decodable values per setting (name -> (encode, calibrate)), reachable patterns
    only, on a log axis."""
    for row, (name, (enc, cal)) in enumerate(settings.items()):
        values = codebook(T, enc, cal)
        ax.plot(values, np.full_like(values, row), "|", ms=14, mew=1.5)
        ax.text(values.max() * 1.15, row, f"{len(values)} values", va="center", fontsize=9)
    ax.set_yticks(range(len(settings)), list(settings))
    ax.set_xscale("log")
    ax.set_xlabel(f"decodable value (T = {T})")
    ax.set_ylim(-0.7, len(settings) - 0.3)


def _transfer(v_grid, T, enc, cal):
    t_e, t_c = spike_times(v_grid, T, enc, cal)
    return decode(t_e, t_c, enc, cal, dtype=torch.float64).numpy()


def draw_error_explorer(fig, *, v: torch.Tensor, alpha: float, beta: float, k: float, T: int,
                        ylim: float | None = None):
    """Left: the activation histogram with the ReLU and the TTFS / SC-TTFS transfer functions for
    encoding threshold ``(alpha, beta, k)`` (calibration by :func:`calibration_rule`); right: the
    mean error per neuron split into clip-below, quantisation and clip-above (eqs. 18-19)."""
    enc = ThresholdParams(alpha, beta, k)
    cal = calibration_rule(enc)
    ax1, ax2 = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1.4, 1]})
    positive = v[v > 0].numpy()
    top = float(np.quantile(positive, 0.999)) * 1.3
    grid = torch.linspace(0, top, 1200, dtype=torch.float64)
    axh = ax1.twinx()
    axh.hist(positive, bins=60, range=(0, top), color="0.85")
    axh.set_yticks([])
    ax1.set_zorder(axh.get_zorder() + 1)
    ax1.patch.set_visible(False)
    ax1.plot(grid, grid, color="k", lw=1, label="ANN: ReLU(v)")
    ax1.plot(grid, _transfer(grid, T, enc, None), label="TTFS", lw=1.5)
    ax1.plot(grid, _transfer(grid, T, enc, cal), label="SC-TTFS", lw=1.5)
    ax1.set_xlabel("potential v (ANN pre-activation)")
    ax1.set_ylabel("decoded output z")
    ax1.set_xlim(0, top)
    ax1.set_ylim(0, top)
    ax1.legend(fontsize=9, loc="upper left")
    ax1.set_title(f"α={alpha:.3g}, β={beta:.3g}, k={k:.3g}, T={T}  (α·e^β = {alpha * np.exp(beta):.3g})")
    parts = {"TTFS": conversion_error_parts(v, T, enc), "SC-TTFS": conversion_error_parts(v, T, enc, cal)}
    bottom = np.zeros(2)
    for part in PARTS:
        heights = np.array([parts[m][part] for m in parts])
        ax2.bar(list(parts), heights, bottom=bottom, color=PART_COLOURS[part], label=part.replace("_", " "))
        bottom += heights
    ax2.set_ylabel("mean |ReLU(v) − z| per neuron")
    # a shared limit keeps the frames comparable; it never cuts a bar off
    ax2.set_ylim(0, max(ylim or 0.0, 1.05 * float(bottom.max())))
    ax2.legend(fontsize=9)


def error_explorer_ylim(v: torch.Tensor, *, alphas, betas, ks, Ts, margin: float = 1.1) -> float:
    """A y-limit for :func:`draw_error_explorer` that fits the tallest bar of every frame of an
    explorer over ``alphas x betas x ks x Ts`` (TTFS and SC-TTFS), times ``margin``."""
    tallest = 0.0
    for alpha in alphas:
        for beta in betas:
            for k in ks:
                enc = ThresholdParams(alpha, beta, k)
                for T in Ts:
                    for cal in (None, calibration_rule(enc)):
                        tallest = max(tallest, conversion_error_parts(v, T, enc, cal)["total"])
    return margin * tallest


def plot_error_vs_T(axes, rows):
    """``rows``: dicts with keys method, T and the error parts; one stacked area per method."""
    for ax, method in zip(axes, sorted({r["method"] for r in rows}, reverse=True)):
        sel = sorted((r for r in rows if r["method"] == method), key=lambda r: r["T"])
        Ts = [r["T"] for r in sel]
        ax.stackplot(Ts, *[[r[p] for r in sel] for p in PARTS], labels=[p.replace("_", " ") for p in PARTS],
                     colors=[PART_COLOURS[p] for p in PARTS], alpha=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(method)
        ax.set_xlabel("window T")
    axes[0].set_ylabel("mean |ReLU(v) − z| per neuron")
    axes[0].legend(fontsize=9)


def plot_accuracy_vs_latency(ax, results, ann_accuracy: float, *, bar: float | None = None):
    """``results``: dicts with method, latency, accuracy (fractions); one line per method. A row
    with ``interval`` (the half-width of a 95 % interval, a fraction) gets an error bar. ``bar``
    (a fraction) draws the matched-accuracy bar."""
    for method in dict.fromkeys(r["method"] for r in results):
        sel = sorted((r for r in results if r["method"] == method), key=lambda r: r["latency"])
        errors = [100 * r["interval"] for r in sel] if all("interval" in r for r in sel) else None
        ax.errorbar([r["latency"] for r in sel], [100 * r["accuracy"] for r in sel], yerr=errors, fmt="o-",
                    ms=4, capsize=2, label=method)
    ax.axhline(100 * ann_accuracy, color="k", ls=":", label="ANN")
    if bar is not None:
        ax.axhline(100 * bar, color="0.4", ls="--", lw=1, label="matched-accuracy bar")
    ax.set_xscale("log")
    ax.set_xlabel("latency (timesteps until the answer)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=9)
