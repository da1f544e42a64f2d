"""Diagrams of the book's mechanisms, drawn from code with matplotlib patches.

Each ``draw_*`` function draws into a :class:`matplotlib.figure.Figure` it is given (pyplot-free, like
the explorers' frames) and returns what it drew, so tests and chapters can check it:

* :func:`draw_unrolled_graph` (chapter 1): a spiking network unrolled over T steps, the spatial
  and temporal paths of the gradient, and the reset edges a detached reset cuts;
* :func:`draw_residual_blocks` (chapter 3): Spiking ResNet and SEW blocks side by side (SEW ResNet
  Figs. 1-2), each read from a real :class:`snnlab.layers.ResidualBlock` by :func:`block_layout`,
  including the downsample shortcut with its SN in SEW ResNet;
* :func:`draw_mlf_unit` (chapter 4): an MLF unit's K levels and their surrogate windows over u,
  from a real :class:`snnlab.neurons.MLFNode`;
* :func:`draw_sc_ttfs_neuron` (chapter 6): the SC-TTFS neuron's thresholds θ_e(t), θ_c(t) and one
  neuron's two spikes, computed by :mod:`snnlab.conversion.ttfs`;
* :func:`draw_accelerator` (chapter 8): ATSN's 16x16 array (255 PEs and the AT unit), its buffers
  and memories, annotated with the per-layer numbers of a :class:`snnlab.hardware.SimulationResult`.

Patches carry a ``gid`` naming what they are (``"pe"``, ``"at-unit"``, ``"shortcut:SN"``, ...) so
tests can count them. Font sizes follow :func:`readable_fontsize`: a figure shown at the width of
the book's text column keeps its text at least ``min_pt`` points high.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle

__all__ = [
    "COLUMN_PX",
    "readable_fontsize",
    "draw_unrolled_graph",
    "BlockLayout",
    "block_layout",
    "draw_residual_blocks",
    "draw_mlf_unit",
    "draw_sc_ttfs_neuron",
    "draw_accelerator",
]

COLUMN_PX = 640
"""Width (CSS pixels) a figure is shown at in the book at a 1280-pixel window (measured: 660 for a
captioned figure, 676 for a plain output), less 3 % because ``bbox_inches="tight"`` can widen the
saved PNG beyond the figure's own width."""

SPATIAL, TEMPORAL, RESET, CUT = "#1f5fa8", "#d9731a", "#7a7a7a", "#c0392b"
_KIND_COLOURS = {"conv": "#cfe2f3", "BN": "#d9ead3", "SN": "#ffe599", "g": "#f4cccc", "+": "#f4cccc"}


def readable_fontsize(fig: Figure, min_pt: float = 9.0, column_px: int = COLUMN_PX) -> float:
    """The font size (points) that renders at least ``min_pt`` CSS points when ``fig`` is shown in the
    book: scaled down to ``column_px`` if it is wider, else at its natural size (``fig.dpi``).

    A text of ``f`` points is ``f/72·dpi`` image pixels; shrunk to the column it is
    ``f/72·column_px/width_in`` CSS pixels, and 9 CSS points are 12 CSS pixels.
    """
    width_in = fig.get_figwidth()
    css_px_needed = min_pt * 96.0 / 72.0
    natural = css_px_needed * 72.0 / fig.dpi
    scaled = css_px_needed * 72.0 * width_in / column_px
    return round(max(natural, scaled) + 0.05, 1)


def _box(ax: Axes, x: float, y: float, w: float, h: float, text: str, *, fc: str = "white", ec: str = "0.25",
         fontsize: float, gid: str | None = None, lw: float = 1.0, round_: float = 0.02, **text_kw) -> FancyBboxPatch:
    """A rounded box centred at (x, y) with ``text`` in it."""
    patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=f"round,pad=0,rounding_size={round_}",
                           fc=fc, ec=ec, lw=lw, zorder=2)
    if gid:
        patch.set_gid(gid)
    ax.add_patch(patch)
    if text:
        ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=3, **text_kw)
    return patch


def _arrow(ax: Axes, start, end, *, color: str = "0.2", lw: float = 1.4, ls: str = "-", gid: str | None = None,
           shrink: float = 0.0, connectionstyle: str = "arc3", mutation_scale: float = 12) -> FancyArrowPatch:
    arrow = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=mutation_scale, color=color, lw=lw,
                            linestyle=ls, shrinkA=shrink, shrinkB=shrink, connectionstyle=connectionstyle, zorder=1)
    if gid:
        arrow.set_gid(gid)
    ax.add_patch(arrow)
    return arrow


def _blank(ax: Axes, xlim, ylim) -> None:
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")


# --------------------------------------------------------------------------------------------------
# Chapter 1: the unrolled computational graph


