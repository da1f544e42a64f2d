"""ATSN"s spiking accelerator (ATSN sec. 2.4, Fig. 2): a cycle-level, event-driven Numba simulator
with an energy model, the conventional baselines, and a GPU estimate (chapter 8).

* :mod:`~snnlab.hardware.config`: the accelerator"s parameters and the designs of Fig. 2.
* :mod:`~snnlab.hardware.fixed_point`: the fixed-point deployment shared by torch and the simulator.
* :mod:`~snnlab.hardware.mapping`: a trained network -> layer program -> tiles on the array.
* :mod:`~snnlab.hardware.simulator` (+ :mod:`~snnlab.hardware.kernel`): the simulation and its cost model.
* :mod:`~snnlab.hardware.energy`: per-operation energy tables (SATA-Sim, 45 nm) and the GPU model.

The names below load their modules on first use (:func:`snnlab.lazy.lazy_exports`), so importing
the package (and its ``cli`` module, for ``snnlab --help``) does not import torch or Numba.
"""

from snnlab.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys((
        "DESIGNS", "AcceleratorConfig", "atsn_accelerator", "conventional_accelerator",
        "conventional_with_exit", "design"
    ), "snnlab.hardware.config"),
    **dict.fromkeys((
        "ENERGY_TABLES", "HOROWITZ_45NM_TABLE", "SATA_SIM_TABLE", "EnergyTable", "GpuModel", "network_flops"
    ), "snnlab.hardware.energy"),
    **dict.fromkeys((
        "deploy_fixed_point", "exactness_report", "quantize_input"
    ), "snnlab.hardware.fixed_point"),
    **dict.fromkeys(("COUNTERS",), "snnlab.hardware.kernel"),
    **dict.fromkeys(("NetworkProgram", "compile_network", "map_network"), "snnlab.hardware.mapping"),
    **dict.fromkeys((
        "Prepared", "SimulationResult", "prepare", "reference_simulate", "simulate"
    ), "snnlab.hardware.simulator"),
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
