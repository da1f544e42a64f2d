"""Training spiking networks: losses, methods (BPTT, SLTT, SLTT-K, OTTT_A, OTTT_O), the loop.

A chapter calls :func:`train` (what ``snnlab train`` runs) or, step by step,
``build_method(...).train_step(model, inputs, target, build_loss(...), optimizer)``.

The names below load their modules on first use (:func:`snnlab.lazy.lazy_exports`), so importing
the package (and its ``cli`` module, for ``snnlab --help``) does not import torch or Numba.
"""

from snnlab.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("time_major",), "snnlab.training.inputs"),
    **dict.fromkeys(("LOSSES", "SequenceLoss", "build_loss", "importance_weights"), "snnlab.training.losses"),
    **dict.fromkeys((
        "BPTT", "METHODS", "OTTT", "SLTT", "MixedPrecision", "StepResult", "TrainingMethod", "build_method",
        "compute_gradients"
    ), "snnlab.training.methods"),
    **dict.fromkeys(("reset_model", "set_temporal_cut"), "snnlab.training.state"),
    **dict.fromkeys(("attach_traces", "detach_traces", "traced_layers"), "snnlab.training.traces"),
    **dict.fromkeys(("TrainConfig", "TrainResult", "evaluate", "train"), "snnlab.training.loop"),
    **dict.fromkeys(("launch_local",), "snnlab.training.ddp"),
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
