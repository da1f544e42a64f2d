"""Reading snnlab's saved files back: what kind of file a path holds, and the trained network of a
``snnlab train`` run rebuilt from its checkpoint (what ``snnlab evaluate`` loads).

Kinds of file (:func:`checkpoint_kind`):

* ``"train"``: ``OUT_DIR/checkpoint.pt`` of ``snnlab train`` (:mod:`snnlab.training.loop`): the
  resolved settings (model, data set, T, options) and the weights;
* ``"atsn_vgg"``: a network saved by :func:`snnlab.models.atsn_vgg.save_atsn_vgg` (``snnlab simulate``);
* ``"convert_ann"`` / ``"convert_snn"``: the ReLU ANN or a converted network of ``snnlab convert``;
* ``"state_dict"``: a bare ``model.state_dict()``; ``"unknown"``: anything else torch can read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["read_checkpoint", "checkpoint_kind", "describe_kind", "load_trained_model"]

CONVERT_ANN_FORMAT = "snnlab.convert.ann/1"
CONVERT_SNN_FORMAT = "snnlab.convert.snn/1"

_DESCRIPTIONS = {
    "train": "a `snnlab train` checkpoint (a spiking network)",
    "atsn_vgg": "an ATSN network saved with save_atsn_vgg (`snnlab simulate --model`)",
    "convert_ann": "the ReLU ANN of a `snnlab convert` run",
    "convert_snn": "a converted network of a `snnlab convert` run",
    "state_dict": "a bare state_dict (weights without the settings to rebuild the network)",
    "unknown": "not a file snnlab wrote",
}


def read_checkpoint(path: str | os.PathLike, *, what: str = "checkpoint") -> tuple[Path, Any]:
    """Load a file written by snnlab (``torch.load`` on the CPU). A folder means ``<folder>/checkpoint.pt``
    (a ``snnlab train`` run). Missing or unreadable files raise one clear error."""
    path = Path(path)
    if path.is_dir():
        if not (path / "checkpoint.pt").is_file():
            raise FileNotFoundError(f"{path} is a folder without checkpoint.pt; give the {what} file, or the "
                                    f"--out-dir of a `snnlab train` run.")
        path = path / "checkpoint.pt"
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}; `snnlab train --out-dir RUN` writes RUN/checkpoint.pt.")
    from snnlab.files import load_torch_file

    # garbage, truncated or foreign files: one CorruptFileError naming the file (snnlab.errors)
    return path, load_torch_file(path, expected=f"a {what} snnlab wrote (a torch file)",
                                 fix="Check the path; give a file snnlab wrote (`snnlab train --out-dir RUN` "
                                     "writes RUN/checkpoint.pt).", weights_only=False)


def checkpoint_kind(state: Any) -> str:
    """Which kind of snnlab file ``state`` (a loaded object) is; see the module docstring."""
    if isinstance(state, dict):
        fmt = state.get("format")
        if isinstance(state.get("config"), dict) and "method" in state["config"] and "model" in state:
            return "train"
        if fmt == "snnlab.atsn_vgg/1":
            return "atsn_vgg"
        if fmt == CONVERT_ANN_FORMAT:
            return "convert_ann"
        if fmt == CONVERT_SNN_FORMAT:
            return "convert_snn"
        if state and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            return "state_dict"
    return "unknown"


def describe_kind(kind: str) -> str:
    return _DESCRIPTIONS[kind]


def _model_from_graph(path: Path, cfg: dict, weights: dict, per_step, num_classes, options) -> nn.Module:
    """The network of a run started with ``--init-from``: an imported NIR network keeps its graph in
    its state (``_extra_state``), so the checkpoint alone rebuilds it; else the graph file, which
    must be the one the run started from (its SHA-256 is in the checkpoint)."""
    from snnlab.errors import ResumeMismatch
    from snnlab.files import file_checksum
    from snnlab.interop import model_from_nir

    if _carries_graph(weights):
        from snnlab.interop.importer import from_nir

        extra = weights["_extra_state"]
        return from_nir(extra["graph"], dt=extra["dt"])
    graph = Path(cfg["init_from"])
    if not graph.is_file():
        raise FileNotFoundError(f"{path} was trained from the NIR graph {graph}, which is not there any more; the "
                                f"network's structure comes from it: put the graph back at that path.")
    expected = cfg.get("init_from_sha256")
    if expected and file_checksum(graph, "sha256") != expected:
        raise ResumeMismatch(f"{graph} is not the NIR graph {path} was trained from (its SHA-256 differs); put the "
                             f"original graph back at that path.")
    return model_from_nir(graph, input_shape=per_step, num_classes=num_classes, **options)


def _carries_graph(weights) -> bool:
    """Whether a network's weights carry the NIR graph it was imported from (``_extra_state``)."""
    extra = weights.get("_extra_state") if isinstance(weights, dict) else None
    return isinstance(extra, dict) and extra.get("format") == "snnlab.nir/1"


