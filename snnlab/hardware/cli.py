"""``snnlab simulate``: run a data set through the simulated ATSN accelerator and print JSON.

Examples::

    snnlab simulate --model runs/atsn_digits.pt --samples 450          # a network saved with save_atsn_vgg
    snnlab simulate --epochs 1 --max-batches 12 --samples 100          # train a small one first
    snnlab simulate --model net.pt --design atsn --cl-init 0.99 --tau-cl 0.999 --per-layer

Every design of ATSN's Fig. 2 (``atsn``, ``conventional``, ``conventional_exit``) is simulated unless
``--design`` picks one; the JSON holds per-inference cycles, latency, FPS, operation and memory
counts, energy (``--energy-table``) and joules (45 nm table), the accuracy, and a GPU estimate.
"""

from __future__ import annotations

import argparse
import time

from snnlab.cli import print_json

__all__ = ["register"]


def _load_data(name: str, samples: int | None):
    import torch

    from snnlab.data import load_dataset

    test_set = load_dataset(name, train=False)
    n = len(test_set) if samples is None else min(samples, len(test_set))
    items = [test_set[i] for i in range(n)]
    x = torch.stack([it[0] for it in items])
    y = torch.as_tensor([int(it[1]) for it in items])
    return x, y, ("static" if x.dim() == 4 else "events")


def _simulate(args: argparse.Namespace) -> int:
    import torch

    from snnlab.hardware.energy import ENERGY_TABLES
    from snnlab.hardware.experiments import compare_designs, deploy, quantization_cost
    from snnlab.inference import ConfidenceExit
    from snnlab.models.atsn_vgg import load_atsn_vgg

    from snnlab.checks import check_positive, check_seed

    if args.samples is not None and args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}.")
    if args.T < 1:
        raise ValueError(f"--T must be >= 1, got {args.T}.")
    check_seed("--seed", args.seed)
    check_positive("--clock-mhz", args.clock_mhz)
    start = time.perf_counter()
    source: dict
    if args.model:
        model, meta = load_atsn_vgg(args.model)
        model = model.folded()
        dataset = args.dataset or meta.get("dataset", "digits")
        source = {"model": str(args.model), "metadata": meta}
    else:
        from snnlab.data import load_dataset
        from snnlab.inference.ablation import train_variant

        dataset = args.dataset or "digits"
        torch.manual_seed(args.seed)
        model, _ = train_variant("neuron_loss", train_set=load_dataset(dataset, train=True, augment=False),
                                 epochs=args.epochs, T=args.T, seed=args.seed, max_batches=args.max_batches)
        source = {"model": "trained now: ATSN neuron_loss variant", "epochs": args.epochs,
                  "max_batches": args.max_batches, "seed": args.seed}
    x, y, kind = _load_data(dataset, args.samples)
    deployed, xq = deploy(model, x, weight_bits=args.weight_bits, input_bits=args.input_bits)
    designs = tuple(args.design) if args.design else ("atsn", "conventional", "conventional_exit")
    report = compare_designs(deployed, xq, y, T=args.T, cl_init=args.cl_init, tau_cl=args.tau_cl, designs=designs,
                             table=ENERGY_TABLES[args.energy_table], kind=kind,
                             n_accelerators=args.accelerators, clock_hz=args.clock_mhz * 1e6)
    rule = ConfidenceExit(args.cl_init, args.tau_cl, hardware=True)
    out = {"source": source, "dataset": dataset, "samples": int(len(y)), "input_kind": kind, "T": args.T,
           "cl_init": args.cl_init, "tau_cl": args.tau_cl, "weight_bits": args.weight_bits,
           "input_bits": args.input_bits,
           "quantization": quantization_cost(model, x, y, rule, T=args.T, weight_bits=args.weight_bits,
                                             input_bits=args.input_bits, kind=kind),
           "designs": report["designs"], "gpu": report["gpu"], "gpu_model": report["gpu_model"]}
    if args.per_layer:
        out["per_layer"] = report["per_layer"]
    out["seconds"] = time.perf_counter() - start
    print_json(out, args.output)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate", help="run a data set through the simulated ATSN accelerator (JSON: cycles, FPS, energy)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, populate=_add_arguments)
    p.set_defaults(func=_simulate)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    from snnlab.hardware.config import DESIGNS
    from snnlab.hardware.energy import ENERGY_TABLES

    g = p.add_argument_group("network")
    g.add_argument("--model", help="an ATSN network saved with snnlab.models.atsn_vgg.save_atsn_vgg; "
                                   "without it a small one is trained first (see --epochs)")
    g.add_argument("--epochs", type=int, default=1, help="epochs when training (no --model)")
    g.add_argument("--max-batches", type=int, default=None, help="batches per epoch when training")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--weight-bits", type=int, default=8, help="fractional bits of the deployed weights")
    g.add_argument("--input-bits", type=int, default=6, help="fractional bits of the deployed inputs")
    d = p.add_argument_group("data and exit")
    d.add_argument("--dataset", default=None, help="data set from snnlab.data (default: the model's, else digits)")
    d.add_argument("--samples", type=int, default=None, help="first N test samples (default: all)")
    d.add_argument("--T", type=int, default=4, help="most timesteps per sample")
    d.add_argument("--cl-init", type=float, default=0.999, help="CL_init of ATSN eq. 15")
    d.add_argument("--tau-cl", type=float, default=0.999, help="tau_CL of ATSN eq. 15")
    h = p.add_argument_group("hardware")
    h.add_argument("--design", action="append", choices=sorted(DESIGNS),
                   help="design(s) to simulate (repeat the option; default: all three)")
    h.add_argument("--accelerators", type=int, default=4, help="accelerators in parallel (paper: 4)")
    h.add_argument("--clock-mhz", type=float, default=500.0, help="clock frequency in MHz (paper: 500)")
    h.add_argument("--energy-table", default="sata", choices=sorted(ENERGY_TABLES),
                   help="per-operation energy table for 'energy_per_inference' (joules always use 45nm)")
    p.add_argument("--per-layer", action="store_true", help="also print the per-layer breakdown")
    p.add_argument("--output", help="also write the JSON to this file")
