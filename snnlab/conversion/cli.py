"""``snnlab convert``: ANN-to-SNN conversion from the command line (chapter 6's functions, resumable).

Trains a ReLU ANN (or loads one with --ann), converts it with SC-TTFS, single-spike TTFS and/or rate
coding, optionally fine-tunes thresholds and BN as SC-TTFS does (Adam, lr 1e-5, cosine), folds BN and
prints JSON: ANN and SNN accuracy, latency, spikes per image, the eq. 25 energy under the TrueNorth
and SpiNNaker weights.

examples:
  snnlab convert --kind sc-ttfs --kind ttfs --kind rate --T 4 --rate-T 32     # digits, quick
  snnlab convert --dataset cifar10 --model vgg16 --kind sc-ttfs --thresholds cifar10 --T 7 \\
      --ann-epochs 200 --ann-lr 1e-3 --fine-tune-epochs 100 --device cuda --out-dir runs/vgg16-scttfs
  snnlab convert ... --out-dir runs/vgg16-scttfs --resume        # continue after an interruption
  snnlab convert --ann runs/vgg16-scttfs/ann.pt --dataset cifar10 --model vgg16 --kind ttfs --T 16

--out-dir follows `snnlab train`'s rules: checked before any work, never overwritten silently
(--resume or --overwrite), --resume refuses settings that change the numbers. Exit codes: 0 done,
1 the run failed, 2 bad input, 130 interrupted.

Latency: a TTFS / SC-TTFS network answers after (spiking layers x T) steps, a rate-coded one after T.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    from snnlab.training.rundir import add_run_options

    g = p.add_argument_group("the ANN")
    g.add_argument("--dataset", default="digits", help="static-image data set: digits (default), cifar10, cifar100")
    g.add_argument("--data-option", action="append", metavar="KEY=VALUE",
                   help="data set option, e.g. size=32 or augment=False (repeatable)")
    g.add_argument("--data-root", default=None, help="data root (default $SNNLAB_DATA or ~/.cache/snnlab)")
    g.add_argument("--model", default="digits_cnn",
                   help="ReLU ANN from snnlab.models.ann: digits_cnn (default), vgg16, resnet20")
    g.add_argument("--model-option", action="append", metavar="KEY=VALUE",
                   help="ANN option, e.g. width=32 (repeatable)")
    g.add_argument("--ann", default=None, metavar="PATH",
                   help="load this trained ANN (a run's ann.pt, or a state_dict) instead of training one")
    g.add_argument("--ann-epochs", type=int, default=12, help="epochs of ANN training (Adam, cosine; default 12)")
    g.add_argument("--ann-lr", type=float, default=1e-2, help="ANN learning rate (default 1e-2)")
    g.add_argument("--ann-batch-size", type=int, default=64)
    g.add_argument("--ann-weight-decay", type=float, default=5e-4)
    c = p.add_argument_group("conversion")
    c.add_argument("--kind", action="append", metavar="{sc-ttfs,ttfs,rate}",
                   help="neuron to convert to (repeat to compare several; default sc-ttfs)")
    c.add_argument("--T", "-T", type=int, default=4,
                   help="window per TTFS/SC-TTFS layer, timesteps of rate coding (default 4)")
    c.add_argument("--rate-T", type=int, default=None, help="timesteps of the rate conversion (default: --T)")
    c.add_argument("--thresholds", default="statistics",
                   help="initial thresholds: statistics (from the ANN's activations, default) or the paper's "
                        "Table 1 values, cifar10 | cifar100 (TTFS kinds; rate always uses statistics)")
    c.add_argument("--percentile", type=float, default=99.9,
                   help="percentile of the positive activations for the top threshold (default 99.9)")
    c.add_argument("--stats-images", type=int, default=512,
                   help="training images whose activations set the thresholds (default 512)")
    f = p.add_argument_group("fine-tuning thresholds and BN (SC-TTFS section 3.4)")
    f.add_argument("--fine-tune-epochs", type=int, default=0, help="epochs (default 0: none; the paper: 100)")
    f.add_argument("--fine-tune-lr", type=float, default=1e-5, help="Adam learning rate, cosine (default 1e-5)")
    f.add_argument("--fine-tune-batch-size", type=int, default=128)
    f.add_argument("--no-train-bn", action="store_true", help="fine-tune the thresholds only")
    r = p.add_argument_group("run")
    r.add_argument("--out-dir", default=None, help="ann.pt, snn-<kind>.pt, result.json go here (resumable)")
    add_run_options(r, "conversion run")
    r.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default cpu)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--batch-size", type=int, default=256, help="evaluation batch size")
    r.add_argument("--max-train", type=int, default=None, help="use the first N training images (quick runs)")
    r.add_argument("--max-test", type=int, default=None, help="evaluate on the first N test images")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--output", default=None, help="also write the JSON to this file")


def config_from_args(args: argparse.Namespace):
    from snnlab.conversion.run import ConvertConfig
    from snnlab.training.cli import parse_options

    return ConvertConfig(
        dataset=args.dataset, model=args.model, kinds=tuple(args.kind or ("sc-ttfs",)), T=args.T,
        rate_T=args.rate_T, thresholds=args.thresholds, percentile=args.percentile, stats_images=args.stats_images,
        ann=args.ann, ann_epochs=args.ann_epochs, ann_lr=args.ann_lr, ann_batch_size=args.ann_batch_size,
        ann_weight_decay=args.ann_weight_decay, fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_lr=args.fine_tune_lr, fine_tune_batch_size=args.fine_tune_batch_size,
        train_bn=not args.no_train_bn, batch_size=args.batch_size, max_train=args.max_train,
        max_test=args.max_test, seed=args.seed, device=args.device, data_root=args.data_root,
        out_dir=args.out_dir, resume=args.resume, resume_if_exists=args.resume_if_exists, overwrite=args.overwrite, progress=not args.no_progress,
        model_options=parse_options(args.model_option, "model"), data_options=parse_options(args.data_option, "data"))


def _run(args: argparse.Namespace) -> int:
    from snnlab.cli import print_json
    from snnlab.conversion.run import run_conversion

    config = config_from_args(args)
    try:
        result = run_conversion(config, log=lambda message: print(message, file=sys.stderr))
    except KeyboardInterrupt:
        where = (f"progress up to the last finished epoch is in {args.out_dir}; continue with --resume"
                 if args.out_dir else "nothing was saved (no --out-dir)")
        print(f"snnlab convert: stopped; {where}.", file=sys.stderr)
        return 130
    print_json(result, args.output)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert", help="convert a ReLU ANN to an SNN (SC-TTFS, TTFS, rate): accuracy, latency, spikes, energy",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        populate=_add_arguments)
    parser.set_defaults(func=_run)
