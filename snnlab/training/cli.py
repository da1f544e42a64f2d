"""``snnlab train``: the training loop from the command line (the same :func:`train` the chapters call).

Examples::

    snnlab train --model spiking_cnn --dataset digits --method sltt --T 4 --epochs 10 --out-dir runs/sltt
    snnlab train ... --out-dir runs/sltt --resume          # continue after an interruption
    snnlab train --init-from net.nir --dataset digits ...  # start from an exported NIR graph
    snnlab train --config runs/sltt/config.yaml --out-dir runs/again       # replay a run exactly
    snnlab train --config runs/sltt/config.yaml --lr 0.05 --out-dir runs/lr  # replay with one change
    snnlab train ... --out-dir runs/sltt --tensorboard     # also scalars for TensorBoard in runs/sltt/tb/

Every run writes OUT_DIR/config.yaml: every resolved option and the versions of snnlab, torch and
numba. --config replays it; a flag given on the command line overrides the file's value, and the
new run's config.yaml records the override.
    snnlab train ... --out-dir runs/sltt --overwrite       # start again; the old run moves to runs/sltt/previous/
    snnlab train ... --checkpoint-every 50 --resume-if-exists   # a job that may be killed: resume or start

The output folder is checked before any work (a file, under a file, not writable, a full disk);
a folder that holds a run is never overwritten silently; ``--resume`` refuses settings that
change the numbers and lists them. A loss that becomes NaN or infinite stops the run, naming the
epoch, the batch and the last good checkpoint. Exit codes: 0 done, 1 the run failed, 2 bad
input, 130 interrupted (the checkpoint is saved first).
    torchrun --nproc_per_node=2 -m snnlab train ...        # DDP (gloo on CPU, NCCL on GPUs)
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from typing import Any

__all__ = ["register", "parse_options", "config_from_args", "config_from_replay", "given_flags"]


_BOOLEAN_WORDS = {"yes", "no", "y", "n", "true", "false", "on", "off"}


def parse_options(pairs: list[str] | None, what: str) -> dict[str, Any]:
    """``["channels=(32, 64)", "bn=False", "surrogate=arctan"]`` -> a dict (Python literals, else strings).

    Booleans are strict: ``True`` / ``False``. A word such as ``no``, ``off`` or ``true`` is refused
    rather than passed on as a string (``bool("no")`` is True).
    """
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--{what}-option expects KEY=VALUE, got {pair!r}.")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if isinstance(value, str) and value.strip().lower() in _BOOLEAN_WORDS:
            raise ValueError(f"--{what}-option {pair!r}: write a boolean as {key.strip()}=True or "
                             f"{key.strip()}=False (Python literals), not {raw!r}.")
        options[key.strip().replace("-", "_")] = value
    return options


def _add_arguments(p: argparse.ArgumentParser) -> None:
    from snnlab.data import DATASETS
    from snnlab.models import MODELS
    from snnlab.training.losses import LOSSES
    from snnlab.training.options import OPTIMIZERS, SCHEDULES, TrainConfig
    from snnlab.training.rundir import add_run_options
    from snnlab.training.methods import METHODS

    d = TrainConfig()
    g = p.add_argument_group("what to train")
    g.add_argument("--model", default=d.model, choices=sorted(MODELS), help="model from snnlab.models")
    g.add_argument("--dataset", default=d.dataset, choices=list(DATASETS), help="data set from snnlab.data")
    g.add_argument("--method", default=d.method, choices=list(METHODS),
                   help="bptt | sltt | sltt_k (see --sltt-k) | ottt_a | ottt_o")
    g.add_argument("--loss", default=d.loss, choices=list(LOSSES), help="sdt (BPTT only) | tet | ottt | imp")
    g.add_argument("--T", "-T", type=int, default=d.T,
                   help="timesteps (default: an event data set's own frame count, 4 for images)")
    g.add_argument("--sltt-k", type=int, default=None, help="K backward steps per batch for sltt_k")
    g.add_argument("--trace-decay", type=float, default=None,
                   help="OTTT trace decay λ (default: from the neurons, 1 - 1/τ)")
    g.add_argument("--method-option", action="append", metavar="KEY=VALUE",
                   help="method option, e.g. rescale=True (sltt_k: scale the K steps by T/K) (repeatable)")
    g.add_argument("--model-option", action="append", metavar="KEY=VALUE",
                   help="model option, e.g. channels='(32,64)' or neuron=if (repeatable); with --init-from, "
                        "import options, e.g. dt=1e-3 for a graph that records no dt")
    g.add_argument("--init-from", default=None, metavar="NET.nir",
                   help="start from a NIR graph (exported by snnlab or another library) instead of --model")
    g.add_argument("--data-option", action="append", metavar="KEY=VALUE",
                   help="data set option, e.g. size=16 or preset=sew (repeatable)")
    g.add_argument("--loss-option", action="append", metavar="KEY=VALUE",
                   help="loss option, e.g. lam=0.05 (tet) or beta=0.001 (ottt) (repeatable)")
    g.add_argument("--data-root", default=None, help="data root (default $SNNLAB_DATA or ~/.cache/snnlab)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=d.epochs)
    o.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch (split over processes)")
    o.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS)
    o.add_argument("--lr", type=float, default=d.lr)
    o.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum, in [0, 1)")
    o.add_argument("--weight-decay", type=float, default=d.weight_decay)
    o.add_argument("--schedule", default=d.schedule, choices=SCHEDULES, help="learning-rate schedule")
    o.add_argument("--seed", type=int, default=d.seed, help="in [0, 2**63 - 1]")
    r = p.add_argument_group("run")
    r.add_argument("--out-dir", default=None, help="checkpoint.pt, metrics.csv, metrics.json go here")
    add_run_options(r, "training run")
    r.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="also checkpoint every N batches inside an epoch (a kill loses at most N batches)")
    r.add_argument("--device", default=d.device, help="auto | cpu | cuda | cuda:N")
    r.add_argument("--num-workers", type=int, default=d.num_workers, help="DataLoader worker processes")
    r.add_argument("--max-batches", type=int, default=None, help="batches per epoch (quick runs)")
    r.add_argument("--stop-after", type=int, default=None, metavar="EPOCHS",
                   help="end after this many of the planned epochs (continue later with --resume)")
    r.add_argument("--no-eval", action="store_true", help="skip the test set after each epoch")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across GPUs under torchrun")
    r.add_argument("--amp", action="store_true",
                   help="mixed precision: float16 + GradScaler on CUDA, bfloat16 on CPU")
    r.add_argument("--tensorboard", action="store_true",
                   help="per-epoch scalars (loss, accuracy, lr, firing rate per layer, memory) in OUT_DIR/tb/ "
                        "(needs: pip install 'snnlab[tensorboard]')")
    r.add_argument("--config", default=None, metavar="CONFIG.yaml",
                   help="replay a run: the OUT_DIR/config.yaml it wrote (or that OUT_DIR); flags given here override it")


def config_from_args(args: argparse.Namespace):
    """The :class:`~snnlab.training.loop.TrainConfig` the flags describe."""
    from snnlab.training.loop import TrainConfig

    method_options: dict[str, Any] = parse_options(args.method_option, "method")
    if args.sltt_k is not None:
        if args.method != "sltt_k":
            raise ValueError("--sltt-k applies to --method sltt_k only.")
        method_options["k"] = args.sltt_k
    if args.trace_decay is not None:
        if not args.method.startswith("ottt"):
            raise ValueError("--trace-decay applies to --method ottt_a / ottt_o only.")
        method_options["decay"] = args.trace_decay
    return TrainConfig(
        model=args.model, dataset=args.dataset, method=args.method, loss=args.loss, T=args.T,
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule, seed=args.seed,
        out_dir=args.out_dir, resume=args.resume, resume_if_exists=args.resume_if_exists,
        overwrite=args.overwrite, checkpoint_every=args.checkpoint_every,
        num_workers=args.num_workers, device=args.device,
        max_batches=args.max_batches, stop_after=args.stop_after, evaluate=not args.no_eval, progress=not args.no_progress,
        sync_bn=args.sync_bn, amp=args.amp, data_root=args.data_root, tensorboard=args.tensorboard,
        model_options=parse_options(args.model_option, "model"), init_from=args.init_from,
        data_options=parse_options(args.data_option, "data"),
        loss_options=parse_options(args.loss_option, "loss"),
        method_options=method_options,
    )


_DEST_TO_FIELD = {"no_eval": "evaluate", "no_progress": "progress", "model_option": "model_options",
                  "data_option": "data_options", "loss_option": "loss_options", "method_option": "method_options",
                  "sltt_k": "method_options", "trace_decay": "method_options"}


def given_flags(argv: list[str]) -> set[str]:
    """The ``snnlab train`` options (argparse dests) typed in ``argv``, whatever their values."""
    probe = argparse.ArgumentParser(add_help=False)
    _add_arguments(probe)
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    args = list(argv)
    if "train" in args:
        args = args[args.index("train") + 1:]
    namespace, _ = probe.parse_known_args(args)
    return set(vars(namespace))


def config_from_replay(args: argparse.Namespace):
    """``--config FILE``: the file's options, with the flags typed on the command line on top.
    Returns ``(config, replay)`` where ``replay`` records the file and every override."""
    from snnlab.training.runconfig import load_run_config, merge_overrides

    base, _ = load_run_config(args.config)
    typed = given_flags(getattr(args, "argv", None) or sys.argv[1:]) - {"config"}
    if "method" not in typed:  # --sltt-k / --trace-decay are checked against the replayed method
        args.method = base.method
    fields = {_DEST_TO_FIELD.get(dest, dest) for dest in typed}
    config, overrides = merge_overrides(base, config_from_args(args), fields)
    config.validate()  # the file's values are checked like flags, before anything is said or done
    return config, {"from": str(args.config), "overrides": overrides}


def _run(args: argparse.Namespace) -> int:
    from snnlab.training.loop import json_safe_row, train

    config, replay = config_from_replay(args) if args.config else (config_from_args(args), None)
    if replay:
        changed = ", ".join(f"{k} {v['file']!r} -> {v['now']!r}" for k, v in replay["overrides"].items()
                            if k != "out_dir")
        print(f"snnlab train: replaying {args.config}" + (f" with {changed}" if changed else ""), file=sys.stderr)
    try:
        result = train(config, replay=replay)
    except KeyboardInterrupt:
        print("snnlab train: stopped.", file=sys.stderr)
        return 130
    if result.history and int(os.environ.get("RANK", "0")) == 0:  # the last epoch's metrics
        print(json.dumps(json_safe_row(result.history[-1]), indent=2, allow_nan=False))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a spiking network (BPTT, SLTT, OTTT); resumable, DDP under torchrun",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, populate=_add_arguments,
    )
    parser.set_defaults(func=_run)
