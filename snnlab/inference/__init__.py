"""Inference with adaptive timesteps: ATSN's confidence exit, DTSNN's entropy exit, batched
adaptive inference that stops computing exited samples, and the complexity measure (ATSN eq. 19)."""

from snnlab.inference.exit_rule import ExitResult, ExitRule, FixedSteps, HistoryOnline, OnlineExit, first_pass_steps
from snnlab.inference.atsn import (
    READOUTS,
    ConfidenceExit,
    RunningReadout,
    SweepResult,
    accuracy_by_steps,
    confidence_levels,
    confidence_scores,
    confidence_sweep,
    cumulative_output,
    hardware_exit_passes,
    mean_logit_probabilities,
    paper_grid,
    readout_predictions,
    step_probabilities,
)
from snnlab.inference.dtsnn import EntropyExit, entropy_sweep, normalized_entropy
from snnlab.inference.adaptive import (
    AdaptiveResult, adaptive_inference, compare_wallclock, fixed_inference, select_samples, step_input,
)
from snnlab.inference.complexity import ComplexityReport, SynapticOpCounter, fan_out
from snnlab.inference.evaluate import EXIT_RULES, ExitEvaluation, build_exit_rule, evaluate_exit

__all__ = [
    "ExitResult", "ExitRule", "FixedSteps", "HistoryOnline", "OnlineExit", "first_pass_steps",
    "READOUTS", "ConfidenceExit", "RunningReadout", "SweepResult", "accuracy_by_steps", "confidence_levels", "confidence_scores",
    "confidence_sweep", "cumulative_output", "hardware_exit_passes", "mean_logit_probabilities", "paper_grid",
    "readout_predictions", "step_probabilities",
    "EntropyExit", "entropy_sweep", "normalized_entropy",
    "AdaptiveResult", "adaptive_inference", "compare_wallclock", "fixed_inference", "select_samples", "step_input",
    "ComplexityReport", "SynapticOpCounter", "fan_out",
    "EXIT_RULES", "ExitEvaluation", "build_exit_rule", "evaluate_exit",
]
