"""Figures for chapter 1: a driven neuron and the surrogate gradients."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from snnlab.neurons.functional import NeuronParams, NeuronTrace, simulate
from snnlab.surrogate import ArcTan, Gaussian, Rectangular, Sigmoid, Surrogate, Triangle, heaviside

__all__ = [
    "driving_current",
    "paper_surrogates",
    "plot_trace",
    "plot_neuron_variants",
    "plot_surrogates",
    "plot_staircase",
    "draw_driven_neuron",
]


def driving_current(
    T: int = 60, seed: int = 0, mean: float = 0.7, amplitude: float = 0.6, noise: float = 0.2
) -> torch.Tensor:
    """A reproducible, non-negative input current ``[T]``: a slow sine around ``mean`` plus noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T, dtype=torch.float32)
    current = mean + amplitude * torch.sin(2 * np.pi * t / 30) + noise * torch.randn(T, generator=g)
    return current.clamp(min=0.0)


def paper_surrogates() -> dict[str, Surrogate]:
    """The surrogate each paper of the book trains with, at the paper's setting."""
    return {
        "ArcTan, α=2 (SEW ResNet)": ArcTan(alpha=2.0),
        "sigmoid, α=4 (OTTT)": Sigmoid(alpha=4.0),
        "rectangular, a=1 (MLF)": Rectangular(width=1.0),
        "triangle, width=V_th (ATSN eq. 14)": Triangle(width=1.0),
        "Gaussian, α=0.5 (STBP, ATSN eq. 4)": Gaussian(alpha=0.5),
    }


def plot_trace(axes, x: torch.Tensor, trace: NeuronTrace, params: NeuronParams, label: str = "") -> None:
    """Input, membrane potential (H before / V after reset) with V_th, and spikes on three axes."""
    ax_in, ax_v, ax_s = axes
    t = np.arange(len(x))
    ax_in.step(t, x.numpy(), where="mid", color="0.3", lw=1)
    ax_in.set_ylabel("input X[t]")
    ax_v.plot(t, trace.h.detach().numpy(), "o-", ms=2.5, lw=1, label=f"H[t] {label}".strip())
    ax_v.plot(t, trace.v.detach().numpy(), lw=0.8, alpha=0.6, label="V[t] (after reset)")
    ax_v.axhline(params.v_threshold, color="C3", ls="--", lw=1, label="V_th")
    ax_v.set_ylabel("membrane")
    ax_v.legend(loc="upper right", fontsize=9, ncol=3)
    spikes = trace.spikes.detach().numpy()
    ax_s.vlines(t[spikes > 0], 0, 1, color="k")
    ax_s.set_ylim(0, 1.2)
    ax_s.set_yticks([])
    ax_s.set_ylabel(f"spikes ({int(spikes.sum())})")
    ax_s.set_xlabel("timestep t")


def plot_neuron_variants(fig: Figure, x: torch.Tensor, variants: dict[str, tuple[NeuronParams, str]],
                         surrogate: Surrogate | None = None) -> dict[str, NeuronTrace]:
    """The input once on top, then one panel per neuron variant (name -> (params, kind)): the
    charged potential H[t], the potential after the reset V[t], V_th, and the spikes as ticks
    above the panel. Returns each variant's trace."""
    surrogate = surrogate or ArcTan()
    t = np.arange(len(x))
    axes = fig.subplots(len(variants) + 1, 1, sharex=True,
                        gridspec_kw={"height_ratios": [0.7] + [1.0] * len(variants)})
    axes[0].step(t, x.numpy(), where="mid", color="0.3", lw=1)
    axes[0].set_ylabel("input X[t]")
    traces = {}
    for ax, (name, (params, kind)) in zip(axes[1:], variants.items()):
        trace = simulate(x[:, None], params, surrogate, kind=kind)
        trace = NeuronTrace(*(part[:, 0] for part in trace))
        traces[name] = trace
        ax.plot(t, trace.h.detach().numpy(), "o-", ms=2.5, lw=1, label="H[t]")
        ax.plot(t, trace.v.detach().numpy(), lw=0.8, alpha=0.7, label="V[t] (after reset)")
        ax.axhline(params.v_threshold, color="C3", ls="--", lw=1, label="V_th")
        spikes = t[trace.spikes.detach().numpy() > 0]
        top = max(float(trace.h.max()), params.v_threshold) * 1.15
        ax.plot(spikes, np.full(len(spikes), top), "|", color="k", ms=8, mew=1.5)
        ax.set_ylim(top=top * 1.12)
        ax.set_title(f"{name}: {len(spikes)} spikes", loc="left", fontsize=10)
    fig.legend(*axes[1].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=9)
    axes[-1].set_xlabel("timestep t")
    fig.supylabel("membrane potential", fontsize=10)
    return traces


