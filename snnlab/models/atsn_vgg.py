"""ATSN's network at this machine's scale: a small VGG-style spiking CNN with a non-reset output.

Layers (per step; time folded into the batch for the stateless ones):

    {Conv3x3(pad 1) [-> BatchNorm] -> LIF -> MaxPool2} per entry of ``channels``
    -> Flatten -> {Linear -> LIF} per entry of ``hidden`` -> Linear -> output layer

* LIF, ATSN eqs. (1)-(2): ``u_{t+1} = τ·u_t·(1 - s_t) + W s_{t+1}``, spike when u reaches V_th,
  hard reset to 0; the input is not decayed. snnlab's ``LIFNode(decay_input=False, v_reset=0)`` with
  ``tau = 1/(1 - decay)`` is exactly this (``decay`` = the paper's τ, default 0.5; the paper does not
  give its value). snnlab fires at ``u >= V_th``, the paper at ``u > V_th``: they differ only when a
  potential equals V_th exactly. Surrogate: the triangle of eq. (14), width V_th.
* Max pooling *after* the neuron: the maximum of binary spikes is their OR, so every weight layer
  after the first receives binary spikes (accumulate-only, as on ATSN's accelerator).
* Output layer: ``output="integrator"`` is ATSN's non-reset neuron, eq. (8)
  (:class:`~snnlab.neurons.NonSpikingIntegrator` with the same decay), whose potential f_t is the
  per-step output; ``output="linear"`` is the plain fully connected readout of the baseline SNN and
  of DTSNN (f_t = W s_t + b).

Per-step inference: :meth:`AtsnVGG.step` runs one timestep ``[B, C, H, W] -> [B, classes]`` with
the same numbers and neuron states as ``model(x[None])[0]`` (bit for bit, tested) and a fraction of
the Python per step (adaptive inference calls the network once per step, so this is its fixed cost).

Deterministic inference path (what an accelerator simulator must reproduce): :meth:`AtsnVGG.folded`
folds every BatchNorm into its conv (``W·γ/σ``, ``β + (b - μ)·γ/σ``, σ = sqrt(var + eps)), giving a
network of Conv2d (with bias), LIF, MaxPool, Linear and the integrator only; :func:`save_atsn_vgg` /
:func:`load_atsn_vgg` store and rebuild it from its options and weights (float32).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from snnlab.checks import check_choice, check_in_range, check_positive
from snnlab.models.small import TimeFolded, _check_input
from snnlab.neurons import LIFNode, NonSpikingIntegrator, StatefulNode
from snnlab.surrogate import Triangle

__all__ = ["AtsnVGG", "SpikeMaxPool2d", "atsn_vgg", "save_atsn_vgg", "load_atsn_vgg"]

_FORMAT = "snnlab.atsn_vgg/1"
_FLATTEN = nn.Flatten().eval()


class SpikeMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` (2x2 windows, stride 2) with a faster path when no gradient is needed.

    The maximum of a 2x2 window is the elementwise maximum of its four stride-2 sub-grids, taken as
    two ``torch.maximum`` of strided views. The result is bit-identical to ``max_pool2d`` (a maximum
    is exact, NaN propagates in both), and on the small maps of this network it is several times
    faster: torch's CPU ``max_pool2d`` computes the index of every maximum for the backward pass and
    was the most expensive operation of inference (profile in ``book/07_atsn.md``). With a gradient
    it falls back to ``max_pool2d``, because ``torch.maximum`` splits the gradient between equal
    inputs (common with binary spikes) where ``max_pool2d`` routes it to one.
    """

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or min(x.shape[-2:]) < 2 or (x.requires_grad and torch.is_grad_enabled()):
            return super().forward(x)
        n, c, h, w = x.shape
        h, w = h // 2, w // 2                               # floor, as MaxPool2d(2)
        y = x[..., : 2 * h, : 2 * w].reshape(n * c * h, 2, w, 2)
        rows = torch.maximum(y[:, 0], y[:, 1])              # [n*c*h, w, 2]
        return torch.maximum(rows[..., 0], rows[..., 1]).reshape(n, c, h, w)


