"""DDP on CPU with gloo: 2 processes end with identical weights equal to one process with the same
global batch (a BN-free model: batch norm statistics are per rank unless sync_bn on GPUs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from snnlab.training import TrainConfig, train
from snnlab.training.checkpoint import load_checkpoint
from snnlab.training.ddp import _free_port, launch_local

pytestmark = pytest.mark.slow


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 4, 4, generator=g) * 2
    m = x.mean((1, 2, 3))
    return TensorDataset(x, (m > m.median()).long())


def _cfg(method, **kw):
    base = dict(model="spiking_mlp", method=method, loss="tet", T=2, epochs=2, batch_size=8, lr=0.2,
                seed=5, progress=False, device="cpu", model_options={"hidden": (12,), "num_classes": 2})
    return TrainConfig(**{**base, **kw})


def _close(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol, rtol=1e-5), (k, (a[k] - b[k]).abs().max())


def test_two_gloo_processes_match_one_process_with_the_same_global_batch():
    method = "sltt"  # T backward passes per batch under no_sync, one all-reduce
    train_set, test_set = _data(40, 0), _data(10, 1)  # 40 = 5 global batches of 8
    ranks = launch_local(_cfg(method), 2, train_set=train_set, test_set=test_set)
    for k, v in ranks[0]["state_dict"].items():  # DDP keeps the replicas identical
        assert torch.equal(v, ranks[1]["state_dict"][k]), k
    torch.set_num_threads(1)
    single = train(_cfg(method), train_set=train_set, test_set=test_set)
    _close(ranks[0]["state_dict"], single.model.state_dict())
    start = _cfg(method, epochs=1, lr=1e-9)  # guard: training moved the weights far beyond the tolerance
    moved = train(start, train_set=train_set, test_set=test_set).model.state_dict()
    assert max(float((moved[k] - v).abs().max()) for k, v in single.model.state_dict().items()) > 1e-3
    for dist_row, row in zip(ranks[0]["history"], single.history):
        assert dist_row["test_accuracy"] == pytest.approx(row["test_accuracy"])
        assert dist_row["train_loss"] == pytest.approx(row["train_loss"], rel=1e-5)
    for a, b in zip(ranks[0]["history"], ranks[1]["history"]):  # metrics are all-reduced over ranks
        assert (a["train_loss"], a["test_accuracy"]) == (b["train_loss"], b["test_accuracy"])


def test_torchrun_cli_runs_ddp_and_only_rank0_writes(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed next to this Python")
    # OTTT_O: an optimizer step (and all-reduce) at every timestep; no augmentation, whose random
    # draws would differ between 2 ranks and 1 process
    common = ["--model", "spiking_mlp", "--dataset", "digits", "--data-option", "augment=False",
              "--method", "ottt_o", "--loss", "ottt",
              "--T", "2", "--epochs", "1", "--batch-size", "16", "--max-batches", "3", "--no-progress",
              "--model-option", "hidden=(8,)", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    proc = subprocess.run([str(torchrun), "--nproc_per_node=2", f"--master_port={_free_port()}", "-m", "snnlab",
                           "train", *common, "--out-dir", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"epoch": 1') == 1  # one rank printed
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    # the run's files and its folder lock (taken by rank 0), nothing else (no debris of the other rank)
    assert sorted(p.name for p in out.iterdir()) == [".snnlab-train.lock", "checkpoint.pt", "config.yaml",
                                                     "metrics.csv", "metrics.json"]
    single = train(TrainConfig(**{**ckpt["config"], "out_dir": None, "progress": False}))
    _close(ckpt["model"], single.model.state_dict())
    assert json.loads((out / "metrics.json").read_text())[0]["test_accuracy"] == pytest.approx(
        single.history[0]["test_accuracy"])
