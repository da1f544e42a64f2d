"""``OUT_DIR/config.yaml``: every resolved option of a training run, so that it can be replayed.

Every ``snnlab train`` run (every :func:`snnlab.training.train` call with an ``out_dir``) writes
this file when it starts, after the loop has resolved what was left open (``T`` from the data, the
device, the SHA-256 of an ``--init-from`` graph). It holds:

* ``options``: every field of :class:`~snnlab.training.options.TrainConfig`, as the run used them;
  how the run was *started* is not part of it (``resume``, ``resume_if_exists`` and ``overwrite``
  are written as ``false``: a replay is a fresh run of the same computation);
* ``versions``: snnlab, torch, numba, numpy and Python (a replay under other versions warns);
* ``replay``: when the run was itself a replay, the file it came from and every option the
  command line changed (``{name: {file: ..., now: ...}}``).

``snnlab train --config runs/x/config.yaml --out-dir runs/y`` replays it (:func:`load_run_config`,
:func:`merge_overrides`): on the CPU with the same versions and thread count the replay's weights
equal the original's bit for bit. A flag given on the command line overrides the file's value.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import warnings
from pathlib import Path
from typing import Any

from snnlab.errors import CorruptFileError, SnnlabWarning
from snnlab.training.options import TrainConfig
from snnlab.training.rundir import CONFIG_NAME

__all__ = ["CONFIG_NAME", "CONFIG_FORMAT", "versions", "config_record", "write_run_config", "load_run_config",
           "merge_overrides"]

CONFIG_FORMAT = 1
_STARTED_AS = ("resume", "resume_if_exists", "overwrite")
"""How a run was started: not part of what it computes, written as false."""
_EXPECTED = ("a run configuration written by snnlab train (YAML with 'snnlab_config: 1', 'command: train' "
             "and 'options')")


def versions() -> dict[str, str]:
    """The versions a run's numbers depend on."""
    import numba
    import numpy
    import torch

    import snnlab

    return {"snnlab": str(snnlab.__version__), "torch": str(torch.__version__), "numba": str(numba.__version__),
            "numpy": str(numpy.__version__), "python": platform.python_version()}  # torch's is a str subclass


def _plain(value: Any) -> Any:
    """Tuples as lists, keys as strings: what YAML's safe dumper writes."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _tuples(value: Any) -> Any:
    """Lists back to tuples inside option dicts (a flag such as ``channels=(4, 8)`` gives a tuple)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def config_record(cfg: TrainConfig, replay: dict[str, Any] | None = None,
                  not_replayable: list[str] | None = None) -> dict[str, Any]:
    """What :func:`write_run_config` writes for ``cfg`` (a resolved record). ``not_replayable``:
    what the run was given as Python objects (a custom ``nn.Module``, data sets), which no file
    can rebuild: the record says so, and :func:`load_run_config` refuses it."""
    options = dataclasses.asdict(cfg)
    for name in _STARTED_AS:
        options[name] = False
    record = {"snnlab_config": CONFIG_FORMAT, "command": "train", "options": _plain(options),
              "versions": versions()}
    if replay:
        record["replay"] = _plain(replay)
    if not_replayable:
        record["not_replayable"] = list(not_replayable)
    return record


def write_run_config(out_dir: str | os.PathLike, cfg: TrainConfig, replay: dict[str, Any] | None = None,
                     not_replayable: list[str] | None = None) -> Path:
    """Write ``out_dir/config.yaml`` atomically (with a header saying how to replay it); return its path."""
    import yaml

    from snnlab.training.checkpoint import atomic_write_text

    path = Path(out_dir) / CONFIG_NAME
    header = (f"# snnlab train: every resolved option of this run, and the versions it ran with.\n"
              f"# Replay it:  snnlab train --config {path} --out-dir NEW_DIR  [flags that override]\n")
    body = yaml.safe_dump(config_record(cfg, replay, not_replayable), sort_keys=False, default_flow_style=False, allow_unicode=True)
    atomic_write_text(path, header + body)
    return path


def load_run_config(path: str | os.PathLike) -> tuple[TrainConfig, dict[str, Any]]:
    """``(options, record)`` of a ``config.yaml`` (a file, or a run's folder holding one).

    A missing file raises ``FileNotFoundError``; a file that is not such a record (bad YAML, another
    format, unknown option names, wrong types) raises :class:`~snnlab.errors.CorruptFileError`
    naming it. Versions other than this process's warn (:class:`~snnlab.errors.SnnlabWarning`).
    """
    import yaml

    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no run configuration at {path}; every `snnlab train --out-dir RUN` writes "
                                f"RUN/{CONFIG_NAME}.")
    fix = "Give the config.yaml of a snnlab train run (or fix the file)."
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise CorruptFileError.describe(path, _EXPECTED, fix, " ".join(str(error).split())[:200]) from None
    if not isinstance(record, dict) or record.get("command") != "train" or "options" not in record:
        raise CorruptFileError.describe(path, _EXPECTED, fix, "not a snnlab train configuration")
    if record.get("snnlab_config") != CONFIG_FORMAT:
        raise CorruptFileError.describe(path, _EXPECTED, fix, f"configuration format {record.get('snnlab_config')!r}, "
                                                               f"this snnlab reads {CONFIG_FORMAT}")
    if record.get("not_replayable"):
        raise ValueError(f"{path} records a run that was given {', '.join(map(str, record['not_replayable']))} as "
                         f"Python objects, which a file cannot rebuild; replay it in Python with the same objects "
                         f"(train(TrainConfig(**options), model=..., train_set=...)).")
    options = record["options"]
    if not isinstance(options, dict):
        raise CorruptFileError.describe(path, _EXPECTED, fix, "'options' is not a mapping")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise CorruptFileError.describe(path, _EXPECTED, fix, f"unknown option(s) {unknown}; valid: {', '.join(sorted(fields))}")
    values = {k: (_tuples(v) if k.endswith("_options") else v) for k, v in options.items()}
    try:
        cfg = TrainConfig(**values)
    except TypeError as error:  # pragma: no cover - every name was checked above
        raise CorruptFileError.describe(path, _EXPECTED, fix, str(error)) from None
    saved, now = record.get("versions") or {}, versions()
    differ = [f"{k} {saved[k]} (now {now[k]})" for k in now if k in saved and saved[k] != now[k]]
    if differ:
        warnings.warn(f"{path} was written with {', '.join(differ)}: the replay may not match the run bit for bit.",
                      SnnlabWarning, stacklevel=2)
    return cfg, record


def merge_overrides(base: TrainConfig, given: TrainConfig, names: set[str]) -> tuple[TrainConfig, dict[str, Any]]:
    """``base`` (a replayed file) with the options ``names`` taken from ``given`` (the command line).

    Option dicts (``model_options`` ...) are merged key by key: ``--model-option hidden=(16,)`` changes
    that key and keeps the file's others. Returns the new record and the overrides that changed
    something, ``{name: {"file": old, "now": new}}`` (what the replay records)."""
    changes: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    for name in sorted(names):
        old, new = getattr(base, name), getattr(given, name)
        if name.endswith("_options"):
            new = {**old, **new}
        if _plain(old) != _plain(new):
            changes[name] = new
            overrides[name] = {"file": old, "now": new}
    return dataclasses.replace(base, **changes), overrides
