"""SpikingJelly 2.0 as a real NIR client (``spikingjelly.activation_based.nir_exchange``).

SpikingJelly is an optional dependency (``pip install -e ".[bench]"``). These helpers run a NIR
graph in SpikingJelly and export a SpikingJelly network, so that the tests, ``snnlab bench
interop`` and the book's appendix compare snnlab with another library on the same graph file.

SpikingJelly's importer reads Affine/Linear, Conv1d/2d, AvgPool2d, Flatten, IF, LIF and CubaLIF
nodes with a hard reset, and checks each neuron against dt (IF: ``r = 1/dt``; LIF: ``r = 1`` or
``tau/dt``, ``v_leak = v_reset``); it has no LI, I, Threshold, Scale or SumPool2d mapping, so
snnlab graphs with a soft reset, a max pool or a non-spiking output integrator are beyond it.
"""

from __future__ import annotations

from pathlib import Path

import nir
import torch
from torch import nn

__all__ = ["spikingjelly_version", "require_spikingjelly", "import_into_spikingjelly", "run_in_spikingjelly",
           "export_from_spikingjelly"]

INSTALL_HINT = 'pip install -e ".[bench]" (SpikingJelly >= 2.0 is a benchmark baseline)'


def spikingjelly_version() -> str | None:
    """SpikingJelly's version when it is installed with its NIR exchange, else None."""
    try:
        import spikingjelly  # noqa: F401
        from spikingjelly.activation_based import nir_exchange  # noqa: F401
    except ImportError:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("spikingjelly")
    except PackageNotFoundError:  # pragma: no cover - imported from a source tree
        return "unknown"


def require_spikingjelly():
    """The ``nir_exchange`` module, or an ImportError that says how to install it."""
    if spikingjelly_version() is None:
        raise ImportError(f"SpikingJelly 2.0 with its NIR exchange is not installed: {INSTALL_HINT}.")
    from spikingjelly.activation_based import nir_exchange

    return nir_exchange


def import_into_spikingjelly(graph: nir.NIRGraph | str | Path, *, dt: float) -> nn.Module:
    """SpikingJelly's ``import_from_nir(graph, dt=dt)`` in multi-step mode (a ``torch.fx.GraphModule``
    whose forward returns ``(output, state)``)."""
    nir_exchange = require_spikingjelly()
    return nir_exchange.import_from_nir(str(graph) if isinstance(graph, Path) else graph, dt=dt, step_mode="m")


@torch.no_grad()
def run_in_spikingjelly(graph: nir.NIRGraph | str | Path | nn.Module, x: torch.Tensor, *, dt: float) -> torch.Tensor:
    """Run ``graph`` (or a module :func:`import_into_spikingjelly` returned) in SpikingJelly on ``x``
    ``[T, B, ...]`` from a fresh state; returns its output ``[T, B, ...]``."""
    from spikingjelly.activation_based import functional

    module = graph if isinstance(graph, nn.Module) else import_into_spikingjelly(graph, dt=dt)
    functional.reset_net(module)
    out, _ = module(x)
    return out


@torch.no_grad()
def export_from_spikingjelly(net: nn.Module, example_input: torch.Tensor, *, dt: float,
                             path: str | Path | None = None) -> nir.NIRGraph:
    """SpikingJelly's ``export_to_nir(net, example_input, dt=dt)`` (written to ``path`` when given)."""
    nir_exchange = require_spikingjelly()
    return nir_exchange.export_to_nir(net, example_input, save_path=None if path is None else str(path), dt=dt)
