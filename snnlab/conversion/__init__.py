"""ANN-to-SNN conversion with time-to-first-spike neurons (SC-TTFS paper, Feng et al. 2024):
TTFS and SC-TTFS neurons, BN folding, the conversion pipeline, code books, error split, energy."""

from snnlab.conversion.bn_folding import fold_batchnorm, fold_conv_bn, has_batchnorm
from snnlab.conversion.codebook import codebook, enumerate_patterns, n_patterns, pattern_values, reachable_patterns
from snnlab.conversion.energy import HARDWARE, energy, energy_improvement
from snnlab.conversion.errors import conversion_error_parts
from snnlab.conversion.pipeline import (
    KINDS,
    PAPER_THRESHOLDS,
    ConvertedSNN,
    RateNeuron,
    accuracy,
    calibration_rule,
    convert,
    evaluate_snn,
    fine_tune,
    initial_thresholds,
    rate_thresholds_from_statistics,
    relu_preactivations,
    simulate_stepwise,
    thresholds_from_statistics,
    train_ann,
)
from snnlab.conversion.ttfs import NO_SPIKE, SCTTFSNeuron, ThresholdParams, TTFSNeuron, decode, spike_times, threshold

__all__ = [
    "fold_batchnorm", "fold_conv_bn", "has_batchnorm",
    "codebook", "enumerate_patterns", "n_patterns", "pattern_values", "reachable_patterns",
    "HARDWARE", "energy", "energy_improvement",
    "conversion_error_parts",
    "KINDS", "PAPER_THRESHOLDS", "ConvertedSNN", "RateNeuron", "accuracy", "calibration_rule", "convert",
    "evaluate_snn", "fine_tune", "initial_thresholds", "rate_thresholds_from_statistics", "relu_preactivations",
    "simulate_stepwise", "thresholds_from_statistics", "train_ann",
    "NO_SPIKE", "SCTTFSNeuron", "ThresholdParams", "TTFSNeuron", "decode", "spike_times", "threshold",
]
