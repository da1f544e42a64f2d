"""Spiking network models, by name: ``build_model(name, num_classes=, input_shape=, T=)``.

Every model takes time-major input ``[T, B, *input_shape]`` and returns per-step outputs
``[T, B, num_classes]``. ``input_shape`` is the shape of *one timestep* (``(C, H, W)``); an
event data set's item shape ``(T, 2, H, W)`` is accepted and its leading T dropped.

Adding a model is one line in :data:`MODELS`: ``"name": builder``, where
``builder(*, num_classes, input_shape, T, **options) -> nn.Module``.
"""

from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from snnlab.checks import check_timesteps
from snnlab.models.small import SpikingCNN, SpikingMLP, TimeFolded, make_neuron, spiking_cnn, spiking_mlp
from snnlab.models import sew_resnet as _sew, spiking_resnet as _spk, seven_b_net as _7b
from snnlab.models.atsn_vgg import atsn_vgg as _atsn_vgg
from snnlab.models.ds_resnet import DSResNet, ds_resnet, ds_resnet20, ds_resnet_small
from snnlab.models.vgg import OTTTVGG, ottt_vgg, ottt_vgg_f

__all__ = ["MODELS", "build_model", "SpikingMLP", "SpikingCNN", "TimeFolded", "make_neuron", "OTTTVGG", "DSResNet"]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "spiking_mlp": spiking_mlp,
    "spiking_cnn": spiking_cnn,
    **{f"{family}{d}": getattr(mod, f"{family}{d}") for family, mod in
       (("sew_resnet", _sew), ("spiking_resnet", _spk), ("plain_resnet", _spk)) for d in (18, 34, 50, 101, 152)},
    "seven_b_net": _7b.seven_b_net,
    "wide_seven_b_net": _7b.wide_seven_b_net,
    "atsn_vgg": _atsn_vgg,
    "ds_resnet": ds_resnet, "ds_resnet20": ds_resnet20, "ds_resnet_small": ds_resnet_small,
    "ottt_vgg": ottt_vgg,
    "ottt_vgg_f": ottt_vgg_f,
}
"""Model name -> builder ``(*, num_classes, input_shape, T, **options) -> nn.Module``."""


def build_model(name: str, *, num_classes: int, input_shape: Sequence[int], T: int, **options) -> nn.Module:
    """Build model ``name`` (see :data:`MODELS`); unknown names list the valid ones."""
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}.")
    check_timesteps("T", T)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 4:  # an event item [T, 2, H, W]: the model sees one frame per step
        shape = shape[1:]
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape must be the positive per-step shape, e.g. (C, H, W); got {tuple(input_shape)}.")
    try:
        return MODELS[name](num_classes=num_classes, input_shape=shape, T=T, **options)
    except TypeError as error:
        raise TypeError(f"bad options for model {name!r}: {error}") from None
