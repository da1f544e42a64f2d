"""A bad command never costs a run, never overwrites one, and says what to do (issue 18, items 1, 2,
4, 9 and 10): the output folder is checked before any work, a folder holding a run is never
overwritten silently, a loss that becomes NaN stops the run, files get the user's permissions,
metrics never run ahead of the checkpoint, and mid-epoch checkpoints resume bit for bit.

Full disks and unwritable folders: as root (CI) permissions do not stop writes, so these run for real
on a small tmpfs mounted for the test when the machine allows it (``mount -t tmpfs``), and always
also with the probe's write made to fail with ENOSPC / EACCES (``os.write`` patched for the probe file
only).
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from snnlab.cli import main
from snnlab.errors import FolderBusyError, NonFiniteLossError, OutputDirError, ResumeMismatch, RunExistsError
from snnlab.files import folder_lock
from snnlab.training import TrainConfig, train
from snnlab.training import rundir
from snnlab.training.checkpoint import load_checkpoint

ARGS = ["train", "--model", "spiking_mlp", "--dataset", "digits", "--method", "bptt", "--T", "2",
        "--epochs", "2", "--batch-size", "32", "--max-batches", "2", "--no-progress",
        "--model-option", "hidden=(16,)"]


def _train_cli(capsys, out_dir, *extra):
    code = main([*ARGS, "--out-dir", str(out_dir), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def nothing_built(monkeypatch):
    """Fail the test if training got as far as loading data or building a model."""
    import snnlab.data
    import snnlab.models

    def forbidden(*args, **kwargs):
        raise AssertionError("training started: data or model was built before the out-dir check")

    monkeypatch.setattr(snnlab.models, "build_model", forbidden)
    monkeypatch.setattr(snnlab.data, "load_dataset", forbidden)


def _one_line_error(err, *needles):
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert lines[0].startswith("snnlab train: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ---- item 1: the output folder is checked before any work -------------------------------------


def test_out_dir_that_is_a_file_fails_before_any_work(tmp_path, capsys, nothing_built):
    target = tmp_path / "runs.txt"
    target.write_text("not a folder")
    code, _, err = _train_cli(capsys, target)
    assert code == 2
    _one_line_error(err, str(target), "is a file")
    code, _, err = _train_cli(capsys, target / "run1")
    assert code == 2
    _one_line_error(err, "lies under", str(target), "which is a file")
    assert target.read_text() == "not a folder"


def _fail_probe_writes(monkeypatch, code):
    real_write = os.write

    def write(fd, data):
        if ".snnlab-write-probe-" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(code, os.strerror(code))
        return real_write(fd, data)

    monkeypatch.setattr(rundir.os, "write", write)


def test_full_disk_fails_before_any_work_simulated(tmp_path, capsys, nothing_built, monkeypatch):
    _fail_probe_writes(monkeypatch, errno.ENOSPC)
    code, _, err = _train_cli(capsys, tmp_path / "run")
    assert code == 2
    _one_line_error(err, str(tmp_path / "run"), "no space left", "another disk")
    assert list((tmp_path / "run").iterdir()) == []  # the probe file was removed


def test_unwritable_folder_fails_before_any_work_simulated(tmp_path, capsys, nothing_built, monkeypatch):
    _fail_probe_writes(monkeypatch, errno.EACCES)
    code, _, err = _train_cli(capsys, tmp_path / "run")
    assert code == 2
    _one_line_error(err, "is not writable", "permission denied")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions; the tmpfs and simulated tests cover it")
def test_unwritable_folder_fails_before_any_work(tmp_path, capsys, nothing_built):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = _train_cli(capsys, locked / "run")
        assert code == 2
        _one_line_error(err, "not writable")
    finally:
        locked.chmod(0o700)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 256 KiB tmpfs (real ENOSPC and EROFS), when this machine lets the test mount one."""
    mounts = []

    def mount(options):
        point = tmp_path / f"mnt{len(mounts)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the simulated tests cover it")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", str(point)], capture_output=True)


