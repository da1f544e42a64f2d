"""An independent NumPy reading of NIR 1.0's equations (forward Euler at step dt), for the tests.

Written from NIR's node definitions (``nir.ir``: the docstrings' ODEs and the node fields), not from
snnlab's code: every node maps one per-sample array to another, the edges entering a node are
summed, and time advances in steps of ``dt`` with the input held over each step:

* Affine ``y = W x + b``, Linear ``y = W x``, Scale ``y = s ⊙ x``, Flatten, Conv2d (cross-correlation
  with stride, zero padding, dilation, groups), AvgPool2d (zero padding counted), SumPool2d;
* LI:  ``τ dv/dt = (v_leak - v) + R I``  ->  ``v += dt/τ (v_leak - v + R I)``, output v;
* I:   ``dv/dt = R I``                   ->  ``v += dt R I``, output v;
* LIF: LI, then ``z = [v > v_threshold]`` and ``v = v_reset`` where z = 1, output z;
* IF:  I, then the same threshold and reset;
* Threshold: ``z = [x > threshold]``.

Neurons start at ``v = v_leak`` (LIF, LI) or ``v = v_reset`` (IF) or 0 (I). A recurrent edge (one
that closes a cycle) carries its source's output from the previous step (zeros at the first).
Computed in float64.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import nir


def _pad2(x: np.ndarray, pad: tuple[int, int]) -> np.ndarray:
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(pad[0], pad[0]), (pad[1], pad[1])])


def _pair(value) -> tuple[int, int]:
    a = np.asarray(value).reshape(-1)
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def conv2d(x: np.ndarray, node: nir.Conv2d) -> np.ndarray:
    """x: [B, C, H, W]."""
    w = np.asarray(node.weight, np.float64)
    stride, dilation, groups = _pair(node.stride), _pair(node.dilation), int(np.asarray(node.groups))
    kh, kw = w.shape[2:]
    if isinstance(node.padding, str):
        assert node.padding in ("same", "valid")
        pad = ((dilation[0] * (kh - 1)) // 2, (dilation[1] * (kw - 1)) // 2) if node.padding == "same" else (0, 0)
    else:
        pad = _pair(node.padding)
    xp = _pad2(x, pad)
    span = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    windows = sliding_window_view(xp, span, axis=(2, 3))[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]
    c_in = w.shape[1]
    outs = []
    per_group = w.shape[0] // groups
    for g in range(groups):
        part = windows[:, g * c_in:(g + 1) * c_in]
        wg = w[g * per_group:(g + 1) * per_group]
        outs.append(np.einsum("bchwij,ocij->bohw", part, wg))
    return np.concatenate(outs, axis=1) + np.asarray(node.bias, np.float64).reshape(1, -1, 1, 1)


def pool2d(x: np.ndarray, node, average: bool) -> np.ndarray:
    k, s, p = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
    windows = sliding_window_view(_pad2(x, p), k, axis=(2, 3))[:, :, ::s[0], ::s[1]]
    total = windows.sum(axis=(-2, -1))
    return total / (k[0] * k[1]) if average else total


class NIRReference:
    """Simulate a (flat) NIR graph on ``x`` ``[T, B, *input]`` at step ``dt``; ``run`` returns the output
    ``[T, B, ...]`` and every node's output per step."""

    def __init__(self, graph: nir.NIRGraph, dt: float) -> None:
        self.graph, self.dt = graph, float(dt)
        self.preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
        succs: dict[str, list[str]] = {n: [] for n in graph.nodes}
        for a, b in graph.edges:
            self.preds[b].append(a)
            succs[a].append(b)
        inputs = [n for n, v in graph.nodes.items() if isinstance(v, nir.Input)]
        assert len(inputs) == 1
        self.input = inputs[0]
        # depth-first from the input: an edge to a node on the current path closes a cycle
        self.order: list[str] = []
        self.back_edges: set[tuple[str, str]] = set()
        state: dict[str, int] = {}

        def visit(n: str) -> None:
            state[n] = 1
            for m in succs[n]:
                if state.get(m) == 1:
                    self.back_edges.add((n, m))
                elif m not in state:
                    visit(m)
            state[n] = 2
            self.order.append(n)

        visit(self.input)
        self.order.reverse()

    def run(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        T, B = x.shape[:2]
        dt = self.dt
        nodes = self.graph.nodes
        previous: dict[str, np.ndarray] = {}
        v: dict[str, np.ndarray] = {}
        history: dict[str, list[np.ndarray]] = {n: [] for n in self.order}
        output = [n for n, node in nodes.items() if isinstance(node, nir.Output)][0]
        for t in range(T):
            now: dict[str, np.ndarray] = {}
            for name in self.order:
                node = nodes[name]
                if isinstance(node, nir.Input):
                    now[name] = np.asarray(x[t], np.float64)
                    history[name].append(now[name])
                    continue
                terms = []
                for src in self.preds[name]:
                    if (src, name) in self.back_edges:
                        terms.append(previous.get(src))
                    else:
                        terms.append(now[src])
                known = [a for a in terms if a is not None]
                i = sum(known[1:], known[0]) if known else None
                now[name] = self._node(name, node, i, v, dt, B)
                history[name].append(now[name])
            previous = now
        return np.stack(history[output]), {n: np.stack(h) for n, h in history.items()}

    @staticmethod
    def _full(value, shape) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, np.float64), shape)

    def _node(self, name: str, node, i: np.ndarray, v: dict, dt: float, B: int) -> np.ndarray:
        if isinstance(node, nir.Output):
            return i
        if isinstance(node, nir.Affine):
            return i @ np.asarray(node.weight, np.float64).T + np.asarray(node.bias, np.float64)
        if isinstance(node, nir.Linear):
            return i @ np.asarray(node.weight, np.float64).T
        if isinstance(node, nir.Scale):
            return i * np.asarray(node.scale, np.float64)
        if isinstance(node, nir.Flatten):
            start, end = int(node.start_dim) + 1, int(node.end_dim)
            end = end + 1 if end >= 0 else i.ndim + end
            return i.reshape(*i.shape[:start], -1, *i.shape[end + 1:])
        if isinstance(node, nir.Conv2d):
            return conv2d(i, node)
        if isinstance(node, nir.AvgPool2d):
            return pool2d(i, node, average=True)
        if isinstance(node, nir.SumPool2d):
            return pool2d(i, node, average=False)
        if isinstance(node, nir.Threshold):
            return (i > np.asarray(node.threshold, np.float64)).astype(np.float64)
        if isinstance(node, (nir.LIF, nir.LI)):
            tau, r, v_leak = (self._full(getattr(node, k), i.shape) for k in ("tau", "r", "v_leak"))
            u = v.get(name, v_leak.copy())
            u = u + dt / tau * (v_leak - u + r * i)
            if isinstance(node, nir.LI):
                v[name] = u
                return u
            z = (u > self._full(node.v_threshold, i.shape)).astype(np.float64)
            v[name] = np.where(z > 0, self._full(node.v_reset, i.shape), u)
            return z
        if isinstance(node, (nir.IF, nir.I)):
            r = self._full(node.r, i.shape)
            start = self._full(node.v_reset, i.shape).copy() if isinstance(node, nir.IF) else np.zeros(i.shape)
            u = v.get(name, start) + dt * r * i
            if isinstance(node, nir.I):
                v[name] = u
                return u
            z = (u > self._full(node.v_threshold, i.shape)).astype(np.float64)
            v[name] = np.where(z > 0, self._full(node.v_reset, i.shape), u)
            return z
        raise NotImplementedError(f"the reference does not simulate {type(node).__name__} ({name}).")
