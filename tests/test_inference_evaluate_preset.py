"""`snnlab evaluate` on a network trained on the emulated data set's `faint` preset, named by its
data set name (what chapter 7 saves and documents)."""

from __future__ import annotations

import json

from snnlab.cli import main
from snnlab.data import load_dataset
from snnlab.inference.ablation import train_variant
from snnlab.models.atsn_vgg import save_atsn_vgg


def test_evaluate_finds_the_faint_preset_by_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SNNLAB_DATA", str(tmp_path / "data"))
    train = load_dataset("nmnist-emulated-faint", train=True, limit=60, progress=False)
    net, _ = train_variant("neuron_loss", train_set=train, epochs=1, T=8, max_batches=1)
    save_atsn_vgg(net, tmp_path / "net.pt", T=8, dataset="nmnist-emulated-faint")
    assert main(["evaluate", str(tmp_path / "net.pt"), "--exit", "atsn", "--data-option", "limit=60",
                 "--samples", "10"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "nmnist-emulated-faint" and out["input_kind"] == "events"
    assert out["T"] == 8 and out["samples"] == 10 and 1 <= out["mean_timesteps"] <= 8
    assert sum(out["exits_per_step"]) == 10
