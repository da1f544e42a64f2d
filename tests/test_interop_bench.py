"""`snnlab bench interop`: its JSON, and that every check it reports holds."""

import json

from snnlab.cli import main
from snnlab.interop.spikingjelly import spikingjelly_version


def test_bench_interop_quick(capsys, tmp_path):
    out = tmp_path / "interop.json"
    assert main(["bench", "interop", "--quick", "--output", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    bench = printed["interop"]
    assert set(bench["networks"]) == {"spiking_cnn_hard_reset", "sew_resnet18_add", "ottt_vgg", "atsn_vgg"}
    for name, row in bench["networks"].items():
        assert row["round_trip_identical"] is True, name
        assert row["nodes"] >= 5 and row["file_bytes"] > 0
    if spikingjelly_version() is not None:
        for name in ("spiking_cnn_hard_reset", "sew_resnet18_add"):
            row = bench["networks"][name]
            assert row["spikingjelly_identical"] is True
            assert row["spikingjelly_over_snnlab"] == row["spikingjelly_inference_seconds"] / row["snnlab_inference_seconds"]
        reverse = bench["from_spikingjelly"]
        assert reverse["identical_spikes"] is True and 0 < reverse["spikes"] < reverse["possible_spikes"]
    else:
        assert "not installed" in bench["spikingjelly"]


def test_bench_interop_rejects_bad_options(capsys):
    assert main(["bench", "interop", "--T", "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().err
