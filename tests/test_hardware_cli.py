"""``snnlab simulate``: JSON structure, a saved network and the train-first path, bad input."""

import json

import pytest
import torch

from snnlab.cli import main
from snnlab.models.atsn_vgg import atsn_vgg, save_atsn_vgg


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    net = atsn_vgg(num_classes=10, input_shape=(1, 8, 8)).eval()
    return save_atsn_vgg(net, tmp_path / "net.pt", dataset="digits", T=4)


def test_simulate_a_saved_network(capsys, saved, tmp_path):
    out = tmp_path / "sim.json"
    assert main(["simulate", "--model", str(saved), "--samples", "12", "--design", "atsn", "--design",
                 "conventional", "--per-layer", "--clock-mhz", "250", "--accelerators", "2",
                 "--output", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    assert printed["samples"] == 12 and printed["dataset"] == "digits" and printed["input_kind"] == "static"
    assert set(printed["designs"]) == {"atsn", "conventional"}
    atsn, conv = printed["designs"]["atsn"], printed["designs"]["conventional"]
    assert 1 <= atsn["mean_steps"] <= 4 and conv["mean_steps"] == 4
    assert atsn["fps"] == pytest.approx(2 * 250e6 / atsn["cycles_per_inference"])
    assert atsn["counts_per_inference"]["multiply"] < conv["counts_per_inference"]["multiply"]
    assert atsn["joules_per_inference"] > 0 and printed["gpu"]["joules"] > 0
    assert [row["layer"] for row in printed["per_layer"]["atsn"]] == ["features.0.layers", "features.3.layers",
                                                                      "classifier"]
    assert 0 <= printed["quantization"]["fixed_point_accuracy"] <= 1


def test_simulate_a_saved_event_network(capsys, tmp_path):
    # chapter 7 saves its network for event frames: every part of the report must read them as events
    torch.manual_seed(0)
    net = atsn_vgg(num_classes=10, input_shape=(2, 17, 17), output="integrator").eval()
    path = save_atsn_vgg(net, tmp_path / "events.pt", dataset="nmnist-emulated-faint", T=8)
    assert main(["simulate", "--model", str(path), "--samples", "6", "--T", "8", "--design", "atsn"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["input_kind"] == "events" and printed["samples"] == 6
    q = printed["quantization"]
    assert 0 <= q["fixed_point_accuracy"] <= 1 and 1 <= q["float_mean_steps"] <= 8
    assert q["fixed_point_accuracy"] - q["float_accuracy"] == pytest.approx((q["gained"] - q["lost"]) / 6)


def test_simulate_trains_a_network_when_none_is_given(capsys):
    assert main(["simulate", "--epochs", "1", "--max-batches", "2", "--samples", "8", "--design",
                 "conventional_exit", "--energy-table", "45nm"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["source"]["model"].startswith("trained now")
    d = printed["designs"]["conventional_exit"]
    assert d["energy_unit"] == "pJ" and d["energy_per_inference"]["total"] * 1e-12 == pytest.approx(
        d["joules_per_inference"])


def test_simulate_bad_input(capsys, saved, tmp_path):
    assert main(["simulate", "--model", str(tmp_path / "missing.pt")]) == 2
    assert "no saved ATSN network" in capsys.readouterr().err
    assert main(["simulate", "--model", str(saved), "--samples", "0"]) == 2
    assert "--samples must be >= 1" in capsys.readouterr().err
    assert main(["simulate", "--model", str(saved), "--cl-init", "1.5", "--samples", "2"]) == 2
    assert "CL_init" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["simulate", "--design", "gpu"])


def test_simulate_help_explains_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = capsys.readouterr().out
    assert "--model" in text and "save_atsn_vgg" in text and "Fig. 2" in text
