"""Adaptive inference (ATSN's early exit) against fixed T: the time to classify the digits test set.

The network is chapter 7's ATSN network (``neuron_loss``: integrator output, L_imp; trained here
with the chapter's recipe, or loaded with ``--model`` from :func:`snnlab.models.atsn_vgg.save_atsn_vgg`).
For each exit rule and batch size, :func:`snnlab.inference.compare_wallclock` times, interleaved,

* ``fixed``: all T steps in one multi-step call per batch (the usual fixed-T path),
* ``fixed_stepwise``: all T steps, one call per step (the adaptive loop without exits),
* ``adaptive``: :func:`snnlab.inference.adaptive_inference` (exited samples leave the batch),
* ``adaptive_chunked``: the same with ``chunk="auto"`` (``--chunk``): each network call computes the
  steps per call that a cost model picks from measured call times (a convolution of a few channels
  costs less per image on more images), the exit test still step by step,

and reports medians and the ratios ``adaptive / fixed`` and ``adaptive / fixed_stepwise`` next to
``sample_steps``, the fraction of the T·N sample-steps adaptive inference computed (the ratio an
ideal implementation would reach against ``fixed_stepwise``). At batch size B, the fixed-T paths
classify the images in batches of B and adaptive inference runs B batch slots (a sample that exits
is replaced by the next waiting one), so the per-step paths compute at most B samples per network
call (the chunked run at most B samples for k steps, the one call B samples for T steps).

Target (issue 20): whenever adaptive inference computes at most 70 % of the sample-steps, it takes at
most 80 % of the fixed-T wall-clock, at every batch size timed (:func:`targets`), judged for each way
of running it (one step per call; chunked, where the steps computed after exits count as computed).
Fixed T is the one-call path (what a user would otherwise run); the same test against the per-step
loop without exits (the same steps, so it isolates the exit mechanism) is reported next to it.

Both per-step paths run through :func:`snnlab.inference.stepper.make_stepper`: for this network the
fast :class:`~snnlab.inference.stepper.LayerStepper` (the conv front of a static image once per
sample, each neuron layer with its pooling in one Numba call, reused buffers; bit-identical to the
module path), so ``fixed_stepwise`` is the same fast loop without exits.

Two rules: the paper's default ``ConfidenceExit(0.999, 0.999)``, and the same rule with the CL_init
whose offline mean exit step is closest to T/2 (chosen from the stored outputs of a fixed-T run),
so that the time saved can be read against two amounts of work saved.

Timings run with ``--threads`` (default 1) torch and Numba threads: the per-step tensors are small,
and on a shared 2-core machine a team of two threads that wait for each other at every one of the
per-step kernel launches costs more than it computes.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from snnlab.cpu_threads import thread_budget

__all__ = ["add_arguments", "run", "measure", "exit_rules", "per_step_cost", "pooling_seconds", "convolution_cost",
           "targets"]

WORK_LIMIT = 0.70
"""The target applies where adaptive inference computes at most this fraction of the sample-steps ..."""
TIME_LIMIT = 0.80
"""... and asks for at most this fraction of the fixed-T wall-clock."""

BATCH_SIZES = (1, 16, 64, 0)
"""Default batch sizes; 0 means the whole test set as one batch."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="train 1 epoch of 4 batches, time 64 test images, 2 repeats (a structural check)")
    parser.add_argument("--model", default=None, help="a saved AtsnVGG (save_atsn_vgg); default: train one")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs when no --model is given")
    parser.add_argument("--T", type=int, default=4, help="the most timesteps a sample may take")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCH_SIZES), metavar="B",
                        help="batch sizes to time (0: the whole test set as one batch)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats per setting (medians)")
    parser.add_argument("--threads", type=int, default=1, help="torch and Numba threads while timing")
    parser.add_argument("--chunk", default="auto", type=_chunk_arg,
                        help="steps per network call of the chunked adaptive run timed next to the per-step one: "
                             "'auto' (chosen by measured cost, the default), an int from 1 to T (1: no chunked run)")


def _chunk_arg(text: str):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--chunk takes 'auto' or an int from 1 to T, got {text!r}.") from None


