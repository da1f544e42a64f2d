"""Training memory and time per step of BPTT, SLTT and OTTT_A against T (bytes held for backward).

The same model and batch for every method; for each T: one warm-up step, then ``repeats`` timed
steps. Bytes held for backward come from :class:`snnlab.analysis.memory.MemoryMeter` (unique
saved storages, parameters and the input batch excluded). Targets (issue 5, OTTT Fig. 3 and the
SLTT paper): SLTT and OTTT hold at T=16 within 10% of T=2; BPTT grows at least 6x over the
same range.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

__all__ = ["add_arguments", "run", "measure_method"]

METHODS = ("bptt", "sltt", "ottt_a")
DEFAULT_TS = (1, 2, 4, 8, 16)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="a tiny model, T in {1, 2, 16}, one repeat (a structural check)")
    parser.add_argument("--model", default="spiking_cnn", help="model from snnlab.models")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=16, help="side of the random 1-channel input")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per (method, T)")
    parser.add_argument("--timesteps", type=int, nargs="+", default=list(DEFAULT_TS), metavar="T")


def measure_method(method_name: str, model, x_static: torch.Tensor, y: torch.Tensor, T: int,
                   repeats: int) -> dict:
    """Bytes held for backward and seconds per training step of one method at one T."""
    from snnlab.analysis.memory import MemoryMeter
    from snnlab.training import build_loss, build_method, time_major

    method = build_method(method_name)
    loss = build_loss("tet")
    inputs = time_major(x_static, T, "static")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the same weights for every run
    method.train_step(model, inputs, y, loss, optimizer)  # warm-up (and OTTT's layer discovery)
    with MemoryMeter(exclude=[*model.parameters(), inputs]) as meter:
        method.train_step(model, inputs, y, loss, optimizer)
    report = meter.report()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        method.train_step(model, inputs, y, loss, optimizer)
        times.append(time.perf_counter() - t0)
    method.detach(model)
    return {
        "saved_bytes": report.saved_bytes_peak,
        "saved_tensors": report.saved_tensors,
        "seconds_per_step": statistics.median(times),
        "rss_peak_bytes": report.rss_peak_bytes,
        "cuda_peak_bytes": report.cuda_peak_bytes,
    }


def _target(value: float | None, rule: str, ok) -> dict:
    return {"value": value, "target": rule, "met": None if value is None else bool(ok(value))}


def run(args: argparse.Namespace) -> dict:
    from snnlab.models import build_model

    quick = bool(getattr(args, "quick", False))
    timesteps = sorted(set(args.timesteps))
    if any(t < 1 for t in timesteps):
        raise ValueError(f"timesteps must be >= 1, got {timesteps}.")
    batch, size, repeats = args.batch_size, args.image_size, args.repeats
    model_options = {"channels": (16, 32)} if args.model == "spiking_cnn" else {}
    if quick:
        batch, size, repeats = 4, 8, 1
        timesteps = [1, 2, 16]
        model_options = {"channels": (4, 8)} if args.model == "spiking_cnn" else {}
    torch.manual_seed(0)
    model = build_model(args.model, num_classes=10, input_shape=(1, size, size), T=max(timesteps), **model_options)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 1, size, size, generator=g) * 2
    y = torch.randint(0, 10, (batch,), generator=g)
    results: dict[str, dict[str, dict]] = {m: {} for m in METHODS}
    for method in METHODS:
        for T in timesteps:
            results[method][str(T)] = measure_method(method, model, x, y, T, repeats)

    def ratio(method: str, hi: int = 16, lo: int = 2) -> float | None:
        r = results[method]
        if str(hi) not in r or str(lo) not in r or not r[str(lo)]["saved_bytes"]:
            return None
        return r[str(hi)]["saved_bytes"] / r[str(lo)]["saved_bytes"]

    ratios = {m: ratio(m) for m in METHODS}
    return {
        "model": args.model,
        "model_options": {k: list(v) if isinstance(v, tuple) else v for k, v in model_options.items()},
        "input": [batch, 1, size, size],
        "loss": "tet",
        "repeats": repeats,
        "quick": quick,
        "results": results,
        "saved_bytes_ratio_T16_over_T2": ratios,
        "targets": {
            "sltt_T16_within_10pct_of_T2": _target(ratios["sltt"], "|ratio - 1| <= 0.10", lambda v: abs(v - 1) <= 0.10),
            "ottt_a_T16_within_10pct_of_T2": _target(ratios["ottt_a"], "|ratio - 1| <= 0.10",
                                                     lambda v: abs(v - 1) <= 0.10),
            "bptt_T16_at_least_6x_T2": _target(ratios["bptt"], "ratio >= 6", lambda v: v >= 6),
        },
    }
