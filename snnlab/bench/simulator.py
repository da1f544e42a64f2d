"""Accelerator simulator speed: one inference of chapter 8's network at T=4, and simulated synaptic
events per second of the Numba loop against the same loop run as plain Python.

The network is the ATSN digits network of chapters 7 and 8 (conv 8 - conv 16 - integrator output,
8x8 digits), trained briefly with the chapters' recipe and deployed in fixed point. Timings are
medians of ``repeats`` runs, after a warm-up call that loads (or compiles) the Numba kernel; the
warm-up time is reported on its own. The pure-Python baseline runs on a smaller net (conv 4, the
same digits) and a few samples, because it is slow; the Numba loop is timed on that same net and
samples, so the ratio compares like with like. Target (issue 11): one inference in under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer training batches, samples and repeats")
    parser.add_argument("--T", type=int, default=4, help="most timesteps per inference")
    parser.add_argument("--samples", type=int, default=200, help="test samples for the events-per-second run")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")


def _median_seconds(fn, repeats: int, clock=time.perf_counter) -> float:
    """Median over ``repeats`` calls of ``fn`` of the seconds each took (by ``clock``)."""
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def targets(one_inference_seconds: float, numba_over_python: float) -> dict:
    """Issue 11's targets: one inference under 1 s; the Numba loop faster than the same loop in Python."""
    return {"one_inference_under_1s": {"value": one_inference_seconds, "target": "seconds < 1",
                                       "met": one_inference_seconds < 1.0},
            "numba_faster_than_python": {"value": numba_over_python, "target": "ratio > 1",
                                         "met": numba_over_python > 1.0}}


def run(args: argparse.Namespace) -> dict:
    import torch

    from snnlab.data import load_dataset
    from snnlab.hardware import prepare, reference_simulate, simulate
    from snnlab.hardware.config import atsn_accelerator
    from snnlab.hardware.experiments import deploy
    from snnlab.inference.ablation import train_variant
    from snnlab.models.atsn_vgg import atsn_vgg

    quick = bool(getattr(args, "quick", False))
    T = int(args.T)
    if T < 1 or args.samples < 1 or args.repeats < 1:
        raise ValueError("--T, --samples and --repeats must be >= 1.")
    samples, repeats = (40, 2) if quick else (int(args.samples), int(args.repeats))
    torch.manual_seed(0)
    train_set = load_dataset("digits", train=True, augment=False)
    test_set = load_dataset("digits", train=False)
    x = torch.stack([test_set[i][0] for i in range(min(samples, len(test_set)))])
    net, _ = train_variant("neuron_loss", train_set=train_set, epochs=1, T=T, max_batches=4 if quick else 12)
    model, xq = deploy(net, x)
    config = atsn_accelerator()

    start = time.perf_counter()
    simulate(model, xq[:1], T=T, config=config)            # loads or compiles the kernel
    warmup = time.perf_counter() - start
    one = _median_seconds(lambda: simulate(model, xq[:1], T=T, config=config), repeats)
    prepared = prepare(model, config, (1, 8, 8))
    one_kernel = _median_seconds(lambda: simulate(prepared, xq[:1], T=T), repeats)
    batch = simulate(prepared, xq, T=T)
    batch_seconds = _median_seconds(lambda: simulate(prepared, xq, T=T), repeats)
    events = float(batch.counts("synaptic_ops", "total"))

    # pure-Python loop vs Numba on a small net and a few samples
    torch.manual_seed(0)
    small = atsn_vgg(num_classes=10, input_shape=(1, 8, 8), channels=(4,), bn=False).eval()
    small_model, _ = deploy(small, x[:1])
    few = xq[: 4 if quick else 8]
    small_prep = prepare(small_model, config, (1, 8, 8))
    simulate(small_prep, few, T=T)
    py_results = []
    py_seconds = _median_seconds(lambda: py_results.append(reference_simulate(small_prep, few, T=T)), 1 if quick else 2)
    py_events = float(py_results[0].counts("synaptic_ops", "total"))
    nb_result = simulate(small_prep, few, T=T)
    nb_seconds = _median_seconds(lambda: simulate(small_prep, few, T=T), repeats)
    small_events = float(nb_result.counts("synaptic_ops", "total"))
    py_rate, nb_rate = small_events / py_seconds, small_events / nb_seconds
    return {
        "quick": quick,
        "T": T,
        "network": {"chapter": "atsn_vgg channels (8, 16), integrator output, digits 8x8, fixed point 8/6 bits",
                    "mean_steps": batch.mean_steps, "synaptic_events_per_inference": events / len(xq)},
        "warmup_seconds": warmup,
        "one_inference_seconds": one,
        "one_inference_kernel_seconds": one_kernel,
        "batch": {"samples": int(len(xq)), "seconds": batch_seconds, "synaptic_events": events,
                  "events_per_second": events / batch_seconds},
        "python_vs_numba": {"network": "atsn_vgg channels (4,), digits 8x8", "samples": int(len(few)),
                            "synaptic_events": small_events, "python_synaptic_events": py_events,
                            "python_seconds": py_seconds,
                            "numba_seconds": nb_seconds, "python_events_per_second": py_rate,
                            "numba_events_per_second": nb_rate, "numba_over_python": nb_rate / py_rate},
        "targets": targets(one, nb_rate / py_rate),
    }
