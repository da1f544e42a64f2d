"""The ``snnlab`` command line: ``snnlab <command> ...``.

Each area of the package contributes its commands through a ``register(subparsers)`` function
listed in ``COMMAND_MODULES``; the CLI calls the same functions the chapters call.

Start-up is lazy: ``snnlab --help`` and ``snnlab --version`` import neither torch nor numba (about
2 s on the development machine). A command module is cheap to import (argparse only at its top
level) and registers its parser with ``populate=``: a function that adds the command's options
(which may import the package to list its models or data sets) and runs only when that command
is parsed or its help is printed (:class:`LazyParser`). Handlers import what they need when they run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Sequence

__all__ = ["main", "build_parser", "COMMAND_MODULES", "print_json", "LazyParser"]

# Modules providing `register(subparsers)`; each adds one top-level command.
COMMAND_MODULES: tuple[str, ...] = (
    "snnlab.bench.cli",
    "snnlab.conversion.cli",
    "snnlab.data.cli",
    "snnlab.hardware.cli",
    "snnlab.interop.cli",
    "snnlab.inference.cli",
    "snnlab.training.cli",
)


class LazyParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose options are added by ``populate(parser)`` the first time it parses
    or prints its help or usage: a sub-command's options (and the imports they need) cost nothing
    until that sub-command is used. Sub-parsers made from it are lazy too (``populate=`` is optional)."""

    def __init__(self, *args, populate=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._populate = populate

    def _ensure_populated(self) -> None:
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)

    def parse_known_args(self, args=None, namespace=None):
        self._ensure_populated()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ensure_populated()
        return super().format_help()

    def format_usage(self) -> str:
        self._ensure_populated()
        return super().format_usage()


def print_json(result, output: str | None = None) -> None:
    """Print ``result`` as indented JSON (numpy scalars as floats) and, with ``output``, also write it there."""
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if output:
        with open(output, "w") as fh:
            fh.write(text + "\n")


def _info(args: argparse.Namespace) -> int:
    import numba
    import numpy
    import torch

    import snnlab
    from snnlab.runmode import quick_mode

    info = {
        "snnlab": snnlab.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numba": numba.__version__,
        "numpy": numpy.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": torch.cuda.device_count(),
        "cpu_threads": torch.get_num_threads(),
        "quick_mode": quick_mode(),
    }
    print_json(info)
    return 0


def build_parser() -> argparse.ArgumentParser:
    import snnlab

    parser = LazyParser(
        prog="snnlab",
        description="snnlab: train, convert, run and measure spiking neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"snnlab {snnlab.__version__}")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error (anywhere on the line)")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    info = sub.add_parser("info", help="print versions, devices and run mode as JSON")
    info.set_defaults(func=_info)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from snnlab.errors import EXIT_BAD_INPUT, debug_requested, report_error, warnings_as_lines

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere on the line
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv  # what was typed: `train --config` tells given flags from defaults
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        with warnings_as_lines(args.command):
            return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as error:
        # every error: one line and an exit code (snnlab.errors); --debug adds the traceback
        return report_error(error, args.command, debug=debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
