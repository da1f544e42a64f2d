"""The same LIF neuron and the same convolutional SNN built in snnlab and in each peer library.

``snnlab bench neurons`` times what a user of each library would run. Every library gets the same
dynamics (:data:`DYNAMICS`), mapped onto its own API as :data:`MAPPINGS` records, and the whole
network of workload (d) is built with each library's layers from one set of weights
(:func:`copy_weights`), so its first training step gives the same outputs everywhere (checked by
the benchmark, not assumed).

Configurations (:data:`CONFIGS`): each library eager, and under ``torch.compile`` (Inductor), the
way a user who wants speed on a CPU would run it. snnlab's own torch path (``backend="torch"``) is
reported as well; it is not a peer.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["DYNAMICS", "MAPPINGS", "CONV_SNN_BUILT_AS", "LIBRARIES", "PEERS", "CONFIGS", "availability",
           "build_neuron", "ConvSpec", "build_conv_snn", "copy_weights", "event_frames", "config_name"]

DYNAMICS = {
    "equations": "H[t] = V[t-1] - V[t-1]/tau + X[t]; S[t] = Θ(H[t] - V_th); V[t] = H[t]·(1 - S[t]) + V_reset·S[t]",
    "tau": 2.0,
    "decay": 0.5,
    "decay_input": False,
    "v_threshold": 1.0,
    "v_reset": 0.0,
    "detach_reset": True,
    "surrogate": "ArcTan, alpha = 2 (SEW ResNet)",
    "source": "LIF of OTTT eq. (2) with a hard reset; snnTorch's Leaky(reset_mechanism='zero')",
}

MAPPINGS = {
    "snnlab": "snnlab.neurons.LIFNode(tau=2, decay_input=False, v_reset=0, detach_reset=True, "
    "surrogate=ArcTan(2), step_mode='m'): Numba kernels, one call per sequence (under torch.compile: "
    "the same kernels as snnlab:: custom operators inside the compiled graph).",
    "snnlab-torch": "the same LIFNode with backend='torch': snnlab's pure-torch reference, a Python "
    "loop over T.",
    "spikingjelly": "spikingjelly.activation_based.neuron.LIFNode(tau=2., decay_input=False, v_threshold=1., "
    "v_reset=0., surrogate_function=surrogate.ATan(alpha=2.), detach_reset=True, step_mode='m'): "
    "its CPU multi-step path. Same dynamics and surrogate.",
    "snntorch": "snntorch.Leaky(beta=0.5, threshold=1., spike_grad=surrogate.atan(alpha=2.), "
    "reset_mechanism='zero') called once per step in a Python loop (its usual use): U[t] = "
    "beta·(1 - S[t-1])·U[t-1] + X[t], reset detached: the same dynamics and surrogate (it fires on "
    "U > V_th, snnlab on U >= V_th; equal on continuous input).",
    "norse": "norse.torch.LIFBoxCell (a LIF without synaptic current) in a Python loop, with "
    "dt·tau_mem_inv = 0.5, v_leak = v_reset = 0, v_th = 1 and the input scaled by 2 (Norse decays "
    "the input: v + 0.5·(2x - v) = 0.5·v + x; the scaling is timed). Differences: Norse's reset is "
    "not detached (its backward carries the reset term) and it has no ArcTan surrogate: SuperSpike "
    "(method='super', alpha=2) is used, which costs the same kind of arithmetic.",
}

CONV_SNN_BUILT_AS = (
    "snnlab: snnlab.models.TimeFolded(conv), snnlab.layers.BatchNormNeuron(BatchNorm2d, LIFNode) (batch norm and "
    "LIF fused in Numba kernels, forward and backward), TimeFolded(max-pool), the model moved to "
    "torch.channels_last; snnlab-torch: TimeFolded(conv, BN) then LIFNode(backend='torch'), default layout. "
    "Peers: SeqToANNContainer(conv, BN) / per-frame layers in the default layout (under torch.compile, the "
    "layout is Inductor's choice).")
"""How each library's network of workload (d) is built (see :func:`build_conv_snn`)."""

LIBRARIES = ("snnlab", "snnlab-torch", "spikingjelly", "snntorch", "norse")
"""Every library of the benchmark (snnlab's torch path counts as one, though not as a peer)."""

PEERS = ("spikingjelly", "snntorch", "norse")
"""What users would otherwise run: the targets are ratios to the fastest of these (eager or compiled)."""

_PACKAGES = {"spikingjelly": "spikingjelly", "snntorch": "snntorch", "norse": "norse"}

CONFIGS = tuple((lib, compiled) for lib in LIBRARIES for compiled in (False, True))
"""``(library, compiled)`` pairs: each library eager and under ``torch.compile``."""


