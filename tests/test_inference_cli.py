"""``snnlab evaluate`` end to end: a run trained by ``snnlab train`` on the embedded digits, evaluated at
fixed T and with ATSN's and DTSNN's exits; the numbers are checked against the training loop's own
test accuracy and against the offline exit rules applied to a fixed-T run."""

from __future__ import annotations

import json

import pytest
import torch

from snnlab.cli import main
from snnlab.data import load_dataset
from snnlab.inference import ConfidenceExit, EntropyExit, FixedSteps, evaluate_exit, fixed_inference
from snnlab.training.restore import load_trained_model

N = 128  # test samples used by most tests


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One epoch of Adam on the digits: well above chance (about 80 %), confident enough that the exit
    rules below let some samples leave early."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--model", "spiking_cnn", "--dataset", "digits", "--loss", "tet", "--epochs", "1",
                 "--optimizer", "adam", "--lr", "0.01", "--no-progress", "--out-dir", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def test_data():
    test = load_dataset("digits", train=False)
    x = torch.stack([test[i][0] for i in range(N)])
    y = torch.as_tensor([test[i][1] for i in range(N)])
    return x, y


def evaluate(capsys, *args) -> dict:
    assert main(["evaluate", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_fixed_T_reproduces_the_training_loops_test_accuracy(run_dir, capsys):
    result = evaluate(capsys, str(run_dir), "--batch-size", "100")  # all 450 test digits
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics[-1]["test_accuracy"] > 0.5  # trained: the comparisons below mean something
    assert result["accuracy"] == pytest.approx(metrics[-1]["test_accuracy"], abs=1e-12)
    assert result["samples"] == 450 and result["split"] == "test"
    assert result["T"] == 4 and result["mean_timesteps"] == 4.0 and result["max_timesteps"] == 4
    assert result["exit"] == {"rule": "fixed", "readout": "mean_logits"}  # the TET loss predicts so
    assert result["exits_per_step"] == [0, 0, 0, 450] and "fixed_T_baseline" not in result
    assert result["checkpoint"]["model"] == "spiking_cnn" and result["checkpoint"]["epoch"] == 1
    assert result["wall_clock"]["seconds"] > 0 and result["complexity_eq19"]["synaptic_operations_per_sample"] > 0


def test_atsn_exit_matches_the_offline_rule_on_a_fixed_run(run_dir, test_data, capsys):
    x, y = test_data
    result = evaluate(capsys, str(run_dir / "checkpoint.pt"), "--exit", "atsn", "--cl-init", "0.3",
                      "--tau-cl", "0.9", "--samples", str(N), "--repeats", "3")
    model, _ = load_trained_model(run_dir)
    outputs = fixed_inference(model, x, T=4)[0]
    decided = ConfidenceExit(0.3, 0.9)(outputs)
    assert 1.0 < decided.mean_steps < 4.0  # some samples exit early, some run to T
    assert result["accuracy"] == decided.accuracy(y)
    assert result["mean_timesteps"] == decided.mean_steps and result["max_timesteps"] == decided.max_steps
    assert result["exits_per_step"] == torch.bincount(decided.steps, minlength=5)[1:].tolist()
    assert result["sample_steps_fraction"] == pytest.approx(decided.mean_steps / 4)
    assert result["exit"]["cl_init"] == 0.3 and result["exit"]["reads"] == "step"
    base = result["fixed_T_baseline"]
    assert base["timesteps"] == 4 and base["readout"] == "mean_logits"
    assert base["accuracy"] == FixedSteps("mean_logits")(outputs).accuracy(y)
    rel = result["complexity_eq19"]["relative_to_fixed_T"]
    assert rel == pytest.approx(result["complexity_eq19"]["synaptic_operations_per_sample"]
                                / base["synaptic_operations_per_sample"])
    assert rel < 1.0 and "speedup_vs_fixed_T" in result["wall_clock"] and result["wall_clock"]["repeats"] == 3


def test_complexity_counts_only_the_steps_computed(run_dir, capsys):
    """With CL_init tiny every sample exits after step 1: the first layer, which sees the same image at
    every step, does exactly 1/T of its fixed-T operations."""
    result = evaluate(capsys, str(run_dir), "--exit", "atsn", "--cl-init", "1e-6", "--samples", "64")
    assert result["mean_timesteps"] == 1.0 and result["exits_per_step"] == [64, 0, 0, 0]
    first_fixed = evaluate(capsys, str(run_dir), "--samples", "64")["complexity_eq19"]["per_layer"][0]
    first = result["complexity_eq19"]["per_layer"][0]
    assert first["layer"] == first_fixed["layer"]
    assert first["operations_per_sample"] == pytest.approx(first_fixed["operations_per_sample"] / 4)


def test_dtsnn_exit_and_its_extremes(run_dir, test_data, capsys):
    x, y = test_data
    model, _ = load_trained_model(run_dir)
    outputs = fixed_inference(model, x[:64], T=4)[0]
    result = evaluate(capsys, str(run_dir), "--exit", "dtsnn", "--theta", "0.95", "--samples", "64")
    decided = EntropyExit(0.95)(outputs)
    assert 1.0 < decided.mean_steps < 4.0
    assert result["mean_timesteps"] == decided.mean_steps and result["accuracy"] == decided.accuracy(y[:64])
    assert evaluate(capsys, str(run_dir), "--exit", "dtsnn", "--theta", "0", "--samples", "64",
                    "--no-baseline")["mean_timesteps"] == 4.0  # entropy is never below 0


def test_shorter_T_than_trained(run_dir, test_data, capsys):
    x, y = test_data
    model, _ = load_trained_model(run_dir)
    result = evaluate(capsys, str(run_dir), "--T", "2", "--samples", "64")
    expected = evaluate_exit(model, x[:64], ConfidenceExit(1.0, 1.0), T=2)  # never exits: fixed T = 2
    assert result["T"] == 2 and result["max_timesteps"] == 2
    assert result["complexity_eq19"]["synaptic_operations_per_sample"] == pytest.approx(expected.operations / 64)


def test_a_saved_atsn_network_is_evaluated_too(tmp_path, capsys):
    from snnlab.models.atsn_vgg import atsn_vgg, save_atsn_vgg

    torch.manual_seed(0)
    net = atsn_vgg(num_classes=10, input_shape=(1, 8, 8), T=4)
    save_atsn_vgg(net, tmp_path / "net.pt", T=4, dataset="digits")
    result = evaluate(capsys, str(tmp_path / "net.pt"), "--exit", "atsn", "--samples", "32")
    assert result["checkpoint"]["kind"] == "atsn_vgg" and result["samples"] == 32 and result["T"] == 4


def error_of(capsys, *args) -> str:
    assert main(["evaluate", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snnlab evaluate: error:") and err.count("\n") == 1, err
    return err


def test_bad_input_gets_one_line_errors(run_dir, tmp_path, capsys):
    run = str(run_dir)
    assert "no training checkpoint at" in error_of(capsys, str(tmp_path / "missing.pt"))
    assert "without checkpoint.pt" in error_of(capsys, str(tmp_path))
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    err = error_of(capsys, str(tmp_path / "junk.pt"))
    assert "junk.pt: 8 bytes that torch.load cannot read" in err and "expected a training checkpoint" in err
    # options are checked before the checkpoint is read: a bad value is named even with a junk file
    assert "--samples must be >= 1" in error_of(capsys, str(tmp_path / "junk.pt"), "--samples", "0")
    assert "unknown --dataset 'mnist'" in error_of(capsys, str(tmp_path / "junk.pt"), "--dataset", "mnist")
    torch.save({"format": "snnlab.convert.ann/1", "model": {}}, tmp_path / "ann.pt")
    assert "ReLU ANN of a `snnlab convert` run; expected a `snnlab train` checkpoint" in \
        error_of(capsys, str(tmp_path / "ann.pt"))
    assert "unknown exit rule 'early'" in error_of(capsys, run, "--exit", "early")
    assert "needs its entropy threshold" in error_of(capsys, run, "--exit", "dtsnn")
    assert "--theta do(es) not apply to --exit atsn" in error_of(capsys, run, "--exit", "atsn", "--theta", "0.1")
    assert "--cl-init" in error_of(capsys, run, "--cl-init", "0.9")  # fixed T has no threshold
    assert "CL_init must lie in (0.0, 1.0]" in error_of(capsys, run, "--exit", "atsn", "--cl-init", "1.5")
    assert "theta must lie in [0.0, 1.0]" in error_of(capsys, run, "--exit", "dtsnn", "--theta", "2")
    assert "--T must be >= 1" in error_of(capsys, run, "--T", "0")
    assert "--samples must be >= 1" in error_of(capsys, run, "--samples", "0")
    assert "--repeats must be >= 1" in error_of(capsys, run, "--repeats", "0")
    assert "unknown --reads 'both'" in error_of(capsys, run, "--exit", "atsn", "--reads", "both")


def test_event_data_run(tmp_path, monkeypatch, capsys):
    """A run on the emulated event camera's digits: frames [B, T, 2, H, W] go through the exit loop."""
    monkeypatch.setenv("SNNLAB_DATA", str(tmp_path))
    out = tmp_path / "run"
    assert main(["train", "--dataset", "nmnist-emulated", "--data-option", "limit=100", "--data-option",
                 "progress=False", "--model", "spiking_cnn", "--T", "5", "--epochs", "1", "--max-batches", "1",
                 "--no-progress", "--out-dir", str(out)]) == 0
    capsys.readouterr()
    result = evaluate(capsys, str(out), "--exit", "atsn", "--cl-init", "0.2")
    assert result["input_kind"] == "events" and result["T"] == 5 and result["dataset"] == "nmnist-emulated"
    model, _ = load_trained_model(out)
    test = load_dataset("nmnist-emulated", train=False, T=5, limit=100, progress=False)
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.as_tensor([test[i][1] for i in range(len(test))])
    decided = ConfidenceExit(0.2, 0.999)(fixed_inference(model, x, T=5, kind="events")[0])
    assert result["samples"] == len(y) and result["accuracy"] == decided.accuracy(y)
    assert result["exits_per_step"] == torch.bincount(decided.steps, minlength=6)[1:].tolist()