def exit_rules(outputs: torch.Tensor, T: int) -> dict:
    """The two rules timed: the paper's default, and the CL_init (τ_CL = 0.999) whose offline mean
    exit step on ``outputs`` ``[T, N, C]`` is closest to T/2 (from CL_init = 1 - 10^-k, k in [0.3, 9])."""
    from snnlab.inference import ConfidenceExit, confidence_sweep

    candidates = 1.0 - np.logspace(-0.3, -9, 60)
    targets = torch.zeros(outputs.shape[1], dtype=torch.long)    # accuracy is not used here
    sweep = confidence_sweep(outputs, targets, candidates, [0.999])
    best = float(candidates[int(np.argmin(np.abs(sweep.mean_steps[:, 0] - T / 2)))])
    return {"default": ConfidenceExit(0.999, 0.999), "half": ConfidenceExit(best, 0.999)}


def measure(model, x: torch.Tensor, rules: dict, *, T: int, batch_sizes, repeats: int, n_threads: int = 1,
            kind: str = "static", chunk: int | str = "auto") -> list[dict]:
    """One row per (rule, batch size): median times (ms), ratios and the fraction of sample-steps.
    Adaptive inference is timed one step per network call (``adaptive``) and, unless ``chunk`` is 1,
    with that ``chunk`` in the same repeats (``row["chunked"]``: its times, ratios, computed
    sample-steps, network calls and mean steps per call)."""
    from snnlab.inference import compare_wallclock

    rows = []
    with thread_budget(n_threads):
        for name, rule in rules.items():
            for b in batch_sizes:
                b = len(x) if b in (0, None) else int(b)
                t = compare_wallclock(model, x, rule, T=T, kind=kind, repeats=repeats, batch_size=b, chunk=chunk)
                ms = {k: 1000 * v for k, v in t.items()
                      if k.startswith(("fixed", "adaptive")) and not k.endswith("_calls")}  # seconds only
                chunked = None
                if "adaptive_chunked" in t:
                    chunked = {
                        "chunk": chunk, "sample_steps": t["chunked_sample_steps"],
                        "steps_per_call": t["chunked_steps_per_call"], "network_calls": t["chunked_network_calls"],
                        "calibration_ms": 1000 * t["chunk_calibration_s"],
                        "adaptive_over_fixed": t["adaptive_chunked"] / t["fixed"],
                        "adaptive_over_fixed_stepwise": t["adaptive_chunked"] / t["fixed_stepwise"],
                        "adaptive_over_fixed_cpu": t["adaptive_chunked_cpu"] / t["fixed_cpu"],
                        "adaptive_over_fixed_stepwise_cpu": t["adaptive_chunked_cpu"] / t["fixed_stepwise_cpu"],
                        "outside_network_share": 1.0 - t["adaptive_chunked_network"] / t["adaptive_chunked"],
                    }
                rows.append({
                    "rule": name, "rule_repr": repr(rule), "batch_size": b, "images": len(x),
                    "sample_steps": t["sample_steps"],
                    "ms": ms,
                    "adaptive_over_fixed": t["adaptive"] / t["fixed"],
                    "adaptive_over_fixed_stepwise": t["adaptive"] / t["fixed_stepwise"],
                    "adaptive_over_fixed_cpu": t["adaptive_cpu"] / t["fixed_cpu"],
                    "adaptive_over_fixed_stepwise_cpu": t["adaptive_cpu"] / t["fixed_stepwise_cpu"],
                    "outside_network_share": 1.0 - t["adaptive_network"] / t["adaptive"],
                    "network_calls": {"adaptive": t["network_calls"], "fixed_stepwise": t["fixed_stepwise_calls"],
                                      "fixed": -(-len(x) // b)},
                    "chunked": chunked,
                })
    return rows


def per_step_cost(rows: list[dict], T: int, rule: str = "default") -> dict:
    """Fit the per-step loop's time per step as ``fixed + per_sample · B`` over the batch sizes of ``rows``
    (from :func:`measure`; the ``fixed_stepwise`` times of ``rule``'s rows). Returns microseconds:
    ``{"fixed_us", "per_sample_us", "per_step_us": {B: µs}}``. Needs two batch sizes or more."""
    mine = [r for r in rows if r["rule"] == rule]
    per_step = {r["batch_size"]: 1000 * r["ms"]["fixed_stepwise"] / (T * -(-r["images"] // r["batch_size"]))
                for r in mine}
    if len(per_step) < 2:
        raise ValueError(f"the fit needs rows of rule {rule!r} at two batch sizes or more, got {sorted(per_step)}.")
    sizes = np.array(sorted(per_step), dtype=np.float64)
    slope, intercept = np.polyfit(sizes, [per_step[int(b)] for b in sizes], 1)
    return {"fixed_us": float(intercept), "per_sample_us": float(slope),
            "per_step_us": {int(b): per_step[int(b)] for b in sizes}}


def targets(rows: list[dict]) -> list[dict]:
    """One verdict per row of :func:`measure` and way of running adaptive inference (``"mode"``: ``"step"``,
    one step per network call; ``"chunked"``, the row's chunk) that computes at most :data:`WORK_LIMIT`
    of the sample-steps (each way its own, steps computed after exits included): adaptive time at
    most :data:`TIME_LIMIT` of the one-call fixed-T path (``met``, the issue's target) and of the
    per-step fixed-T loop (``met_against_stepwise``)."""
    out = []
    for r in rows:
        ways = [("step", r, 1.0, r["network_calls"]["adaptive"])]
        if r.get("chunked"):
            c = r["chunked"]
            ways.append(("chunked", c, c["steps_per_call"], c["network_calls"]))
        for mode, w, per_call, calls in ways:
            if w["sample_steps"] > WORK_LIMIT:
                continue
            out.append({"rule": r["rule"], "batch_size": r["batch_size"], "mode": mode,
                        "chunk": 1 if mode == "step" else w["chunk"], "steps_per_call": per_call,
                        "sample_steps": w["sample_steps"],
                        "adaptive_over_fixed": w["adaptive_over_fixed"],
                        "met": w["adaptive_over_fixed"] <= TIME_LIMIT,
                        "adaptive_over_fixed_cpu": w["adaptive_over_fixed_cpu"],
                        "adaptive_over_fixed_stepwise": w["adaptive_over_fixed_stepwise"],
                        "met_against_stepwise": w["adaptive_over_fixed_stepwise"] <= TIME_LIMIT,
                        "network_calls": {**r["network_calls"], "adaptive": calls}})
    return out


def convolution_cost(model, x: torch.Tensor, *, T: int, kind: str = "static", batch_sizes=(16,),
                     repeats: int = 20) -> dict:
    """What a convolution costs per image in each path, at each batch size B of ``batch_sizes``.

    A per-step loop (and adaptive inference, with B slots) calls each ``nn.Conv2d`` of ``model`` on at
    most B images per step; the one-call fixed-T path calls it once on T·B images (the time steps
    folded into the batch). A CPU convolution of a few channels is cheaper per image in the larger
    call, which the per-step paths cannot have. The convolutions' input shapes are read from one
    fixed-T run of ``x[:1]``; each is then timed alone (median of ``repeats``, no gradient, the
    calling thread budget) on random inputs of B and of T·B images. Returns
    ``{"layers": [{"layer", "input"}], "by_batch": {B: {"per_step_us_per_image",
    "one_call_us_per_image", "one_call_advantage"}}}`` (sums over the layers; advantage above 1:
    the one call is cheaper per image). With static input the stepper runs the convolutions before
    the first neuron once per sample, not per step: read those layers' rows with that in mind."""
    import time

    from snnlab.inference import fixed_inference

    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise ValueError("convolution_cost needs a model with nn.Conv2d layers; this one has none.")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}.")
    shapes: dict[str, tuple] = {}
    def record(name):
        def hook(module, args):
            shapes.setdefault(name, tuple(args[0].shape[1:]))   # returns None: the input is unchanged
        return hook

    hooks = [m.register_forward_pre_hook(record(name)) for name, m in convs]
    try:
        fixed_inference(model, x[:1], T=T, kind=kind)
    finally:
        for h in hooks:
            h.remove()
    gen = torch.Generator().manual_seed(0)
    by_batch = {}
    with torch.no_grad():
        for b in batch_sizes:
            b = len(x) if b in (0, None) else int(b)
            if b < 1:
                raise ValueError(f"batch sizes must be >= 1 (or 0 for all of x), got {b}.")
            per_image = {"per_step": 0.0, "one_call": 0.0}
            for name, conv in convs:
                if name not in shapes:
                    continue                                  # not reached by this input
                for path, n in (("per_step", b), ("one_call", T * b)):
                    z = (torch.rand(n, *shapes[name], generator=gen) > 0.7).float()
                    conv(z)                                   # first call: set-up, untimed
                    times = []
                    for _ in range(repeats):
                        start = time.perf_counter()
                        conv(z)
                        times.append(time.perf_counter() - start)
                    per_image[path] += float(np.median(times)) / n
            by_batch[b] = {"per_step_us_per_image": 1e6 * per_image["per_step"],
                           "one_call_us_per_image": 1e6 * per_image["one_call"],
                           "one_call_advantage": per_image["per_step"] / per_image["one_call"]}
    return {"layers": [{"layer": name, "input": list(shapes[name])} for name, _ in convs if name in shapes],
            "by_batch": by_batch}


def pooling_seconds(shape=(450, 8, 8, 8), repeats: int = 20) -> dict:
    """Median seconds of torch's ``max_pool2d`` and :class:`~snnlab.models.atsn_vgg.SpikeMaxPool2d` on
    random spikes of ``shape`` without gradient (the operation the profile found most expensive)."""
    import time

    import torch.nn.functional as F

    from snnlab.models.atsn_vgg import SpikeMaxPool2d

    spikes = (torch.rand(shape, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    fast = SpikeMaxPool2d()
    pools = {"max_pool2d": lambda: F.max_pool2d(spikes, 2), "SpikeMaxPool2d": lambda: fast(spikes)}
    times: dict[str, list[float]] = {k: [] for k in pools}
    with torch.no_grad():
        for _ in range(repeats):
            for name, pool in pools.items():
                start = time.perf_counter()
                pool()
                times[name].append(time.perf_counter() - start)
    return {k: float(np.median(v)) for k, v in times.items()}


def run(args: argparse.Namespace) -> dict:
    from snnlab.data import load_dataset
    from snnlab.inference import fixed_inference
    from snnlab.inference.ablation import train_variant
    from snnlab.inference.adaptive import check_chunk
    from snnlab.models.atsn_vgg import load_atsn_vgg

    load_at_start = os.getloadavg()[0]
    quick = bool(getattr(args, "quick", False))
    T, repeats, batch_sizes = args.T, args.repeats, list(args.batch_sizes)
    if any(b < 0 for b in batch_sizes):
        raise ValueError(f"batch sizes must be >= 1 (or 0 for the whole set), got {batch_sizes}.")
    check_chunk(args.chunk, T)            # before any training: a bad --chunk fails at once
    test_set = load_dataset("digits", train=False)
    x = torch.stack([test_set[i][0] for i in range(len(test_set))])
    if args.model:
        model, _ = load_atsn_vgg(args.model)
    else:
        torch.manual_seed(0)
        train_set = load_dataset("digits", train=True, augment=False)
        model, _ = train_variant("neuron_loss", train_set=train_set, T=T, epochs=1 if quick else args.epochs,
                                 max_batches=4 if quick else None)
    if quick:
        x, repeats, batch_sizes = x[:64], 2, [16, 0]
    with thread_budget(args.threads):
        outputs, _ = fixed_inference(model, x, T=T)
    rules = exit_rules(outputs, T)
    rows = measure(model, x, rules, T=T, batch_sizes=batch_sizes, repeats=repeats, n_threads=args.threads,
                   chunk=args.chunk)
    with thread_budget(args.threads):
        pooling = pooling_seconds((len(x), 8, 8, 8))
    with thread_budget(args.threads):
        convolutions = convolution_cost(model, x, T=T, batch_sizes=batch_sizes, repeats=3 if quick else 20)
    verdicts = targets(rows)
    by_mode = {mode: [v for v in verdicts if v["mode"] == mode] for mode in ("step", "chunked")}
    return {
        "targets": {"goal": f"where adaptive inference computes <= {WORK_LIMIT:.0%} of the sample-steps, it takes "
                            f"<= {TIME_LIMIT:.0%} of the fixed-T wall-clock (fixed T: all T steps in one multi-step "
                            f"call; the per-step loop without exits is reported as met_against_stepwise). Judged "
                            f"for each way of running adaptive inference: mode 'step' (one step per network call) "
                            f"and mode 'chunked' (chunk={args.chunk!r}: steps per call chosen by measured cost)",
                    "rows": verdicts,
                    "met": {mode: bool(v) and all(x["met"] for x in v) for mode, v in by_mode.items()},
                    "judged_batch_sizes": {mode: sorted({x["batch_size"] for x in v}) for mode, v in by_mode.items()},
                    "load_average_1m": os.getloadavg()[0], "load_average_at_start": load_at_start},
        "network": model.options, "trained_here": not args.model, "T": T, "images": len(x),
        "threads": args.threads, "repeats": repeats, "quick": quick,
        "rules": {k: repr(r) for k, r in rules.items()},
        "rows": rows,
        "per_step_cost": per_step_cost(rows, T),
        "pooling_seconds": pooling,
        "pooling_speedup": pooling["max_pool2d"] / pooling["SpikeMaxPool2d"],
        "convolutions": convolutions,
    }