def test_full_and_read_only_disks_fail_before_any_work(tiny_tmpfs, capsys, nothing_built):
    full = tiny_tmpfs("size=256k")
    fd = os.open(full / "filler", os.O_WRONLY | os.O_CREAT)  # fill the disk
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)
    code, _, err = _train_cli(capsys, full / "run")
    assert code == 2
    _one_line_error(err, "no space left")
    read_only = tiny_tmpfs("size=256k,ro")
    code, _, err = _train_cli(capsys, read_only / "run")
    assert code == 2
    _one_line_error(err, "not writable", "read-only")


def test_too_little_space_for_a_checkpoint_fails_before_the_first_batch(tmp_path, monkeypatch):
    free = shutil.disk_usage(tmp_path)._replace(free=200_000)  # 0.2 MB: more than the probe, less than a checkpoint
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda path: free)
    batches = []
    with pytest.raises(OutputDirError, match=r"takes about .* MiB, but only 0\.2 MiB are free"):
        train(model="spiking_cnn", dataset="digits", T=2, epochs=1, max_batches=2, progress=False,
              out_dir=str(tmp_path / "run"), model_options={"channels": (32, 64)},
              callbacks=[batches.append])
    assert batches == []


# ---- item 2: a run is never overwritten silently ----------------------------------------------