class AtsnVGG(nn.Module):
    """See the module docstring. ``options`` holds every constructor argument (for saving)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, *, channels: Sequence[int] = (8, 16),
                 hidden: Sequence[int] = (), output: str = "integrator", decay: float = 0.5,
                 v_threshold: float = 1.0, bn: bool = True) -> None:
        super().__init__()
        check_choice("output", output, ("integrator", "linear"))
        decay = check_in_range("decay", decay, 0.0, 1.0, high_open=True)
        check_positive("v_threshold", v_threshold)
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(f"AtsnVGG needs per-step input shape (C, H, W), got {self.input_shape}.")
        self.options: dict[str, Any] = dict(input_shape=list(self.input_shape), num_classes=int(num_classes),
                                            channels=[int(c) for c in channels], hidden=[int(h) for h in hidden],
                                            output=output, decay=float(decay), v_threshold=float(v_threshold),
                                            bn=bool(bn))
        c, h, w = self.input_shape
        layers: list[nn.Module] = []
        for out in channels:
            conv: list[nn.Module] = [nn.Conv2d(c, int(out), 3, padding=1, bias=not bn)]
            if bn:
                conv.append(nn.BatchNorm2d(int(out)))
            layers += [TimeFolded(*conv), self._lif()]
            if min(h, w) >= 2:
                layers.append(TimeFolded(SpikeMaxPool2d()))
                h, w = h // 2, w // 2
            c = int(out)
        self.features = nn.Sequential(*layers)
        width = c * h * w
        dense: list[nn.Module] = []
        for units in hidden:
            dense += [nn.Linear(width, int(units)), self._lif()]
            width = int(units)
        self.hidden = nn.Sequential(*dense)
        self.classifier = nn.Linear(width, int(num_classes))
        self.output = NonSpikingIntegrator(decay, step_mode="m") if output == "integrator" else nn.Identity()

    def _lif(self) -> LIFNode:
        d, v_th = self.options["decay"], self.options["v_threshold"]
        return LIFNode(tau=1.0 / (1.0 - d), decay_input=False, v_threshold=v_th, v_reset=0.0,
                       detach_reset=True, surrogate=Triangle(width=v_th), step_mode="m")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]`` -> per-step outputs ``[T, B, num_classes]`` (f_t of ATSN eq. 9)."""
        _check_input(x, self.input_shape)
        return self.output(self.classifier(self.hidden(self.features(x).flatten(2))))

    @torch.no_grad()
    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One inference timestep: ``[B, C, H, W]`` -> ``[B, num_classes]``, continuing the neuron states.

        The same outputs and states as ``self(x[None])[0]``, bit for bit (tested), without gradient.
        The layers are run directly: convolutions and linear layers through their module calls (so
        forward hooks, e.g. :class:`~snnlab.inference.SynapticOpCounter`'s, see them), pooling by
        :class:`SpikeMaxPool2d`, and each LIF layer and the integrator by its module's
        ``single_step_forward`` (the same kernel call as a module call, without the per-call input
        checks; under ``no_grad`` the neuron operations skip autograd's bookkeeping).
        """
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != self.input_shape:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"step() takes one timestep [B, {', '.join(map(str, self.input_shape))}], got {shape}.")
        for layer in self.features:
            x = layer.layers(x) if isinstance(layer, TimeFolded) else layer.single_step_forward(x)
        x = x.flatten(1)
        for layer in self.hidden:
            x = layer.single_step_forward(x) if isinstance(layer, StatefulNode) else layer(x)
        x = self.classifier(x)
        return self.output.single_step_forward(x) if isinstance(self.output, StatefulNode) else x

    def step_layers(self) -> list[nn.Module]:
        """The layers of one timestep in order (what :meth:`step` runs, with an ``nn.Flatten`` between
        the features and the dense part): the fast per-step path of adaptive inference compiles this
        list (:class:`snnlab.inference.stepper.LayerStepper`)."""
        return [*self.features, _FLATTEN, *self.hidden, self.classifier, self.output]

    @torch.no_grad()
    def folded(self) -> "AtsnVGG":
        """An equivalent inference network without BatchNorm (each BN folded into its conv)."""
        options = dict(self.options, bn=False)
        net = AtsnVGG(**{k: v for k, v in options.items() if k not in ("input_shape", "num_classes")},
                      input_shape=options["input_shape"], num_classes=options["num_classes"])
        state = {}
        for name, module in self.named_modules():
            if isinstance(module, TimeFolded) and isinstance(module.layers, nn.Sequential):
                conv, bn = module.layers[0], module.layers[1]
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                state[f"{name}.layers.weight"] = conv.weight * scale[:, None, None, None]
                state[f"{name}.layers.bias"] = bn.bias + (bias - bn.running_mean) * scale
        for key, value in self.state_dict().items():
            if key in net.state_dict() and key not in state:
                state[key] = value
        net.load_state_dict(state)
        return net.eval()


def atsn_vgg(*, num_classes: int, input_shape: Sequence[int], T: int | None = None, **options) -> AtsnVGG:
    """ATSN's small VGG-style network (see :class:`AtsnVGG`)."""
    return AtsnVGG(input_shape, num_classes, **options)


def save_atsn_vgg(model: AtsnVGG, path: str | Path, **metadata) -> Path:
    """Write ``model`` (options + float32 weights + ``metadata``) to ``path`` atomically."""
    from snnlab.training.checkpoint import save_checkpoint

    if not isinstance(model, AtsnVGG):
        raise TypeError(f"save_atsn_vgg saves an AtsnVGG, got {type(model).__name__}.")
    path = Path(path)
    save_checkpoint(path, {"format": _FORMAT, "options": copy.deepcopy(model.options),
                           "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                           "metadata": dict(metadata)})
    return path


def load_atsn_vgg(path: str | Path) -> tuple[AtsnVGG, dict[str, Any]]:
    """Rebuild a network saved by :func:`save_atsn_vgg`; returns ``(model in eval mode, metadata)``."""
    from snnlab.errors import CorruptFileError
    from snnlab.files import load_torch_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved ATSN network at {path}; write one with save_atsn_vgg(model, path).")
    expected = f"an ATSN network saved by snnlab.models.atsn_vgg.save_atsn_vgg (format {_FORMAT})"
    fix = "Save the network again with save_atsn_vgg(model, path), or run snnlab simulate without --model."
    state = load_torch_file(path, expected=expected, fix=fix, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        kind = f"a dict with keys {sorted(map(str, state))[:6]}" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise CorruptFileError.describe(path, expected, fix, f"a torch file holding {kind}")
    try:
        options = dict(state["options"])
        model = AtsnVGG(options.pop("input_shape"), options.pop("num_classes"), **options)
        model.load_state_dict(state["state_dict"])
        return model.eval(), state["metadata"]
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CorruptFileError.describe(path, expected, fix, error) from error
