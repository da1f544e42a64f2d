"""Steppers: a network run one timestep at a time on a batch whose rows come and go.

Adaptive inference (:func:`snnlab.inference.adaptive_inference`) calls the network once per step
on the samples still running, drops the rows of samples that exit and appends rows for samples
that join. A stepper holds what that needs between calls, behind four methods:

* ``add(x, lo, hi)``: append rows for the samples ``x[lo:hi]`` (samples join in order), starting
  at rest;
* ``step(frames, k=1)``: ``k`` timesteps of every row, ``[k·n, C]`` outputs, step-major (row ``i``
  at its s-th step of the call is output ``s·n + i``; ``frames``: the rows' next ``k`` event frames,
  laid out the same way; ``None`` for static input, whose images the stepper keeps);
* ``keep(rows)``: keep only ``rows`` (int64 NumPy indices, in order), dropping the others;
* ``clear()``: no rows, every state at rest.

:class:`ModuleStepper` works for any model: the model's ``step(x_t)`` if its class defines one,
else ``model(x_t[None])[0]``, with the neuron modules' own states (``v``) compacted and extended.

:class:`LayerStepper` is the fast path for a plain chain of layers (``model.step_layers()``:
:meth:`AtsnVGG.step_layers <snnlab.models.atsn_vgg.AtsnVGG.step_layers>`): convolution,
BatchNorm, linear, flatten, IF/LIF neurons, 2x2 max pooling, the non-spiking integrator. It
removes the per-step costs that dominated small batches (profile in ``book/07_atsn.md``):

* the *stateless front* (the layers before the first neuron: conv and BN) of a static image is
  the same at every step, so it runs once per sample, when the sample joins, instead of at each
  of its steps;
* each neuron layer, with the 2x2 max pooling after it, is one serial Numba call
  (:mod:`snnlab.inference.step_kernels`) on NumPy views, instead of the multi-step launch plus
  seven torch operations of pooling; states live in NumPy arrays compacted by indexing;
* conv, BN and linear layers are their ATen operators called directly with the module's tensors
  (the operators a module call reaches, without the module machinery);
* a call of ``k`` steps runs each of these layers once on the ``k·n`` images of the call (and each
  neuron layer ``k`` times, a step at a time): a CPU convolution of a few channels costs less per
  image on more images, so adaptive inference may compute a few steps per call
  (:func:`snnlab.inference.adaptive_inference`'s ``chunk``).

Every number is the one the modules compute (the same ATen operators on the same inputs; the
neurons' own inlined arithmetic; the maximum of spikes is exact), so outputs, exits and
predictions equal the module path's on the same rows bit for bit (tested). (A call on another
number of rows, a chunk of ``k`` steps or another batch, may reach another oneDNN/MKL kernel with
other rounding: see :mod:`snnlab.inference.adaptive`.) The fast path is used only where that
holds: eval mode, no hooks (a :class:`~snnlab.inference.SynapticOpCounter` sees the module path),
CPU float32, the Numba backend, and only the layer types above; anything else gets a
:class:`ModuleStepper`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from snnlab.neurons import BaseNode, IFNode, LIFNode, MLFNode, NonSpikingIntegrator, StatefulNode

__all__ = ["ModuleStepper", "LayerStepper", "make_stepper", "select_states", "add_rest_rows", "rest_value"]


def _batch_dim(node: StatefulNode) -> int:
    return 1 if isinstance(node, MLFNode) else 0


def select_states(nodes: list[StatefulNode], keep: torch.Tensor) -> None:
    """Keep only the samples ``keep`` (int64 indices into the batch) in every neuron's state."""
    if keep.dtype != torch.long or keep.dim() != 1:
        raise ValueError(f"keep must be a 1-D int64 tensor of batch indices, got {keep.dtype} {tuple(keep.shape)}.")
    for m in nodes:
        if m.v is not None:
            m.v = m.v.index_select(_batch_dim(m), keep)


def rest_value(node: StatefulNode) -> float | None:
    """The potential a fresh state starts at (what the neuron operations fill in for ``v=None``):
    ``v_reset``, or 0 for a soft reset, for spiking neurons (every MLF level too); 0 for the
    integrator; None for a state snnlab does not know how to start."""
    if isinstance(node, BaseNode):
        return float(node.params.leak_target)
    if isinstance(node, NonSpikingIntegrator):
        return 0.0
    return None


def add_rest_rows(nodes: list[StatefulNode], count: int) -> None:
    """Append ``count`` samples at rest to every neuron state (new samples joining the batch)."""
    for m in nodes:
        if m.v is not None:
            dim = _batch_dim(m)
            shape = list(m.v.shape)
            shape[dim] = count
            m.v = torch.cat([m.v, m.v.new_full(shape, rest_value(m))], dim)


