"""``snnlab evaluate``: a trained network at fixed T or with an early-exit rule (chapter 7's functions).

Loads a run's checkpoint (OUT_DIR/checkpoint.pt of `snnlab train`, or the folder; an ATSN network
saved with save_atsn_vgg works too), runs its test set through adaptive inference (samples leave the
batch when the rule lets them exit) and prints JSON: accuracy, mean and max timesteps, the eq. 19
complexity (synaptic operations, also relative to the same network at fixed T) and wall-clock.

examples:
  snnlab evaluate runs/digits-atsn                                      # fixed T (the run's)
  snnlab evaluate runs/digits-atsn --exit atsn --cl-init 0.999 --tau-cl 0.999
  snnlab evaluate runs/cifar10-vgg/checkpoint.pt --exit dtsnn --theta 0.05 --batch-size 128
  snnlab evaluate runs/cifar10dvs --exit atsn --T 10 --samples 500 --output eval.json

The wall-clock comes from runs without the operation-counting hooks, after the counted run (which
must exit at the same steps; it is checked): the median of --repeats runs, interleaved with the
fixed-T baseline's so that a change of machine load hits both. Inference runs on the CPU.
"""

from __future__ import annotations

import argparse
import os
import time

__all__ = ["register"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a `snnlab train` checkpoint.pt, or the run's --out-dir")
    e = p.add_argument_group("exit rule")
    e.add_argument("--exit", default="fixed", dest="exit_rule", metavar="{fixed,atsn,dtsnn}",
                   help="fixed: all T steps (default); atsn: ATSN's confidence exit (eqs. 15-16); "
                        "dtsnn: DTSNN's entropy exit")
    e.add_argument("--T", "-T", type=int, default=None, help="most timesteps per sample (default: the run's T)")
    e.add_argument("--cl-init", type=float, default=None, help="atsn: CL_init of eq. 15 (default 0.999)")
    e.add_argument("--tau-cl", type=float, default=None, help="atsn: tau_CL of eq. 15 (default 0.999)")
    e.add_argument("--reads", default=None, metavar="{step,cumulative}",
                   help="atsn: exit on max o^t (step, eq. 16, default) or on max y_t (cumulative)")
    e.add_argument("--hardware-form", action="store_true",
                   help="atsn: test the division-free form of eqs. 17-18 (same exits)")
    e.add_argument("--theta", type=float, default=None, help="dtsnn: entropy threshold in [0, 1] (required)")
    e.add_argument("--readout", default=None, metavar="{mean_logits,mean_softmax,step_softmax}",
                   help="fixed: how outputs become a class (default: as the run's loss predicts)")
    d = p.add_argument_group("data")
    d.add_argument("--dataset", default=None, help="data set (default: the run's)")
    d.add_argument("--data-option", action="append", metavar="KEY=VALUE",
                   help="data set option (default: the run's options; repeatable)")
    d.add_argument("--data-root", default=None, help="data root (default $SNNLAB_DATA or ~/.cache/snnlab)")
    d.add_argument("--split", default="test", choices=("test", "train"), help="which split (default test)")
    d.add_argument("--samples", type=int, default=None, help="the first N samples (default: all)")
    d.add_argument("--batch-size", type=int, default=256, help="samples per adaptive batch (default 256)")
    p.add_argument("--repeats", type=int, default=1,
                   help="timed runs (interleaved with the baseline's); the median is reported (default 1)")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the fixed-T run of the same network (relative complexity and speed-up)")
    p.add_argument("--output", default=None, help="also write the JSON to this file")


def _rule_from_args(args: argparse.Namespace, loss: str | None):
    from snnlab.inference.evaluate import EXIT_RULES, build_exit_rule

    name = args.exit_rule
    if name not in EXIT_RULES:
        raise ValueError(f"unknown exit rule {name!r}; valid: {', '.join(EXIT_RULES)}.")
    misplaced = {"atsn": [("--theta", args.theta), ("--readout", args.readout)],
                 "dtsnn": [("--cl-init", args.cl_init), ("--tau-cl", args.tau_cl), ("--reads", args.reads),
                           ("--readout", args.readout)],
                 "fixed": [("--cl-init", args.cl_init), ("--tau-cl", args.tau_cl), ("--reads", args.reads),
                           ("--theta", args.theta)]}[name]
    misplaced = [flag for flag, value in misplaced if value is not None]
    if args.hardware_form and name != "atsn":
        misplaced.append("--hardware-form")
    if misplaced:
        raise ValueError(f"{', '.join(misplaced)} do(es) not apply to --exit {name}.")
    readout = args.readout or ("mean_softmax" if loss == "imp" else "mean_logits")
    rule = build_exit_rule(name, cl_init=0.999 if args.cl_init is None else args.cl_init,
                           tau_cl=0.999 if args.tau_cl is None else args.tau_cl, theta=args.theta,
                           readout=readout, reads=args.reads or "step", hardware=args.hardware_form)
    return rule, readout


def _describe_rule(rule) -> dict:
    from snnlab.inference.atsn import ConfidenceExit
    from snnlab.inference.dtsnn import EntropyExit

    if isinstance(rule, ConfidenceExit):
        return {"rule": "atsn", "cl_init": rule.cl_init, "tau_cl": rule.tau_cl, "reads": rule.reads,
                "predict": rule.predict, "hardware_form": rule.hardware,
                "source": "ATSN eqs. 15-16 (eqs. 17-18 in hardware form)"}
    if isinstance(rule, EntropyExit):
        return {"rule": "dtsnn", "theta": rule.theta, "source": "DTSNN eq. 7 (normalised entropy of eq. 6)"}
    return {"rule": "fixed", "readout": rule.readout}


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from snnlab.checks import check_choice, check_positive_int
    from snnlab.cli import print_json
    from snnlab.data import DATASETS, dataset_info, load_dataset
    from snnlab.inference.atsn import READOUTS
    from snnlab.inference.evaluate import evaluate_exit
    from snnlab.inference.exit_rule import FixedSteps
    from snnlab.training.cli import parse_options
    from snnlab.training.restore import load_trained_model

    # every option is checked before the checkpoint is read (snnlab.checks, the rules of snnlab train)
    for flag, value in (("--T", args.T), ("--samples", args.samples), ("--batch-size", args.batch_size),
                        ("--repeats", args.repeats)):
        if value is not None:
            check_positive_int(flag, value)
    if args.dataset is not None:
        check_choice("--dataset", args.dataset, DATASETS)
    if args.readout is not None:
        check_choice("--readout", args.readout, READOUTS)
    if args.reads is not None:
        check_choice("--reads", args.reads, ("step", "cumulative"))
    _rule_from_args(args, None)  # the rule's parameters (ranges, flags that do not apply)
    given_options = parse_options(args.data_option, "data") if args.data_option else None
    start = time.perf_counter()
    model, meta = load_trained_model(args.checkpoint)
    rule, readout = _rule_from_args(args, meta.get("loss"))
    dataset = args.dataset or meta.get("dataset") or "digits"
    options = given_options if given_options is not None else dict(meta.get("data_options") or {})
    T = args.T or meta.get("T")
    if T is None:
        raise ValueError(f"{args.checkpoint} does not record its T; pass --T.")
    info = dataset_info(dataset, T=T, **options)
    kind = info["kind"]
    data = load_dataset(dataset, train=args.split == "train", T=T if kind == "events" else None,
                        root=args.data_root, **({"augment": False} if "augment" in info["valid_options"] else {}),
                        **{k: v for k, v in options.items() if k != "augment"})
    if args.samples is not None:
        data = torch.utils.data.Subset(data, range(min(args.samples, len(data))))

    def run(r, count):
        return evaluate_exit(model, data, r, T=T, kind=kind, batch_size=args.batch_size, count_operations=count)

    baseline = not args.no_baseline and not isinstance(rule, FixedSteps)
    base_rule = FixedSteps(readout)
    # counted runs first: they also warm up (kernel compilation, caches) before the timed ones
    counted = run(rule, True)
    base_counted = run(base_rule, True) if baseline else None
    # timed runs, the rule's and the baseline's interleaved (a change of machine load hits both); medians
    timings: dict[str, list] = {"rule": [], "base": []}
    for _ in range(args.repeats):
        timings["rule"].append(run(rule, False))
        if baseline:
            timings["base"].append(run(base_rule, False))

    def median_run(runs):
        return sorted(runs, key=lambda r: r.seconds)[(len(runs) - 1) // 2] if runs else None

    timed, base_timed = median_run(timings["rule"]), median_run(timings["base"])
    if not torch.equal(timed.steps, counted.steps) or not torch.equal(timed.predictions, counted.predictions):
        raise ValueError("the counted run exited at other steps than the timed one; the network is not "
                           "deterministic in eval mode, so its numbers cannot be trusted.")
    n = len(timed.steps)
    ops = counted.complexity
    out = {
        "checkpoint": meta,
        "dataset": dataset, "data_options": options, "split": args.split, "samples": n, "input_kind": kind,
        "T": T,
        "exit": _describe_rule(rule),
        "accuracy": timed.accuracy(),
        "mean_timesteps": timed.mean_steps,
        "max_timesteps": timed.max_steps,
        "exits_per_step": timed.step_histogram(),
        "sample_steps_fraction": sum(timed.active) / (T * n),
        "complexity_eq19": {
            "synaptic_operations_per_sample": ops.total / n,
            "per_layer": [{"layer": name, "operations_per_sample": o / n, "input_firing_rate": fr}
                          for name, o, fr in zip(ops.layers, ops.operations, ops.firing_rates)],
            "source": "ATSN eq. 19: sum over weight layers of non-zero inputs x fan-out, over the steps "
                      "each sample computed",
        },
        "wall_clock": {"seconds": timed.seconds, "network_seconds": timed.network_seconds, "repeats": args.repeats,
                       "samples_per_second": n / timed.seconds if timed.seconds > 0 else None,
                       "batch_size": args.batch_size, "torch_threads": torch.get_num_threads(),
                       "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
    }
    if baseline:
        out["fixed_T_baseline"] = {
            "readout": readout, "accuracy": base_timed.accuracy(), "timesteps": T,
            "synaptic_operations_per_sample": base_counted.complexity.total / n,
            "seconds": base_timed.seconds,
        }
        out["complexity_eq19"]["relative_to_fixed_T"] = ops.total / base_counted.complexity.total \
            if base_counted.complexity.total else None
        out["wall_clock"]["speedup_vs_fixed_T"] = base_timed.seconds / timed.seconds if timed.seconds else None
    out["seconds_total"] = time.perf_counter() - start
    print_json(out, args.output)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a trained run at fixed T or with an exit rule (accuracy, timesteps, eq. 19, time)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        populate=_add_arguments)
    parser.set_defaults(func=_evaluate)