def draw_unrolled_graph(fig: Figure, T: int = 3, layers: int = 2, *, detach_reset: bool = True) -> dict[str, int]:
    """A ``layers``-layer spiking network unrolled over ``T`` steps, as autograd records it.

    Per layer and step: the charge ``H^l[t] = f(V^l[t-1], W^l S^{l-1}[t])`` (SEW ResNet eq. 1), the spike
    ``S^l[t] = Θ(H^l[t] - V_th)`` (eq. 2) and the reset ``V^l[t] = H^l[t](1 - S^l[t])`` (eq. 3). Spatial
    edges (blue) run up through the layers within a step; temporal edges (orange) carry the membrane
    to the next step; the reset edge ``S → V`` is grey, or red, dashed and crossed when the reset is
    detached (no gradient flows along it). The loss reads the last layer's spikes at every step.

    Returns the number of nodes and of edges of each kind (``spatial``, ``temporal``, ``reset``,
    ``cut``: reset edges without gradient).
    """
    if T < 1 or layers < 1:
        raise ValueError(f"need T >= 1 and layers >= 1, got T={T}, layers={layers}.")
    fs = readable_fontsize(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    col, row = 3.3, 2.35  # width of one timestep, height of one layer
    nw, nh = 1.25, 0.62
    counts = {"nodes": 0, "spatial": 0, "temporal": 0, "reset": 0, "cut": 0}

    def node(x, y, label, gid, fc="white"):
        counts["nodes"] += 1
        return _box(ax, x, y, nw, nh, label, fc=fc, fontsize=fs, gid=gid, round_=0.12)

    def edge(kind, start, end, **kw):
        cut = kind == "reset" and detach_reset
        counts[kind] += 1
        counts["cut"] += cut
        colour = {"spatial": SPATIAL, "temporal": TEMPORAL, "reset": CUT if cut else RESET}[kind]
        arrow = _arrow(ax, start, end, color=colour, ls="--" if cut else "-", lw=1.8 if kind != "reset" else 1.4,
                       gid=f"edge:{'cut' if cut else kind}", **kw)
        if cut:
            mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
            ax.plot([mx], [my], marker="x", ms=fs * 1.1, mew=2.2, color=CUT, zorder=4)
        return arrow

    x0, y0 = 0.9, 1.0
    for t in range(T):
        cx = x0 + t * col
        ax.text(cx + 0.55, y0 - 0.95, f"step t = {t + 1}", ha="center", va="center", fontsize=fs, color="0.3")
        node(cx, y0 - 0.1, f"$x[{t + 1}]$", "node:input", fc="0.93")
        below = (cx, y0 - 0.1 + nh / 2)
        for layer in range(1, layers + 1):
            y = y0 + layer * row - 1.2
            h = (cx, y)
            s = (cx, y + 1.05)
            v = (cx + 1.55, y)
            node(*h, f"$H^{layer}[{t + 1}]$", "node:H")
            node(*s, f"$S^{layer}[{t + 1}]$", "node:S", fc="#fff2cc")
            node(*v, f"$V^{layer}[{t + 1}]$", "node:V")
            # spatial: previous layer's spikes (or the input) through W^l into the charge
            edge("spatial", below, (h[0], h[1] - nh / 2))
            ax.text(h[0] - 0.12, (below[1] + h[1] - nh / 2) / 2, f"$W^{layer}$", ha="right", va="center",
                    fontsize=fs, color=SPATIAL)
            edge("spatial", (h[0], h[1] + nh / 2), (s[0], s[1] - nh / 2))
            # the neuron's own state: H -> V (kept), S -> V (the reset)
            edge("temporal", (h[0] + nw / 2, h[1]), (v[0] - nw / 2, v[1]))
            edge("reset", (s[0] + nw / 2 - 0.05, s[1] - nh / 2 + 0.05), (v[0] - 0.15, v[1] + nh / 2))
            if t + 1 < T:
                edge("temporal", (v[0] + nw / 2, v[1]), (cx + col - nw / 2, y))
            below = (s[0], s[1] + nh / 2)
    # the loss reads the last layer's spikes at every step
    top_y = y0 + layers * row - 1.2 + 1.05 + nh / 2
    loss_y = top_y + 1.0
    for t in range(T):
        edge("spatial", (x0 + t * col, top_y), (x0 + t * col, loss_y - 0.32))
    loss_w = (T - 1) * col + 2.2
    _box(ax, x0 + (T - 1) * col / 2, loss_y, loss_w, 0.64, r"loss $L$ (from the spike counts of the last layer)",
         fc="#f4cccc", fontsize=fs, gid="node:loss", round_=0.12)
    counts["nodes"] += 1
    width = x0 + (T - 1) * col + 2.6
    # legend, drawn in data coordinates below the step labels
    legend = [(SPATIAL, "-", "spatial path: up through the layers within a step"),
              (TEMPORAL, "-", "temporal path: the membrane carried to the next step"),
              (CUT if detach_reset else RESET, "--" if detach_reset else "-",
               "reset S → V: detached, no gradient flows" if detach_reset else "reset S → V: gradient flows")]
    for i, (colour, ls, label) in enumerate(legend):
        y = y0 - 1.7 - 0.55 * i
        ax.plot([0.3, 1.2], [y, y], color=colour, ls=ls, lw=2)
        ax.text(1.4, y, label, va="center", fontsize=fs)
    _blank(ax, (-0.2, width), (y0 - 1.7 - 0.55 * len(legend), loss_y + 0.45))
    return counts


# --------------------------------------------------------------------------------------------------
# Chapter 3: Spiking ResNet and SEW blocks


@dataclass(frozen=True)
class BlockLayout:
    """A residual block read from its modules: the operations in order on each path.

    ``main``: the residual branch F (and, for SEW, its last SN), bottom to top; ``join``: ``"+"``
    (Spiking ResNet, eq. 7) or ``"g: ADD"`` etc. (SEW, eq. 9); ``after_join``: the SN applied after the
    join (Spiking ResNet) or ``None``; ``shortcut``: the shortcut's operations (empty: identity).
    """

    kind: str
    main: tuple[str, ...]
    join: str
    after_join: str | None
    shortcut: tuple[str, ...]

    @property
    def downsample(self) -> bool:
        return bool(self.shortcut)


def _conv_label(conv) -> str:
    k = conv.kernel_size[0]
    stride = conv.stride[0]
    return f"conv{k}x{k}" + (f", stride {stride}" if stride > 1 else "")


def block_layout(block) -> BlockLayout:
    """Read a :class:`snnlab.layers.ResidualBlock` (``kind="spiking"`` or ``"sew"``): which operations
    it applies, in which order, on which path (what :meth:`ResidualBlock.forward` runs)."""
    from snnlab.layers import ResidualBlock

    if not isinstance(block, ResidualBlock):
        raise TypeError(f"block_layout needs a snnlab.layers.ResidualBlock, got {type(block).__name__}.")
    if block.kind == "plain":
        raise ValueError("a plain block has no shortcut to draw; use kind='spiking' or 'sew'.")
    main: list[str] = []
    last = len(block.convs) - 1
    for i, conv_bn in enumerate(block.convs):
        main += [_conv_label(conv_bn.conv), "BN"]
        if i < last or block.kind != "spiking":
            main.append("SN")
    shortcut: tuple[str, ...] = ()
    if block.downsample is not None:
        ds = block.downsample
        shortcut = (_conv_label(ds.conv_bn.conv), "BN") + (("SN",) if ds.sn is not None else ())
    if block.kind == "spiking":
        return BlockLayout("spiking", tuple(main), "+", "SN", shortcut)
    return BlockLayout("sew", tuple(main), f"g: {block.cnf}", None, shortcut)


def _kind(op: str) -> str:
    return "conv" if op.startswith("conv") else op.split(":")[0] if op.startswith("g") else op


def _draw_block(ax: Axes, layout: BlockLayout, title: str, fs: float, x0: float, y0: float) -> tuple[float, float]:
    """Draw one block with its lower-left corner at (x0, y0), in inches; return its (width, height)."""
    char = 0.55 * fs / 72          # a character's width, inches
    bw = max(len(op) for op in (*layout.main, *layout.shortcut, layout.join, "input S^l[t]")) * char + 0.25
    bh, gap = 2.1 * fs / 72, 0.9 * fs / 72
    x_main, x_short = x0 + bw / 2, x0 + 1.5 * bw + 0.3
    y = y0 + bh / 2
    _box(ax, x_main, y, bw, bh, r"input $S^l[t]$", fc="0.93", fontsize=fs, gid="block:input")
    split_y = y + bh / 2 + gap / 2
    y_prev_top = y + bh / 2
    y += bh + gap
    for op in layout.main:
        kind = _kind(op)
        _box(ax, x_main, y, bw, bh, op, fc=_KIND_COLOURS[kind], fontsize=fs, gid=f"main:{kind}")
        _arrow(ax, (x_main, y_prev_top), (x_main, y - bh / 2), gid="path:main")
        y_prev_top = y + bh / 2
        y += bh + gap
    join_y = y
    ax.plot([x_main, x_short], [split_y, split_y], color="0.2", lw=1.4, zorder=1)
    ax.plot([x_main], [split_y], "o", color="0.2", ms=4, zorder=3)
    sy_prev = split_y
    if layout.shortcut:
        sy = split_y + gap + bh / 2
        for op in layout.shortcut:
            kind = _kind(op)
            sew_sn = kind == "SN" and layout.kind == "sew"
            _box(ax, x_short, sy, bw, bh, op, fc=_KIND_COLOURS[kind], fontsize=fs, gid=f"shortcut:{kind}",
                 lw=2.2 if sew_sn else 1.0, ec=CUT if sew_sn else "0.25")
            _arrow(ax, (x_short, sy_prev), (x_short, sy - bh / 2), gid="path:shortcut")
            sy_prev = sy + bh / 2
            sy += bh + gap
        ax.text(x_short + 0.08, (sy_prev + join_y) / 2, "downsample\nshortcut", fontsize=fs, va="center",
                ha="left", color="0.35")
    else:
        ax.text(x_short + 0.08, (split_y + join_y) / 2, "identity\nshortcut", fontsize=fs, va="center",
                ha="left", color="0.35")
    ax.plot([x_short, x_short], [sy_prev, join_y], color="0.2", lw=1.4, zorder=1)
    if layout.join == "+":
        r = bh / 2
        ax.add_patch(Circle((x_main, join_y), r, fc=_KIND_COLOURS["+"], ec="0.25", zorder=2, gid="join:add"))
        ax.text(x_main, join_y, "+", ha="center", va="center", fontsize=fs * 1.2, zorder=3)
        _arrow(ax, (x_short, join_y), (x_main + r, join_y), gid="path:join")
        _arrow(ax, (x_main, y_prev_top), (x_main, join_y - r), gid="path:main")
        top = join_y + r
    else:
        _box(ax, x_main, join_y, bw, bh, layout.join, fc=_KIND_COLOURS["g"], fontsize=fs, gid="join:g")
        _arrow(ax, (x_short, join_y), (x_main + bw / 2, join_y), gid="path:join")
        _arrow(ax, (x_main, y_prev_top), (x_main, join_y - bh / 2), gid="path:main")
        top = join_y + bh / 2
    if layout.after_join:
        y_sn = top + gap + bh / 2
        _box(ax, x_main, y_sn, bw, bh, layout.after_join, fc=_KIND_COLOURS["SN"], fontsize=fs, gid="after:SN")
        _arrow(ax, (x_main, top), (x_main, y_sn - bh / 2), gid="path:main")
        top = y_sn + bh / 2
    y_out = top + gap + bh / 2
    _box(ax, x_main, y_out, bw, bh, r"output $O^l[t]$", fc="0.93", fontsize=fs, gid="block:output")
    _arrow(ax, (x_main, top), (x_main, y_out - bh / 2), gid="path:main")
    ax.text(x0, y_out + bh / 2 + gap, title, fontsize=fs, fontweight="bold", va="bottom", ha="left")
    return x_short + bw / 2 - x0, y_out + bh / 2 + gap + 1.6 * fs / 72 - y0


def draw_residual_blocks(fig: Figure, blocks: Mapping[str, object], *, ncols: int = 2) -> dict[str, BlockLayout]:
    """Draw each block of ``blocks`` (title -> :class:`snnlab.layers.ResidualBlock`) as
    :func:`block_layout` reads it, ``ncols`` to a row: the residual branch on the left, the shortcut on
    the right (identity, or conv1x1-BN, plus an SN framed in red in SEW ResNet's downsample), the join
    (Spiking ResNet: add, then the SN, eq. 7; SEW: the element-wise g of two spike tensors, eq. 9).
    The figure keeps its width and gets the height the drawing needs. Returns the layouts drawn."""
    if not blocks:
        raise ValueError("blocks is empty: pass {title: ResidualBlock}.")
    layouts = {title: block_layout(block) for title, block in blocks.items()}
    fs = readable_fontsize(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    width = fig.get_figwidth()
    cell_w = width / ncols
    items = list(layouts.items())
    rows = [items[i:i + ncols] for i in range(0, len(items), ncols)]
    legend_h = 3.2 * fs / 72
    # draw bottom-up: the last row first, at the bottom
    y = legend_h
    for row in reversed(rows):
        heights = [_draw_block(ax, layout, title, fs, 0.1 + c * cell_w, y)[1] for c, (title, layout) in enumerate(row)]
        y += max(heights) + 0.15
    kinds = [("conv", "convolution"), ("BN", "batch norm"), ("SN", "spiking neuron (SN)"), ("g", "join")]
    x = 0.1
    for kind, label in kinds:
        ax.add_patch(Rectangle((x, legend_h / 3), 0.3, 1.2 * fs / 72, fc=_KIND_COLOURS[kind], ec="0.25"))
        ax.text(x + 0.38, legend_h / 3 + 0.6 * fs / 72, label, va="center", fontsize=fs)
        x += 0.55 + len(label) * 0.55 * fs / 72
    fig.set_figheight(y)
    ax.set_xlim(0, width)
    ax.set_ylim(0, y)
    ax.axis("off")
    return layouts


# --------------------------------------------------------------------------------------------------
# Chapter 4: the MLF unit


def draw_mlf_unit(fig: Figure, unit, *, lo: float | None = None, hi: float | None = None) -> dict[str, object]:
    """An MLF unit (Qu et al. 2024, eqs. 4-6) read from a :class:`snnlab.neurons.MLFNode`: left, its K
    LIF levels driven by the same input x[t], each with its own potential, threshold and hard reset,
    their spikes summed into δ[t] ∈ {0..K}; right, each level's surrogate window σ'(u - V_th,k) over the
    membrane potential u (:func:`snnlab.analysis.dormant.level_windows`), in the level's colour.

    Returns the thresholds and, per level, the interval of u where its window is non-zero (from the
    grid drawn)."""
    from snnlab.analysis.dormant import level_windows
    from snnlab.neurons import MLFNode

    if not isinstance(unit, MLFNode):
        raise TypeError(f"draw_mlf_unit needs a snnlab.neurons.MLFNode, got {type(unit).__name__}.")
    thresholds = unit.thresholds
    K = len(thresholds)
    fs = readable_fontsize(fig)
    width, height = fig.get_figwidth(), fig.get_figheight()
    ax0 = fig.add_axes((0.0, 0.0, 0.5, 1.0))
    # the schematic, in inches
    w0 = width * 0.5
    ax0.set_xlim(0, w0)
    ax0.set_ylim(0, height)
    ax0.axis("off")
    bh = 2.1 * fs / 72
    spacing = min((height - 1.3) / K, 2.6 * bh)
    top = height - 0.45 - bh / 2
    ys = [top - k * spacing for k in range(K)][::-1]  # level 1 at the bottom
    mid = (ys[0] + ys[-1]) / 2
    x_in, x_lvl, x_sum, x_out = 0.35, 1.85, 3.3, 3.8
    _box(ax0, x_in, mid, 0.55, bh, "$x[t]$", fc="0.93", fontsize=fs, gid="mlf:input")
    lvl_w = 1.75
    for k, (y, th) in enumerate(zip(ys, thresholds)):
        colour = f"C{k}"
        _box(ax0, x_lvl, y, lvl_w, bh, f"level {k + 1}: $V_{{th}}$ = {th:g}", fc="white", ec=colour, lw=2,
             fontsize=fs, gid="mlf:level")
        _arrow(ax0, (x_in + 0.28, mid), (x_lvl - lvl_w / 2, y), color="0.3", gid="mlf:in")
        _arrow(ax0, (x_lvl + lvl_w / 2, y), (x_sum - 0.2, mid), color=colour, gid="mlf:out")
        below = y < mid - 1e-9
        ax0.text(x_lvl + lvl_w / 2 + 0.04, y - bh / 2 if below else y + bh / 2, f"$o_{k + 1}$", fontsize=fs,
                 color=colour, va="top" if below else "bottom")
    ax0.add_patch(Circle((x_sum, mid), 0.2, fc="#f4cccc", ec="0.25", zorder=2, gid="mlf:sum"))
    ax0.text(x_sum, mid, "Σ", ha="center", va="center", fontsize=fs, zorder=3)
    _arrow(ax0, (x_sum + 0.2, mid), (x_out, mid), gid="mlf:delta")
    ax0.text(x_out + 0.05, mid, f"$\\delta[t]$\n0..{K}", fontsize=fs, va="center", ha="left")
    ax0.text(0.1, 0.35, f"each level: $u_k \\leftarrow {unit.decay:g}\\,u_k(1-o_k) + x$,  $o_k = \\Theta(u_k - V_{{th,k}})$",
             fontsize=fs, va="center")
    # the windows over u
    lo = min(thresholds) - 1.0 if lo is None else lo
    hi = max(thresholds) + 1.0 if hi is None else hi
    ax1 = fig.add_axes((0.58, 0.2, 0.4, 0.72))
    u = torch.linspace(lo, hi, 2001, dtype=torch.float64)
    windows = level_windows(thresholds, unit.surrogate, u).numpy()
    intervals = []
    for k, (w, th) in enumerate(zip(windows, thresholds)):
        ax1.fill_between(u.numpy(), w, color=f"C{k}", alpha=0.45, lw=0, gid="mlf:window")
        ax1.axvline(th, color=f"C{k}", ls="--", lw=1)
        active = u.numpy()[w > 0]
        intervals.append((float(active.min()), float(active.max())) if active.size else (math.nan, math.nan))
    ax1.set_xlim(lo, hi)
    ax1.set_ylim(0, float(windows.max()) * 1.25)
    ax1.set_xticks(list(thresholds), [f"{th:g}" for th in thresholds], fontsize=fs)
    ax1.tick_params(axis="y", labelsize=fs)
    ax1.set_xlabel("membrane potential u  (dashed: $V_{th,k}$)", fontsize=fs)
    ax1.set_ylabel("surrogate σ'", fontsize=fs)
    ax1.set_title("where each level passes gradient", fontsize=fs)
    return {"thresholds": thresholds, "windows": intervals}


# --------------------------------------------------------------------------------------------------
# Chapter 6: the SC-TTFS neuron


def draw_sc_ttfs_neuron(fig: Figure, v: float, T: int, encode, calibrate) -> dict[str, float]:
    """One SC-TTFS neuron (SC-TTFS eqs. 9-16) with potential ``v`` in an encoding window of ``T`` steps.

    Top: the encoding threshold θ_e(t) and the calibration threshold θ_c(t) (eq. 14, ``encode`` and
    ``calibrate`` are :class:`snnlab.conversion.ThresholdParams`), drawn as curves with the steps the
    neuron tests marked, and the neuron's potential: ``v`` until the encoding spike at the first
    ``t_e`` with ``v ≥ θ_e(t_e)``, then the residual ``v - θ_e(t_e)`` until the calibration spike at the
    first ``t_c ≥ t_e`` with residual ``≥ θ_c(t_c)``, then 0. Bottom: the two spikes. The spike times
    and the decoded value ``z = θ_e(t_e) + θ_c(t_c)`` come from :func:`snnlab.conversion.ttfs.spike_times`
    and :func:`~snnlab.conversion.ttfs.decode` (returned, with ``t_e``/``t_c`` = -1 for no spike).
    """
    from snnlab.conversion.ttfs import NO_SPIKE, decode, spike_times

    if not v > 0:
        raise ValueError(f"v must be > 0 for the neuron to fire, got {v}.")
    t_e, t_c = (int(t) for t in spike_times(torch.tensor([float(v)], dtype=torch.float64), T, encode, calibrate))
    z = float(decode(torch.tensor([t_e]), torch.tensor([t_c]), encode, calibrate, dtype=torch.float64)[0])
    fs = readable_fontsize(fig)
    ax, ax_s = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3.2, 1]})
    t_fine = np.linspace(0, T - 1, 400)
    steps = np.arange(T)
    ax.plot(t_fine, encode(t_fine), color="k", lw=1.6, label=r"$\theta_e(t)$ encoding threshold", gid="theta_e")
    ax.plot(steps, encode(steps), "o", color="k", ms=3)
    ax.plot(t_fine, calibrate(t_fine), color="0.45", lw=1.6, ls="--", label=r"$\theta_c(t)$ calibration threshold",
            gid="theta_c")
    ax.plot(steps, calibrate(steps), "o", color="0.45", ms=3)
    # the potential over the window
    residual = v - float(encode(t_e)) if t_e != NO_SPIKE else v
    pot = np.where(steps < (t_e if t_e != NO_SPIKE else T), v, np.where(steps < (t_c if t_c != NO_SPIKE else T),
                                                                         residual, np.nan))
    ax.step(steps, pot, where="post", color="C0", lw=2.2, label="potential $v(t)$", gid="potential")
    if t_e != NO_SPIKE:
        ax.plot([t_e], [encode(t_e)], "o", color="C3", ms=10, zorder=5, gid="spike:encoding")
        ax.annotate(f"encoding spike, $t_e$ = {t_e}:\n$v \\geq \\theta_e(t_e)$, then $v \\leftarrow v - \\theta_e(t_e)$",
                    (t_e, float(encode(t_e))), xytext=(0.2, 0.8), textcoords="axes fraction", fontsize=fs,
                    arrowprops={"arrowstyle": "->", "color": "C3"}, color="C3")
    if t_c != NO_SPIKE:
        ax.plot([t_c], [calibrate(t_c)], "o", mfc="white", mec="C3", mew=2.2, ms=10, zorder=5, gid="spike:calibration")
        ax.annotate(f"calibration spike, $t_c$ = {t_c}:\nresidual $\\geq \\theta_c(t_c)$, then $v \\leftarrow 0$",
                    (t_c, float(calibrate(t_c))), xytext=(0.3, 0.05), textcoords="axes fraction", fontsize=fs,
                    arrowprops={"arrowstyle": "->", "color": "C3"}, color="C3")
    ax.set_yscale("log")
    values = [float(encode(0)), float(calibrate(0)), float(encode(T - 1)), float(calibrate(T - 1)), v]
    ax.set_ylim(min(values) * 0.05, max(values) * 6)
    ax.set_ylabel("potential / threshold", fontsize=fs)
    ax.tick_params(labelsize=fs)
    ax.legend(fontsize=fs, loc="upper right", frameon=False)
    parts = []
    if t_e != NO_SPIKE:
        parts.append(f"θ_e({t_e}) = {float(encode(t_e)):.3g}")
    if t_c != NO_SPIKE:
        parts.append(f"θ_c({t_c}) = {float(calibrate(t_c)):.3g}")
    ax.set_title(f"v = {v:g}: decoded z = " + (" + ".join(parts) + f" = {z:.3g}" if parts else "0 (silent)"),
                 fontsize=fs)
    for t, label, filled in ((t_e, "encoding", True), (t_c, "calibration", False)):
        if t != NO_SPIKE:
            ax_s.vlines(t, 0, 1, color="C3", lw=2.5)
            ax_s.plot([t], [1], "o", color="C3", mfc="C3" if filled else "white", mew=2, ms=8)
            ax_s.text(t + 0.1, 0.45, label, fontsize=fs, color="C3", va="center")
    ax_s.set_ylim(0, 1.45)
    ax_s.set_yticks([])
    ax_s.set_ylabel("spikes", fontsize=fs)
    ax_s.set_xticks(steps)
    ax_s.tick_params(labelsize=fs)
    ax_s.set_xlabel(f"step t of the encoding window (T = {T})", fontsize=fs)
    ax_s.set_xlim(-0.3, T - 0.7)
    return {"t_e": t_e, "t_c": t_c, "z": z}


