"""The training loop: metrics files, atomic checkpoints, exact resume, Ctrl-C, the CLI."""

import json
import math
import os
import signal

import pytest
import torch
from torch.utils.data import TensorDataset

from snnlab.cli import main
from snnlab.errors import RunExistsError
from snnlab.models import build_model
from snnlab.training import TrainConfig, train
from snnlab.training.checkpoint import load_checkpoint
from snnlab.training.ddp import EpochShardSampler


def _data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 6, 6, generator=g)
    m = x.mean((1, 2, 3))  # three balanced classes by brightness
    y = (m > m.quantile(1 / 3)).long() + (m > m.quantile(2 / 3)).long()
    return TensorDataset(x, y)


class _AugmentedData(TensorDataset):
    """Draws from the global torch RNG on every item, like a random-crop augmentation."""

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x + 0.1 * torch.rand_like(x), y


def _cfg(out_dir, **kw):
    base = dict(model="spiking_cnn", method="sltt_k", method_options={"k": 2}, loss="tet", T=3, epochs=2,
                batch_size=8, lr=0.05, weight_decay=1e-4, seed=3, out_dir=str(out_dir), progress=False,
                model_options={"channels": (4, 4), "num_classes": 3})
    base.update(kw)
    return TrainConfig(**base)


def _run(cfg, **kw):
    return train(cfg, train_set=_AugmentedData(*_data().tensors), test_set=_data(16, seed=1), **kw)


def _deterministic(history):
    return [{k: v for k, v in row.items() if k not in ("seconds", "rss_peak_bytes")} for row in history]


def _assert_equal_states(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_writes_metrics_and_a_checkpoint_per_epoch(tmp_path):
    result = _run(_cfg(tmp_path))
    assert [row["epoch"] for row in result.history] == [1, 2]
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert rows == json.loads(json.dumps(result.history))
    csv_lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,train_loss,train_accuracy,test_loss,test_accuracy,lr")
    assert len(csv_lines) == 3
    for row in result.history:
        assert 0 <= row["train_accuracy"] <= 1 and 0 <= row["test_accuracy"] <= 1
        assert row["saved_bytes_peak"] > 0 and row["rss_peak_bytes"] > 0
    assert result.history[1]["lr"] < result.history[0]["lr"]  # cosine
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["epoch"] == 2 and ckpt["batch"] == 0
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "rng", "history", "config"}
    _assert_equal_states(ckpt["model"], result.model.state_dict())
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # atomic writes left no debris


def test_resume_after_an_epoch_gives_the_uninterrupted_weights_exactly(tmp_path):
    full = _run(_cfg(tmp_path / "full"))
    first = _run(_cfg(tmp_path / "part", stop_after=1))  # planned 2 epochs, stopped after 1
    assert len(first.history) == 1
    resumed = _run(_cfg(tmp_path / "part", resume=True))
    _assert_equal_states(full.model.state_dict(), resumed.model.state_dict())
    assert _deterministic(resumed.history) == _deterministic(full.history)