def test_a_folder_holding_a_run_is_refused_and_overwrite_moves_it_aside(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train_cli(capsys, out, "--stop-after", "1")[0] == 0
    before = {name: (out / name).read_bytes() for name in rundir.RUN_FILES}
    code, _, err = _train_cli(capsys, out)
    assert code == 2
    _one_line_error(err, "already holds a run", "--resume", "--overwrite", "deleting nothing")
    assert {name: (out / name).read_bytes() for name in rundir.RUN_FILES} == before  # untouched
    code, stdout, err = _train_cli(capsys, out, "--overwrite", "--seed", "1")
    assert code == 0 and "moved the previous run" in err and json.loads(stdout)["epoch"] == 2
    (moved,) = list((out / "previous").iterdir())
    assert {name: (moved / name).read_bytes() for name in rundir.RUN_FILES} == before  # nothing lost
    assert load_checkpoint(out / "checkpoint.pt")["config"]["seed"] == 1  # the new run


def test_resume_without_a_checkpoint_is_an_error_unless_resume_if_exists(tmp_path, capsys):
    code, _, err = _train_cli(capsys, tmp_path / "tpyo", "--resume")
    assert code == 2
    _one_line_error(err, "no checkpoint.pt", "nothing to resume", "--resume-if-exists")
    assert not (tmp_path / "tpyo" / "checkpoint.pt").exists()
    code, stdout, err = _train_cli(capsys, tmp_path / "job", "--resume-if-exists", "--stop-after", "1")
    assert code == 0 and "starting from scratch" in err and json.loads(stdout)["epoch"] == 1
    code, stdout, _ = _train_cli(capsys, tmp_path / "job", "--resume-if-exists")
    assert code == 0 and json.loads(stdout)["epoch"] == 2  # continued
    assert _train_cli(capsys, tmp_path / "job", "--resume", "--overwrite")[0] == 2


@pytest.mark.parametrize("change, needle", [
    (["--amp"], "amp: checkpoint False vs now True"),
    (["--no-eval"], "evaluate: checkpoint True vs now False"),
    (["--lr", "0.5", "--seed", "7"], "lr: checkpoint 0.1 vs now 0.5; seed: checkpoint 0 vs now 7"),
    (["--batch-size", "16"], "batch_size: checkpoint 32 vs now 16"),
    (["--model-option", "hidden=(8,)"], "model_options"),
])
def test_resume_refuses_settings_that_change_the_numbers(tmp_path, capsys, change, needle):
    out = tmp_path / "run"
    assert _train_cli(capsys, out, "--stop-after", "1")[0] == 0
    before = (out / "checkpoint.pt").read_bytes()
    code, _, err = _train_cli(capsys, out, "--resume", *change)
    assert code == 2
    _one_line_error(err, "cannot resume", needle)
    assert (out / "checkpoint.pt").read_bytes() == before
    # settings that do not change the numbers may change: more epochs, checkpoints, no progress bar
    assert _train_cli(capsys, out, "--resume", "--checkpoint-every", "1", "--epochs", "3")[0] == 0


def test_one_run_per_folder_at_a_time(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with folder_lock(out / rundir.LOCK_NAME, wait=False):  # another snnlab train holds the folder
        with pytest.raises(FolderBusyError, match=r"in use by snnlab process \d+"):
            train(model="spiking_mlp", epochs=1, max_batches=1, progress=False, out_dir=str(out))
    train(model="spiking_mlp", epochs=1, max_batches=1, progress=False, out_dir=str(out),
          model_options={"hidden": (8,)})  # free again


# ---- item 4: numbers that go bad stop the run, JSON stays valid ---------------------------------


class _Poisoned(nn.Module):
    """A small network whose output turns NaN at the 4th training forward pass (epoch 1, batch 4)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls == 4:
                out = out * float("nan")
        return out


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 4, 4, generator=g)
    return TensorDataset(x, (x.mean((1, 2, 3)) > 0.5).long())


def test_a_nan_loss_stops_the_run_naming_epoch_batch_and_last_good_checkpoint(tmp_path):
    from snnlab.models import build_model

    model = _Poisoned(build_model("spiking_mlp", num_classes=2, input_shape=(1, 4, 4), T=2, hidden=(8,)))
    with pytest.raises(NonFiniteLossError) as info:
        train(model=model, train_set=_data(), test_set=None, evaluate=False, T=2, epochs=2, batch_size=8,
              progress=False, out_dir=str(tmp_path), checkpoint_every=2)
    message = str(info.value)
    assert "became nan at epoch 1, batch 4 of 8" in message
    assert f"the last good checkpoint is {tmp_path / 'checkpoint.pt'} (epoch 1, batch 2)" in message
    assert "lower --lr" in message
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert (state["epoch"], state["batch"]) == (0, 2)  # the bad state was not saved
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_diverging_cli_run_exits_1_with_one_line(tmp_path, capsys):
    code, _, err = _train_cli(capsys, tmp_path / "run", "--lr", "1e30", "--momentum", "0.9", "--epochs", "1",
                              "--max-batches", "8")
    assert code == 1
    _one_line_error(err, "the training loss became", "epoch 1, batch", "lower --lr (now 1e+30)")


class _InfiniteAtEval(nn.Module):
    """Trains normally; in evaluation its logit for class 1 is -inf, so the test loss is infinite."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out = self.inner(x)
        if not self.training:
            out = out.clone()
            out[..., 1] = -math.inf
        return out


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"not valid JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_metrics_json_is_always_valid_json(tmp_path):
    from snnlab.models import build_model

    model = _InfiniteAtEval(build_model("spiking_mlp", num_classes=2, input_shape=(1, 4, 4), T=2, hidden=(8,)))
    result = train(model=model, train_set=_data(), test_set=_data(16, seed=1), loss="sdt", T=2, epochs=1,
                   batch_size=8, progress=False, out_dir=str(tmp_path))
    rows = _strict_json((tmp_path / "metrics.json").read_text())
    assert rows[0]["test_loss"] is None and rows[0]["non_finite"] == {"test_loss": "inf"}
    assert rows == result.history
    assert "inf" in (tmp_path / "metrics.csv").read_text().splitlines()[1]


@pytest.mark.parametrize("argv, needle", [
    (["--momentum", "5", "--lr", "1"], "momentum must lie in [0.0, 1.0), got 5.0"),
    (["--momentum", "1"], "momentum must lie in [0.0, 1.0), got 1.0"),
    (["--momentum", "-0.1"], "momentum must lie in [0.0, 1.0)"),
    (["--seed", "-1"], "seed must lie in [0, 2**63 - 1]"),
    (["--seed", str(2**63)], "seed must lie in [0, 2**63 - 1]"),
    (["--device", "mps"], "device 'mps' is not supported"),
    (["--device", "cuda:3"], "device 'cuda:3' requested but CUDA is not available"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--dataset", "nmnist-emulated", "--data-option", "time_window_ms=0"], "time_window_ms must be a finite number > 0"),
    (["--dataset", "nmnist-emulated", "--data-option", "time_window_ms=-5"], "time_window_ms must be a finite number > 0"),
    (["--data-option", "augment=no"], "--data-option 'augment=no': write a boolean as augment=True or augment=False"),
    (["--model-option", "bn=off"], "--model-option 'bn=off': write a boolean as bn=True"),
    (["--lr", "nan"], "lr must be a number, got NaN"),
    (["--checkpoint-every", "0"], "checkpoint_every must be None or an int >= 1"),
])
def test_ranges_are_checked_at_the_boundary(tmp_path, capsys, nothing_built, argv, needle):
    code, _, err = _train_cli(capsys, tmp_path / "run", *argv)
    assert code == 2
    _one_line_error(err, needle)
    assert not (tmp_path / "run").exists()  # refused before the folder was even created


@pytest.mark.parametrize("argv, needle", [
    (["--limit", "-5"], "limit (the first N digits) must be >= 1, got -5"),
    (["--limit", "0"], "must be >= 1, got 0"),
    (["--seed", "-3"], "seed must lie in [0, 2**63 - 1]"),
])
def test_data_prepare_checks_its_ranges(tmp_path, capsys, argv, needle):
    code = main(["data", "prepare", "nmnist-emulated", "--root", str(tmp_path), "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("*.npz"))


# ---- item 9: files users share ------------------------------------------------------------------


def _mode(path):
    return oct(path.stat().st_mode & 0o777)


@pytest.mark.parametrize("mask, expected", [(0o022, "0o644"), (0o077, "0o600")])
def test_run_files_follow_the_umask(tmp_path, capsys, mask, expected):
    old = os.umask(mask)
    try:
        assert _train_cli(capsys, tmp_path / "run", "--epochs", "1")[0] == 0
        for name in rundir.RUN_FILES:
            assert _mode(tmp_path / "run" / name) == expected, name
        from snnlab.data.emulated import EmulatedConfig, prepare_emulated_digits

        cache = prepare_emulated_digits(EmulatedConfig(limit=2), str(tmp_path / "data"), progress=False)
        assert _mode(cache) == expected
    finally:
        os.umask(old)


def test_orphaned_temporaries_are_removed_at_the_next_start(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train_cli(capsys, out, "--stop-after", "1")[0] == 0
    orphans = [out / ".checkpoint.pt.k9x2_a1.tmp", out / ".metrics.json.3jd8s.tmp", out / ".metrics.csv.a.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a file")
    keep = out / "notes.txt"  # not ours: left alone
    keep.write_text("mine")
    assert _train_cli(capsys, out, "--resume")[0] == 0
    assert not any(p.exists() for p in orphans) and keep.read_text() == "mine"


def test_metrics_are_never_ahead_of_the_checkpoint(tmp_path, monkeypatch):
    """A kill between the two writes at the end of an epoch: the checkpoint write is the one that
    fails here; the metrics files must still describe the checkpoint's epochs, not one more."""
    import snnlab.training.loop as loop

    real_save = loop.save_checkpoint
    saves = []

    def dying_save(path, payload):
        saves.append(payload["epoch"])
        if payload["epoch"] == 2:
            raise KeyboardInterrupt  # the process dies while saving epoch 2
        real_save(path, payload)

    monkeypatch.setattr(loop, "save_checkpoint", dying_save)
    with pytest.raises(KeyboardInterrupt):
        train(model="spiking_mlp", T=2, epochs=3, batch_size=32, max_batches=2, progress=False,
              out_dir=str(tmp_path), model_options={"hidden": (8,)})
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    assert [r["epoch"] for r in rows] == [1]
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2


def test_two_data_prepares_at_once_do_the_work_once(tmp_path, monkeypatch):
    import threading
    import time

    from snnlab.data import emulated

    real = emulated.generate_emulated_digits
    calls = []

    def slow_generate(config, **kw):
        calls.append(threading.get_ident())
        time.sleep(0.5)  # long enough for the other caller to arrive while this one works
        return real(config, **kw)

    monkeypatch.setattr(emulated, "generate_emulated_digits", slow_generate)
    config = emulated.EmulatedConfig(limit=3)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        emulated.ensure_emulated_cache(config, str(tmp_path), progress=False))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1  # one generation, the other caller waited and found the file
    assert sorted(generated for _, generated in results) == [False, True]
    assert (tmp_path / "emulated" / emulated.PREPARE_LOCK).exists()


# ---- item 10: mid-epoch checkpoints, thread count -----------------------------------------------


def _cfg(out_dir, **kw):
    base = dict(model="spiking_mlp", T=2, epochs=2, batch_size=16, lr=0.05, seed=4, out_dir=str(out_dir),
                progress=False, model_options={"hidden": (12,), "num_classes": 2})
    base.update(kw)
    return TrainConfig(**base)


class _Killed(Exception):
    pass


def test_checkpoint_every_saves_mid_epoch_and_resume_is_exact(tmp_path):
    data, test = _data(128), _data(16, 1)  # 8 batches of 16 per epoch
    full = train(_cfg(tmp_path / "full"), train_set=data, test_set=test)

    def die(event):  # the process dies after batch 7 of epoch 1 (0-based 6), not a clean stop
        if (event["epoch"], event["batch"]) == (0, 6):
            raise _Killed

    with pytest.raises(_Killed):
        train(_cfg(tmp_path / "cut", checkpoint_every=3), train_set=data, test_set=test, callbacks=[die])
    state = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert (state["epoch"], state["batch"]) == (0, 6)  # at most checkpoint_every batches lost
    assert state["threads"] == torch.get_num_threads()
    resumed = train(_cfg(tmp_path / "cut", resume=True), train_set=data, test_set=test)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]


def test_resume_warns_when_the_thread_count_differs(tmp_path):
    train(_cfg(tmp_path, stop_after=1), train_set=_data(), test_set=None, evaluate=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        with pytest.warns(UserWarning, match=rf"written with {threads} torch thread.*uses {threads + 1}"):
            train(_cfg(tmp_path, resume=True), train_set=_data(), test_set=None, evaluate=False)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_kill_9_loop_quick_form(tmp_path):
    """scripts/kill_loop.py, small: SIGKILL the CLI at random moments, resume each time, compare
    with an uninterrupted run (bit for bit) and look for debris."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "kill_loop.py"
    done = subprocess.run([sys.executable, str(script), "--kills", "3", "--seed", "1", "--work", str(tmp_path),
                           "--epochs", "2", "--max-batches", "12"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["kills"] == 3 and report["weights_equal"] and report["history_equal"] and not report["debris"]


def test_resume_refuses_a_custom_model_that_does_not_fit(tmp_path):
    from snnlab.models import build_model

    def net(hidden):
        return build_model("spiking_mlp", num_classes=2, input_shape=(1, 4, 4), T=2, hidden=hidden)

    train(model=net((8,)), train_set=_data(), test_set=None, evaluate=False, T=2, epochs=2, batch_size=16,
          stop_after=1, progress=False, out_dir=str(tmp_path))
    with pytest.raises(ResumeMismatch, match="its weights do not fit this model"):
        train(model=net((9,)), train_set=_data(), test_set=None, evaluate=False, T=2, epochs=2, batch_size=16,
              resume=True, progress=False, out_dir=str(tmp_path))
    with pytest.raises(RunExistsError):
        train(model=net((8,)), train_set=_data(), test_set=None, evaluate=False, T=2, epochs=2, batch_size=16,
              progress=False, out_dir=str(tmp_path))


# ---- item 3: a damaged checkpoint names itself ---------------------------------------------------


@pytest.mark.parametrize("damage, needle", [
    (lambda p: p.write_bytes(b"\x80\x02garbage that is not a torch file"), "torch.load cannot read"),
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "torch.load cannot read"),
    (lambda p: p.write_bytes(b""), "an empty file"),
    (lambda p: torch.save({"state_dict": {"w": torch.zeros(2)}}, p), "not an snnlab checkpoint"),
    (lambda p: torch.save([1, 2, 3], p), "a torch file holding a list"),
    (lambda p: (p.unlink(), p.mkdir()), "it is a directory"),
])
def test_a_damaged_or_foreign_checkpoint_gets_one_line(tmp_path, capsys, damage, needle):
    out = tmp_path / "run"
    assert _train_cli(capsys, out, "--stop-after", "1")[0] == 0
    damage(out / "checkpoint.pt")
    code, _, err = _train_cli(capsys, out, "--resume")
    assert code == 2
    _one_line_error(err, str(out / "checkpoint.pt"), needle, "expected a training checkpoint written by snnlab train",
                    "--overwrite")
    # the way on that the message names works, and keeps the damaged file
    code, _, _ = _train_cli(capsys, out, "--overwrite")
    assert code == 0 and len(list((out / "previous").iterdir())) == 1
