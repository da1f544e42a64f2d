"""Interoperability: snnlab networks as NIR graphs (the Neuromorphic Intermediate Representation).

* :func:`to_nir` writes a trained snnlab network as a ``nir.NIRGraph`` (and a ``.nir`` file), its
  time step recorded in the graph's metadata;
* :func:`from_nir` builds an snnlab network (:class:`NIRNetwork`, running on snnlab's neuron
  kernels) from a NIR graph or file, refusing a time step that contradicts the graph's.

:mod:`snnlab.interop.neuron_map` derives how snnlab's discrete neurons map onto NIR's
continuous-time ones and when the mapping is exact; ``snnlab export`` is the command line.

Names load on first use (:func:`snnlab.lazy.lazy_exports`): importing the package, as ``snnlab --help``
does through its command module, costs nothing; ``from snnlab.interop import x`` works unchanged.
"""

from snnlab.lazy import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "snnlab.interop.export": (
        "to_nir", "write_graph", "UnsupportedLayerError", "EXPORTED_MODELS", "EXPORTED_LAYERS",
        "REFUSED_LAYERS",
    ),
    "snnlab.interop.importer": (
        "from_nir", "read_graph", "NIRNetwork", "DtMismatchError", "graph_dt", "describe_graph",
        "model_from_nir", "NIR_IMPORTS",
    ),
}

__all__ = [name for names in _EXPORTS.values() for name in names]

__getattr__ = lazy_exports(__name__, {name: module for module, names in _EXPORTS.items() for name in names})


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
