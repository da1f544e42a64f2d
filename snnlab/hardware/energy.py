"""Energy per operation and per memory access, and a GPU estimate to compare with.

An :class:`EnergyTable` prices the counts of :mod:`snnlab.hardware.simulator` (operations on 16-bit
words and memory accesses of one word). Two tables ship:

* :data:`SATA_SIM_TABLE` - SATA-Sim's relative energies (RuokaiYin/SATA_Sim, ``energy_configs.py``:
  dynamic energy of 16-bit multiplier 0.239, accumulator 0.0389, adder 0.00967, comparator 0.00309,
  2-input mux 0.00172, register 0.0301; shift 0.00605; memory access DRAM 55.58, SRAM 1.95,
  scratchpad 0.2779, as summarised in the project's paper notes). Relative units: one 16-bit
  multiply-accumulate (0.239 + 0.0389) costs 0.2779. ATSN simulated its accelerator with SATA-Sim.
* :data:`HOROWITZ_45NM_TABLE` - picojoules at 45 nm from Horowitz (ISSCC 2014, "Computing's energy
  problem"): integer add 0.03 pJ (8 bit) / 0.1 pJ (32 bit) -> 0.05 pJ at 16 bit (our interpolation);
  integer multiply 0.2 pJ (8 bit) / 3.1 pJ (32 bit) -> 0.8 pJ at 16 bit (quadratic in width, ours);
  SRAM read of 64 bits: 10 pJ (8 KB), 20 pJ (32 KB); DRAM 1.3-2.6 nJ per 64 bits. Per 16-bit word:
  scratchpad (1-3 KB, bounded by the 8 KB figure) 2.5 pJ, global SRAM buffer (32 KB) 5 pJ, DRAM
  (midpoint 1.95 nJ / 4) 487.5 pJ. Horowitz gives no accumulator, register, mux, comparator or
  shifter: those are SATA-Sim's ratio to its adder times 0.05 pJ (derived, not measured).

Neither is 28 nm (the paper's process): the 45 nm table is an upper bound for 28 nm logic.

:class:`GpuModel` estimates a GPU's energy for the same network from its dense FLOPs
(:func:`network_flops`): time = FLOPs / (peak FLOP/s x utilisation), plus kernel-launch overhead
shared by a batch; energy = board power x time. Its defaults are an RTX 3090 Ti (the paper's GPU):
450 W board power and 40 TFLOP/s FP32 peak (NVIDIA's specifications), utilisation 0.25, 5 us per
kernel launch, 2 kernels per layer and timestep, batch 256 (our assumptions). A GPU computes every
synapse of every step (dense), whatever the spikes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["OPERATIONS", "MEMORY_LEVELS", "EnergyTable", "SATA_SIM_TABLE", "HOROWITZ_45NM_TABLE", "ENERGY_TABLES",
           "GpuModel", "network_flops"]

OPERATIONS = ("accumulate", "add", "shift", "compare", "mux", "register", "multiply")
MEMORY_LEVELS = ("dram", "sram", "scratchpad")


@dataclass(frozen=True)
class EnergyTable:
    """Energy of one operation / one word access, in ``unit`` (``joules_per_unit`` None: relative)."""

    name: str
    unit: str
    costs: dict[str, float]
    source: str
    joules_per_unit: float | None = None

    def __post_init__(self) -> None:
        missing = [k for k in (*OPERATIONS, *MEMORY_LEVELS) if k not in self.costs]
        if missing:
            raise ValueError(f"energy table {self.name!r} lacks {missing}; it needs every one of "
                             f"{OPERATIONS + MEMORY_LEVELS}.")
        bad = {k: v for k, v in self.costs.items() if not (isinstance(v, (int, float)) and v >= 0)}
        if bad:
            raise ValueError(f"energy table {self.name!r}: costs must be numbers >= 0, got {bad}.")

    def energy(self, counts: dict[str, float]) -> dict[str, float]:
        """Energy of each kind in ``counts`` (keys of the table) and ``"total"``, in ``unit``."""
        out = {k: float(counts.get(k, 0.0)) * self.costs[k] for k in (*OPERATIONS, *MEMORY_LEVELS)}
        out["total"] = sum(out.values())
        return out

    def with_costs(self, **costs: float) -> "EnergyTable":
        """A copy with some costs changed (a configurable table)."""
        unknown = set(costs) - set(self.costs)
        if unknown:
            raise ValueError(f"unknown cost(s) {sorted(unknown)}; the table has {sorted(self.costs)}.")
        return EnergyTable(self.name + " (modified)", self.unit, {**self.costs, **costs}, self.source,
                           self.joules_per_unit)


SATA_SIM_TABLE = EnergyTable(
    "SATA-Sim (relative)", "SATA-Sim units",
    {"multiply": 0.239, "accumulate": 0.0389, "add": 0.00967, "compare": 0.00309, "mux": 0.00172,
     "register": 0.0301, "shift": 0.00605, "dram": 55.58, "sram": 1.95, "scratchpad": 0.2779},
    "RuokaiYin/SATA_Sim energy_configs.py (16-bit ops) and the SATA memory costs (Yin et al., TCAD 2023)",
)

_H_ADD = 0.05
HOROWITZ_45NM_TABLE = EnergyTable(
    "45 nm (Horowitz 2014)", "pJ",
    {"add": _H_ADD, "multiply": 0.8,
     **{k: round(SATA_SIM_TABLE.costs[k] / SATA_SIM_TABLE.costs["add"] * _H_ADD, 4)
        for k in ("accumulate", "compare", "mux", "register", "shift")},
     "scratchpad": 2.5, "sram": 5.0, "dram": 487.5},
    "Horowitz, ISSCC 2014 (45 nm): add, multiply, SRAM and DRAM per 16-bit word; accumulate, compare, "
    "mux, register, shift scaled from SATA-Sim's ratios to its adder",
    joules_per_unit=1e-12,
)

ENERGY_TABLES = {"sata": SATA_SIM_TABLE, "45nm": HOROWITZ_45NM_TABLE}
"""Name -> shipped :class:`EnergyTable`."""


def network_flops(program, T: int) -> dict[str, float]:
    """Dense FLOPs of one inference of ``program`` for T steps (what a GPU computes).

    Per step: 2 FLOPs per weight connection (multiply and add; exact border counts for a conv) plus
    the bias; 3 per neuron update (decay, add, compare/reset); pooling 1 per compared element.
    """
    per_step = 0.0
    layers = {}
    for layer in program.layers:
        if layer.kind == "conv":
            c, h, w = layer.out_shape
            macs = float(layer.weight[0].size) * c * h * w   # upper bound at padded borders: same as GPU's
        else:
            macs = float(layer.weight.size)
        flops = 2 * macs + layer.neurons * 4 + (layer.neurons if layer.pool else 0)
        layers[layer.name] = flops * T
        per_step += flops
    return {"per_step": per_step, "total": per_step * T, "layers": layers}


@dataclass(frozen=True)
class GpuModel:
    """A GPU's time and energy per inference from FLOPs (see the module docstring for the defaults)."""

    name: str = "RTX 3090 Ti (model)"
    power_w: float = 450.0
    peak_flops: float = 40e12
    utilisation: float = 0.25
    launch_overhead_s: float = 5e-6
    kernels_per_layer_step: int = 2
    batch_size: int = 256
    notes: list[str] = field(default_factory=lambda: [
        "power = board power while busy (upper bound)", "dense compute: every synapse at every step"])

    def __post_init__(self) -> None:
        for name in ("power_w", "peak_flops", "utilisation", "batch_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"GpuModel.{name} must be > 0, got {getattr(self, name)!r}.")
        if self.utilisation > 1:
            raise ValueError(f"GpuModel.utilisation must be <= 1, got {self.utilisation}.")

    def estimate(self, program, T: int) -> dict[str, float]:
        """Seconds, joules, FPS per inference at T steps (the batch shares the launch overhead)."""
        flops = network_flops(program, T)["total"]
        launches = len(program.layers) * T * self.kernels_per_layer_step
        seconds = flops / (self.peak_flops * self.utilisation) + launches * self.launch_overhead_s / self.batch_size
        return {"flops": flops, "seconds": seconds, "fps": 1.0 / seconds, "joules": self.power_w * seconds}
