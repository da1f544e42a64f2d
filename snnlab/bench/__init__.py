"""Benchmarks that print JSON: speed and memory, always as ratios against baselines measured in
the same run (never absolute targets in timed unit tests).

Each benchmark is a module listed in :data:`BENCHMARKS` that provides

* ``add_arguments(parser)``: its command-line options, and
* ``run(args) -> dict``: the measurements, JSON-serialisable.

``snnlab bench <name>`` runs one; ``snnlab bench all`` runs every one.
"""

BENCHMARKS: dict[str, str] = {
    "adaptive": "snnlab.bench.adaptive",
    "book": "snnlab.bench.book",
    "compile": "snnlab.bench.compile",
    "interop": "snnlab.bench.interop",
    "memory": "snnlab.bench.memory",
    "neurons": "snnlab.bench.neurons",
    "simulator": "snnlab.bench.simulator",
    "startup": "snnlab.bench.startup",
}
"""Benchmark name -> module path (e.g. ``"neurons": "snnlab.bench.neurons"``)."""

__all__ = ["BENCHMARKS"]
