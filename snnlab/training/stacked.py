"""Several seeds of one small network trained as one model (grouped convolutions).

A comparison over seeds trains the same tiny network S times. On a CPU each of those runs pays the
per-operation overhead of a tiny network (a convolution of 8 channels, a neuron kernel on a few
thousand elements) S times over. :class:`StackedSeeds` merges S independently initialised copies
into one network whose layers hold the S copies side by side along the channel axis:

* ``Conv2d(c_in, c_out, groups=g)`` becomes ``Conv2d(S·c_in, S·c_out, groups=S·g)`` (seed ``s`` owns
  channel group ``s``), ``BatchNorm2d(c)`` becomes ``BatchNorm2d(S·c)`` (statistics per channel, so
  per seed), ``Linear(i, o)`` becomes :class:`SeedLinear` (S weight matrices);
* ``TDBatchNorm(c)`` (tdBN, statistics per channel over time, batch and space) becomes
  ``TDBatchNorm(S·c)``;
* parameter-free layers (IF/LIF/MLF neurons, pooling, ReLU) work element- or channel-wise and are
  shared; a neuron with a learnable parameter (PLIF's τ) and a spatial attention module (it pools
  over the channels, so each seed must pool over its own) become :class:`PerSeed`, one module per
  seed on its own channels.

Seed ``s`` of the stack computes exactly what copy ``s`` computes alone (tested against the
separate models, forward and gradients), and because no parameter is shared and SGD, momentum,
weight decay and Adam act element-wise, one optimiser step on the stack is S independent steps.
Each seed gets its own inputs: :meth:`StackedSeeds.forward` takes ``[T, S, B, C, H, W]``, so every
seed keeps its own data order (and its own random temporal deletion). Nothing couples the seeds
except that they are run in the same call; gradient clipping over all parameters would couple
them and is not used.

:func:`train_stacked` trains such a stack on tensors held in memory and evaluates every seed on the
whole test set; it returns a :class:`StackedRun` with the per-seed losses, accuracies, steps and
samples seen, ready for :func:`snnlab.analysis.seeds.mean_interval` and friends.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from snnlab.checks import check_positive, check_positive_int
from snnlab.layers import SpatialAttention, TDBatchNorm
from snnlab.neurons import BaseNode, PLIFNode
from snnlab.training.losses import SequenceLoss, build_loss
from snnlab.training.methods import build_method
from snnlab.training.state import reset_model

__all__ = ["SeedLinear", "PerSeed", "StackedSeeds", "SeedsAsBatch", "stack_models", "StackedRun", "train_stacked",
           "LrGrid", "train_lr_grid", "random_temporal_deletion", "layer_firing_rates"]


class SeedLinear(nn.Module):
    """S independent linear layers on ``[..., S·in]`` -> ``[..., S·out]`` (seed-major chunks)."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        shapes = {tuple(m.weight.shape) for m in layers}
        if len(shapes) != 1:
            raise ValueError(f"SeedLinear needs layers of one shape, got {sorted(shapes)}.")
        self.seeds = len(layers)
        self.out_features, self.in_features = next(iter(shapes))
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]).clone())  # [S, out, in]
        has_bias = [m.bias is not None for m in layers]
        if any(has_bias) != all(has_bias):
            raise ValueError("SeedLinear needs all layers with a bias or all without.")
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers]).clone()) if all(has_bias) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.seeds * self.in_features:
            raise ValueError(f"SeedLinear expects a last dimension of {self.seeds}·{self.in_features}, "
                             f"got {tuple(x.shape)}.")
        y = torch.einsum("...si,soi->...so", x.unflatten(-1, (self.seeds, self.in_features)), self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.flatten(-2)

    def extra_repr(self) -> str:
        return f"seeds={self.seeds}, in_features={self.in_features}, out_features={self.out_features}"


class PerSeed(nn.Module):
    """One module per seed, each applied to its own chunk of the channel axis (dim 2 of a
    multi-step ``[T, B, S·C, ...]`` tensor): for neurons with learnable parameters (PLIF)."""

    def __init__(self, modules: Sequence[nn.Module], dim: int = 2) -> None:
        super().__init__()
        self.copies = nn.ModuleList(modules)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = x.chunk(len(self.copies), dim=self.dim)
        if len(chunks) != len(self.copies) or x.shape[self.dim] % len(self.copies):
            raise ValueError(f"PerSeed: dimension {self.dim} of {tuple(x.shape)} does not split into "
                             f"{len(self.copies)} equal chunks.")
        return torch.cat([m(c) for m, c in zip(self.copies, chunks)], dim=self.dim)


def _stack_leaf(name: str, leaves: list[nn.Module]) -> nn.Module | None:
    """The stacked version of one leaf module (None: keep the template's module unchanged)."""
    first, S = leaves[0], len(leaves)
    kind = type(first)
    if isinstance(first, (nn.Conv2d, nn.BatchNorm2d, nn.Linear)) and kind not in (nn.Conv2d, nn.BatchNorm2d, nn.Linear):
        # a subclass computes something else (e.g. OTTT's weight-standardised ScaledWSConv2d): stacking
        # it as the plain layer would silently drop that
        raise TypeError(f"{name}: stack_models cannot stack a {kind.__name__} (a subclass of "
                        f"{kind.__mro__[1].__name__} with its own computation).")
    if isinstance(first, nn.Conv2d):
        if first.padding_mode != "zeros":
            raise ValueError(f"{name}: only zero-padded convolutions can be stacked.")
        conv = nn.Conv2d(S * first.in_channels, S * first.out_channels, first.kernel_size, stride=first.stride,
                         padding=first.padding, dilation=first.dilation, groups=S * first.groups,
                         bias=first.bias is not None)
        with torch.no_grad():
            conv.weight.copy_(torch.cat([m.weight for m in leaves]))
            if conv.bias is not None:
                conv.bias.copy_(torch.cat([m.bias for m in leaves]))
        return conv
    if isinstance(first, (nn.BatchNorm2d, TDBatchNorm)):
        if isinstance(first, TDBatchNorm):  # tdBN: statistics per channel over time, batch and space
            bn = TDBatchNorm(S * first.num_features, v_threshold=first.v_threshold, alpha=first.alpha,
                             eps=first.eps, momentum=first.momentum)
        else:
            bn = nn.BatchNorm2d(S * first.num_features, eps=first.eps, momentum=first.momentum,
                                affine=first.affine, track_running_stats=first.track_running_stats)
        with torch.no_grad():
            for attr in ("weight", "bias", "running_mean", "running_var"):
                if getattr(first, attr) is not None:
                    getattr(bn, attr).copy_(torch.cat([getattr(m, attr) for m in leaves]))
            if first.num_batches_tracked is not None:
                bn.num_batches_tracked.copy_(first.num_batches_tracked)
        return bn
    if isinstance(first, nn.Linear):
        return SeedLinear(leaves)
    if isinstance(first, SpatialAttention):  # pools over channels: each seed over its own
        return PerSeed([copy.deepcopy(m) for m in leaves])
    if isinstance(first, PLIFNode):
        if first.step_mode != "m":
            raise ValueError(f"{name}: only multi-step neurons can be stacked (their channel axis is dim 2).")
        return PerSeed([copy.deepcopy(m) for m in leaves])
    if any(True for _ in first.parameters(recurse=False)) or any(True for _ in first.buffers(recurse=False)):
        raise TypeError(f"{name}: stack_models cannot stack a {type(first).__name__} (it has parameters or "
                        "buffers); it supports Conv2d, BatchNorm2d, Linear, PLIF neurons and parameter-free layers.")
    return None


def stack_models(models: Sequence[nn.Module]) -> nn.Module:
    """One network computing ``len(models)`` copies of one architecture side by side along the
    channel axis (see the module docstring). The copies must have the same structure; their
    weights may differ (each seed's own initialisation). Returns a new module; the inputs are
    not modified."""
    models = list(models)
    if len(models) < 1:
        raise ValueError("stack_models needs at least one model.")
    names = [[n for n, _ in m.named_modules()] for m in models]
    if any(n != names[0] for n in names[1:]):
        raise ValueError("stack_models needs copies of one architecture (the module trees differ).")
    stacked = copy.deepcopy(models[0])
    replacements = []
    for name, module in stacked.named_modules():
        if name == "" or isinstance(module, PerSeed) or any(name.startswith(r + ".") for r, _ in replacements):
            continue
        if any(True for _ in module.children()) and not isinstance(module, (BaseNode, SpatialAttention)):
            continue
        new = _stack_leaf(name, [m.get_submodule(name) for m in models])
        if new is not None:
            replacements.append((name, new))
    for name, new in replacements:
        parent_name, _, child = name.rpartition(".")
        setattr(stacked.get_submodule(parent_name) if parent_name else stacked, child, new)
    return stacked


class StackedSeeds(nn.Module):
    """``S`` copies of a network, built by ``build()`` under ``torch.manual_seed(seed)`` for each
    seed, run as one (:func:`stack_models`).

    ``forward(x)``: ``x`` is ``[T, S, B, C, ...]`` (seed ``s`` reads ``x[:, s]``), the output
    ``[T, S, B, K]``. :meth:`copy_of` gives seed ``s``'s network as a standalone module.
    A network that records its per-step input shape in ``input_shape`` (snnlab's ResNets and
    7B-Nets check it) gets the stacked channel count.
    """

    def __init__(self, build: Callable[[], nn.Module], seeds: Sequence[int]) -> None:
        super().__init__()
        self.seeds = [int(s) for s in seeds]
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}.")
        copies = []
        for seed in self.seeds:
            torch.manual_seed(seed)
            copies.append(build())
        self._template = [copy.deepcopy(copies[0])]  # a plain list: not a submodule, not trained
        self.net = stack_models(copies)
        shape = getattr(self.net, "input_shape", None)
        if shape is not None:
            self.net.input_shape = (len(self.seeds) * shape[0], *shape[1:])

    @property
    def n(self) -> int:
        return len(self.seeds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 4 or x.shape[1] != self.n:
            raise ValueError(f"StackedSeeds expects [T, S={self.n}, B, C, ...], got {tuple(x.shape)}.")
        T, S, B = x.shape[:3]
        packed = x.transpose(1, 2).flatten(2, 3)  # [T, B, S·C, ...], seed-major channels
        out = self.net(packed)  # [T, B, S·K]
        return out.unflatten(-1, (S, -1)).transpose(1, 2)  # [T, S, B, K]

    def copy_of(self, index: int) -> nn.Module:
        """Seed ``seeds[index]``'s network alone, with its current (trained) weights."""
        if not 0 <= index < self.n:
            raise IndexError(f"index must be in [0, {self.n}), got {index}.")
        single = copy.deepcopy(self._template[0])
        S = self.n
        stacked = dict(self.net.named_modules())
        per_seed = [n for n, m in stacked.items() if isinstance(m, PerSeed)]
        for name, module in single.named_modules():
            src = stacked.get(name)
            if isinstance(src, PerSeed):
                src_module = src.copies[index]
                module.load_state_dict(src_module.state_dict())
                continue
            if any(name.startswith(p + ".") for p in per_seed):  # inside a PerSeed module: loaded with it
                continue
            own = dict(module.named_parameters(recurse=False))
            own.update(dict(module.named_buffers(recurse=False)))
            for attr, tensor in own.items():
                value = getattr(src, attr)
                if isinstance(src, SeedLinear):
                    part = value[index]
                elif attr == "num_batches_tracked":
                    part = value
                else:
                    part = value.chunk(S, dim=0)[index]
                with torch.no_grad():
                    tensor.copy_(part)
        return single


def random_temporal_deletion(x: torch.Tensor, keep: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """SEW ResNet's random temporal deletion for a batch ``[T, N, ...]``: each sample keeps
    ``keep`` of its T frames, chosen at random and kept in order (section A.2)."""
    T, N = x.shape[:2]
    if not 1 <= keep <= T:
        raise ValueError(f"keep must be in [1, T={T}], got {keep}.")
    idx = torch.rand(N, T, generator=generator).argsort(dim=1)[:, :keep].sort(dim=1).values  # [N, keep]
    gather = idx.T.reshape(keep, N, *([1] * (x.dim() - 2))).expand(keep, N, *x.shape[2:])
    return torch.gather(x, 0, gather)


class SeedsAsBatch(nn.Module):
    """A :class:`StackedSeeds` seen as one network on ``[T, S·b, ...]`` -> ``[T, S·b, K]`` (seed-major
    batch: samples ``s·b .. s·b + b - 1`` are seed ``s``'s), so that any training method's
    ``train_step`` can run on it. Holds the stack as a submodule (no copy)."""

    def __init__(self, stack: StackedSeeds) -> None:
        super().__init__()
        self.stack = stack

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        S = self.stack.n
        if x.dim() < 3 or x.shape[1] % S:
            raise ValueError(f"SeedsAsBatch expects [T, S·b, ...] with S={S}, got {tuple(x.shape)}.")
        out = self.stack(x.unflatten(1, (S, -1)))  # [T, S, b, K]
        return out.flatten(1, 2)


class _SummedOverSeeds(SequenceLoss):
    """``S`` times a sequence loss on a seed-major batch of ``S`` equal parts: the sum over seeds of
    each seed's own mean loss (the losses here average over the batch), so a seed's gradient does
    not depend on how many seeds share the stack."""

    def __init__(self, base: SequenceLoss, S: int) -> None:
        self.base, self.S = base, S
        self.name, self.decomposable = base.name, base.decomposable

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.S * self.base.loss(outputs, target)

    def step_loss(self, output_t: torch.Tensor, target: torch.Tensor, t: int, T: int) -> torch.Tensor:
        return self.S * self.base.step_loss(output_t, target, t, T)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.base.predict(outputs)


@dataclass
class StackedRun:
    """What :func:`train_stacked` returns: one entry per seed throughout."""

    seeds: list[int]
    test_accuracy: list[float]
    """On the whole test set, after the last step."""
    train_loss: torch.Tensor
    """``[steps, S]``: each seed's training loss at every step."""
    train_accuracy: list[float]
    """Each seed's accuracy on its training batches of the last epoch."""
    steps: int
    """Optimiser steps per seed."""
    samples: int
    """Training samples each seed has seen (steps x batch, the last batch of an epoch may be short)."""
    test_samples: int
    seconds: float
    cpu_seconds: float
    model: StackedSeeds
    test_curve: list[list[float]] = field(default_factory=list)
    """Each seed's test accuracy after every epoch (``[epochs][S]``)."""
    diverged: list[int | None] = field(default_factory=list)
    """The step at which each seed's weights or loss became non-finite (None: never). A diverged
    seed is frozen at zero weights from then on (its accuracy is then that of a constant guess)."""

    lr: list[float] = field(default_factory=list)
    """Each seed's (peak) learning rate."""
    indices: list[int] | None = None
    """Where this run's seeds sit in :attr:`model` (None: seeds ``0 .. S-1``; see :meth:`subset`)."""
    models: list[StackedSeeds] | None = None
    """With :meth:`join`: the stack each seed lives in (``indices`` then index into it)."""

    def final_loss(self, last: int = 20) -> list[float]:
        """Each seed's mean training loss over its ``last`` steps."""
        return self.train_loss[-last:].mean(0).tolist()

    def network(self, index: int) -> nn.Module:
        """Seed ``seeds[index]``'s trained network alone (:meth:`StackedSeeds.copy_of`)."""
        if not 0 <= index < len(self.seeds):
            raise IndexError(f"index must be in [0, {len(self.seeds)}), got {index}.")
        stack = self.model if self.models is None else self.models[index]
        return stack.copy_of(index if self.indices is None else self.indices[index])

    def subset(self, indices: Sequence[int]) -> "StackedRun":
        """The same run restricted to the seeds at ``indices`` (e.g. one learning rate of a grid).
        The stacked model is shared, not copied; :meth:`network` maps the indices."""
        idx = [int(i) for i in indices]
        if not idx or any(not 0 <= i < len(self.seeds) for i in idx):
            raise IndexError(f"indices must lie in [0, {len(self.seeds)}), got {idx}.")
        base = list(range(len(self.seeds))) if self.indices is None else self.indices
        pick = lambda v: [v[i] for i in idx]  # noqa: E731
        return StackedRun(
            seeds=pick(self.seeds), test_accuracy=pick(self.test_accuracy), train_loss=self.train_loss[:, idx],
            train_accuracy=pick(self.train_accuracy), steps=self.steps, samples=self.samples,
            test_samples=self.test_samples, seconds=self.seconds, cpu_seconds=self.cpu_seconds, model=self.model,
            test_curve=[pick(c) for c in self.test_curve], diverged=pick(self.diverged),
            lr=pick(self.lr) if self.lr else [], indices=[base[i] for i in idx],
            models=None if self.models is None else pick(self.models))

    @staticmethod
    def join(runs: Sequence["StackedRun"]) -> "StackedRun":
        """One run holding the seeds of several runs of the same schedule (same steps and samples),
        in order; :meth:`network` finds each seed in its own stack. Times add up."""
        runs = list(runs)
        if not runs:
            raise ValueError("join needs at least one run.")
        if len({(r.steps, r.samples, r.test_samples, len(r.test_curve)) for r in runs}) != 1:
            raise ValueError("join needs runs of one schedule (the same steps, samples, test set and evaluations).")
        cat = lambda name: [v for r in runs for v in getattr(r, name)]  # noqa: E731
        where = [(r.model if r.models is None else r.models[i], i if r.indices is None else r.indices[i])
                 for r in runs for i in range(len(r.seeds))]
        return StackedRun(
            seeds=cat("seeds"), test_accuracy=cat("test_accuracy"),
            train_loss=torch.cat([r.train_loss for r in runs], dim=1), train_accuracy=cat("train_accuracy"),
            steps=runs[0].steps, samples=runs[0].samples, test_samples=runs[0].test_samples,
            seconds=sum(r.seconds for r in runs), cpu_seconds=sum(r.cpu_seconds for r in runs), model=runs[0].model,
            test_curve=[[v for c in cs for v in c] for cs in zip(*(r.test_curve for r in runs))],
            diverged=cat("diverged"), lr=cat("lr"), indices=[i for _, i in where], models=[m for m, _ in where])


def _seed_tensors(model: StackedSeeds, seed_index: int, *, grads: bool = False) -> list[torch.Tensor]:
    """Views of every parameter and buffer of seed ``seed_index`` (or of the parameters' gradients,
    with ``grads``): stacked tensors are seed-major along their first dimension, and each PerSeed
    copy belongs to one seed."""
    S, views = model.n, []
    owned = {id(m) for q in model.net.modules() if isinstance(q, PerSeed) for m in q.copies.modules()}
    for module in model.net.modules():
        if isinstance(module, PerSeed):
            tensors = list(module.copies[seed_index].parameters())
            views += [t.grad for t in tensors if t.grad is not None] if grads else tensors
            continue
        if id(module) in owned:
            continue
        tensors = list(module.parameters(recurse=False))
        if grads:
            tensors = [t.grad for t in tensors if t.grad is not None]
        else:
            tensors += [t for name, t in module.named_buffers(recurse=False) if name != "num_batches_tracked"]
        views += [t.view(S, -1)[seed_index] for t in tensors if t.dim() > 0]
    return views


def _freeze_seed(model: StackedSeeds, opt: torch.optim.Optimizer, seed_index: int) -> None:
    """Set a diverged seed's weights, statistics and optimiser state to zero (running variance 1)."""
    with torch.no_grad():
        for t in _seed_tensors(model, seed_index):
            t.zero_()
        for module in model.net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_var is not None:
                module.running_var.view(model.n, -1)[seed_index].fill_(1.0)
        for state in opt.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] % model.n == 0:
                    value.view(model.n, -1)[seed_index].zero_()
        for module in model.net.modules():  # PerSeed copies' optimiser state
            if isinstance(module, PerSeed):
                for p in module.copies[seed_index].parameters():
                    for value in opt.state.get(p, {}).values():
                        if isinstance(value, torch.Tensor):
                            value.zero_()


def _forward_guarded(model: StackedSeeds, opt, x: torch.Tensor, diverged: list, step: int) -> torch.Tensor:
    """``model(x)``; if a seed's weights have grown so large that its potentials overflow (the
    neurons reject non-finite input), freeze the seeds with the largest weights and run again."""
    while True:
        reset_model(model)
        try:
            return model(x)
        except ValueError as error:
            if "non-finite" not in str(error):
                raise
            live = [s for s in range(model.n) if diverged[s] is None]
            if not live:
                raise
            size = {s: max(float(t.abs().max()) for t in _seed_tensors(model, s) if t.numel()) for s in live}
            worst = max(size, key=size.get)
            diverged[worst] = step
            _freeze_seed(model, opt, worst)


def _finite(views: list[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in views)


def _scale_seed_gradients(model: StackedSeeds, factors: Sequence[float], weight_decay: float) -> None:
    """Make one SGD step with learning rate ``lr`` act as a step with ``factors[s] * lr`` on seed
    ``s``: SGD (with momentum, dampening, Nesterov) is linear in ``grad + weight_decay * p``, so
    scaling that sum by ``c`` scales the momentum buffer and the update by ``c``. The gradient
    becomes ``c * g + (c - 1) * weight_decay * p``."""
    S = model.n
    owner = {id(p): s for q in model.net.modules() if isinstance(q, PerSeed)
             for s, m in enumerate(q.copies) for p in m.parameters()}
    f = torch.tensor([float(c) for c in factors])
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is None:
                continue
            if id(p) in owner:
                c = float(f[owner[id(p)]])
                p.grad.mul_(c)
                if weight_decay:
                    p.grad.add_(p, alpha=(c - 1.0) * weight_decay)
                continue
            g = p.grad.view(S, -1)
            g.mul_(f[:, None].to(g.dtype))
            if weight_decay:
                g.add_(p.view(S, -1) * ((f - 1.0) * weight_decay)[:, None].to(g.dtype))


def _cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def train_stacked(
    build: Callable[[], nn.Module],
    seeds: Sequence[int],
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    T: int | None = None,
    epochs: int = 1,
    batch_size: int = 32,
    optimizer: str = "sgd",
    lr: float | Sequence[float] = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    rtd_T: int | None = None,
    eval_every_epoch: bool = False,
    eval_batch: int = 450,
    method: str = "bptt",
    loss: str = "sdt",
    loss_options: dict | None = None,
) -> StackedRun:
    """Train ``len(seeds)`` copies of ``build()`` as one :class:`StackedSeeds`, by default with BPTT
    and the cross-entropy of the mean output over time (SEW ResNet's loss).

    ``method`` and ``loss`` (with ``loss_options``) take any pair that
    :func:`snnlab.training.build_method` and :func:`snnlab.training.build_loss` accept, e.g.
    ``method="sltt", loss="tet"``: the method's own ``train_step`` then runs on the stack, seen as
    one network whose batch holds every seed's samples (:class:`SeedsAsBatch`), with the loss
    multiplied by the number of seeds so that each seed's gradient is that of its own mean loss.

    ``data`` is ``(train_x, train_y, test_x, test_y)`` held in memory: static images ``[N, C, H, W]``
    (repeated over ``T`` steps) or event frames ``[N, T, C, H, W]`` (``T`` taken from them).
    Seed ``s`` initialises its copy with ``torch.manual_seed(s)`` and draws its own order of the
    training set every epoch (and, with ``rtd_T``, its own random temporal deletion of event
    frames). ``optimizer``: ``"sgd"`` (with ``momentum``) or ``"adam"``; ``schedule``: ``"cosine"``
    (per step, to 0 at the end) or ``"none"``. ``lr`` is one learning rate, or one per seed (SGD
    only: each seed then takes exactly the steps it would take alone at its own rate, which is how
    :func:`train_lr_grid` trains a grid of learning rates as one stack). Every seed is evaluated on the whole test set.
    A seed whose loss, gradients or weights become non-finite is recorded in ``diverged`` and
    frozen at zero weights (the others train on); its network then outputs a constant.
    """
    train_x, train_y, test_x, test_y = data
    events = train_x.dim() == 5
    if events:
        T = train_x.shape[1]
    elif T is None:
        raise ValueError("static images need T (the number of steps each image is shown).")
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    lrs = [float(v) for v in lr] if isinstance(lr, (list, tuple)) else [float(lr)] * len(seeds)
    if len(lrs) != len(seeds):
        raise ValueError(f"lr must be one number or one per seed ({len(seeds)}), got {len(lrs)}.")
    for v in lrs:
        check_positive("lr", v)
    if len(set(lrs)) > 1 and optimizer != "sgd":
        raise ValueError("one learning rate per seed needs optimizer='sgd' (Adam's step does not scale with the "
                         f"gradient), got {optimizer!r}.")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}.")
    if schedule not in ("cosine", "none"):
        raise ValueError(f"schedule must be 'cosine' or 'none', got {schedule!r}.")
    if rtd_T is not None and not events:
        raise ValueError("rtd_T (random temporal deletion) applies to event frames [N, T, C, H, W] only.")

    base_loss = build_loss(loss, **(loss_options or {}))
    custom = (method, loss, loss_options or {}) != ("bptt", "sdt", {})
    trainer = build_method(method) if custom else None
    if trainer is not None and trainer.name.startswith("ottt"):
        raise ValueError(f"train_stacked cannot run {method!r}: OTTT traces the presynaptic input of Conv2d/Linear "
                         "layers, and a stack's SeedLinear is not one of them; use 'bptt', 'sltt' or 'sltt_k'.")
    if trainer is not None:
        trainer.check_loss(base_loss)

    t0, c0 = time.perf_counter(), _cpu_seconds()
    model = StackedSeeds(build, seeds)
    S, N = model.n, len(train_y)
    as_batch, summed = SeedsAsBatch(model), _SummedOverSeeds(base_loss, S)
    params = list(model.parameters())
    peak = max(lrs)
    factors = [v / peak for v in lrs] if len(set(lrs)) > 1 else None
    opt = (torch.optim.SGD(params, lr=peak, momentum=momentum, weight_decay=weight_decay) if optimizer == "sgd"
           else torch.optim.Adam(params, lr=peak, weight_decay=weight_decay))
    per_epoch = math.ceil(N / batch_size)
    total = epochs * per_epoch
    sched = (torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / total)))
             if schedule == "cosine" else None)
    gens = [torch.Generator().manual_seed(10_000 + s) for s in model.seeds]  # each seed's data order
    rtd_gen = torch.Generator().manual_seed(20_000 + model.seeds[0])
    losses, curve, samples, step = [], [], 0, 0
    diverged: list[int | None] = [None] * S
    train_correct = torch.zeros(S)
    for epoch in range(epochs):
        orders = torch.stack([torch.randperm(N, generator=g) for g in gens])  # [S, N]
        train_correct.zero_()
        model.train()
        for start in range(0, N, batch_size):
            idx = orders[:, start:start + batch_size]  # [S, b]
            b = idx.shape[1]
            x = train_x[idx.flatten()]  # [S·b, ...]
            y = train_y[idx].long()  # [S, b]
            if events:
                x = x.transpose(0, 1)  # [T, S·b, C, H, W]
                if rtd_T is not None:
                    x = random_temporal_deletion(x, rtd_T, generator=rtd_gen)
                x = x.unflatten(1, (S, b))
            else:
                x = x.unflatten(0, (S, b)).unsqueeze(0).expand(T, *([-1] * (x.dim() + 1)))
            if trainer is None:
                out = _forward_guarded(model, opt, x, diverged, step).mean(0)  # [S, b, K]
                per_seed = nn.functional.cross_entropy(out.flatten(0, 1), y.flatten(),
                                                       reduction="none").view(S, b).mean(1)
                opt.zero_grad(set_to_none=True)
                per_seed.sum().backward()  # each seed's gradient is that of its own mean loss
            else:
                opt.zero_grad(set_to_none=True)
                result = trainer.train_step(as_batch, x.flatten(1, 2), y.flatten(), summed, None)
                outputs = result.outputs.unflatten(1, (S, b))  # [T, S, b, K]
                with torch.no_grad():
                    per_seed = torch.stack([base_loss(outputs[:, s], y[s]) for s in range(S)])
                out = outputs.mean(0)
            for s in range(S):
                if diverged[s] is None and not (bool(torch.isfinite(per_seed[s]))
                                                and _finite(_seed_tensors(model, s, grads=True))):
                    diverged[s] = step
                if diverged[s] is not None:
                    for g in _seed_tensors(model, s, grads=True):
                        g.zero_()
            if factors is not None:
                _scale_seed_gradients(model, factors, weight_decay)
            opt.step()
            for s in range(S):
                if diverged[s] is None and not _finite(_seed_tensors(model, s)):
                    diverged[s] = step
                if diverged[s] == step:
                    _freeze_seed(model, opt, s)
            if sched is not None:
                sched.step()
            losses.append(per_seed.detach())
            train_correct += (out.argmax(-1) == y).float().sum(1)
            samples += b
            step += 1
        if eval_every_epoch or epoch == epochs - 1:
            curve.append(evaluate_stacked(model, test_x, test_y, T=T, batch=eval_batch))
    return StackedRun(
        seeds=model.seeds, test_accuracy=curve[-1], train_loss=torch.stack(losses),
        train_accuracy=(train_correct / N).tolist(), steps=step, samples=samples, test_samples=len(test_y),
        seconds=time.perf_counter() - t0, cpu_seconds=_cpu_seconds() - c0, model=model, test_curve=curve,
        diverged=diverged, lr=lrs)