def test_ctrl_c_mid_epoch_checkpoints_and_resume_is_exact(tmp_path):
    full = _run(_cfg(tmp_path / "full"))

    def interrupt(event):  # Ctrl-C arrives while batch 2 of epoch 1 trains
        if event["epoch"] == 0 and event["batch"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        _run(_cfg(tmp_path / "cut"), callbacks=[interrupt])
    ckpt = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert (ckpt["epoch"], ckpt["batch"]) == (0, 3)  # the batch in flight finished first
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    resumed = _run(_cfg(tmp_path / "cut", resume=True))
    _assert_equal_states(full.model.state_dict(), resumed.model.state_dict())
    assert _deterministic(resumed.history) == _deterministic(full.history)


def test_resume_refuses_other_settings_and_a_missing_checkpoint(tmp_path, capsys):
    _run(_cfg(tmp_path, epochs=1, max_batches=2))
    longer = _run(_cfg(tmp_path, epochs=2, max_batches=2, resume=True))  # a longer plan continues the run
    assert [r["epoch"] for r in longer.history] == [1, 2]
    with pytest.raises(ValueError, match="T: checkpoint 3 vs now 4"):
        _run(_cfg(tmp_path, T=4, max_batches=2, resume=True))
    # a typo in the folder must not start a silent retrain: --resume without a checkpoint is an error
    with pytest.raises(RunExistsError, match="no checkpoint.pt in .*nothing to resume.*--resume-if-exists"):
        _run(_cfg(tmp_path / "typo", epochs=1, max_batches=1, resume=True))
    assert not (tmp_path / "typo" / "checkpoint.pt").exists()
    # ... unless asked for: resume if there is a checkpoint, else start from scratch
    fresh = _run(_cfg(tmp_path / "fresh", epochs=1, max_batches=1, resume_if_exists=True))
    assert "starting from scratch" in capsys.readouterr().err and len(fresh.history) == 1
    again = _run(_cfg(tmp_path / "fresh", epochs=2, max_batches=1, resume_if_exists=True))
    assert [r["epoch"] for r in again.history] == [1, 2]  # resumed: epoch 1 came from the checkpoint
    assert again.history[0] == fresh.history[0]


def test_every_method_trains_and_learns_something():
    torch.manual_seed(0)
    for method in ("bptt", "sltt", "ottt_a", "ottt_o"):
        r = train(model="spiking_mlp", method=method, dataset="digits", loss="ottt", T=2, epochs=1,
                  batch_size=32, lr=0.1, max_batches=12, progress=False, model_options={"hidden": (32,)})
        assert r.history[0]["test_accuracy"] > 0.2, method  # chance is 0.1
        assert r.history[0]["saved_bytes_peak"] > 0


def test_mixed_precision_run_on_cpu(tmp_path):
    """--amp must run the forward pass under autocast: the convolutions compute in bfloat16 on CPU
    (and in float32 without it); a run that ignored autocast would pass a loss-only check."""
    dtypes = {}
    for amp in (False, True):
        model = build_model("spiking_cnn", num_classes=3, input_shape=(1, 6, 6), T=3, channels=(4, 4))
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        seen = dtypes.setdefault(amp, set())
        for conv in convs:
            conv.register_forward_hook(lambda m, inp, out, seen=seen: seen.add(out.dtype) if m.training else None)
        r = _run(_cfg(tmp_path / str(amp), epochs=1, amp=amp, max_batches=2), model=model)
        assert math.isfinite(r.history[0]["train_loss"]) and r.history[0]["train_loss"] > 0
    assert dtypes == {False: {torch.float32}, True: {torch.bfloat16}}
    assert load_checkpoint(tmp_path / "True" / "checkpoint.pt")["config"]["amp"] is True


def test_notebook_call_with_a_custom_model_and_no_files(tmp_path):
    model = build_model("spiking_mlp", num_classes=3, input_shape=(1, 6, 6), T=2)
    r = train(model=model, train_set=_data(), test_set=None, T=2, epochs=1, batch_size=16, progress=False,
              evaluate=False)
    assert r.model is model and r.history[0]["test_accuracy"] is None and r.checkpoint is None


def test_bad_settings_name_the_valid_choices():
    with pytest.raises(ValueError, match="unknown model 'resnet'; valid names: .*spiking_cnn, spiking_mlp"):
        train(model="resnet")
    with pytest.raises(ValueError, match="valid choices: 'bptt', 'sltt'"):
        train(method="stbp")
    with pytest.raises(ValueError, match="valid names: digits"):
        train(dataset="mnist", progress=False)
    with pytest.raises(ValueError, match="per-step loss"):
        train(method="ottt_a", loss="sdt")
    with pytest.raises(TypeError, match="unknown training setting"):
        train(epoch=3)
    with pytest.raises(ValueError, match="needs out_dir"):
        train(resume=True)


def test_epoch_shard_sampler_partitions_the_global_order():
    one = list(EpochShardSampler(10, seed=1, epoch=2))
    assert sorted(one) == list(range(10))
    assert one != list(EpochShardSampler(10, seed=1, epoch=3))
    shards = [list(EpochShardSampler(10, seed=1, epoch=2, rank=r, world_size=2)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(10))
    # global batch k (size 4) = the union of the ranks' local batches k (size 2)
    for k in range(2):
        assert set(one[4 * k : 4 * k + 4]) == set(shards[0][2 * k : 2 * k + 2] + shards[1][2 * k : 2 * k + 2])
    assert list(EpochShardSampler(10, seed=1, epoch=2, start=4)) == one[4:]
    padded = [list(EpochShardSampler(5, rank=r, world_size=2, shuffle=False)) for r in range(2)]
    assert padded == [[0, 2, 4], [1, 3, 0]]


def test_cli_trains_and_resumes(tmp_path, capsys):
    args = ["train", "--model", "spiking_mlp", "--dataset", "digits", "--method", "sltt", "--T", "2",
            "--epochs", "2", "--batch-size", "32", "--max-batches", "3", "--no-progress",
            "--model-option", "hidden=(16,)", "--loss-option", "lam=0.05", "--out-dir", str(tmp_path)]
    assert main([*args, "--stop-after", "1"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["epoch"] == 1 and first["method"] == "sltt" and first["T"] == 2
    assert main([*args, "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["epoch"] == 2
    assert len(json.loads((tmp_path / "metrics.json").read_text())) == 2
    assert main([*args, "--sltt-k", "2"]) == 2
    assert "--sltt-k applies to --method sltt_k" in capsys.readouterr().err


def test_event_data_is_fed_time_major_and_T_comes_from_the_data():
    """Event items [T, 2, H, W] arrive as [B, T, ...] and are transposed; training on 3 random frames
    (random temporal deletion) and testing on all 5 works, since T is read from the batch."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(24) % 2
    frames = (torch.rand(24, 5, 2, 6, 6, generator=g) < 0.2 + 0.3 * y.view(-1, 1, 1, 1, 1)).float()
    seen = []
    model = build_model("spiking_cnn", num_classes=2, input_shape=(5, 2, 6, 6), T=5, channels=(4,))
    model.register_forward_pre_hook(lambda m, inp: seen.append(tuple(inp[0].shape)))
    r = train(model=model, train_set=TensorDataset(frames[:, :3], y), test_set=TensorDataset(frames, y),
              method="ottt_a", loss="ottt", epochs=1, batch_size=8, lr=0.1, progress=False)
    assert (1, 8, 2, 6, 6) in seen  # online methods: one step of [1, B, 2, H, W]
    assert (5, 8, 2, 6, 6) in seen  # evaluation: the whole test sequence
    assert len([s for s in seen if s[0] == 1]) == 1 + 3 * 3  # OTTT's probe + 3 batches x 3 frames
    assert r.history[0]["test_accuracy"] is not None
    assert r.config.T == 3  # T=None: the (training) data's frame count
