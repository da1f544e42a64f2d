"""ANN-to-SNN conversion with time-to-first-spike neurons (SC-TTFS paper, Feng et al. 2024):
TTFS and SC-TTFS neurons, BN folding, the conversion pipeline, code books, error split, energy.

Names load on first use (:func:`snnlab.lazy.lazy_exports`): importing the package, as ``snnlab --help``
does through its command module, costs nothing; ``from snnlab.conversion import x`` works unchanged.
"""

from snnlab.lazy import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "snnlab.conversion.bn_folding": (
        "fold_batchnorm", "fold_conv_bn", "has_batchnorm",
    ),
    "snnlab.conversion.codebook": (
        "codebook", "enumerate_patterns", "n_patterns", "pattern_values", "reachable_patterns",
    ),
    "snnlab.conversion.energy": (
        "HARDWARE", "energy", "energy_improvement",
    ),
    "snnlab.conversion.errors": (
        "conversion_error_parts",
    ),
    "snnlab.conversion.pipeline": (
        "KINDS", "PAPER_THRESHOLDS", "ConvertedSNN", "RateNeuron", "accuracy", "calibration_rule", "convert",
        "evaluate_snn", "fine_tune", "initial_thresholds", "rate_thresholds_from_statistics",
        "relu_preactivations", "simulate_stepwise", "thresholds_from_statistics", "train_ann",
    ),
    "snnlab.conversion.ttfs": (
        "NO_SPIKE", "SCTTFSNeuron", "ThresholdParams", "TTFSNeuron", "decode", "spike_times", "threshold",
    ),
}

__all__ = [name for names in _EXPORTS.values() for name in names]

__getattr__ = lazy_exports(__name__, {name: module for module, names in _EXPORTS.items() for name in names})


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
