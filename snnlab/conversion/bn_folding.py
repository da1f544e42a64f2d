"""Fold batch normalisation into the preceding convolution or linear layer, SC-TTFS eq. 24:
``W <- W * gamma / sigma``, ``b <- beta + (b - mu) * gamma / sigma``, ``sigma = sqrt(var + eps)``.

The folded network computes the same function as the unfused one in eval mode (BN with its
running statistics), which is what a converted SNN needs: a spiking layer has weights and a
bias, no normalisation.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["fold_conv_bn", "fold_batchnorm", "has_batchnorm"]

_FOLDABLE = (nn.Conv2d, nn.Linear)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


@torch.no_grad()
def fold_conv_bn(layer: nn.Module, bn: nn.Module) -> nn.Module:
    """A copy of ``layer`` (Conv2d or Linear) with ``bn`` folded in (eq. 24)."""
    if not isinstance(layer, _FOLDABLE):
        raise TypeError(f"can fold BN only into Conv2d or Linear, got {type(layer).__name__}.")
    if not isinstance(bn, _BN):
        raise TypeError(f"expected BatchNorm1d/2d, got {type(bn).__name__}.")
    if bn.running_mean is None:
        raise ValueError("BN without running statistics (track_running_stats=False) cannot be folded.")
    out_features = layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features
    if bn.num_features != out_features:
        raise ValueError(f"BN has {bn.num_features} features but the layer before it has {out_features} outputs.")
    sigma = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(sigma)
    beta = bn.bias if bn.affine else torch.zeros_like(sigma)
    scale = gamma / sigma
    folded = copy.deepcopy(layer)
    folded.weight.copy_(layer.weight * scale.reshape(-1, *([1] * (layer.weight.dim() - 1))))
    bias = layer.bias if layer.bias is not None else torch.zeros_like(sigma)
    new_bias = beta + (bias - bn.running_mean) * scale
    if folded.bias is None:
        folded.bias = nn.Parameter(new_bias.clone())
    else:
        folded.bias.copy_(new_bias)
    return folded


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, _BN) for m in model.modules())


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in which every BN that directly follows a Conv2d/Linear inside an
    ``nn.Sequential`` is folded into it and replaced by ``nn.Identity``; a
    :class:`snnlab.layers.BatchNormNeuron` that directly follows ``TimeFolded(conv)`` has its BN
    folded into the conv and becomes its neuron. The copy is in eval mode (for inference; training
    needs the batch statistics). Raises if a BN is left that could not be folded (e.g. one not
    preceded by a conv)."""
    from snnlab.layers.bn_neuron import BatchNormNeuron
    from snnlab.models.small import TimeFolded

    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for prev, name in zip(names, names[1:]):
            bn, layer = module._modules[name], module._modules[prev]
            if isinstance(bn, _BN) and isinstance(layer, _FOLDABLE):
                module._modules[prev] = fold_conv_bn(layer, bn)
                module._modules[name] = nn.Identity()
            elif (isinstance(bn, BatchNormNeuron) and isinstance(layer, TimeFolded)
                  and isinstance(layer.layers, _FOLDABLE)):
                layer.layers = fold_conv_bn(layer.layers, bn.bn)
                module._modules[name] = bn.neuron
    if has_batchnorm(model):
        raise ValueError("some BatchNorm layers do not directly follow a Conv2d/Linear in an "
                         "nn.Sequential and could not be folded.")
    return model