# --------------------------------------------------------------------------------------------------
# Chapter 8: the accelerator


def _number(x: float) -> str:
    """A count or an energy as the diagram prints it: whole numbers with thousands separators from
    100 up, three significant digits below."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _kb(n_bytes: int) -> str:
    return f"{n_bytes // 1024} KB" if n_bytes % 1024 == 0 else f"{n_bytes} B"


def draw_accelerator(fig: Figure, result, table=None) -> list[dict]:
    """ATSN's accelerator (ATSN sec. 2.4, Fig. 2(c)) as configured in ``result.config``: the rows x cols
    array of PEs with its AT unit (drawn in the last position; the paper gives the counts, not the
    placement), the global SRAM buffer and DRAM with the bus, a close-up of one PE and of the AT unit
    with their spike buffers and memories, and a table of the per-layer numbers the simulator
    reported (``result``: a :class:`snnlab.hardware.SimulationResult`; ``table``: the energy table,
    default SATA-Sim's). The figure keeps its width and gets the height it needs. Returns the rows
    drawn (from ``result.per_layer(table)``)."""
    from snnlab.hardware import SATA_SIM_TABLE, SimulationResult

    if not isinstance(result, SimulationResult):
        raise TypeError(f"draw_accelerator needs a snnlab.hardware.SimulationResult, got {type(result).__name__}.")
    table = table or SATA_SIM_TABLE
    cfg = result.config
    if not cfg.at_unit:
        raise ValueError(f"design {cfg.name!r} has no AT unit; draw_accelerator draws ATSN's array (Fig. 2(c)).")
    rows = result.per_layer(table)
    fs = readable_fontsize(fig)
    line = fs / 72 * 1.5                       # one text line, inches
    width = fig.get_figwidth()
    ax = fig.add_axes((0, 0, 1, 1))
    # the per-layer table at the bottom
    columns = [("layer", lambda r: r["layer"].replace(".layers", "")),
               ("runs on", lambda r: "AT unit" if r["unit"] == "at" else f"{cfg.n_pe} PEs"),
               ("tiles", lambda r: f"{r['tiles']}"),
               ("neurons\nper unit", lambda r: f"{r['neurons_per_unit']}"),
               ("cycles", lambda r: _number(r["cycles"])),
               ("utilisation", lambda r: f"{100 * r['utilisation']:.1f} %"),
               ("synaptic\nevents", lambda r: _number(r["synaptic_ops"])),
               ("energy", lambda r: _number(r["energy"]))]
    n_cols = len(columns)
    col_w = (width - 0.3) / n_cols
    table_top = (len(rows) + 2.4) * line + 0.1
    caption_h = 2 * line
    y = table_top
    ax.text(0.15, y, f"per layer and inference, as the simulator reports it ({result.samples} samples, T = {result.T}, "
                     f"mean {result.mean_steps:.2f} steps;\nenergy in {table.unit}):", fontsize=fs, va="bottom")
    y -= 0.08
    for c, (head, _) in enumerate(columns):
        ax.text(0.15 + (c + 0.5) * col_w, y, head, fontsize=fs, ha="center", va="top", fontweight="bold",
                gid="table:header")
    y -= 2 * line
    ax.plot([0.15, width - 0.15], [y + 0.05, y + 0.05], color="0.5", lw=0.8)
    for r in rows:
        y -= line
        for c, (_, cell) in enumerate(columns):
            ax.text(0.15 + (c + 0.5) * col_w, y + line / 2, cell(r), fontsize=fs, ha="center", va="center",
                    gid="table:cell")
    # the array
    array_side = min(width * 0.46, 4.4)
    cell = array_side / max(cfg.rows, cfg.cols)
    ax0, ay0 = 0.35, table_top + caption_h + 0.45
    n_pe = n_at = 0
    for i in range(cfg.rows):
        for j in range(cfg.cols):
            is_at = i == cfg.rows - 1 and j == cfg.cols - 1
            patch = Rectangle((ax0 + j * cell + 0.06 * cell, ay0 + (cfg.rows - 1 - i) * cell + 0.06 * cell),
                              0.88 * cell, 0.88 * cell, fc=CUT if is_at else "#cfe2f3", ec="0.35", lw=0.5,
                              gid="at-unit" if is_at else "pe")
            ax.add_patch(patch)
            n_at += is_at
            n_pe += not is_at
    at_xy = (ax0 + (cfg.cols - 0.5) * cell, ay0 + 0.5 * cell)
    pe_xy = (ax0 + (cfg.cols - 0.5) * cell, ay0 + (cfg.rows - 0.5) * cell)
    ax.add_patch(Rectangle((ax0, ay0), cfg.cols * cell, cfg.rows * cell, fill=False, ec="0.2", lw=1.2))
    ax.text(ax0 + cfg.cols * cell / 2, ay0 - 0.12, f"{cfg.rows}×{cfg.cols} array: {n_pe} PEs (blue) + {n_at} AT unit (red)",
            fontsize=fs, ha="center", va="top")
    top = ay0 + cfg.rows * cell
    # memory hierarchy above the array
    box_h = 2.7 * line
    sram_y = top + 0.45 + box_h / 2
    centre = ax0 + cfg.cols * cell / 2
    _box(ax, centre, sram_y, array_side, box_h, "global SRAM buffer\n(weights, potentials, spikes)",
         fc="#d9ead3", fontsize=fs, gid="sram")
    ax.annotate("", (centre, top + 0.02), (centre, sram_y - box_h / 2),
                arrowprops={"arrowstyle": "<|-|>", "color": "0.2", "lw": 1.4})
    ax.text(centre + 0.1, (top + sram_y - box_h / 2) / 2, f"bus: {cfg.bus_words} words / cycle",
            fontsize=fs, va="center")
    dram_y = sram_y + box_h + 0.35
    _box(ax, centre, dram_y, array_side * 0.8, box_h, "DRAM\n(images in, classes out)",
         fc="0.9", fontsize=fs, gid="dram")
    ax.annotate("", (centre, sram_y + box_h / 2), (centre, dram_y - box_h / 2),
                arrowprops={"arrowstyle": "<|-|>", "color": "0.2", "lw": 1.4})
    # close-ups of one PE and of the AT unit
    zx = ax0 + array_side + 0.55
    zw = width - zx - 0.15

    def close_up(y_top, title, lines, colour, gid, anchor):
        h = (len(lines) + 1.4) * line
        frame = FancyBboxPatch((zx, y_top - h), zw, h, boxstyle="round,pad=0,rounding_size=0.06", fc="white",
                               ec=colour, lw=2, gid=gid)
        ax.add_patch(frame)
        ax.text(zx + 0.12, y_top - 0.55 * line, title, fontsize=fs, fontweight="bold", va="center")
        for k, text in enumerate(lines):
            bullet = "   " if text.startswith("  ") else "• "
            ax.text(zx + 0.2, y_top - (1.55 + k) * line, bullet + text.strip(), fontsize=fs, va="center")
        if anchor is not None:
            ax.annotate("", (zx, y_top - h / 2), anchor, arrowprops={"arrowstyle": "-", "color": colour, "lw": 1.2,
                                                                      "ls": "--"})
        return y_top - h

    decay = "shift-and-add decay (no multiplier)" if cfg.decay == "shift" else "multiplier decay"
    pe_lines = [f"input spike buffer {_kb(cfg.in_buffer_bytes)} ({cfg.in_buffer_entries} events)",
                f"data memory {_kb(cfg.pe_memory_bytes)}: potentials, weights",
                "LIF: accumulate the input events,",
                f"  {decay},",
                "  compare, reset (mux)",
                f"output spike buffer {_kb(cfg.out_buffer_bytes)}"]
    at_lines = [f"input spike buffer {_kb(cfg.in_buffer_bytes)}",
                f"data memory {_kb(cfg.at_memory_bytes)}: output layer",
                "non-reset output neurons (eq. 8)",
                "1 multiplier + a table of exp:",
                "  the exit test (eqs. 17-18)",
                f"output spike buffer {_kb(cfg.out_buffer_bytes)}"]
    bottom = close_up(dram_y + box_h / 2, f"one PE (of {n_pe})", pe_lines, SPATIAL, "close-up:pe", pe_xy)
    bottom = close_up(bottom - 0.3, "the AT unit", at_lines, CUT, "close-up:at", at_xy)
    total = result.summary(table)
    summary = [f"{_number(total['cycles_per_inference'])} cycles = {1e6 * total['latency_s']:.3g} µs at "
               f"{cfg.clock_hz / 1e6:.0f} MHz",
               f"{_number(total['fps'])} frames/s on {cfg.n_accelerators} accelerators",
               f"array busy {100 * total['utilisation']:.1f} % of the unit-cycles",
               f"energy {_number(total['energy_per_inference']['total'])} ({table.unit})"]
    close_up(bottom - 0.3, "per inference, all layers", summary, "0.4", "close-up:summary", None)
    height = dram_y + box_h / 2 + 0.15
    fig.set_figheight(height)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return rows