class ModuleStepper:
    """Any model: its ``step`` method (or a one-step module call) and its neuron modules' states."""

    def __init__(self, model: nn.Module, nodes: list[StatefulNode], kind: str) -> None:
        if callable(getattr(type(model), "step", None)):
            self._call = model.step
        else:
            self._call = lambda xt: model(xt[None])[0]
        self.nodes, self.static = nodes, kind == "static"
        self.images: torch.Tensor | None = None
        self.n = 0

    def add(self, x: torch.Tensor, lo: int, hi: int) -> None:
        if self.n:
            add_rest_rows(self.nodes, hi - lo)
        if self.static:
            self.images = torch.cat([self.images, x[lo:hi]]) if self.n else x[lo:hi]
        self.n += hi - lo

    def step(self, frames: torch.Tensor | None = None, k: int = 1) -> torch.Tensor:
        if k == 1:
            return self._call(self.images if self.static else frames)
        n = self.n
        return torch.cat([self._call(self.images if self.static else frames[s * n:(s + 1) * n]) for s in range(k)])

    def keep(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            self.clear()
            return
        kept = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64))
        select_states(self.nodes, kept)
        if self.static:
            self.images = self.images.index_select(0, kept)
        self.n = len(rows)

    def clear(self) -> None:
        for m in self.nodes:
            m.v = None
        self.images, self.n = None, 0


_REST = np.empty((0, 0), dtype=np.float32)
"""A state with no rows: every row at rest (the kernels start such a layer at its rest value)."""
_NO_POOL = np.empty((0, 1, 1, 1), dtype=np.float32)


def _no_hooks(module: nn.Module) -> bool:
    return not (module._forward_hooks or module._forward_pre_hooks)


def _float32_cpu(module: nn.Module) -> bool:
    for tensors in (module._parameters, module._buffers):
        for t in tensors.values():
            if t is not None and ((t.is_floating_point() and t.dtype != torch.float32) or t.device.type != "cpu"):
                return False
    return True


def _pool_2x2(module: nn.Module) -> bool:
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)
    return (isinstance(module, nn.MaxPool2d) and pair(module.kernel_size) == (2, 2)
            and pair(module.stride or module.kernel_size) == (2, 2) and pair(module.padding) == (0, 0)
            and pair(module.dilation) == (1, 1) and not module.ceil_mode and not module.return_indices)


def _torch_op(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The ATen operator a module call reaches, bound to the module's tensors; None if not supported."""
    if isinstance(module, nn.Conv2d) and type(module) is nn.Conv2d and module.padding_mode == "zeros":
        w, b, args = module.weight, module.bias, (module.stride, module.padding, module.dilation, module.groups)
        return lambda z: torch.conv2d(z, w, b, *args)
    if type(module) is nn.BatchNorm2d and module.running_mean is not None and module.running_var is not None:
        m = module
        return lambda z: torch.batch_norm(z, m.weight, m.bias, m.running_mean, m.running_var, False, 0.0, m.eps,
                                          torch.backends.cudnn.enabled)
    if type(module) is nn.Linear:
        w, b = module.weight, module.bias
        return lambda z: torch.nn.functional.linear(z, w, b)
    if type(module) is nn.Flatten and module.start_dim == 1 and module.end_dim == -1:
        return lambda z: z.flatten(1)
    if _pool_2x2(module):
        return module.forward
    return None


def _unwrap(layers) -> list[nn.Module]:
    """Flatten ``TimeFolded`` wrappers and ``nn.Sequential`` containers into their layers (in order)."""
    from snnlab.models.small import TimeFolded

    out: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, TimeFolded) and _no_hooks(layer):
            out += _unwrap([layer.layers])
        elif type(layer) is nn.Sequential and _no_hooks(layer):
            out += _unwrap(list(layer))
        elif type(layer) is not nn.Identity:
            out.append(layer)
    return out