@dataclass
class LrGrid:
    """What :func:`train_lr_grid` returns."""

    lrs: list[float]
    """The grid, ascending."""
    validation_accuracy: list[list[float]]
    """``[lr][seed]``: accuracy on the validation split (carved from the training set)."""
    best_lr: float
    """The rate with the highest mean validation accuracy (ties: the smaller rate)."""
    run: StackedRun
    """The seeds trained at ``best_lr`` (test accuracy on the whole test set)."""
    full: StackedRun
    """Every (rate, seed) trained for the choice, rate-major (only the selection seeds, see
    ``selection_seeds``)."""
    train_samples: int
    validation_samples: int

    def mean_validation(self) -> list[float]:
        return [sum(v) / len(v) for v in self.validation_accuracy]


def train_lr_grid(
    build: Callable[[], nn.Module],
    seeds: Sequence[int],
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    lrs: Sequence[float],
    validation: float = 0.2,
    split_seed: int = 0,
    selection_seeds: int | None = None,
    **options,
) -> LrGrid:
    """Pick the learning rate of ``build()`` from the grid ``lrs`` on a validation split of the
    *training* set, with every seed at every rate, and report the chosen rate's seeds on the test set.

    A fraction ``validation`` of the training set (a fixed random split, ``split_seed``) is held out;
    every (rate, seed) pair trains on the rest as one stack (:func:`train_stacked` with one learning
    rate per copy), rate ``i`` with seed ``seeds[j]`` initialised from seed ``1000 * i + seeds[j]``
    (a stack needs distinct seeds). The rate with the best mean validation accuracy over its seeds
    is chosen; the test set plays no part in the choice. ``options`` go to :func:`train_stacked`
    (SGD only).

    ``selection_seeds=k`` (cheaper) chooses with the first ``k`` seeds only, then trains the other
    seeds at the chosen rate alone (same split, same schedule), and reports all of them: the same
    networks as the full grid would give for those seeds, at a fraction of the cost (with ``rtd_T``
    the random temporal deletion is drawn per stack, so there only its distribution is the same)."""
    grid = sorted(float(v) for v in lrs)
    if not grid or len(set(grid)) != len(grid):
        raise ValueError(f"lrs must be distinct and at least one, got {list(lrs)}.")
    if not 0 < validation < 1:
        raise ValueError(f"validation must be a fraction in (0, 1), got {validation}.")
    if options.get("optimizer", "sgd") != "sgd":
        raise ValueError("train_lr_grid trains one learning rate per copy, which needs optimizer='sgd'.")
    seeds = [int(s) for s in seeds]
    if any(not 0 <= s < 1000 for s in seeds):
        raise ValueError(f"train_lr_grid needs seeds in [0, 1000), got {seeds}.")
    train_x, train_y, test_x, test_y = data
    n_val = int(round(validation * len(train_y)))
    if not 0 < n_val < len(train_y):
        raise ValueError(f"validation={validation} of {len(train_y)} training samples leaves no split.")
    order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(split_seed))
    val_idx, fit_idx = order[:n_val], order[n_val:]
    k = len(seeds) if selection_seeds is None else int(selection_seeds)
    if not 1 <= k <= len(seeds):
        raise ValueError(f"selection_seeds must be in [1, {len(seeds)}], got {selection_seeds}.")
    chosen_by, rest = seeds[:k], seeds[k:]
    fit_data = (train_x[fit_idx], train_y[fit_idx], test_x, test_y)
    ids = [1000 * i + s for i in range(len(grid)) for s in chosen_by]
    per_copy = [lr for lr in grid for _ in chosen_by]
    full = train_stacked(build, ids, fit_data, lr=per_copy, **options)
    T = options.get("T") if train_x.dim() != 5 else train_x.shape[1]
    val = evaluate_stacked(full.model, train_x[val_idx], train_y[val_idx], T=T,
                           batch=options.get("eval_batch", 450))
    val_grid = [val[i * k:(i + 1) * k] for i in range(len(grid))]
    means = [sum(v) / k for v in val_grid]
    best = max(range(len(grid)), key=lambda i: (means[i], -i))
    run = full.subset(range(best * k, (best + 1) * k))
    if rest:
        others = train_stacked(build, [1000 * best + s for s in rest], fit_data, lr=grid[best], **options)
        run = StackedRun.join([run, others])
    return LrGrid(lrs=grid, validation_accuracy=val_grid, best_lr=grid[best], run=run, full=full,
                  train_samples=len(fit_idx), validation_samples=n_val)


