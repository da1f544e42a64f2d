"""``snnlab export`` and ``snnlab train --init-from``: a trained run becomes a NIR file and back."""

from __future__ import annotations

import json

import pytest
import torch

from snnlab.cli import main
from snnlab.interop import from_nir
from snnlab.interop.cli import load_trained_model
from snnlab.models import build_model
from snnlab.models.atsn_vgg import save_atsn_vgg
from snnlab.neurons import reset_states
from snnlab.training import train

RUN = dict(dataset="digits", epochs=1, max_batches=2, batch_size=32, T=2, progress=False, evaluate=False)


def same_outputs(a, b, shape) -> bool:
    x = torch.rand(3, 4, *shape) * 2
    with torch.no_grad():
        reset_states(a)
        reset_states(b)
        return torch.equal(a(x), b(x))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(model="spiking_cnn", model_options={"v_reset": 0.0, "channels": (4, 8)}, out_dir=str(out), **RUN)
    return out


def test_export_a_training_checkpoint(run_dir, tmp_path, capsys):
    target = tmp_path / "net.nir"
    assert main(["export", "--checkpoint", str(run_dir / "checkpoint.pt"), "--format", "nir", "--dt", "1e-3",
                 "-o", str(target)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == str(target) and summary["dt_seconds"] == 1e-3
    assert summary["input_shape"] == [1, 8, 8] and summary["output_shape"] == [10]
    assert summary["node_types"]["LIF"] == 2 and summary["source"]["model"] == "spiking_cnn"
    trained, _ = load_trained_model(run_dir / "checkpoint.pt")
    net = from_nir(target)
    assert net.dt == 1e-3 and same_outputs(trained, net, (1, 8, 8))


def test_export_an_atsn_network_file(tmp_path, capsys):
    model = build_model("atsn_vgg", num_classes=10, input_shape=(1, 8, 8), T=4)
    save_atsn_vgg(model.eval(), tmp_path / "atsn.pt")
    assert main(["export", "--checkpoint", str(tmp_path / "atsn.pt"), "--dt", "2e-3", "-o", str(tmp_path / "a.nir")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["source"]["kind"] == "atsn_vgg" and summary["node_types"]["SumPool2d"] == 2
    assert same_outputs(model, from_nir(tmp_path / "a.nir"), (1, 8, 8))


def test_export_errors_say_what_was_expected(run_dir, tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--dt", "1e-3", "-o", str(tmp_path / "a.nir")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    ckpt = str(run_dir / "checkpoint.pt")
    assert main(["export", "--checkpoint", ckpt, "--dt", "1e-3", "-o", str(tmp_path / "a.h5")]) == 2
    assert "should end in .nir" in capsys.readouterr().err
    assert main(["export", "--checkpoint", ckpt, "--dt", "0", "-o", str(tmp_path / "a.nir")]) == 2
    assert "must be a finite number > 0" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["export", "--checkpoint", str(tmp_path / "junk.pt"), "--dt", "1e-3", "-o", str(tmp_path / "a.nir")]) == 2
    err = capsys.readouterr().err
    assert "junk.pt" in err and "expected a checkpoint snnlab wrote" in err and err.count("\n") == 1
    torch.save(build_model("spiking_cnn", num_classes=10, input_shape=(1, 8, 8), T=2).state_dict(), tmp_path / "bare.pt")
    assert main(["export", "--checkpoint", str(tmp_path / "bare.pt"), "--dt", "1e-3", "-o", str(tmp_path / "a.nir")]) == 2
    err = capsys.readouterr().err
    assert "bare state_dict" in err and "expected a `snnlab train` checkpoint" in err
    state = torch.load(ckpt, weights_only=False)
    state["config"]["model_options"] = {**state["config"]["model_options"], "channels": (8, 8)}
    torch.save(state, tmp_path / "changed.pt")
    assert main(["export", "--checkpoint", str(tmp_path / "changed.pt"), "--dt", "1e-3", "-o", str(tmp_path / "a.nir")]) == 2
    err = capsys.readouterr().err
    assert "do not fit model 'spiking_cnn'" in err and "snnlab.interop.to_nir" in err
    with pytest.raises(SystemExit):
        main(["export", "--checkpoint", ckpt, "--format", "onnx", "--dt", "1e-3", "-o", str(tmp_path / "a.nir")])
    mlf_run = tmp_path / "mlf"
    train(model="ds_resnet_small", model_options={"widths": (4, 4)}, out_dir=str(mlf_run), **RUN)
    assert main(["export", "--checkpoint", str(mlf_run / "checkpoint.pt"), "--dt", "1e-3", "-o",
                 str(tmp_path / "m.nir")]) == 2
    err = capsys.readouterr().err
    assert "MLFNode" in err and "'stem_sn'" in err and not (tmp_path / "m.nir").exists()


def test_train_init_from_a_graph_and_export_the_result(run_dir, tmp_path, capsys):
    graph = tmp_path / "start.nir"
    assert main(["export", "--checkpoint", str(run_dir / "checkpoint.pt"), "--dt", "1e-3", "-o", str(graph)]) == 0
    capsys.readouterr()
    out = tmp_path / "continued"
    assert main(["train", "--init-from", str(graph), "--dataset", "digits", "--epochs", "1", "--max-batches", "2",
                 "--batch-size", "32", "--T", "2", "--method", "sltt", "--no-progress", "--no-eval",
                 "--out-dir", str(out)]) == 0
    capsys.readouterr()
    start, continued = from_nir(graph), load_trained_model(out / "checkpoint.pt")[0]
    assert [n for n, _ in start.named_parameters()] == [n for n, _ in continued.named_parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(start.parameters(), continued.parameters())), "nothing trained"
    assert main(["export", "--checkpoint", str(out / "checkpoint.pt"), "--dt", "1e-3", "-o", str(tmp_path / "c.nir")]) == 0
    assert same_outputs(continued, from_nir(tmp_path / "c.nir"), (1, 8, 8))


def test_train_init_from_checks_the_graph_against_the_data(run_dir, tmp_path, capsys):
    graph = tmp_path / "start.nir"
    main(["export", "--checkpoint", str(run_dir / "checkpoint.pt"), "--dt", "1e-3", "-o", str(graph)])
    capsys.readouterr()
    assert main(["train", "--init-from", str(graph), "--dataset", "digits", "--data-option", "size=16",
                 "--epochs", "1", "--max-batches", "1", "--no-progress"]) == 2
    assert "takes input (1, 8, 8) per step, but the data set's items are (1, 16, 16)" in capsys.readouterr().err
    assert main(["train", "--init-from", str(graph), "--dataset", "digits", "--model-option", "dt=1e-4",
                 "--epochs", "1", "--max-batches", "1", "--no-progress"]) == 2
    assert "was written for dt = 0.001 s" in capsys.readouterr().err
    assert main(["train", "--init-from", str(tmp_path / "nope.nir"), "--dataset", "digits", "--epochs", "1",
                 "--no-progress"]) == 2
    assert "no NIR file at" in capsys.readouterr().err


def test_train_resume_refuses_another_init_graph(run_dir, tmp_path, capsys):
    """The graph may move between a run and its resume, but not change: its SHA-256 is in the checkpoint."""
    import shutil

    graph, other = tmp_path / "start.nir", tmp_path / "other.nir"
    for target, dt in ((graph, "1e-3"), (other, "2e-3")):
        assert main(["export", "--checkpoint", str(run_dir / "checkpoint.pt"), "--dt", dt, "-o", str(target)]) == 0
    kept = tmp_path / "kept" / "start.nir"
    kept.parent.mkdir()
    shutil.copy(graph, kept)
    out = tmp_path / "run"

    def train_args(source, *extra):
        return ["train", "--init-from", str(source), "--dataset", "digits", "--epochs", "2", "--max-batches", "2",
                "--batch-size", "32", "--T", "2", "--no-progress", "--no-eval", "--out-dir", str(out), *extra]

    assert main(train_args(graph, "--stop-after", "1")) == 0
    shutil.copy(other, graph)  # the same path, another graph
    capsys.readouterr()
    assert main(train_args(graph, "--resume")) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "init_from_sha256" in err and err.count("\n") == 1
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] == 1  # nothing was lost
    assert main(train_args(kept, "--resume")) == 0  # the original graph, moved: accepted
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 2 and state["config"]["init_from"] == str(kept)