def config_name(lib: str, compiled: bool) -> str:
    """``"spikingjelly"`` / ``"spikingjelly+compile"``: the key of a configuration in the JSON."""
    return f"{lib}+compile" if compiled else lib


def availability(lib: str) -> dict:
    """``{"available": True, "version": ...}`` or ``{"available": False, "reason": ...}``."""
    if lib in ("snnlab", "snnlab-torch"):
        return {"available": True, "version": importlib.metadata.version("snnlab")}
    try:
        version = importlib.metadata.version(_PACKAGES[lib])
        importlib.import_module(_PACKAGES[lib])
    except Exception as exc:  # not installed, or broken: report why, skip it
        return {
            "available": False,
            "reason": f"{type(exc).__name__}: {exc}. Install the benchmark extra: pip install -e \".[bench]\"",
        }
    return {"available": True, "version": version}


def _snnlab_lif(lib: str):
    from snnlab.neurons import LIFNode
    from snnlab.surrogate import ArcTan

    return LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0, detach_reset=True,
                   surrogate=ArcTan(2.0), step_mode="m", backend="auto" if lib == "snnlab" else "torch")


def _spikingjelly_lif():
    from spikingjelly.activation_based import neuron, surrogate

    return neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0,
                          surrogate_function=surrogate.ATan(alpha=2.0), detach_reset=True, step_mode="m")


def _snntorch_leaky():
    import snntorch
    from snntorch import surrogate as snn_surrogate

    return snntorch.Leaky(beta=0.5, threshold=1.0, spike_grad=snn_surrogate.atan(alpha=2.0), reset_mechanism="zero")