class LayerStepper:
    """The fast stepper for a chain of layers (module docstring); build it with :meth:`build`."""

    def __init__(self, front: list, body: list, static: bool) -> None:
        self.front, self.body, self.static = front, body, static
        stateful = [op for op in body if op[0] != "torch"]
        self.rests = [float(op[1][3]) if op[0] == "spike" else 0.0 for op in stateful]  # P_LEAK, or 0
        # every state (and, for static input, the front's output per row) is a _Rows; the last
        # entry of self.rows is the input's
        self.rows = [_Rows(rest) for rest in self.rests] + [_Rows(0.0)]
        self.scratch: dict = {}
        self.queue = None              # static input: (x, lo, hi, the front's output for x[lo:hi])
        self.ahead = 0
        self.n = 0

    @classmethod
    def build(cls, model: nn.Module, x: torch.Tensor, kind: str) -> "LayerStepper | None":
        """A stepper for ``model`` (whose class defines ``step_layers()``) on input like ``x``, or None
        where the fast path would not give the module path's numbers exactly (module docstring)."""
        from snnlab.neurons.launch import spiking_vector
        from snnlab.neurons.ops import _charge_code

        if (not callable(getattr(type(model), "step_layers", None)) or model.training
                or x.dtype != torch.float32 or x.device.type != "cpu"
                or torch.nn.modules.module._global_forward_hooks or torch.nn.modules.module._global_forward_pre_hooks
                or not all(_no_hooks(m) and not m.training for m in model.modules())):
            return None
        shape = getattr(model, "input_shape", None)
        if shape is None or tuple(x.shape[1 if kind == "static" else 2:]) != tuple(shape):
            return None
        front: list = []
        body: list = []
        for layer in _unwrap(model.step_layers()):
            if not _float32_cpu(layer):
                return None
            if type(layer) in (LIFNode, IFNode) and layer.backend != "torch":
                p = layer.params
                prm = spiking_vector(torch.float32, p.v_threshold, p.leak_target, 1.0 / p.tau,
                                     layer.surrogate.kernel_spec())
                body.append(["spike", prm, _charge_code(layer.kind, p), not p.soft_reset, False])
            elif type(layer) is NonSpikingIntegrator and layer.backend != "torch":
                body.append(["integrate", np.array([layer.decay], dtype=np.float32)])
            elif isinstance(layer, StatefulNode):
                return None
            else:
                op = _torch_op(layer)
                if op is None:
                    return None
                if _pool_2x2(layer) and body and body[-1][0] == "spike" and not body[-1][4]:
                    body[-1][4] = True                  # pooled inside the neuron's kernel
                elif body:
                    body.append(["torch", op])
                else:
                    front.append(op)
        if not body:
            return None
        return cls(front, body, kind == "static")

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.front:
            x = op(x)
        return x

    @torch.no_grad()
    def add(self, x: torch.Tensor, lo: int, hi: int) -> None:
        for rows in self.rows[:-1]:
            rows.add(self.n, hi - lo)
        if self.static:
            self.rows[-1].add(self.n, hi - lo, self._encoded(x, lo, hi))
        self.n += hi - lo

    def _encoded(self, x: torch.Tensor, lo: int, hi: int) -> np.ndarray:
        """The front's output for samples ``x[lo:hi]`` as ``[hi - lo, N]``. Samples join in order, so
        the front runs on ``max(hi - lo, ahead)`` samples at once and keeps the rest for the next
        joins (``ahead``: the batch slots; a call never computes more samples than that)."""
        q = self.queue
        if q is None or q[0] is not x or not q[1] <= lo < hi <= q[2]:
            kept = q is not None and q[0] is x and q[1] <= lo < q[2]      # the queue holds the first rows
            start = q[2] if kept else lo
            end = min(len(x), max(hi, start + self.ahead))
            z = self._encode(x[start:end]).contiguous()
            self.shape = tuple(z.shape[1:])
            z = z.numpy().reshape(end - start, -1)
            if kept:
                z = np.concatenate([q[3][lo - q[1]:], z])
            q = self.queue = (x, lo, end, z)
        return q[3][lo - q[1]:hi - q[1]]

    def keep(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            self.clear()
            return
        for r in self.rows:
            r.keep(self.n, rows)
        self.n = len(rows)

    def clear(self) -> None:
        for r in self.rows:
            r.clear()
        self.n = 0

    def _buffer(self, key, n: int, shape: tuple) -> np.ndarray:
        """A reused ``[n, *shape]`` float32 array (see :class:`_Rows`)."""
        buf = self.scratch.get(key)
        if buf is None or buf.shape[0] < n or buf.shape[1:] != shape:
            buf = self.scratch[key] = np.empty((max(n, 1), *shape), dtype=np.float32)
        return buf[:n]

    @torch.no_grad()
    def step(self, frames: torch.Tensor | None = None, k: int = 1) -> torch.Tensor:
        from snnlab.inference.step_kernels import integrator_step, spiking_step
        from snnlab.neurons.launch import raise_nonfinite

        n = self.n
        m = k * n                                   # the images of this call, step-major
        if self.static:
            # the same front output at each of the k steps: a neuron reads it k times, unrepeated
            z, shape, shared = self.rows[-1].current(n), self.shape, k > 1
        else:
            t = self._encode(frames).contiguous()
            z, shape, shared = t.numpy().reshape(m, -1), tuple(t.shape[1:]), False
        i = 0
        last = len(self.body) - 1
        for j, op in enumerate(self.body):
            kind = op[0]
            if kind == "torch":
                if shared:
                    z, shared = np.concatenate([z] * k), False
                rows = z.shape[0]
                t = op[1](torch.from_numpy(z).reshape(rows, *shape) if isinstance(z, np.ndarray) else z)
                z, shape = t, tuple(t.shape[1:])
                continue
            x = z.contiguous().numpy().reshape(z.shape[0], -1) if isinstance(z, torch.Tensor) else z
            N = x.shape[1]
            state = self.rows[i]
            if kind == "spike":
                C, H, W = shape if len(shape) == 3 else (N, 1, 1)
                pooled = op[4]
                if pooled:
                    shape = (C, H // 2, W // 2)
                out = np.empty((m, *shape), np.float32) if j == last else self._buffer(j, m, shape)
                what = "neuron input"
            else:
                out = np.empty((m, N), np.float32) if j == last else self._buffer(j, m, (N,))
                what = "integrator input"
            for s in range(k):
                xs = x if shared else x[s * n:(s + 1) * n]
                part = out[s * n:(s + 1) * n]
                v_in, v_out = state.current(n), state.spare(n, N)
                if kind == "spike" and pooled:
                    bad = spiking_step(xs, v_in, op[1], op[2], op[3], v_out, self._buffer(("row", j), 1, (N,)),
                                       part, C, H, W)
                elif kind == "spike":
                    bad = spiking_step(xs, v_in, op[1], op[2], op[3], v_out, part, _NO_POOL, C, H, W)
                else:
                    bad = integrator_step(xs, v_in, op[1], part, v_out)
                if bad:
                    raise_nonfinite(bad, what)
                state.flip()
            z, i, shared = out.reshape(m, -1), i + 1, False
        return torch.from_numpy(z).reshape(m, *shape) if isinstance(z, np.ndarray) else z


class _Rows:
    """One per-row array of a :class:`LayerStepper` (a neuron state, or the front's output of static
    input), ``[n, N]`` float32, in two buffers used in turn and reused from step to step: the kernel
    reads the current one and writes the other, rows are dropped by ``np.take`` into the other.
    (A fresh allocation of a large batch's rows costs more than the step itself: page faults.)
    No rows (``_REST``) means every row is at rest, as a fresh neuron layer is."""

    def __init__(self, rest: float) -> None:
        self.rest = rest
        self.buffers = [_REST, _REST]
        self.which = 0
        self.fresh = True

    def current(self, n: int) -> np.ndarray:
        return _REST if self.fresh else self.buffers[self.which][:n]

    def spare(self, n: int, N: int) -> np.ndarray:
        other = self.buffers[1 - self.which]
        if other.shape[0] < n or other.shape[1] != N:
            other = self.buffers[1 - self.which] = np.empty((n, N), dtype=np.float32)
        return other[:n]

    def flip(self) -> None:
        self.which, self.fresh = 1 - self.which, False

    def add(self, n: int, count: int, values: np.ndarray | None = None) -> None:
        """Append ``count`` rows (``values``, or at rest) after the ``n`` present."""
        if values is None and self.fresh:
            return                                          # still every row at rest
        N = values.shape[1] if self.fresh else self.buffers[self.which].shape[1]
        cur = self.buffers[self.which]
        if cur.shape[0] < n + count or cur.shape[1] != N:
            grown = np.empty((max(n + count, 2 * cur.shape[0]), N), dtype=np.float32)
            if not self.fresh:
                grown[:n] = cur[:n]
            cur = self.buffers[self.which] = grown
        if self.fresh and n:
            cur[:n] = self.rest
        cur[n:n + count] = self.rest if values is None else values
        self.fresh = False

    def keep(self, n: int, rows: np.ndarray) -> None:
        if self.fresh:
            return
        cur = self.buffers[self.which]
        np.take(cur[:n], rows, axis=0, out=self.spare(len(rows), cur.shape[1]))
        self.flip()

    def clear(self) -> None:
        self.fresh = True


def make_stepper(model: nn.Module, nodes: list[StatefulNode], x: torch.Tensor, kind: str, slots: int = 0):
    """The fast :class:`LayerStepper` where it applies (module docstring), else a :class:`ModuleStepper`.
    ``slots``: the most samples computed together (the fast path's front may run that many at once)."""
    stepper = LayerStepper.build(model, x, kind)
    if stepper is None:
        return ModuleStepper(model, nodes, kind)
    stepper.ahead = slots
    return stepper
