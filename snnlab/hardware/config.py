"""The accelerator's parameters (ATSN sec. 2.4, Fig. 2) and the three designs it is compared with.

ATSN's accelerator (Fig. 2(c)): a 16x16 array holding 255 processing elements (PEs) and one
adaptive-timestep (AT) unit; every unit has a 128 B input and a 128 B output spike buffer; a PE has
1 KB of data memory, the AT unit 3 KB; PEs decay the membrane potential by shift-and-add (no
multiplier); the AT unit runs the non-reset output layer (no reset multiplexer) and the exit test of
eqs. (17)-(18) with one multiplier and a stored table of exponentials that it interpolates linearly.
The paper simulates 4 such accelerators in parallel at 28 nm and 500 MHz (sec. 3.4).

Parameters the paper does not give are ours and stated here: 16-bit weights and spike addresses,
32-bit membrane potentials (the fixed-point potentials of :mod:`snnlab.hardware.fixed_point` need
more than 16 bits to stay exact), a bus of 16 words per cycle between the global SRAM buffer and the
array, one cycle per neuron update and per accumulate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from snnlab.checks import check_choice, check_positive, check_positive_int

__all__ = ["AcceleratorConfig", "atsn_accelerator", "conventional_accelerator", "conventional_with_exit",
           "DESIGNS", "design"]


@dataclass(frozen=True)
class AcceleratorConfig:
    """One accelerator design. Sizes in bytes, clock in Hz; see the module docstring."""

    name: str = "ATSN accelerator"
    rows: int = 16
    cols: int = 16
    at_units: int = 1
    """Units of the array that are AT units (the rest are PEs): 255 PEs + 1 AT unit."""
    in_buffer_bytes: int = 128
    out_buffer_bytes: int = 128
    pe_memory_bytes: int = 1024
    at_memory_bytes: int = 3072
    weight_bytes: int = 2
    potential_bytes: int = 4
    address_bytes: int = 2
    """One spike event in a buffer is its address."""
    bus_words: int = 16
    """Words per cycle between the global SRAM buffer and the array (loads, saves, buffer drains)."""
    decay: str = "shift"
    """``"shift"``: shift-and-add decay (ATSN's PEs); ``"multiply"``: one multiplication (Fig. 2(a))."""
    at_unit: bool = True
    """The output layer runs on the AT unit (ATSN readout y_t, eq. 10); otherwise on the PEs, and the
    class is argmax of the summed outputs (a conventional SNN readout)."""
    adaptive: bool = True
    """The AT unit's exit test (eqs. 17-18) stops a sample early; ``False``: every sample runs T steps."""
    exp_table_entries: int = 0
    """0: the AT unit's exponentials are exact (its decisions equal snnlab's ConfidenceExit bit for bit);
    n >= 2: a table of n values of exp on [-exp_table_range, 0], linearly interpolated (the paper's
    hardware), 0 below the range."""
    exp_table_range: float = 16.0
    pe_update_cycles: int = 1
    n_accelerators: int = 4
    clock_hz: float = 500e6

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "at_units", "in_buffer_bytes", "out_buffer_bytes", "pe_memory_bytes",
                     "at_memory_bytes", "weight_bytes", "potential_bytes", "address_bytes", "bus_words",
                     "pe_update_cycles", "n_accelerators"):
            check_positive_int(name, getattr(self, name))
        if self.at_units >= self.rows * self.cols:
            raise ValueError(f"at_units = {self.at_units} leaves no PE in a {self.rows}x{self.cols} array.")
        if self.at_units != 1:
            raise ValueError("the simulator models one AT unit per array (ATSN Fig. 2(c)); set at_units=1.")
        check_choice("decay", self.decay, ("shift", "multiply"))
        if self.adaptive and not self.at_unit:
            raise ValueError("adaptive=True needs the AT unit (at_unit=True): it is the unit that runs the exit test.")
        if isinstance(self.exp_table_entries, bool) or not isinstance(self.exp_table_entries, int) \
                or self.exp_table_entries < 0 or self.exp_table_entries == 1:
            raise ValueError(f"exp_table_entries must be 0 (exact exp) or an int >= 2, got {self.exp_table_entries!r}.")
        check_positive("exp_table_range", self.exp_table_range)
        check_positive("clock_hz", self.clock_hz)  # a finite real number > 0 (not a string, NaN or inf)
        if self.address_bytes > self.out_buffer_bytes or self.address_bytes > self.in_buffer_bytes:
            raise ValueError("a spike buffer must hold at least one address.")

    @property
    def n_pe(self) -> int:
        """Processing elements per accelerator (255 in the paper)."""
        return self.rows * self.cols - self.at_units

    @property
    def out_buffer_entries(self) -> int:
        return self.out_buffer_bytes // self.address_bytes

    @property
    def in_buffer_entries(self) -> int:
        return self.in_buffer_bytes // self.address_bytes

    def replace(self, **changes) -> "AcceleratorConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


def atsn_accelerator(**changes) -> AcceleratorConfig:
    """ATSN's accelerator, Fig. 2(c): shift-and-add PEs, the AT unit with its exit test."""
    return AcceleratorConfig(**{"name": "ATSN accelerator", **changes})


def conventional_accelerator(**changes) -> AcceleratorConfig:
    """A conventional SNN accelerator, Fig. 2(a): multiplier decay in the PEs, fixed T, no AT unit."""
    return AcceleratorConfig(**{"name": "conventional (fixed T)", "decay": "multiply", "at_unit": False,
                                "adaptive": False, **changes})


def conventional_with_exit(**changes) -> AcceleratorConfig:
    """The conventional accelerator (multiplier decay) with ATSN's AT unit and exit added."""
    return AcceleratorConfig(**{"name": "conventional + ATSN exit", "decay": "multiply", **changes})


DESIGNS = {"atsn": atsn_accelerator, "conventional": conventional_accelerator,
           "conventional_exit": conventional_with_exit}
"""Design name -> constructor (each accepts field overrides)."""


def design(name: str, **changes) -> AcceleratorConfig:
    """The design called ``name`` (see :data:`DESIGNS`) with ``changes`` applied."""
    check_choice("design", name, DESIGNS)
    return DESIGNS[name](**changes)
