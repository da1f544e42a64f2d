"""Fixed-point deployment: the numbers an accelerator stores, shared by torch and the simulator.

An event-driven simulator adds a neuron's inputs in the order its spikes arrive; torch's convolution
adds them in another order. In floating point the two sums can differ in the last bit, and a
potential that lands on the threshold then spikes in one and not the other. The hardware does not
store floats anyway: it stores fixed-point numbers. So the network is *deployed* in fixed point:
every weight and bias is rounded to a multiple of 2^-w (``weight_bits`` fractional bits) and every
input to a multiple of 2^-x (``input_bits``), and that same deployed network runs in torch and in
the simulator. Every product and sum is then a multiple of a power of two; as long as its magnitude
stays below 2^(24 - fractional bits) it is exact in float32 (24-bit significand) whatever the order
of addition, and decay by 1/2 (a shift) is exact too (it adds one fractional bit per step). So the
simulator and torch agree bit for bit. :func:`exactness_report` checks the range on a real run.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

__all__ = ["quantize_tensor", "deploy_fixed_point", "quantize_input", "fractional_bits", "exactness_report",
           "FLOAT32_SIGNIFICAND_BITS"]

FLOAT32_SIGNIFICAND_BITS = 24


def _check_bits(name: str, bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 0 <= bits <= 20:
        raise ValueError(f"{name} must be an int in [0, 20] (fractional bits), got {bits!r}.")
    return bits


def quantize_tensor(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Round ``x`` to the nearest multiple of 2^-bits (ties to even), same dtype."""
    bits = _check_bits("bits", bits)
    scale = float(2 ** bits)
    return torch.round(x * scale) / scale


def deploy_fixed_point(model: nn.Module, weight_bits: int = 8) -> nn.Module:
    """A copy of ``model`` whose Conv2d/Linear weights and biases are multiples of 2^-weight_bits.

    ``model`` should be an inference network without BatchNorm (``AtsnVGG.folded()``); the copy is in
    eval mode and remembers ``weight_bits`` as ``model.fixed_point_bits``.
    """
    weight_bits = _check_bits("weight_bits", weight_bits)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}.")
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise ValueError("fold BatchNorm into the convolutions first (AtsnVGG.folded()); the accelerator "
                         "stores one weight and one bias per connection.")
    deployed = copy.deepcopy(model).eval()
    with torch.no_grad():
        for m in deployed.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(quantize_tensor(m.weight, weight_bits))
                if m.bias is not None:
                    m.bias.copy_(quantize_tensor(m.bias, weight_bits))
    deployed.fixed_point_bits = weight_bits
    return deployed


def quantize_input(x: torch.Tensor, input_bits: int = 6) -> torch.Tensor:
    """Inputs as the accelerator receives them: multiples of 2^-input_bits (spikes stay 0/1)."""
    return quantize_tensor(x, input_bits)


def fractional_bits(values, limit: int = 40) -> int:
    """The fewest fractional bits f with every value a multiple of 2^-f (``limit`` + 1 if none <= limit)."""
    v = np.abs(np.asarray(values, dtype=np.float64).ravel())
    v = v[v != 0]
    for f in range(limit + 1):
        scaled = v * 2.0 ** f
        if np.all(scaled == np.floor(scaled)):
            return f
    return limit + 1


def exactness_report(program, x: np.ndarray, max_abs_potential: np.ndarray, T: int) -> list[dict]:
    """Per weight layer: fractional bits of weights, inputs and potentials, largest |potential| and
    the significand bits a float32 needs to hold every potential exactly (<= 24 means exact).

    A potential of layer l after t steps is a sum of products (weight x input) decayed t-1 times;
    with decay d = k/2^s each decay adds s fractional bits. ``max_abs_potential`` comes from a
    simulation (:attr:`SimulationResult.max_abs_potential`).
    """
    rows = []
    for i, layer in enumerate(program.layers):
        wf = max(fractional_bits(layer.weight), fractional_bits(layer.bias))
        xf = fractional_bits(x) if i == 0 else 0
        df = fractional_bits([layer.decay]) if layer.decay else 0
        frac = wf + xf + df * (T - 1)
        peak = float(max_abs_potential[i])
        int_bits = max(0, math.floor(math.log2(peak)) + 1) if peak > 0 else 0
        rows.append({"layer": layer.name, "weight_fraction_bits": wf, "input_fraction_bits": xf,
                     "potential_fraction_bits": frac, "max_abs_potential": peak,
                     "significand_bits_needed": frac + int_bits,
                     "exact_in_float32": frac + int_bits <= FLOAT32_SIGNIFICAND_BITS})
    return rows