def plot_surrogates(ax_primitive, ax_derivative, surrogates: dict[str, Surrogate], x_range: float = 2.0) -> None:
    """σ(x) next to Θ(x), and σ'(x), for each surrogate (x = u - V_th)."""
    x = torch.linspace(-x_range, x_range, 801)
    ax_primitive.plot(x, heaviside(x), color="k", lw=2, label="Θ(x) (Heaviside)")
    for name, surrogate in surrogates.items():
        ax_primitive.plot(x, surrogate.primitive(x), lw=1.2, label=name)
        ax_derivative.plot(x, surrogate.derivative(x), lw=1.2, label=name)
    ax_primitive.set_title("σ(x): smooth stand-ins for the spike")
    ax_derivative.set_title("σ'(x): the gradient used instead of Θ'(x)")
    for ax in (ax_primitive, ax_derivative):
        ax.set_xlabel("x = u - V_th")
        ax.axvline(0, color="0.8", lw=0.8, zorder=0)
    ax_derivative.legend(fontsize=9)


def plot_staircase(ax_count, ax_grad, staircase, response) -> None:
    """The spike count n(w) as its exact staircase, with every jump marked, and the surrogate
    gradient dn/dw next to the true derivative (0 between the jumps, undefined at them)."""
    edges, counts = staircase.edges, staircase.counts
    ax_count.stairs(counts, edges, color="C0", lw=1.5, baseline=None)
    ax_count.set_ylabel("spike count n(w)")
    ax_count.set_title("forward: a staircase")
    jumps = staircase.jumps
    for ax in (ax_count, ax_grad):
        ax.vlines(jumps, 0, 1, transform=ax.get_xaxis_transform(), color="0.8", lw=0.8, zorder=0)
    ax_grad.plot([], [], color="0.8", lw=0.8, label=f"the {len(jumps)} jumps: true derivative undefined")
    ax_grad.plot(response.weights, response.surrogate_grad, color="C2", label="surrogate gradient (ArcTan)")
    ax_grad.axhline(0, color="k", lw=1, label="true derivative between jumps: 0")
    ax_grad.set_xlabel("input weight w")
    ax_grad.set_ylabel("dn/dw")
    ax_grad.set_title("backward: zero almost everywhere, or a surrogate")
    ax_grad.legend(fontsize=9, loc="upper left")


def draw_driven_neuron(
    fig: Figure,
    v_threshold: float = 1.0,
    alpha: float = 2.0,
    *,
    x: torch.Tensor | None = None,
    tau: float = 2.0,
    decay_input: bool = False,
    v_reset: float | None = None,
) -> NeuronTrace:
    """Chapter 1's explorer: an LIF neuron driven by ``x`` with threshold ``v_threshold``, and the
    ArcTan surrogate derivative σ'(H[t] - V_th) it would backpropagate at each step.

    The default is OTTT's convention (OTTT eq. 2): input not decayed (``decay_input=False``)
    and a soft reset that subtracts V_th (``v_reset=None``); λ = 1 - 1/τ. Draws four stacked
    panels on ``fig`` and returns the trace.
    """
    x = driving_current() if x is None else x
    params = NeuronParams(v_threshold=v_threshold, v_reset=v_reset, tau=tau, decay_input=decay_input)
    surrogate = ArcTan(alpha=alpha)
    trace = simulate(x[:, None], params, surrogate, kind="lif")
    trace = NeuronTrace(*(part[:, 0] for part in trace))
    axes = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [1, 2, 0.6, 1.2]})
    plot_trace(axes[:3], x, trace, params)
    grad = surrogate.derivative(trace.h - v_threshold).detach().numpy()
    t = np.arange(len(x))
    axes[3].bar(t, grad, color="C2", width=0.8)
    axes[3].set_ylabel("σ'(H-V_th)")
    axes[3].set_xlabel("timestep t")
    axes[2].set_xlabel("")
    convention = ("OTTT" if not decay_input else "SEW") + (", soft reset" if v_reset is None else ", hard reset")
    axes[0].set_title(f"LIF ({convention}, λ={1 - 1 / tau:g}), V_th={v_threshold:g}, ArcTan α={alpha:g}")
    return trace
