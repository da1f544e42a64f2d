"""The experiments the accelerator chapter and ``snnlab simulate`` share: deploy a trained network
in fixed point, run it on the three designs of ATSN's Fig. 2, price it against a GPU, and sweep the
exit thresholds (CL_init, τ_CL) for energy."""

from __future__ import annotations

import numpy as np
import torch

from snnlab.hardware.config import DESIGNS, design
from snnlab.hardware.energy import EnergyTable, GpuModel, HOROWITZ_45NM_TABLE, SATA_SIM_TABLE
from snnlab.hardware.fixed_point import deploy_fixed_point, quantize_input
from snnlab.hardware.simulator import SimulationResult, prepare, simulate

__all__ = ["deploy", "quantization_cost", "compare_designs", "energy_sweep", "table3_analogue", "PAPER_TABLE3"]

PAPER_TABLE3 = [
    # network, data set, GPU FPS, GPU energy (J), accelerator FPS, accelerator energy (J), % of GPU
    ("VGG16", "CIFAR10", 215, 6814, 248, 537.6, 7.88),
    ("VGG16", "CIFAR100", 200, 7499, 228, 543.6, 7.24),
    ("ResNet19", "CIFAR10", 215, 11088, 212, 606.1, 5.46),
    ("ResNet19", "CIFAR100", 172, 13914, 180, 617.2, 4.43),
]
"""ATSN Table 3 as the paper reports it (RTX 3090Ti vs 4 accelerators at 28 nm, 500 MHz; energy
for the test set, 10,000 images)."""


def deploy(model, x: torch.Tensor, *, weight_bits: int = 8, input_bits: int = 6):
    """``(fixed-point copy of model, quantised inputs)`` (see :mod:`snnlab.hardware.fixed_point`)."""
    return deploy_fixed_point(model, weight_bits), quantize_input(x, input_bits)


def quantization_cost(model, x: torch.Tensor, y: torch.Tensor, rule, *, T: int, weight_bits: int = 8,
                      input_bits: int = 6, kind: str = "static") -> dict[str, float]:
    """Accuracy and mean exit step of ``rule`` on the float network and on its fixed-point deployment
    (``kind="events"``: ``x`` holds event frames ``[B, T', C, H, W]``)."""
    from snnlab.inference import fixed_inference

    deployed, xq = deploy(model, x, weight_bits=weight_bits, input_bits=input_bits)
    out = {}
    for name, (net, inputs) in {"float": (model, x), "fixed_point": (deployed, xq)}.items():
        decided = rule(fixed_inference(net, inputs, T=T, kind=kind)[0])
        out[f"{name}_accuracy"] = decided.accuracy(y)
        out[f"{name}_mean_steps"] = decided.mean_steps
    return out


def compare_designs(model, x, y=None, *, T: int, cl_init: float = 0.999, tau_cl: float = 0.999,
                    designs=tuple(DESIGNS), table: EnergyTable = SATA_SIM_TABLE,
                    joule_table: EnergyTable = HOROWITZ_45NM_TABLE, gpu: GpuModel | None = None,
                    kind: str = "static", **config_changes) -> dict:
    """Simulate every design in ``designs`` on ``(x, y)``; summaries + per-layer rows + a GPU estimate.

    Returns ``{"designs": {name: summary (+ accuracy, joules)}, "results": {name: SimulationResult},
    "per_layer": {name: rows}, "gpu": estimate}``. ``config_changes`` apply to every design.
    """
    results: dict[str, SimulationResult] = {}
    summaries, layers = {}, {}
    for name in designs:
        cfg = design(name, **config_changes)
        r = simulate(model, x, T=T, config=cfg, cl_init=cl_init, tau_cl=tau_cl, kind=kind)
        results[name] = r
        s = r.summary(table)
        s["joules_per_inference"] = r.joules_per_inference(joule_table)
        s["joule_table"] = joule_table.name
        if y is not None:
            s["accuracy"] = r.accuracy(np.asarray(y))
        summaries[name] = s
        layers[name] = r.per_layer(table)
    first = next(iter(results.values()))
    program = prepare(model, first.config, tuple(x.shape[1:] if kind == "static" else x.shape[2:])).program
    gpu_est = (gpu or GpuModel()).estimate(program, T)
    return {"designs": summaries, "results": results, "per_layer": layers, "gpu": gpu_est,
            "gpu_model": (gpu or GpuModel()).__dict__ | {"notes": list((gpu or GpuModel()).notes)}}


def energy_sweep(model, x, y, cl_inits, tau_cls, *, T: int, table: EnergyTable = SATA_SIM_TABLE,
                 kind: str = "static", **config_changes) -> dict[str, np.ndarray]:
    """ATSN accelerator over a grid of (CL_init, τ_CL): energy per inference, mean steps, accuracy
    and FPS, each ``[n_cl, n_tau]``; ``layer_energy`` ``[n_cl, n_tau, layers]`` and ``exit_counts``
    ``[n_cl, n_tau, T]`` (samples exiting at each step); ``layers`` the layer names."""
    cfg = design("atsn", **config_changes)
    prep = prepare(model, cfg, tuple(x.shape[1:] if kind == "static" else x.shape[2:]))
    shape = (len(cl_inits), len(tau_cls))
    out = {k: np.zeros(shape) for k in ("energy", "mean_steps", "accuracy", "fps")}
    out["layer_energy"] = np.zeros(shape + (len(prep.program.layers),))
    out["exit_counts"] = np.zeros(shape + (T,), dtype=np.int64)
    for i, cl in enumerate(cl_inits):
        for j, tau in enumerate(tau_cls):
            r = simulate(prep, x, T=T, cl_init=float(cl), tau_cl=float(tau), kind=kind)
            out["energy"][i, j] = r.energy(table)["total"]
            out["mean_steps"][i, j] = r.mean_steps
            out["accuracy"][i, j] = r.accuracy(np.asarray(y))
            out["fps"][i, j] = r.fps
            out["layer_energy"][i, j] = [row["energy"] for row in r.per_layer(table)]
            out["exit_counts"][i, j] = np.bincount(r.steps, minlength=T + 1)[1:]
    out["cl_inits"] = np.asarray(cl_inits, dtype=float)
    out["tau_cls"] = np.asarray(tau_cls, dtype=float)
    out["layers"] = [layer.name for layer in prep.program.layers]
    return out


def table3_analogue(result: SimulationResult, gpu_estimate: dict, *, frames: int,
                    joule_table: EnergyTable = HOROWITZ_45NM_TABLE) -> dict[str, float]:
    """One measured row of Table 3: FPS and energy (J) for ``frames`` images, GPU vs accelerator.

    The accelerator's energy is the simulated per-inference energy priced with ``joule_table``; the
    GPU's comes from :class:`GpuModel` (``gpu_estimate``).
    """
    acc_j = result.joules_per_inference(joule_table) * frames
    gpu_j = gpu_estimate["joules"] * frames
    return {"gpu_fps": gpu_estimate["fps"], "gpu_joules": gpu_j, "accelerator_fps": result.fps,
            "accelerator_joules": acc_j, "percent_of_gpu": 100.0 * acc_j / gpu_j}
