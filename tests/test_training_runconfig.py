"""Replayable runs (OUT_DIR/config.yaml, ``snnlab train --config``) and TensorBoard scalars (``--tensorboard``)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from snnlab.cli import main
from snnlab.errors import CorruptFileError

TINY = ["train", "--model", "spiking_mlp", "--model-option", "hidden=(16,)", "--dataset", "digits",
        "--method", "sltt", "--loss", "tet", "--T", "2", "--epochs", "2", "--batch-size", "32",
        "--max-batches", "3", "--lr", "0.05", "--seed", "7", "--no-progress"]


def weights(folder) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoint.pt", weights_only=False)["model"]


def run(capsys, *argv) -> None:
    assert main(list(argv)) == 0
    capsys.readouterr()


def test_every_run_writes_a_config_that_replays_it_bit_for_bit(tmp_path, capsys):
    first, replay = tmp_path / "first", tmp_path / "replay"
    run(capsys, *TINY, "--out-dir", str(first))
    record = yaml.safe_load((first / "config.yaml").read_text())
    options = record["options"]
    # every resolved option: T, the device, the parsed option dicts; how the run started is not replayed
    assert options["T"] == 2 and options["device"] == "cpu" and options["method"] == "sltt"
    assert options["model_options"] == {"hidden": [16]} and options["seed"] == 7 and options["lr"] == 0.05
    assert options["resume"] is False and options["overwrite"] is False
    import numba

    import snnlab

    assert record["versions"]["snnlab"] == snnlab.__version__ and record["versions"]["torch"] == torch.__version__
    assert record["versions"]["numba"] == numba.__version__ and "replay" not in record

    run(capsys, "train", "--config", str(first / "config.yaml"), "--out-dir", str(replay))
    a, b = weights(first), weights(replay)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical
    again = yaml.safe_load((replay / "config.yaml").read_text())
    assert again["options"] == {**options, "out_dir": str(replay)}
    assert again["replay"] == {"from": str(first / "config.yaml"),
                               "overrides": {"out_dir": {"file": str(first), "now": str(replay)}}}
    metrics = [json.loads((f / "metrics.json").read_text()) for f in (first, replay)]
    assert [r["train_loss"] for r in metrics[0]] == [r["train_loss"] for r in metrics[1]]


def test_a_flag_on_the_command_line_overrides_the_file_and_is_recorded(tmp_path, capsys):
    first, changed = tmp_path / "first", tmp_path / "changed"
    run(capsys, *TINY, "--out-dir", str(first))
    # --lr given with the default's value still counts (it was typed); an option dict is merged by key
    assert main(["train", "--config", str(first), "--lr", "0.1", "--model-option", "v_threshold=0.8",
                 "--out-dir", str(changed)]) == 0
    assert "replaying" in capsys.readouterr().err
    record = yaml.safe_load((changed / "config.yaml").read_text())
    assert record["options"]["lr"] == 0.1 and record["options"]["seed"] == 7
    assert record["options"]["model_options"] == {"hidden": [16], "v_threshold": 0.8}
    overrides = record["replay"]["overrides"]
    assert overrides["lr"] == {"file": 0.05, "now": 0.1}
    assert overrides["model_options"] == {"file": {"hidden": [16]}, "now": {"hidden": [16], "v_threshold": 0.8}}
    a, b = weights(first), weights(changed)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the override took effect
    # replaying into the original folder is refused like any run there
    assert main(["train", "--config", str(first / "config.yaml")]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_bad_config_files_get_one_line_errors(tmp_path, capsys):
    from snnlab.training.runconfig import load_run_config

    def error_of(path) -> str:
        assert main(["train", "--config", str(path), "--out-dir", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("snnlab train: error:") and err.count("\n") == 1, err
        return err

    assert "no run configuration at" in error_of(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("options: [unclosed\n")
    assert "bad.yaml" in error_of(bad) and "expected a run configuration written by snnlab train" in error_of(bad)
    bad.write_text(yaml.safe_dump({"snnlab_config": 1, "command": "train", "options": {"lr": 0.1, "lrr": 2}}))
    assert "unknown option(s) ['lrr']" in error_of(bad)
    bad.write_text(yaml.safe_dump({"snnlab_config": 9, "command": "train", "options": {}}))
    assert "configuration format 9" in error_of(bad)
    bad.write_text(yaml.safe_dump({"snnlab_config": 1, "command": "train", "options": {"momentum": 5}}))
    assert "momentum must lie in [0.0, 1.0)" in error_of(bad)  # values are validated like flags
    bad.write_text("- a list, not a mapping\n")
    with pytest.raises(CorruptFileError, match="not a snnlab train configuration"):
        load_run_config(bad)
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_overwrite_moves_the_config_and_tb_aside_with_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    run(capsys, *TINY, "--epochs", "1", "--tensorboard", "--out-dir", str(out))
    assert (out / "config.yaml").is_file() and (out / "tb").is_dir()
    run(capsys, *TINY, "--epochs", "1", "--out-dir", str(out), "--overwrite")
    (previous,) = (out / "previous").iterdir()
    assert {p.name for p in previous.iterdir()} == {"checkpoint.pt", "metrics.json", "metrics.csv", "config.yaml", "tb"}
    assert not (out / "tb").exists()


def read_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard event files in ``folder``, read back with TensorBoard's reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_event_file_holds_the_logged_values(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    run(capsys, *TINY, "--epochs", "3", "--stop-after", "2", "--tensorboard", "--out-dir", str(out))
    run(capsys, *TINY, "--epochs", "3", "--tensorboard", "--resume", "--out-dir", str(out))  # a resume appends
    rows = json.loads((out / "metrics.json").read_text())
    scalars = read_scalars(out / "tb")
    for key, tag in (("train_loss", "loss/train"), ("test_loss", "loss/test"), ("train_accuracy", "accuracy/train"),
                     ("test_accuracy", "accuracy/test"), ("lr", "lr"), ("rss_peak_bytes", "memory/rss_peak_bytes")):
        assert [s for s, _ in scalars[tag]] == [1, 2, 3], tag
        # TensorBoard stores float32: the logged values equal metrics.json's to float32 precision
        assert [v for _, v in scalars[tag]] == pytest.approx([r[key] for r in rows], rel=1e-6), tag
    # the cosine schedule: lr = 0.05 (1 + cos(pi e / 3)) / 2 at epochs e = 0, 1, 2
    assert [v for _, v in scalars["lr"]] == pytest.approx([0.05 * (1 + math.cos(math.pi * e / 3)) / 2
                                                          for e in range(3)], rel=1e-6)
    rates = {tag: values for tag, values in scalars.items() if tag.startswith("firing_rate/")}
    assert rates  # one tag per spiking layer (checked against an independent count below)
    for values in rates.values():
        assert [s for s, _ in values] == [1, 2, 3] and all(0.0 <= v <= 1.0 for _, v in values)


def test_firing_rates_logged_match_an_independent_count(tmp_path, capsys):
    """The hidden layer's logged rate is the mean of its spikes on the probe batch (the first 64
    test images), counted here with a forward hook on the trained network."""
    from snnlab.training.restore import load_trained_model
    from snnlab.data import load_dataset
    from snnlab.neurons import reset_states

    out = tmp_path / "run"
    run(capsys, *TINY, "--epochs", "1", "--tensorboard", "--out-dir", str(out))
    model, _ = load_trained_model(out)
    test = load_dataset("digits", train=False)
    x = torch.stack([test[i][0] for i in range(64)])
    spikes = {}
    from snnlab.neurons.modules import BaseNode

    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: spikes.setdefault(n, []).append(o.detach()))
             for n, m in model.named_modules() if isinstance(m, BaseNode)]
    reset_states(model)
    with torch.no_grad():
        model(x.unsqueeze(0).expand(2, *x.shape).contiguous())
    for h in hooks:
        h.remove()
    expected = {name: float(torch.cat([o.flatten() for o in outs]).mean()) for name, outs in spikes.items()}
    logged = {tag.split("/", 1)[1]: values[-1][1] for tag, values in read_scalars(out / "tb").items()
              if tag.startswith("firing_rate/")}
    assert logged.keys() == expected.keys()
    for name in expected:
        assert logged[name] == pytest.approx(expected[name], rel=1e-6, abs=1e-7), name


def test_tensorboard_needs_an_out_dir():
    from snnlab.training import train

    with pytest.raises(ValueError, match="tensorboard=True needs out_dir"):
        train(tensorboard=True, epochs=1, max_batches=1, progress=False)


def test_a_run_given_python_objects_says_it_cannot_be_replayed_from_the_file(tmp_path, capsys):
    from snnlab.data import load_dataset
    from snnlab.models import build_model
    from snnlab.training import train

    out = tmp_path / "custom"
    net = build_model("spiking_mlp", num_classes=10, input_shape=(1, 8, 8), T=2, hidden=(8,))
    train(model=net, train_set=load_dataset("digits", train=True), T=2, epochs=1, max_batches=1, evaluate=False,
          progress=False, out_dir=str(out))
    record = yaml.safe_load((out / "config.yaml").read_text())
    assert record["not_replayable"] == ["the model (an nn.Module)", "the training set"]
    assert main(["train", "--config", str(out), "--out-dir", str(tmp_path / "again")]) == 2
    assert "cannot rebuild" in capsys.readouterr().err