@torch.no_grad()
def evaluate_stacked(model: StackedSeeds, x: torch.Tensor, y: torch.Tensor, *, T: int, batch: int = 450) -> list[float]:
    """Each seed's accuracy on the whole of ``(x, y)`` (eval mode, argmax of the mean output)."""
    was = model.training
    model.eval()
    correct = torch.zeros(model.n)
    try:
        for start in range(0, len(y), batch):
            xb, yb = x[start:start + batch], y[start:start + batch].long()
            if xb.dim() == 5:  # events [b, T, C, H, W]
                xs = xb.transpose(0, 1).unsqueeze(1).expand(-1, model.n, *([-1] * (xb.dim() - 1)))
            else:
                xs = xb.unsqueeze(0).unsqueeze(0).expand(T, model.n, *([-1] * xb.dim()))
            reset_model(model)
            pred = model(xs).mean(0).argmax(-1)  # [S, b]
            correct += (pred == yb).float().sum(1)
    finally:
        model.train(was)
        reset_model(model)
    return (correct / len(y)).tolist()


@torch.no_grad()
def layer_firing_rates(model: StackedSeeds, x: torch.Tensor) -> dict[str, list[float]]:
    """Mean output of every spiking-neuron layer per seed, on inputs ``x`` ``[T, S, B, ...]``:
    ``{layer name: [rate of seed 0, ...]}`` (a diagnosis of silent or saturated layers)."""
    rates: dict[str, list[float]] = {}
    hooks = []
    S = model.n

    def hook(name):
        def fn(module, inputs, output):
            rates[name] = [float(c.mean()) for c in output.detach().chunk(S, dim=2)]
        return fn

    per_seed = [n for n, q in model.net.named_modules() if isinstance(q, PerSeed)]
    for name, m in model.net.named_modules():
        inside = any(name.startswith(p + ".") for p in per_seed)
        if isinstance(m, (BaseNode, PerSeed)) and not inside:
            hooks.append(m.register_forward_hook(hook(name)))
    was = model.training
    model.eval()
    try:
        reset_model(model)
        model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
        reset_model(model)
    return rates
