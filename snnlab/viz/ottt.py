"""Figures for the OTTT chapter: presynaptic traces, memory against T, per-layer bars."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from snnlab.analysis.ottt import presynaptic_trace
from snnlab.checks import check_positive, check_tensor
from snnlab.neurons import NeuronParams, simulate
from snnlab.surrogate import Sigmoid

__all__ = ["ottt_neuron_spikes", "draw_presynaptic_trace", "plot_memory_vs_T", "plot_layer_bars"]


def ottt_neuron_spikes(x: torch.Tensor, tau: float, v_threshold: float) -> torch.Tensor:
    """Spikes ``[T, N]`` of OTTT's LIF neurons (eq. 2: λ = 1 - 1/τ, input not decayed, soft reset)
    driven by the currents ``x`` ``[T, N]``."""
    check_tensor("x [T, N]", x, dims=2)
    if check_positive("tau", tau) <= 1.0:
        raise ValueError(f"tau must be > 1 (λ = 1 - 1/τ in (0, 1)), got {tau}.")
    params = NeuronParams(v_threshold=check_positive("v_threshold", v_threshold), v_reset=None, tau=tau,
                          decay_input=False, detach_reset=True)
    return simulate(x, params, Sigmoid(4.0), kind="lif").spikes


def draw_presynaptic_trace(fig, tau: float, v_threshold: float, *, x: torch.Tensor) -> None:
    """Spike rasters (top) and the presynaptic traces â[t] = λ â[t-1] + s[t] (bottom) of a few
    OTTT neurons driven by ``x`` ``[T, N]``; the dashed line is the steady trace 1/(1-λ) of a
    neuron that fires at every step."""
    lam = 1.0 - 1.0 / tau
    spikes = ottt_neuron_spikes(x, tau, v_threshold)
    trace = presynaptic_trace(spikes, lam)
    T, N = spikes.shape
    ax0, ax1 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    for i in range(N):
        times = np.flatnonzero(spikes[:, i].numpy())
        ax0.vlines(times, i + 0.1, i + 0.9, color=f"C{i}")
        ax1.plot(np.arange(T), trace[:, i].numpy(), color=f"C{i}", drawstyle="steps-post",
                 label=f"neuron {i}: {int(spikes[:, i].sum())} spikes")
    ax1.axhline(1.0 / (1.0 - lam), color="0.5", ls="--", lw=0.8, label="1/(1-λ): firing every step")
    ax0.set_yticks([]); ax0.set_ylabel("spikes")
    ax0.set_title(f"λ = 1 - 1/τ = {lam:.2f}, V_th = {v_threshold:g}", fontsize=9)
    ax1.set_ylabel("trace â[t]"); ax1.set_xlabel("timestep t")
    ax1.set_ylim(0, 1.05 / (1.0 - lam) + 0.2)
    ax1.legend(fontsize=9, loc="upper left", ncol=2)


def plot_memory_vs_T(axes, rows: Sequence[Mapping], *, methods: Sequence[str] | None = None) -> None:
    """Bytes held for backward (``axes[0]``) and the peak resident-memory increase (``axes[1]``)
    against T, one line per method, from :func:`snnlab.analysis.ottt.memory_vs_T` rows."""
    methods = methods or list(dict.fromkeys(r["method"] for r in rows))
    for i, m in enumerate(methods):
        mine = sorted((r for r in rows if r["method"] == m), key=lambda r: r["T"])
        if not mine:
            raise ValueError(f"no rows for method {m!r}.")
        Ts = [r["T"] for r in mine]
        axes[0].plot(Ts, [r["saved_bytes"] / 2**20 for r in mine], "o-", color=f"C{i}", label=m)
        inc = [r["rss_increase_bytes"] for r in mine]
        if all(v is not None for v in inc):
            axes[1].plot(Ts, [v / 2**20 for v in inc], "o-", color=f"C{i}", label=m)
    axes[0].set_ylabel("held for backward (MiB)"); axes[1].set_ylabel("peak RSS increase (MiB)")
    for ax in axes:
        ax.set_xlabel("timesteps T"); ax.set_xticks(sorted({r["T"] for r in rows})); ax.legend(fontsize=9)


def plot_layer_bars(ax, values: Mapping[str, Sequence[float]], labels: Sequence[str], *, ylabel: str = "") -> None:
    """Grouped bars: one group per layer (``labels``), one bar per series in ``values``."""
    n = len(values)
    if n == 0:
        raise ValueError("values must hold at least one series.")
    width = 0.8 / n
    x = np.arange(len(labels))
    for i, (name, v) in enumerate(values.items()):
        if len(v) != len(labels):
            raise ValueError(f"series {name!r} has {len(v)} values for {len(labels)} layers.")
        ax.bar(x + (i - (n - 1) / 2) * width, v, width, label=name, color=f"C{i}")
    ax.set_xticks(x); ax.set_xticklabels(labels, fontsize=9)
    ax.set_ylabel(ylabel); ax.legend(fontsize=9)
