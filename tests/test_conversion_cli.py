"""``snnlab convert`` end to end on the embedded digits: the JSON it prints, the functions it shares
with chapter 6, resuming an interrupted run exactly, and its errors for bad input."""

from __future__ import annotations

import json

import pytest
import torch

import snnlab.training.checkpoint as checkpoint
from snnlab.cli import main
from snnlab.conversion import accuracy, convert, evaluate_snn, fold_batchnorm, initial_thresholds, relu_preactivations
from snnlab.conversion.pipeline import _as_tensors, train_ann
from snnlab.data import load_dataset
from snnlab.models.ann import digits_cnn
from snnlab.training.checkpoint import seed_everything

QUICK = ["--ann-epochs", "2", "--max-train", "160", "--max-test", "90", "--stats-images", "64", "--T", "3",
         "--no-progress", "--model-option", "width=4", "--model-option", "hidden=16"]


def run_convert(capsys, *args) -> tuple[dict, str]:
    """The JSON ``snnlab convert`` prints, and what it logged to stderr."""
    assert main(["convert", *QUICK, *args]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def convert_json(capsys, *args) -> dict:
    return run_convert(capsys, *args)[0]


def test_three_kinds_end_to_end_with_energy(capsys):
    result = convert_json(capsys, "--kind", "sc-ttfs", "--kind", "ttfs", "--kind", "rate", "--rate-T", "8")
    rows = {r["kind"]: r for r in result["snn"]}
    assert list(rows) == ["sc_ttfs", "ttfs", "rate"]
    assert result["samples"] == {"train": 160, "test": 90, "statistics": 64}
    assert 0.0 <= result["ann"]["accuracy"] <= 1.0 and len(result["ann"]["history"]) == 2
    # latency: 4 spiking layers x T for the TTFS codes, T steps for rate coding
    assert rows["sc_ttfs"]["latency"] == rows["ttfs"]["latency"] == 4 * 3 and rows["rate"]["latency"] == 8
    assert all(r["spiking_layers"] == 4 and r["bn_folded"] for r in rows.values())
    # a TTFS neuron fires at most once, an SC-TTFS neuron at most twice
    assert rows["ttfs"]["spikes_per_image"] <= rows["sc_ttfs"]["spikes_per_image"]
    assert len(rows["sc_ttfs"]["thresholds"]["per_layer"]) == 4
    assert "calibrate" in rows["sc_ttfs"]["thresholds"]["per_layer"][0]
    assert "calibrate" not in rows["ttfs"]["thresholds"]["per_layer"][0]
    # eq. 25 with the paper's weights: TrueNorth (0.4, 0.6), SpiNNaker (0.64, 0.36)
    n = {k: r["spikes_per_image"] for k, r in rows.items()}
    lat = {k: r["latency"] for k, r in rows.items()}
    for hardware, (e_i, e_l) in {"truenorth": (0.4, 0.6), "spinnaker": (0.64, 0.36)}.items():
        for kind, row in rows.items():
            e = row["energy_eq25"][hardware]
            assert e["unnormalised"] == pytest.approx(e_i * n[kind] + e_l * lat[kind])
            assert e["max_normalised"] == pytest.approx(e_i * n[kind] / max(n.values())
                                                        + e_l * lat[kind] / max(lat.values()))


def test_the_cli_runs_chapter_6s_functions(capsys):
    """The same numbers from the library calls chapter 6 makes."""
    result = convert_json(capsys, "--kind", "sc-ttfs")
    seed_everything(0)
    ann = digits_cnn(width=4, hidden=16)
    train = torch.utils.data.Subset(load_dataset("digits", train=True), range(160))
    train_ann(ann, train, epochs=2, lr=1e-2, batch_size=64, weight_decay=5e-4, seed=0)
    test = _as_tensors(torch.utils.data.Subset(load_dataset("digits", train=False), range(90)))
    assert result["ann"]["accuracy"] == accuracy(ann, test)
    stats = _as_tensors(torch.utils.data.Subset(load_dataset("digits", train=True, augment=False), range(64)))[0]
    snn = convert(ann, "sc_ttfs", T=3, thresholds=initial_thresholds("sc_ttfs", relu_preactivations(ann, stats), 3))
    expected = evaluate_snn(fold_batchnorm(snn), test)
    row = result["snn"][0]
    assert row["accuracy"] == expected["accuracy"] and row["spikes_per_image"] == expected["spikes_per_image"]


def interrupt_after(monkeypatch, saves: int):
    """Raise Ctrl-C right after the ``saves``-th checkpoint is written."""
    real = checkpoint.save_checkpoint
    count = {"n": 0}

    def save(path, payload):
        real(path, payload)
        count["n"] += 1
        if count["n"] == saves:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_checkpoint", save)


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch, capsys):
    args = ["--ann-epochs", "3", "--kind", "sc-ttfs", "--fine-tune-epochs", "2", "--fine-tune-lr", "1e-3"]
    whole = convert_json(capsys, *args, "--out-dir", str(tmp_path / "whole"))
    # stop after ANN epoch 2 (save 2), then after fine-tuning epoch 1 (save 3 + 1 of the resumed run)
    interrupt_after(monkeypatch, 2)
    assert main(["convert", *QUICK, *args, "--out-dir", str(tmp_path / "cut")]) == 130
    assert "continue with --resume" in capsys.readouterr().err
    interrupt_after(monkeypatch, 2)  # ANN epoch 3, then fine-tuning epoch 1
    assert main(["convert", *QUICK, *args, "--out-dir", str(tmp_path / "cut"), "--resume"]) == 130
    monkeypatch.undo()
    resumed, err = run_convert(capsys, *args, "--out-dir", str(tmp_path / "cut"), "--resume")
    assert "resuming the sc_ttfs fine-tuning after epoch 1" in err
    assert resumed["ann"]["accuracy"] == whole["ann"]["accuracy"]
    assert resumed["ann"]["history"] == whole["ann"]["history"]
    for key in ("accuracy", "spikes_per_image", "accuracy_before_fine_tune", "thresholds"):
        assert resumed["snn"][0][key] == whole["snn"][0][key], key
    assert resumed["snn"][0]["fine_tune"]["history"] == whole["snn"][0]["fine_tune"]["history"]
    a = torch.load(tmp_path / "whole" / "snn-sc_ttfs.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "cut" / "snn-sc_ttfs.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit for bit
    assert json.loads((tmp_path / "cut" / "result.json").read_text())["snn"][0]["accuracy"] == whole["snn"][0]["accuracy"]
    # everything done: a further --resume recomputes nothing
    again, err = run_convert(capsys, *args, "--out-dir", str(tmp_path / "cut"), "--resume")
    assert again["snn"] == resumed["snn"] and "ANN already trained" in err and "sc_ttfs already converted" in err


def test_a_trained_ann_can_be_loaded_and_converted_again(tmp_path, capsys):
    first = convert_json(capsys, "--kind", "ttfs", "--out-dir", str(tmp_path / "a"))
    again = convert_json(capsys, "--kind", "ttfs", "--ann", str(tmp_path / "a" / "ann.pt"))
    assert again["ann"]["accuracy"] == first["ann"]["accuracy"] and again["ann"]["source"].endswith("ann.pt")
    assert again["snn"][0]["accuracy"] == first["snn"][0]["accuracy"]
    # a bare state_dict works too
    state = torch.load(tmp_path / "a" / "ann.pt", weights_only=False)["model"]
    torch.save(state, tmp_path / "weights.pt")
    assert convert_json(capsys, "--kind", "ttfs", "--ann", str(tmp_path / "weights.pt"))["ann"]["accuracy"] \
        == first["ann"]["accuracy"]


def error_of(capsys, *args) -> str:
    assert main(["convert", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snnlab convert: error:") and err.count("\n") == 1, err
    return err


def test_bad_input_gets_one_line_errors(tmp_path, capsys):
    assert "unknown conversion kind 'snn'" in error_of(capsys, "--kind", "snn")
    assert "T (number of timesteps)" in error_of(capsys, "--T", "0")
    assert "'vgg16'" in error_of(capsys, "--model", "resnet18")
    assert "event data set" in error_of(capsys, "--dataset", "nmnist-emulated")
    assert "thresholds" in error_of(capsys, "--thresholds", "cifar1000")
    assert "percentile" in error_of(capsys, "--percentile", "0")
    assert "fine_tune_lr" in error_of(capsys, "--fine-tune-lr", "-1")
    assert "does not fit" in error_of(capsys, *QUICK[:2], "--data-option", "size=32")  # digits_cnn is for 8x8
    assert "no trained ANN at" in error_of(capsys, "--ann", str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert "expected a trained ANN snnlab wrote" in error_of(capsys, "--ann", str(tmp_path / "junk.pt"))
    checkpoint.save_checkpoint(tmp_path / "run" / "checkpoint.pt",
                               {"format": 1, "config": {"method": "bptt"}, "model": {}})
    assert "`snnlab train` checkpoint" in error_of(capsys, "--ann", str(tmp_path / "run"))
    assert "unknown device 'gpu0'" in error_of(capsys, "--device", "gpu0")
    if not torch.cuda.is_available():
        assert "CUDA is not available" in error_of(capsys, "--device", "cuda")
    assert "choose one" in error_of(capsys, "--resume", "--overwrite", "--out-dir", str(tmp_path / "o"))


def test_an_existing_run_is_not_overwritten_by_accident(tmp_path, capsys):
    out = str(tmp_path / "run")
    first = convert_json(capsys, "--kind", "rate", "--out-dir", out)
    assert "Continue it with --resume, or start again with --overwrite" in error_of(capsys, *QUICK, "--kind", "rate", "--out-dir", out)
    again = convert_json(capsys, "--kind", "rate", "--out-dir", out, "--overwrite")
    assert again["snn"][0]["accuracy"] == first["snn"][0]["accuracy"]
    assert "cannot resume" in error_of(capsys, *QUICK, "--kind", "rate", "--out-dir", out, "--resume",
                                       "--ann-lr", "0.5")
    # --overwrite moved the first run aside, deleting nothing (the same rule as snnlab train)
    previous = list((tmp_path / "run" / "previous").iterdir())
    assert len(previous) == 1 and {p.name for p in previous[0].iterdir()} >= {"ann.pt", "snn-rate.pt", "result.json"}


def test_the_out_dir_follows_trains_rules(tmp_path, capsys):
    """Checked before any work, --resume needs a run, --resume-if-exists starts one, a held folder is refused."""
    (tmp_path / "file").write_text("x")
    assert "is a file, not a folder" in error_of(capsys, *QUICK, "--kind", "rate", "--out-dir", str(tmp_path / "file"))
    assert "lies under" in error_of(capsys, *QUICK, "--kind", "rate", "--out-dir", str(tmp_path / "file" / "run"))
    empty = tmp_path / "empty"
    assert "nothing to resume" in error_of(capsys, *QUICK, "--kind", "rate", "--out-dir", str(empty), "--resume")
    assert not (empty / "ann.pt").exists()
    first = convert_json(capsys, "--kind", "rate", "--out-dir", str(empty), "--resume-if-exists")
    assert (empty / "snn-rate.pt").is_file()
    again = convert_json(capsys, "--kind", "rate", "--out-dir", str(empty), "--resume-if-exists")
    assert again["snn"][0]["accuracy"] == first["snn"][0]["accuracy"]
    from snnlab.conversion.run import LOCK_NAME
    from snnlab.files import folder_lock

    with folder_lock(empty / LOCK_NAME, wait=False):
        assert "in use by" in error_of(capsys, *QUICK, "--kind", "rate", "--out-dir", str(empty), "--resume")
    (empty / "snn-rate.pt").write_bytes(b"garbage")
    assert main(["convert", *QUICK, "--kind", "rate", "--out-dir", str(empty), "--resume"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the note that the ANN is trained
    assert err.startswith("snnlab convert: error: ") and str(empty / "snn-rate.pt") in err
    assert "expected a converted network of a `snnlab convert` run" in err


def test_vgg16_on_cifar10_files_with_the_papers_table_1_thresholds(tmp_path, capsys):
    """The README recipe's path at a tiny scale: CIFAR-10 in its real format, VGG16 (width 4),
    the paper's Table 1 initial thresholds, fine-tuning, 15 spiking layers."""
    from test_data_real import write_cifar10

    write_cifar10(tmp_path)
    assert main(["convert", "--dataset", "cifar10", "--data-root", str(tmp_path), "--model", "vgg16",
                 "--model-option", "width=4", "--kind", "sc-ttfs", "--thresholds", "cifar10", "--T", "2",
                 "--ann-epochs", "1", "--fine-tune-epochs", "1", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    row = result["snn"][0]
    assert result["samples"] == {"train": 20, "test": 4, "statistics": 20}
    assert row["spiking_layers"] == 15 and row["latency"] == 30
    assert row["thresholds"]["initialised_from"] == "paper Table 1 (cifar10)"
    assert row["accuracy_before_fine_tune"] is not None and len(row["fine_tune"]["history"]) == 1


def test_augmentation_stays_off_the_test_split():
    """--data-option augment=True shapes the ANN's training data, never the images it is scored on."""
    from torch.utils.data import Subset

    from snnlab.conversion.pipeline import _as_tensors
    from snnlab.conversion.run import ConvertConfig, _load_data
    from snnlab.data import load_dataset

    torch.manual_seed(0)
    _, (x, y), _, _ = _load_data(ConvertConfig(data_options={"augment": True}, max_test=50).validate())
    plain_x, plain_y = _as_tensors(Subset(load_dataset("digits", train=False, augment=False), range(50)))
    assert torch.equal(x, plain_x) and torch.equal(y, plain_y)
