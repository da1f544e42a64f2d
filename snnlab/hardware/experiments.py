"""The experiments the accelerator chapter and ``snnlab simulate`` share: deploy a trained network
in fixed point, run it on the three designs of ATSN's Fig. 2, price it against a GPU, and sweep the
exit thresholds (CL_init, τ_CL) for energy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snnlab.hardware.config import DESIGNS, design
from snnlab.hardware.energy import EnergyTable, GpuModel, HOROWITZ_45NM_TABLE, SATA_SIM_TABLE
from snnlab.hardware.fixed_point import deploy_fixed_point, quantize_input
from snnlab.hardware.simulator import SimulationResult, prepare, simulate

__all__ = ["deploy", "quantization_cost", "compare_designs", "energy_sweep", "table3_analogue", "exactness_checks",
           "NetworkMeasurement", "measure_network", "PAPER_TABLE3"]

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
    (``kind="events"``: ``x`` holds event frames ``[B, T', C, H, W]``), and how many samples the
    rounding changes: ``changed_predictions`` (a different predicted class) and, of those,
    ``gained`` (right only in fixed point) and ``lost`` (right only in float); the accuracy gap is
    ``(gained - lost) / B``."""
    from snnlab.inference import fixed_inference

    deployed, xq = deploy(model, x, weight_bits=weight_bits, input_bits=input_bits)
    out, predictions = {}, {}
    for name, (net, inputs) in {"float": (model, x), "fixed_point": (deployed, xq)}.items():
        decided = rule(fixed_inference(net, inputs, T=T, kind=kind)[0])
        out[f"{name}_accuracy"] = decided.accuracy(y)
        out[f"{name}_mean_steps"] = decided.mean_steps
        predictions[name] = decided.predictions
    y = torch.as_tensor(y)
    right_float, right_fixed = predictions["float"] == y, predictions["fixed_point"] == y
    out["changed_predictions"] = int((predictions["float"] != predictions["fixed_point"]).sum())
    out["gained"] = int((right_fixed & ~right_float).sum())
    out["lost"] = int((right_float & ~right_fixed).sum())
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


def exactness_checks(model, x, result: SimulationResult, rule, *, T: int, kind: str = "static") -> dict[str, bool]:
    """Whether the simulation ``result`` of the fixed-point ``model`` on ``x`` computed exactly what
    torch computes for it: ``outputs`` (the output potentials at every step a sample computed),
    ``exit_steps`` and ``predictions`` (against ``rule``, the :class:`~snnlab.inference.ConfidenceExit`
    with the simulation's thresholds, ``hardware=True``), and ``synaptic_ops`` (the synaptic events
    per layer against eq. 19's count, :class:`~snnlab.inference.SynapticOpCounter`, in an adaptive run)."""
    from snnlab.inference import SynapticOpCounter, adaptive_inference, fixed_inference

    out, _ = fixed_inference(model, x, T=T, kind=kind)
    decided = rule(out)
    computed = ~np.isnan(result.outputs)
    with SynapticOpCounter(model) as counter:
        adaptive_inference(model, x, rule, T=T, kind=kind)
    return {"outputs": bool(np.array_equal(result.outputs[computed], out.double().numpy()[computed])),
            "exit_steps": bool(np.array_equal(result.steps, decided.steps.numpy())),
            "predictions": bool(np.array_equal(result.predictions, decided.predictions.numpy())),
            "synaptic_ops": result.counts("synaptic_ops").tolist() == counter.report().operations}


@dataclass
class NetworkMeasurement:
    """What :func:`measure_network` measured on one trained network (one seed)."""

    values: dict[str, float]
    """Scalars, per inference where that applies: ``float_accuracy``, ``fixed_point_accuracy`` and
    ``changed_predictions``/``gained``/``lost`` (:func:`quantization_cost`), ``mean_steps`` (ATSN
    accelerator), ``ops_saved`` and ``energy_saved`` (1 - ATSN / conventional fixed T),
    ``shift_add_saved`` (1 - ATSN / conventional with the same exit: the decay multiplier),
    ``memory_share`` (DRAM, SRAM and scratchpad energy / total, ATSN), ``at_pe_energy`` (AT unit's
    energy / the PEs'), ``at_cycle_share`` (the AT unit's cycles / all cycles), ``cycles_ratio``
    (ATSN / conventional cycles), ``percent_of_gpu`` and ``fps_ratio`` (:func:`table3_analogue`)."""
    exact: dict[str, bool]
    """:func:`exactness_checks` of the ATSN accelerator's simulation."""
    report: dict
    """:func:`compare_designs`' report on the deployed network."""
    model: object
    """The fixed-point network (:func:`deploy`)."""
    inputs: torch.Tensor
    """The quantised inputs."""


def measure_network(net, x, y, *, T: int, cl_init: float = 0.999, tau_cl: float = 0.999, kind: str = "static",
                    weight_bits: int = 8, input_bits: int = 6, table: EnergyTable = SATA_SIM_TABLE,
                    joule_table: EnergyTable = HOROWITZ_45NM_TABLE, gpu: GpuModel | None = None) -> NetworkMeasurement:
    """Chapter 8's measurements of one trained float network ``net`` on ``(x, y)``: deploy it in fixed
    point, cost the rounding, simulate the designs of Fig. 2, check the ATSN accelerator against
    torch bit for bit, and price it against the GPU model (``table`` for the relative energies,
    ``joule_table`` for joules). Run it on each seed's network to put intervals on every number."""
    from snnlab.inference import ConfidenceExit

    rule = ConfidenceExit(cl_init, tau_cl, hardware=True)
    quant = quantization_cost(net, x, y, rule, T=T, weight_bits=weight_bits, input_bits=input_bits, kind=kind)
    model, xq = deploy(net, x, weight_bits=weight_bits, input_bits=input_bits)
    report = compare_designs(model, xq, y, T=T, cl_init=cl_init, tau_cl=tau_cl, table=table,
                             joule_table=joule_table, gpu=gpu, kind=kind)
    designs, atsn = report["designs"], report["results"]["atsn"]
    a, conv, conv_exit = designs["atsn"], designs["conventional"], designs["conventional_exit"]
    energy = a["energy_per_inference"]
    layers = report["per_layer"]["atsn"]
    unit_sum = lambda key, unit: sum(r[key] for r in layers if r["unit"] == unit)  # noqa: E731
    row = table3_analogue(atsn, report["gpu"], frames=len(y), joule_table=joule_table)
    values = {
        **quant,
        "mean_steps": a["mean_steps"],
        "ops_saved": 1 - a["counts_per_inference"]["synaptic_ops"] / conv["counts_per_inference"]["synaptic_ops"],
        "energy_saved": 1 - energy["total"] / conv["energy_per_inference"]["total"],
        "shift_add_saved": 1 - energy["total"] / conv_exit["energy_per_inference"]["total"],
        "memory_share": sum(energy[k] for k in ("dram", "sram", "scratchpad")) / energy["total"],
        "at_pe_energy": unit_sum("energy", "at") / unit_sum("energy", "pe"),
        "at_cycle_share": unit_sum("cycles", "at") / atsn.cycles_per_inference,
        "cycles_ratio": a["cycles_per_inference"] / conv["cycles_per_inference"],
        "percent_of_gpu": row["percent_of_gpu"],
        "fps_ratio": row["accelerator_fps"] / row["gpu_fps"],
    }
    return NetworkMeasurement(values, exactness_checks(model, xq, atsn, rule, T=T, kind=kind), report, model, xq)
