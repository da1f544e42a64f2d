"""Cycle-level, event-driven simulation of ATSN's spiking accelerator (ATSN sec. 2.4, Fig. 2).

:func:`simulate` compiles a trained network (:mod:`snnlab.hardware.mapping`), maps it onto the
array and streams real inputs through it one timestep at a time: the pixels (direct encoding, the
same image every step) or event frames enter the first layer, every layer's spikes become the next
layer's events, the output layer's potentials f_t go to the AT unit, and a sample stops at the first
step whose exit test (ATSN eqs. 17-18) fires. Everything is computed on each sample separately
(the N accelerators work on different samples: they multiply throughput, not single-sample latency).

**What is computed.** Potentials in float64; LIF of ATSN eqs. (1)-(2) (decay, add the bias and the
weights of the spikes that arrive, spike at u >= V_th, hard reset to 0); the non-reset output layer
(eq. 8); the exit test ``max σ > CL_t Σσ`` with σ_i = exp(f_i - max f) and the CL_t of eq. (15)
(the same float64 formula as :class:`snnlab.inference.ConfidenceExit` with ``hardware=True``); the
prediction argmax y_t (eq. 10) on the AT unit, argmax Σ_t f_t without it. With a fixed-point
deployed network (:mod:`snnlab.hardware.fixed_point`) the potentials, spikes, outputs, exit steps
and predictions equal snnlab's torch network bit for bit (tested).

**Cycle model (our assumptions; the paper gives the architecture, not its timing).** Per timestep
the layers run in order on the whole array (time-multiplexed). For each layer and tile:

1. *load*: the tile's weights and biases are read from the global SRAM (one read of a conv kernel
   is broadcast to every PE that uses it) and, after the first step, the saved potentials; the bus
   moves ``bus_words`` words per cycle. The AT unit keeps its weights for the whole sample.
   *Streamed weights*: a layer whose weights do not fit a unit's memory streams them from SRAM, one
   bus word per accumulate: an event's weights for a tile take ``ceil(words / bus_words)`` cycles
   on the bus, the tile's units start on the event when they have arrived, and the next event
   enters once the bus is free. A PE layer whose weights fit takes, at every step, the cheaper of
   loading them and streaming them (``streamed_steps`` counts the steps it streamed): a unit with
   memory can still stream, so a larger memory never costs cycles (tested: cycles never fall as
   ``pe_memory_bytes`` shrinks). A hidden linear layer uses each weight at most once per step and
   usually streams; a convolution reuses its kernels for many events and keeps them.
2. *update*: every PE decays its ``m`` neurons and adds the bias, ``pe_update_cycles`` each
   (PEs in parallel, so ``m·pe_update_cycles`` cycles per tile; the AT unit: one neuron at a time).
3. *events*: each input event is broadcast to the tiles it reaches, at most one event per cycle,
   into the 128 B input buffer (64 addresses) of every unit it concerns (an address filter drops
   it elsewhere). Each unit works through its own buffer, one accumulate per cycle for each of its
   neurons the event reaches, so units with more work fall behind and others idle (the utilisation
   lost). When the buffer of a unit the next event concerns is full, the broadcast waits
   (``input_wait_cycles``). The phase ends when the last unit has emptied its buffer.
4. *fire*: compare, reset, spike addresses into the PE's 128 B output buffer (64 addresses); a PE
   whose buffer fills waits for a flush over the bus (``ceil(64 / bus_words)`` cycles per flush):
   those are the stall cycles. The buffers drain into SRAM while the next phase runs (not counted).
   Max pooling of the spikes (an OR) happens on the way out. Potentials are saved to SRAM.
5. *AT unit* (output layer): σ_i by linear interpolation in a stored exp table (one multiply each on
   its single multiplier), the readout y_t (one multiply per class by 1/Σσ), and the exit test (two
   multiplies, one compare): ``2C + 1`` (+3 with the exit test) cycles.

**Operation counts** (SATA-Sim's accounting of a LIF update: add, compare, 2 mux, 3 registers and
the decay). Per neuron and step: decay = 1 multiply (``decay="multiply"``) or the shifts and adds of
its binary fraction (``"shift"``: 0.5 -> 1 shift), 1 add (bias), 3 registers, 2 scratchpad accesses,
and on PEs 1 compare + 2 mux (AT unit: 1 mux, no reset). Per synaptic event on a neuron: 1
accumulate and 3 scratchpad accesses (weight, potential read and write; the weight from SRAM when
it does not fit the unit's memory), plus 1 multiply when the input is not a spike (the analog
pixels of the first layer: a multiply-accumulate; the paper does not say how its accelerator
encodes images). Memory: the image is read from DRAM once (event frames: every event), the class is
written back once; every event read from SRAM into a tile, every spike written to SRAM.

The counters (:data:`~snnlab.hardware.kernel.COUNTERS`) are kept per sample and layer;
:class:`SimulationResult` turns them into cycles, latency, FPS, energy (any
:class:`~snnlab.hardware.energy.EnergyTable`), utilisation and stalls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from snnlab.checks import check_choice, check_timesteps
from snnlab.hardware.config import AcceleratorConfig, atsn_accelerator
from snnlab.hardware.energy import MEMORY_LEVELS, OPERATIONS, EnergyTable, SATA_SIM_TABLE
from snnlab.hardware.kernel import COUNTERS, IMETA, simulate_kernel, simulate_kernel_jit
from snnlab.hardware.mapping import LayerMapping, NetworkProgram, compile_network, map_network

__all__ = ["SimulationResult", "simulate", "reference_simulate", "prepare", "Prepared"]


@dataclass
class Prepared:
    """A network compiled and mapped for one configuration (reusable across calls)."""

    program: NetworkProgram
    mappings: list[LayerMapping]
    config: AcceleratorConfig
    imeta: np.ndarray
    fmeta: np.ndarray
    weights: np.ndarray
    biases: np.ndarray
    spike_layers: list[tuple[str, int, int]]   # (name, offset, neurons) of every LIF layer


def prepare(model, config: AcceleratorConfig, input_shape) -> Prepared:
    """Compile ``model`` (an nn.Module or a :class:`NetworkProgram`) and map it onto ``config``."""
    if not isinstance(config, AcceleratorConfig):
        raise TypeError(f"config must be an AcceleratorConfig (atsn_accelerator(), ...), got {type(config).__name__}.")
    program = model if isinstance(model, NetworkProgram) else compile_network(model, input_shape)
    mappings = map_network(program, config)
    rows, frows, ws, bs, spike_layers = [], [], [], [], []
    w_off = b_off = n_off = s_off = 0
    last = len(program.layers) - 1
    for i, (layer, mp) in enumerate(zip(program.layers, mappings)):
        conv = layer.kind == "conv"
        cin, hin, win = layer.in_shape if conv else (1, 1, 1)
        cout, hout, wout = layer.out_shape if conv else (layer.neurons, 1, 1)
        row = dict(kind=0 if conv else 1, cin=cin, hin=hin, win=win, cout=cout, hout=hout, wout=wout,
                   k=layer.kernel, stride=layer.stride, pad=layer.padding, pool=layer.pool, w_off=w_off,
                   b_off=b_off, n_off=n_off, n=layer.neurons, m=mp.per_unit, tiles=mp.tiles,
                   resident=int(mp.weights_resident), is_output=int(i == last), shifts=mp.decay_shifts,
                   mul_decay=int(config.decay == "multiply"), spk_off=s_off, units=mp.units,
                   load_sram=mp.load_sram_words, load_spad=mp.load_spad_words, din=layer.inputs,
                   on_at=int(mp.unit == "at"), lif=int(layer.neuron == "lif"))
        rows.append([row[k] for k in IMETA])
        frows.append([layer.decay, layer.v_threshold if layer.neuron == "lif" else np.inf])
        ws.append(layer.weight.ravel())
        bs.append(layer.bias.ravel())
        if layer.neuron == "lif":
            spike_layers.append((layer.name, s_off, layer.neurons))
            s_off += layer.neurons
        w_off += layer.weight.size
        b_off += layer.bias.size
        n_off += layer.neurons
    return Prepared(program, mappings, config, np.array(rows, dtype=np.int64), np.array(frows, dtype=np.float64),
                    np.concatenate(ws).astype(np.float64), np.concatenate(bs).astype(np.float64), spike_layers)


@dataclass
class SimulationResult:
    """What one simulation run measured. Steps are 1-based; ``counters`` is ``[B, layers, counters]``."""

    steps: np.ndarray
    predictions: np.ndarray
    outputs: np.ndarray
    """``[T, B, C]`` output potentials f_t; NaN at steps a sample did not compute."""
    counters: np.ndarray
    layers: list[str]
    config: AcceleratorConfig
    T: int
    max_abs_potential: np.ndarray
    spikes: dict[str, np.ndarray] | None = None
    """With ``record_spikes``: per LIF layer (keyed by its weight layer's name), uint8 ``[T, B, neurons]``
    (0 after a sample's exit)."""
    seconds: float = 0.0
    mappings: list[LayerMapping] = field(default_factory=list)

    def counts(self, name: str, per: str = "layer") -> np.ndarray:
        """One counter: summed over samples per layer (``per="layer"``), per sample, or ``"total"``."""
        check_choice("per", per, ("layer", "sample", "total"))
        i = COUNTERS.index(check_choice("counter", name, COUNTERS))
        c = self.counters[:, :, i]
        return c.sum(0) if per == "layer" else c.sum(1) if per == "sample" else np.asarray(c.sum())

    @property
    def samples(self) -> int:
        return int(self.counters.shape[0])

    def accuracy(self, targets) -> float:
        return float((self.predictions == np.asarray(targets)).mean())

    @property
    def mean_steps(self) -> float:
        return float(self.steps.mean())

    # ---- time
    @property
    def cycles_per_inference(self) -> float:
        return float(self.counts("cycles", "total")) / self.samples

    @property
    def latency_s(self) -> float:
        """Mean time of one inference on one accelerator."""
        return self.cycles_per_inference / self.config.clock_hz

    @property
    def fps(self) -> float:
        """Frames per second of ``n_accelerators`` accelerators working on different samples."""
        return self.config.n_accelerators / self.latency_s

    @property
    def utilisation(self) -> float:
        """Busy unit-cycles / (units x cycles) over the run: how much of the array did work."""
        units = self.config.n_pe + self.config.at_units
        return float(self.counts("busy_unit_cycles", "total")) / (units * float(self.counts("cycles", "total")))

    # ---- energy
    def _layer_counts(self, i: int | None) -> dict[str, float]:
        c = self.counters.sum(0) if i is None else self.counters[:, i:i + 1].sum(0)
        c = c.sum(0)
        return {k: float(c[COUNTERS.index(k)]) for k in COUNTERS}

    def energy(self, table: EnergyTable = SATA_SIM_TABLE, per_inference: bool = True) -> dict[str, float]:
        """Energy by operation / memory level and total, in ``table.unit`` (mean per inference)."""
        e = table.energy(self._layer_counts(None))
        return {k: v / self.samples for k, v in e.items()} if per_inference else e

    def joules_per_inference(self, table: EnergyTable) -> float:
        if table.joules_per_unit is None:
            raise ValueError(f"table {table.name!r} is relative ({table.unit}); use a table in joules (45nm).")
        return self.energy(table)["total"] * table.joules_per_unit

    def per_layer(self, table: EnergyTable = SATA_SIM_TABLE) -> list[dict]:
        """Per layer, mean per inference: cycles, stalls, utilisation, every count, energy."""
        rows = []
        for i, name in enumerate(self.layers):
            c = self._layer_counts(i)
            mp = self.mappings[i] if self.mappings else None
            units = mp.units if mp else self.config.n_pe
            e = table.energy(c)
            row = {"layer": name, "unit": mp.unit if mp else "", "tiles": mp.tiles if mp else 0,
                   "neurons_per_unit": mp.per_unit if mp else 0,
                   **{k: c[k] / self.samples for k in COUNTERS},
                   "utilisation": c["busy_unit_cycles"] / (units * c["cycles"]) if c["cycles"] else 0.0,
                   "energy": e["total"] / self.samples,
                   "energy_compute": sum(e[k] for k in OPERATIONS) / self.samples,
                   "energy_memory": sum(e[k] for k in MEMORY_LEVELS) / self.samples}
            rows.append(row)
        return rows

    def summary(self, table: EnergyTable = SATA_SIM_TABLE) -> dict:
        """JSON-ready totals per inference (what ``snnlab simulate`` prints)."""
        counts = {k: float(self.counts(k, "total")) / self.samples for k in COUNTERS}
        return {"design": self.config.name, "samples": self.samples, "T": self.T, "mean_steps": self.mean_steps,
                "max_steps": int(self.steps.max()), "cycles_per_inference": self.cycles_per_inference,
                "latency_s": self.latency_s, "fps": self.fps, "utilisation": self.utilisation,
                "stall_cycles_per_inference": counts["stall_cycles"], "counts_per_inference": counts,
                "energy_table": table.name, "energy_unit": table.unit, "energy_per_inference": self.energy(table),
                "simulation_seconds": self.seconds}


def _inputs(x, prog: NetworkProgram, T: int, kind: str) -> tuple[np.ndarray, bool]:
    check_choice("input kind", kind, ("static", "events"))
    arr = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    shape = prog.input_shape
    if kind == "static":
        if arr.ndim != 1 + len(shape) or tuple(arr.shape[1:]) != shape:
            raise ValueError(f"static input must be [B, {', '.join(map(str, shape))}], got {tuple(arr.shape)}.")
        arr = arr.reshape(arr.shape[0], 1, -1)
    else:
        if arr.ndim != 2 + len(shape) or tuple(arr.shape[2:]) != shape:
            raise ValueError(f"event input must be [B, T, {', '.join(map(str, shape))}], got {tuple(arr.shape)}.")
        if arr.shape[1] < T:
            raise ValueError(f"event input has {arr.shape[1]} frames, fewer than T = {T}.")
        arr = arr[:, :T].reshape(arr.shape[0], T, -1)
    if arr.shape[0] < 1:
        raise ValueError("the input batch is empty.")
    if not np.isfinite(arr).all():
        raise ValueError("the input contains NaN or infinity.")
    return np.ascontiguousarray(arr), kind == "static"


def _run(kernel, model, x, *, T, config, cl_init, tau_cl, kind, record_spikes, input_shape) -> SimulationResult:
    from snnlab.inference import confidence_levels

    T = check_timesteps("T", T)
    config = atsn_accelerator() if config is None else config
    shape = input_shape
    if shape is None:
        shape = getattr(model, "input_shape", None)
        if shape is None:
            shape = tuple(x.shape[1:] if kind == "static" else x.shape[2:])
    prep = model if isinstance(model, Prepared) else prepare(model, config, shape)
    config = prep.config
    xs, static = _inputs(x, prep.program, T, kind)
    B = xs.shape[0]
    levels = confidence_levels(T, cl_init, tau_cl).numpy().astype(np.float64)
    if config.exp_table_entries:
        grid = np.linspace(-config.exp_table_range, 0.0, config.exp_table_entries)
        table = np.exp(grid)
        table[-1] = 1.0
    else:
        table = np.zeros(0)
    L = len(prep.program.layers)
    C = prep.program.num_classes
    n_spk = sum(n for _, _, n in prep.spike_layers)
    spikes = np.zeros((B, T, n_spk) if record_spikes else (1, 1, 1), dtype=np.uint8)
    outputs = np.full((T, B, C), np.nan)
    steps = np.zeros(B, dtype=np.int64)
    preds = np.zeros(B, dtype=np.int64)
    counters = np.zeros((B, L, len(COUNTERS)), dtype=np.float64)
    max_abs = np.zeros(L)
    start = time.perf_counter()
    kernel(xs, static, prep.imeta, prep.fmeta, prep.weights, prep.biases, T, levels, bool(config.adaptive), table,
           float(config.exp_table_range), config.bus_words, config.in_buffer_entries, config.out_buffer_entries,
           config.pe_update_cycles,
           bool(record_spikes), spikes, outputs, steps, preds, counters, max_abs)
    seconds = time.perf_counter() - start
    spike_dict = None
    if record_spikes:
        spike_dict = {name: np.ascontiguousarray(spikes[:, :, off:off + n].transpose(1, 0, 2))
                      for name, off, n in prep.spike_layers}
    return SimulationResult(steps, preds, outputs, counters, [l.name for l in prep.program.layers], config, T,
                            max_abs, spike_dict, seconds, prep.mappings)


def simulate(model, x, *, T: int, config: AcceleratorConfig | None = None, cl_init: float = 0.999,
             tau_cl: float = 0.999, kind: str = "static", record_spikes: bool = False,
             input_shape=None) -> SimulationResult:
    """Simulate ``model`` on the accelerator for every sample of ``x``.

    ``model``: a folded inference network (``AtsnVGG.folded()``, ideally fixed-point deployed with
    :func:`snnlab.hardware.deploy_fixed_point`) or a :class:`Prepared`. ``x``: ``[B, C, H, W]``
    images (``kind="static"``, direct encoding) or ``[B, T', C, H, W]`` event frames. ``T``: the most
    steps; ``cl_init``, ``tau_cl``: the exit thresholds of eq. (15) (used when ``config.adaptive``).
    ``config`` defaults to :func:`~snnlab.hardware.atsn_accelerator`.
    """
    return _run(simulate_kernel_jit, model, x, T=T, config=config, cl_init=cl_init, tau_cl=tau_cl, kind=kind,
                record_spikes=record_spikes, input_shape=input_shape)


def reference_simulate(model, x, *, T: int, config: AcceleratorConfig | None = None, cl_init: float = 0.999,
                       tau_cl: float = 0.999, kind: str = "static", record_spikes: bool = False,
                       input_shape=None, max_synapses: int = 5_000_000) -> SimulationResult:
    """:func:`simulate` with the loop run as plain Python (no Numba): the reference for small nets.

    Refuses networks whose dense synapse count x samples x T exceeds ``max_synapses`` (it would
    take minutes).
    """
    prep = model if isinstance(model, Prepared) else None
    if prep is None:
        shape = input_shape or getattr(model, "input_shape", None) or tuple(x.shape[1:] if kind == "static" else x.shape[2:])
        prep = prepare(model, config or atsn_accelerator(), shape)
    work = sum(l.weight.size for l in prep.program.layers) * len(x) * T
    if work > max_synapses:
        raise ValueError(f"reference_simulate is a slow pure-Python loop meant for small nets: {work:.3g} synapse-steps "
                         f"exceed max_synapses={max_synapses}; use simulate() or fewer samples.")
    return _run(simulate_kernel, prep, x, T=T, config=prep.config, cl_init=cl_init, tau_cl=tau_cl, kind=kind,
                record_spikes=record_spikes, input_shape=input_shape)
