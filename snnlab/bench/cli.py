"""``snnlab bench <name>``: run a benchmark and print its JSON."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import platform
import sys
import time

from snnlab.bench import BENCHMARKS
from snnlab.cli import print_json

__all__ = ["register", "machine_info", "summary"]


def machine_info() -> dict:
    """What the numbers were measured on (load average included: other work skews timings)."""
    import numba
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numba": numba.__version__,
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _run(args: argparse.Namespace) -> int:
    names = sorted(BENCHMARKS) if args.benchmark == "all" else [args.benchmark]
    results = {"machine": machine_info()}
    for name in names:
        module = importlib.import_module(BENCHMARKS[name])
        if args.benchmark == "all":  # every benchmark with its own default options
            own = argparse.ArgumentParser()
            module.add_arguments(own)
            results[name] = module.run(own.parse_args([]))
        else:
            results[name] = module.run(args)
    print_json(results, args.output)
    return 0


def summary(module_name: str) -> str:
    """The first line of a module's docstring, read from its source without importing it (a
    benchmark module imports torch; listing the benchmarks must not)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin:
        return ""
    with open(spec.origin, encoding="utf-8") as fh:
        doc = ast.get_docstring(ast.parse(fh.read())) or ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    return paragraph.split(". ")[0].rstrip(".") + "." if paragraph else ""


def _benchmark_options(name: str):
    def populate(parser: argparse.ArgumentParser) -> None:
        importlib.import_module(BENCHMARKS[name]).add_arguments(parser)
        parser.add_argument("--output", help="also write the JSON to this file")
    return populate


def _add_benchmarks(parser: argparse.ArgumentParser) -> None:
    bench_sub = parser.add_subparsers(dest="benchmark", metavar="<benchmark>", required=True)
    for name in sorted(BENCHMARKS):
        p = bench_sub.add_parser(name, help=summary(BENCHMARKS[name]), populate=_benchmark_options(name))
        p.set_defaults(func=_run)
    all_p = bench_sub.add_parser("all", help="run every benchmark with default settings")
    all_p.add_argument("--output", help="also write the JSON to this file")
    all_p.set_defaults(func=_run)


def register(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser(
        "bench", help="run a speed/memory benchmark and print JSON (ratios against baselines)",
        populate=_add_benchmarks,
    )