def _from_fresh_state(module: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x_seq -> module(x_seq)`` after ``module.reset()`` (a multi-step neuron with a reset method)."""

    def run(x: torch.Tensor) -> torch.Tensor:
        module.reset()
        return module(x)

    return run


def _step_loop(step, initial) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x [T, ...] -> spikes [T, ...]`` by a cell ``step(x_t, state) -> (spikes_t, state)`` from ``initial(x)``."""
    def run(x: torch.Tensor) -> torch.Tensor:
        state = initial(x)
        spikes = []
        for t in range(x.shape[0]):
            spk, state = step(x[t], state)
            spikes.append(spk)
        return torch.stack(spikes)

    return run


def _snntorch_run(leaky) -> Callable[[torch.Tensor], torch.Tensor]:
    return _step_loop(leaky, lambda x: torch.zeros_like(x[0]))


def build_neuron(lib: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``x_seq [T, ...] -> spikes [T, ...]`` running ``lib``'s LIF from a fresh state."""
    if lib in ("snnlab", "snnlab-torch"):
        return _from_fresh_state(_snnlab_lif(lib))
    if lib == "spikingjelly":
        return _from_fresh_state(_spikingjelly_lif())
    if lib == "snntorch":
        return _snntorch_run(_snntorch_leaky())
    if lib == "norse":
        from norse.torch import LIFBoxCell, LIFBoxParameters

        dt = 1e-3
        params = LIFBoxParameters(
            tau_mem_inv=torch.as_tensor(0.5 / dt), v_leak=torch.as_tensor(0.0), v_th=torch.as_tensor(1.0),
            v_reset=torch.as_tensor(0.0), method="super", alpha=torch.as_tensor(2.0),
        )
        cell = LIFBoxCell(params, dt=dt)
        return _step_loop(lambda x_t, state: cell(x_t * 2.0, state), lambda x: None)
    raise ValueError(f"unknown library {lib!r}; valid: {', '.join(LIBRARIES)}.")


# ------------------------------------------------------------------------------------------------
# Workload (d): one convolutional SNN, built in each library
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvSpec:
    """Workload (d)'s network and batch: {conv3x3 -> BN -> LIF -> max-pool 2} per entry of
    ``channels``, then a linear readout per step, on event frames ``[T, B, 2, size, size]``;
    cross-entropy of the time-averaged output, plain SGD (lr 0.1, momentum 0.9)."""

    channels: tuple[int, ...] = (32, 64, 128, 256)
    size: int = 32
    steps: int = 8
    batch: int = 32
    classes: int = 10

    @property
    def readout_features(self) -> int:
        side = self.size >> len(self.channels)
        return self.channels[-1] * side * side

    def describe(self) -> str:
        blocks = " -> ".join(f"conv3x3({c})-BN-LIF-maxpool2" for c in self.channels)
        return (f"[T={self.steps}, B={self.batch}, 2, {self.size}, {self.size}] event frames -> {blocks} -> "
                f"flatten -> Linear({self.readout_features}, {self.classes}) per step; loss = cross-entropy of "
                f"the mean over T; SGD(lr=0.1, momentum=0.9)")


class _Folded(nn.Module):
    """A per-frame layer on ``[T, B, ...]`` (time folded into the batch), for snnTorch's network."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x.flatten(0, 1))
        return y.reshape(x.shape[0], x.shape[1], *y.shape[1:])


class _SnntorchLIF(nn.Module):
    """snnTorch's Leaky run over the steps of ``[T, B, ...]`` from a fresh membrane."""

    def __init__(self) -> None:
        super().__init__()
        self.leaky = _snntorch_leaky()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _snntorch_run(self.leaky)(x)


class _Readout(nn.Module):
    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(2))


def build_conv_snn(lib: str, spec: ConvSpec = ConvSpec()) -> nn.Module:
    """Workload (d)'s network with ``lib``'s layers: ``[T, B, 2, H, W] -> [T, B, classes]``. Call
    :func:`reset_conv_snn` before each sequence. Norse is not offered (see the benchmark's JSON).

    snnlab's is built as its documentation advises a CPU user to: each BN and LIF pair as one
    :class:`snnlab.layers.BatchNormNeuron` (fused kernels; the same ``nn.BatchNorm2d`` and
    ``LIFNode`` inside), and the model moved to ``torch.channels_last``. snnlab's torch path
    (``snnlab-torch``) keeps the plain composition, in the default layout."""
    blocks: list[nn.Module] = []
    c = 2
    for out in spec.channels:
        conv, bn, pool = nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.MaxPool2d(2)
        if lib == "snnlab":
            from snnlab.layers import BatchNormNeuron
            from snnlab.models import TimeFolded

            blocks += [TimeFolded(conv), BatchNormNeuron(bn, _snnlab_lif(lib)), TimeFolded(pool)]
        elif lib == "snnlab-torch":
            from snnlab.models import TimeFolded

            blocks += [TimeFolded(conv, bn), _snnlab_lif(lib), TimeFolded(pool)]
        elif lib == "spikingjelly":
            from spikingjelly.activation_based import layer

            blocks += [layer.SeqToANNContainer(conv, bn), _spikingjelly_lif(), layer.SeqToANNContainer(pool)]
        elif lib == "snntorch":
            blocks += [_Folded(conv, bn), _SnntorchLIF(), _Folded(pool)]
        else:
            raise ValueError(f"workload d is built in snnlab, snnlab-torch, spikingjelly and snntorch; got {lib!r}.")
        c = out
    model = nn.Sequential(*blocks, _Readout(spec.readout_features, spec.classes))
    if lib == "snnlab":
        # snnlab's advice for convolutional SNNs on a CPU: channels_last frames (oneDNN's native
        # layout for convolutions and pooling; BatchNormNeuron and the neurons read it in place)
        model = model.to(memory_format=torch.channels_last)
    return model


def reset_conv_snn(model: nn.Module) -> None:
    """Fresh membranes in every neuron of a :func:`build_conv_snn` network (snnTorch's start fresh
    on every call)."""
    for m in model.modules():
        if m is not model and callable(getattr(m, "reset", None)) and not isinstance(m, nn.Sequential):
            m.reset()


_WEIGHTED = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


def copy_weights(source: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer of the convolutions, batch norms and linear layers of
    ``source`` into those of ``target``, in module order (the same network in two libraries)."""
    src = [m for m in source.modules() if isinstance(m, _WEIGHTED)]
    dst = [m for m in target.modules() if isinstance(m, _WEIGHTED)]
    if [type(m) for m in src] != [type(m) for m in dst]:
        raise ValueError("the two networks do not have the same weighted layers in the same order.")
    with torch.no_grad():
        for a, b in zip(src, dst):
            for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
                if pa.shape != pb.shape:
                    raise ValueError(f"{type(a).__name__}.{name}: shape {tuple(pa.shape)} vs {tuple(pb.shape)}.")
                pb.copy_(pa)


def event_frames(spec: ConvSpec = ConvSpec(), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``spec.batch`` digits recorded by snnlab's emulated DVS camera along N-MNIST's saccades on a
    ``spec.size``-pixel sensor, binned into ``spec.steps`` frames: ``([T, B, 2, size, size], labels [B])``."""
    from snnlab.data.emulated import EmulatedConfig, generate_emulated_digits
    from snnlab.data.frames import EventsToFrames

    travel = 6
    config = EmulatedConfig(limit=spec.batch, sensor_px=spec.size, digit_px=spec.size - travel, seed=seed)
    recordings = generate_emulated_digits(config)
    to_frames = EventsToFrames(recordings.sensor_size, spec.steps)
    frames = torch.stack([to_frames(recordings.events(i)) for i in range(len(recordings))])   # [B, T, 2, H, W]
    return frames.transpose(0, 1).contiguous(), torch.as_tensor(recordings.labels)
