"""Interoperability: snnlab networks as NIR graphs (the Neuromorphic Intermediate Representation).

* :func:`to_nir` writes a trained snnlab network as a ``nir.NIRGraph`` (and a ``.nir`` file), its
  time step recorded in the graph's metadata;
* :func:`from_nir` builds an snnlab network (:class:`NIRNetwork`, running on snnlab's neuron
  kernels) from a NIR graph or file, refusing a time step that contradicts the graph's.

:mod:`snnlab.interop.neuron_map` derives how snnlab's discrete neurons map onto NIR's
continuous-time ones and when the mapping is exact; ``snnlab export`` is the command line.
"""

from snnlab.interop.export import (
    EXPORTED_LAYERS,
    EXPORTED_MODELS,
    REFUSED_LAYERS,
    UnsupportedLayerError,
    to_nir,
    write_graph,
)

__all__ = ["to_nir", "write_graph", "UnsupportedLayerError", "EXPORTED_MODELS", "EXPORTED_LAYERS", "REFUSED_LAYERS"]

from snnlab.interop.importer import (  # noqa: E402
    NIR_IMPORTS,
    DtMismatchError,
    NIRNetwork,
    describe_graph,
    from_nir,
    graph_dt,
    model_from_nir,
    read_graph,
)

__all__ += ["from_nir", "read_graph", "NIRNetwork", "DtMismatchError", "graph_dt", "describe_graph",
            "model_from_nir", "NIR_IMPORTS"]
