"""``snnlab export``: write a trained network as a NIR graph.

Examples::

    snnlab export --checkpoint runs/cnn/checkpoint.pt --format nir --dt 1e-3 -o net.nir
    snnlab export --checkpoint atsn.pt --dt 1e-3 -o atsn.nir      # a network saved by save_atsn_vgg

The checkpoint is one ``snnlab train`` wrote (the model is rebuilt from its recorded settings and
weights; a run started with ``--init-from net.nir`` carries its graph), or a network file written by
:func:`snnlab.models.atsn_vgg.save_atsn_vgg` (chapter 8's ``snnlab simulate --model``). ``--dt`` is the
time step in seconds that the graph's readers should integrate with; NIR does not fix one, so
snnlab records it in the graph (``metadata["dt"]``). Prints a JSON summary of the graph.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads when the command runs (snnlab --help stays light)
    from torch import nn

__all__ = ["register", "load_trained_model", "FORMATS"]

FORMATS = ("nir",)


def load_trained_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network a checkpoint holds, in eval mode, and what is known about it: the one loader of
    ``snnlab evaluate`` (:func:`snnlab.training.restore.load_trained_model`)."""
    from snnlab.training.restore import load_trained_model as load

    return load(path, what="checkpoint")


def _run(args: argparse.Namespace) -> int:
    from snnlab.cli import print_json
    from snnlab.interop.export import to_nir
    from snnlab.interop.importer import describe_graph

    if args.format not in FORMATS:  # argparse checks too; kept for programmatic calls
        raise ValueError(f"unknown format {args.format!r}; valid: {', '.join(FORMATS)}.")
    output = Path(args.output)
    if output.suffix != ".nir":
        raise ValueError(f"the output file should end in .nir (NIR's HDF5 graph), got {output}.")
    model, info = load_trained_model(args.checkpoint)
    graph = to_nir(model, dt=args.dt, path=output)
    rows = describe_graph(graph)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["type"]] = counts.get(row["type"], 0) + 1
    print_json({"written": str(output), "bytes": output.stat().st_size, "dt_seconds": args.dt,
                "source": {"checkpoint": str(args.checkpoint), **{k: v for k, v in info.items() if k != "metadata"}},
                "input_shape": list(graph.nodes["input"].input_type["input"].tolist()),
                "output_shape": list(graph.nodes["output"].output_type["output"].tolist()),
                "nodes": len(graph.nodes), "edges": len(graph.edges), "node_types": counts})
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="write a trained network as a NIR graph (for other simulators and neuromorphic chips)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, populate=_add_arguments)
    parser.set_defaults(func=_run)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="RUN/checkpoint.pt from snnlab train, or a network saved by save_atsn_vgg")
    parser.add_argument("--format", default="nir", choices=FORMATS, help="output format (default: nir)")
    parser.add_argument("--dt", type=float, required=True, metavar="SECONDS",
                        help="the time step readers should integrate with, in seconds (e.g. 1e-3); recorded in the "
                             "graph's metadata")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.nir", help="where to write the graph")

