"""ATSN's spiking accelerator (ATSN sec. 2.4, Fig. 2): a cycle-level, event-driven Numba simulator
with an energy model, the conventional baselines, and a GPU estimate (chapter 8).

* :mod:`~snnlab.hardware.config`: the accelerator's parameters and the designs of Fig. 2.
* :mod:`~snnlab.hardware.fixed_point`: the fixed-point deployment shared by torch and the simulator.
* :mod:`~snnlab.hardware.mapping`: a trained network -> layer program -> tiles on the array.
* :mod:`~snnlab.hardware.simulator` (+ :mod:`~snnlab.hardware.kernel`): the simulation and its cost model.
* :mod:`~snnlab.hardware.energy`: per-operation energy tables (SATA-Sim, 45 nm) and the GPU model.
"""

from snnlab.hardware.config import (
    DESIGNS, AcceleratorConfig, atsn_accelerator, conventional_accelerator, conventional_with_exit, design,
)
from snnlab.hardware.energy import (
    ENERGY_TABLES, HOROWITZ_45NM_TABLE, SATA_SIM_TABLE, EnergyTable, GpuModel, network_flops,
)
from snnlab.hardware.fixed_point import deploy_fixed_point, exactness_report, quantize_input
from snnlab.hardware.kernel import COUNTERS
from snnlab.hardware.mapping import NetworkProgram, compile_network, map_network
from snnlab.hardware.simulator import Prepared, SimulationResult, prepare, reference_simulate, simulate

__all__ = [
    "DESIGNS", "AcceleratorConfig", "atsn_accelerator", "conventional_accelerator", "conventional_with_exit", "design",
    "ENERGY_TABLES", "HOROWITZ_45NM_TABLE", "SATA_SIM_TABLE", "EnergyTable", "GpuModel", "network_flops",
    "deploy_fixed_point", "exactness_report", "quantize_input", "COUNTERS",
    "NetworkProgram", "compile_network", "map_network",
    "Prepared", "SimulationResult", "prepare", "reference_simulate", "simulate",
]