def load_trained_model(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                       what: str = "training checkpoint") -> tuple[nn.Module, dict]:
    """The network of a ``snnlab train`` run (a checkpoint file or the run's folder), or an ATSN
    network saved by ``save_atsn_vgg``, in eval mode on ``device``.

    Returns ``(model, info)`` with ``info``: ``{"path", "kind", "model", "dataset", "T",
    "data_options", "loss", "method", "epoch"}`` (what is known). A file of another kind raises a
    ``ValueError`` naming what it is and what was expected; ``what`` names the file in the errors of a
    missing or unreadable one.
    """
    path, state = read_checkpoint(path, what=what)
    kind = checkpoint_kind(state)
    if kind == "train":
        from snnlab.data import dataset_info
        from snnlab.models import build_model

        cfg = state["config"]
        info = dataset_info(cfg["dataset"], T=cfg["T"], **cfg.get("data_options", {}))
        shape = info["input_shape"]
        per_step = tuple(shape[1:]) if info["kind"] == "events" else tuple(shape)
        options = {k: v for k, v in cfg.get("model_options", {}).items() if k != "num_classes"}
        if cfg.get("init_from") or _carries_graph(state["model"]):
            model = _model_from_graph(path, cfg, state["model"], per_step, info["num_classes"], options)
        else:
            model = build_model(cfg["model"], num_classes=info["num_classes"], input_shape=per_step, T=cfg["T"],
                                **options)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise ValueError(f"{path}: the weights do not fit model {cfg['model']!r} with options {options} "
                             f"rebuilt from the checkpoint's settings (was it trained on a custom nn.Module? then "
                             f"export it in Python with snnlab.interop.to_nir): {str(error).splitlines()[0]}.") from None
        meta = {"path": str(path), "kind": kind, "model": cfg["model"], "dataset": cfg["dataset"], "T": cfg["T"],
                "data_options": dict(cfg.get("data_options", {})), "loss": cfg.get("loss"),
                "method": cfg.get("method"), "epoch": state.get("epoch"),
                "epochs_planned": cfg.get("epochs")}
        if state.get("batch"):
            meta["note"] = (f"the run was interrupted in epoch {state['epoch'] + 1} (batch {state['batch']}); "
                            f"these are the weights at that point")
    elif kind == "atsn_vgg":
        from snnlab.models.atsn_vgg import load_atsn_vgg

        model, metadata = load_atsn_vgg(path)
        meta = {"path": str(path), "kind": kind, "model": "atsn_vgg", "dataset": metadata.get("dataset"),
                "T": metadata.get("T"), "data_options": {}, "loss": None, "method": None, "epoch": None,
                "metadata": metadata}
    else:
        raise ValueError(f"{path} is {describe_kind(kind)}; expected a `snnlab train` checkpoint "
                         f"(OUT_DIR/checkpoint.pt) or an ATSN network saved with save_atsn_vgg.")
    return model.to(device).eval(), meta
