"""The networks of ATSN's ablation (Table 5) and comparison (Table 1), trained the same way.

ATSN changes three things of a baseline SNN (sec. 3.6): the output neuron (a plain fully connected
readout -> the non-reset integrator of eq. 8), the loss (cross-entropy of the mean output -> L_imp
of eq. 13) and the output representation (softmax of the mean output -> the mean of the per-step
softmaxes y_t of eq. 10). The representation changes only how outputs are read, not training, so
one trained network serves both readouts. DTSNN's network has the plain readout and is trained
with the TET loss (its authors' code).

:data:`VARIANTS` lists the trained networks; :func:`train_variant` trains one with the shared recipe
(:class:`~snnlab.models.atsn_vgg.AtsnVGG` on the embedded digits, SGD with momentum 0.9, weight
decay 5e-4 and a cosine schedule as in the paper, BPTT) and returns its BatchNorm-folded inference
network, so every experiment (and an accelerator simulator) runs the same deterministic network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from snnlab.checks import check_choice

__all__ = ["Variant", "VARIANTS", "train_variant"]


@dataclass(frozen=True)
class Variant:
    """One trained network: its output layer, loss and the readout it is evaluated with."""

    label: str
    output: str
    loss: str
    readout: str


VARIANTS: dict[str, Variant] = {
    "baseline": Variant("baseline SNN (FC readout, CE of mean output)", "linear", "sdt", "mean_logits"),
    "neuron": Variant("+ output neuron (eq. 8)", "integrator", "sdt", "mean_logits"),
    "loss": Variant("+ loss L_imp (eq. 13)", "linear", "imp", "mean_logits"),
    "neuron_loss": Variant("+ output neuron + loss", "integrator", "imp", "mean_logits"),
    "dtsnn": Variant("DTSNN (FC readout, TET loss)", "linear", "tet", "mean_logits"),
}
"""Name -> :class:`Variant`. ATSN itself is ``neuron_loss`` read out with ``mean_softmax`` (eq. 10)."""


def train_variant(name: str, *, train_set, epochs: int, T: int = 4, seed: int = 0, batch_size: int = 64,
                  lr: float = 0.1, max_batches: int | None = None, model_options: dict[str, Any] | None = None,
                  progress: bool = False):
    """Train variant ``name`` with the shared recipe; return ``(folded eval network, history)``."""
    from snnlab.training import train

    check_choice("variant", name, VARIANTS)
    v = VARIANTS[name]
    options = {"num_classes": 10, "output": v.output, **(model_options or {})}
    result = train(model="atsn_vgg", train_set=train_set, test_set=None, evaluate=False, loss=v.loss, T=T,
                   epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.9, weight_decay=5e-4,
                   schedule="cosine", seed=seed, max_batches=max_batches, progress=progress,
                   model_options=options)
    return result.model.folded(), result.history
