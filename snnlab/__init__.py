"""snnlab: an interactive textbook and CPU lab on how spiking neural networks are trained,
converted and run.

Layout (data flows one way): ``snnlab.data`` -> ``snnlab.neurons`` / ``snnlab.models`` ->
``snnlab.training`` -> ``snnlab.analysis`` / ``snnlab.hardware`` -> ``snnlab.viz`` -> the book.
"""

__version__ = "0.1.0"

from snnlab.runmode import quick_mode

__all__ = ["__version__", "quick_mode"]
