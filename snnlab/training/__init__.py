"""Training spiking networks: losses, methods (BPTT, SLTT, SLTT-K, OTTT_A, OTTT_O), the loop.

A chapter calls :func:`train` (what ``snnlab train`` runs) or, step by step,
``build_method(...).train_step(model, inputs, target, build_loss(...), optimizer)``.
"""

from snnlab.training.inputs import time_major
from snnlab.training.losses import LOSSES, SequenceLoss, build_loss, importance_weights
from snnlab.training.methods import (
    BPTT,
    METHODS,
    OTTT,
    SLTT,
    MixedPrecision,
    StepResult,
    TrainingMethod,
    build_method,
    compute_gradients,
)
from snnlab.training.state import reset_model, set_temporal_cut
from snnlab.training.traces import attach_traces, detach_traces, traced_layers

__all__ = [
    "time_major",
    "LOSSES",
    "SequenceLoss",
    "build_loss",
    "importance_weights",
    "METHODS",
    "BPTT",
    "SLTT",
    "OTTT",
    "StepResult",
    "MixedPrecision",
    "TrainingMethod",
    "build_method",
    "compute_gradients",
    "reset_model",
    "set_temporal_cut",
    "attach_traces",
    "detach_traces",
    "traced_layers",
]

from snnlab.training.loop import TrainConfig, TrainResult, evaluate, train  # noqa: E402

__all__ += ["TrainConfig", "TrainResult", "evaluate", "train"]

from snnlab.training.ddp import launch_local  # noqa: E402

__all__ += ["launch_local"]
