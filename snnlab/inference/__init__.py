"""Inference with adaptive timesteps: ATSN's confidence exit, DTSNN's entropy exit, batched
adaptive inference that stops computing exited samples, and the complexity measure (ATSN eq. 19).

Names load on first use (:func:`snnlab.lazy.lazy_exports`): importing the package, as ``snnlab --help``
does through its command module, costs nothing; ``from snnlab.inference import x`` works unchanged.
"""

from snnlab.lazy import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "snnlab.inference.exit_rule": (
        "ExitResult", "ExitRule", "FixedSteps", "HistoryOnline", "OnlineExit", "first_pass_steps",
    ),
    "snnlab.inference.atsn": (
        "READOUTS", "ConfidenceExit", "RunningReadout", "SweepResult", "accuracy_by_steps",
        "confidence_levels", "confidence_scores", "confidence_sweep", "cumulative_output",
        "hardware_exit_passes", "mean_logit_probabilities", "paper_grid", "readout_predictions",
        "step_probabilities",
    ),
    "snnlab.inference.dtsnn": (
        "EntropyExit", "entropy_sweep", "normalized_entropy",
    ),
    "snnlab.inference.adaptive": (
        "AdaptiveResult", "adaptive_inference", "compare_wallclock", "fixed_inference", "select_samples",
        "step_input",
    ),
    "snnlab.inference.complexity": (
        "ComplexityReport", "SynapticOpCounter", "fan_out",
    ),
    "snnlab.inference.evaluate": (
        "EXIT_RULES", "ExitEvaluation", "build_exit_rule", "evaluate_exit",
    ),
}

__all__ = [name for names in _EXPORTS.values() for name in names]

__getattr__ = lazy_exports(__name__, {name: module for module, names in _EXPORTS.items() for name in names})


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
