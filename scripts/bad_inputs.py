#!/usr/bin/env python
"""Run a list of bad inputs (command lines and API calls) and print what each one gets, as a table.

Every case really runs: command lines through ``snnlab.cli.main`` in this process (stderr and the
exit code captured), API calls directly (the exception, or what came back when nothing was raised).
The damaged files are written here in the real formats (pickled CIFAR batches, .npy recordings,
AEDAT 4.0 files, torch checkpoints). Cases that need a tiny file system (a full disk, a read-only
one) mount a tmpfs when the machine allows it and are left out otherwise.

    .venv/bin/python scripts/bad_inputs.py                # markdown table on stdout
    .venv/bin/python scripts/bad_inputs.py --json out.json
    .venv/bin/python scripts/bad_inputs.py --before old.json   # a column with what an older run got

It only uses what snnlab offered before the reliability work too, so running it against an older
checkout (``PYTHONPATH=/path/to/old/checkout``) shows what the same inputs got then.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

TRAIN = ["train", "--model", "spiking_mlp", "--dataset", "digits", "--method", "bptt", "--T", "2",
         "--epochs", "1", "--batch-size", "32", "--max-batches", "2", "--no-progress",
         "--model-option", "hidden=(8,)"]


INIT_TRAIN = [a for a in TRAIN if a not in ("--model", "spiking_mlp", "--model-option", "hidden=(8,)")]
"""TRAIN without the model: --init-from builds the network from the graph."""
CONVERT = ["convert", "--kind", "rate", "--ann-epochs", "1", "--max-train", "64", "--max-test", "32",
           "--stats-images", "32", "--T", "2", "--no-progress", "--model-option", "width=4",
           "--model-option", "hidden=16"]


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_cli(argv: list[str]) -> tuple[str, str]:
    """(outcome, message) of ``snnlab <argv>`` run in this process."""
    from snnlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as stop:  # argparse
        code = stop.code
    except BaseException as error:  # noqa: BLE001 - an uncaught error is a traceback for the user
        tb = traceback.format_exception(error)
        return "traceback", _one_line(f"{len(''.join(tb).splitlines())}-line traceback ending in "
                                      f"{type(error).__name__}: {error}")
    if code == 0:
        text = err.getvalue().strip()
        return "exit 0", _one_line("no error" + (f" (stderr: {text})" if text else ""))
    text = err.getvalue().strip()
    lines = text.splitlines()
    if not text:  # `data verify` reports its problems on stdout: show the first
        lines = out.getvalue().strip().splitlines()
        return f"exit {code}", _one_line(" ".join(lines[:2])) + (f" [{len(lines)} lines]" if len(lines) > 2 else "")
    if "Traceback" in text:
        return f"exit {code}", _one_line(f"{len(lines)}-line traceback ending in {lines[-1]}")
    return f"exit {code}", _one_line(lines[-1] if lines else "(no message)") + (
        f" [{len(lines)} lines]" if len(lines) > 1 else "")


def run_api(func) -> tuple[str, str]:
    try:
        value = func()
    except BaseException as error:  # noqa: BLE001
        return type(error).__name__, _one_line(str(error))
    return "no error", _one_line(f"returned {describe(value)}")


def describe(value) -> str:
    import torch

    if isinstance(value, tuple):
        return "(" + ", ".join(describe(v) for v in value) + ")"
    if isinstance(value, torch.Tensor):
        flat = value.detach().flatten()
        return f"tensor {tuple(value.shape)} {flat[:3].tolist()}"
    if hasattr(value, "spikes"):
        return f"trace with v = {value.v.flatten()[:3].tolist()}"
    return type(value).__name__


# ----------------------------------------------------------------------------- damaged files


def write_run(folder: Path) -> None:
    run_cli([*TRAIN, "--out-dir", str(folder)])


def cifar_root(root: Path, damage) -> Path:
    import numpy as np

    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        with open(folder / name, "wb") as fh:
            pickle.dump({"labels": [0, 1], "data": np.zeros((2, 3072), np.uint8)}, fh, protocol=2)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, fh, protocol=2)
    damage(folder)
    return root


def dvsgesture_root(root: Path) -> Path:
    import numpy as np

    for split, user in (("ibmGestureTrain", "user01_led"), ("ibmGestureTest", "user24_led")):
        folder = root / "DVSGesture" / split / user
        folder.mkdir(parents=True)
        events = np.zeros((500, 4), np.int64)
        events[:, 3] = np.arange(500)
        np.save(folder / "0.npy", events)
    bad = root / "DVSGesture" / "ibmGestureTrain" / "user01_led" / "0.npy"
    bad.write_bytes(bad.read_bytes()[:300])
    return root


AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"


def aedat4(packets=((0, b"\0" * 40),)) -> bytes:
    header = struct.pack("<I", 8) + struct.pack("<HH", 4, 4) + struct.pack("<i", 4)
    body = b"".join(struct.pack("<II", s, len(p)) + p for s, p in packets)
    return AEDAT4_MAGIC + struct.pack("<I", len(header)) + header + body


def cifar10dvs_root(root: Path) -> Path:
    for c in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"):
        folder = root / "CIFAR10DVS" / c
        folder.mkdir(parents=True)
        for i in range(10):
            (folder / f"{c}_{i}.aedat4").write_bytes(aedat4()[:-7])  # every recording cut short
    return root


def mount_tmpfs(point: Path, options: str) -> bool:
    point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
    return done.returncode == 0


# ----------------------------------------------------------------------------- the cases


def cases(work: Path):
    import numpy as np
    import torch

    nan = float("nan")
    out = []

    def cli(label, argv, setup=None):
        out.append(("CLI", label, lambda: (setup() if setup else None, run_cli(argv))[1]))

    def api(label, func):
        out.append(("API", label, lambda: run_api(func)))

    # -- output folder (item 1)
    a_file = work / "a_file.txt"
    a_file.write_text("notes")
    cli("snnlab train --out-dir <an existing file>", [*TRAIN, "--out-dir", str(a_file)])
    cli("snnlab train --out-dir <a file>/run", [*TRAIN, "--out-dir", str(a_file / "run")])
    cli("snnlab train --out-dir /sys/run (not writable)", [*TRAIN, "--out-dir", "/sys/snnlab-run"])
    full, ro = work / "full", work / "ro"
    if mount_tmpfs(full, "size=128k"):
        with open(full / "filler", "wb", buffering=0) as fh:
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * 4096)
        cli("snnlab train --out-dir <folder on a full disk>", [*TRAIN, "--out-dir", str(full / "run")])
    if mount_tmpfs(ro, "size=128k,ro"):
        cli("snnlab train --out-dir <folder on a read-only file system>", [*TRAIN, "--out-dir", str(ro / "run")])
    # -- runs (item 2)
    run = work / "run"
    cli("snnlab train --out-dir <folder holding a finished run> (no flag)", [*TRAIN, "--out-dir", str(run)],
        setup=lambda: write_run(run))
    cli("snnlab train --resume --out-dir <empty folder> (a typo)", [*TRAIN, "--resume", "--out-dir", str(work / "rnu")])
    cli("snnlab train --resume --overwrite", [*TRAIN, "--resume", "--overwrite", "--out-dir", str(run)])
    cli("snnlab train --resume --amp (the run had no --amp)", [*TRAIN, "--resume", "--amp", "--out-dir", str(run)])
    cli("snnlab train --resume --no-eval", [*TRAIN, "--resume", "--no-eval", "--out-dir", str(run)])
    cli("snnlab train --resume --lr 0.5 --seed 9", [*TRAIN, "--resume", "--lr", "0.5", "--seed", "9", "--out-dir", str(run)])

    # -- damaged checkpoints (item 3)
    def damaged_run(name, damage):
        folder = work / name

        def setup():
            write_run(folder)
            damage(folder / "checkpoint.pt")

        cli(f"snnlab train --resume, checkpoint.pt {name.replace('_', ' ')}", [*TRAIN, "--resume", "--out-dir", str(folder)],
            setup=setup)

    damaged_run("garbage", lambda p: p.write_bytes(b"garbage bytes, not a torch file"))
    damaged_run("truncated", lambda p: p.write_bytes(p.read_bytes()[:2000]))
    damaged_run("foreign", lambda p: torch.save({"state_dict": {"w": torch.zeros(2)}}, p))
    damaged_run("is_a_directory", lambda p: (p.unlink(), p.mkdir()))
    # -- numbers (item 4)
    cli("snnlab train --momentum 5 --lr 1", [*TRAIN, "--momentum", "5", "--lr", "1"])
    cli("snnlab train --momentum -0.5", [*TRAIN, "--momentum", "-0.5"])
    cli("snnlab train --lr 1e30 (diverges)", [*TRAIN, "--lr", "1e30", "--max-batches", "8", "--out-dir", str(work / "diverge")])
    cli("snnlab train --lr nan", [*TRAIN, "--lr", "nan"])
    cli("snnlab train --seed -1", [*TRAIN, "--seed", "-1"])
    cli("snnlab train --seed 2**64", [*TRAIN, "--seed", str(2**64)])
    cli("snnlab train --device mps", [*TRAIN, "--device", "mps"])
    cli("snnlab train --device cuda:3", [*TRAIN, "--device", "cuda:3"])
    cli("snnlab train --device gpu", [*TRAIN, "--device", "gpu"])
    cli("snnlab train --T 0", [*TRAIN, "--T", "0"])
    cli("snnlab train --batch-size -3", [*TRAIN, "--batch-size", "-3"])
    cli("snnlab train --checkpoint-every 0", [*TRAIN, "--checkpoint-every", "0"])
    cli("snnlab train --data-option augment=no", [*TRAIN, "--data-option", "augment=no"])
    cli("snnlab train --dataset nmnist-emulated --data-option time_window_ms=-5",
        [*TRAIN, "--dataset", "nmnist-emulated", "--data-option", "time_window_ms=-5", "--data-root", str(work / "data")])
    cli("snnlab train --dataset nmnist-emulated --data-option limit=0",
        [*TRAIN, "--dataset", "nmnist-emulated", "--data-option", "limit=0", "--data-root", str(work / "data")])
    # -- data files (item 3)
    cli("snnlab train --dataset cifar10 (no files)", [*TRAIN, "--dataset", "cifar10", "--data-root", str(work / "none")])
    garbage_cifar = work / "cifar_garbage"
    cli("snnlab train --dataset cifar10, data_batch_2 garbage", [*TRAIN, "--dataset", "cifar10", "--data-root", str(garbage_cifar)],
        setup=lambda: cifar_root(garbage_cifar, lambda f: (f / "data_batch_2").write_bytes(b"garbage")))
    short_cifar = work / "cifar_short"
    cli("snnlab train --dataset cifar10, data_batch_4 truncated", [*TRAIN, "--dataset", "cifar10", "--data-root", str(short_cifar)],
        setup=lambda: cifar_root(short_cifar, lambda f: (f / "data_batch_4").write_bytes((f / "data_batch_4").read_bytes()[:500])))
    dvs = work / "dvs"
    cli("snnlab train --dataset dvsgesture, a truncated .npy", [*TRAIN, "--dataset", "dvsgesture", "--data-root", str(dvs)],
        setup=lambda: dvsgesture_root(dvs))
    c10dvs = work / "c10dvs"
    cli("snnlab train --dataset cifar10dvs, truncated .aedat4 files",
        [*TRAIN, "--dataset", "cifar10dvs", "--data-root", str(c10dvs)], setup=lambda: cifar10dvs_root(c10dvs))
    cli("snnlab data verify cifar10dvs (truncated .aedat4 files)", ["data", "verify", "cifar10dvs", "--root", str(c10dvs)])
    emu = work / "emu"

    def truncated_cache():
        from snnlab.data.emulated import EmulatedConfig, prepare_emulated_digits

        path = prepare_emulated_digits(EmulatedConfig(limit=3), str(emu), progress=False)
        path.write_bytes(path.read_bytes()[:1000])
        return path

    def load_truncated():
        from snnlab.data.emulated import EmulatedRecordings

        return EmulatedRecordings.load(truncated_cache())

    api("EmulatedRecordings.load(<truncated cache .npz>)", load_truncated)
    cli("snnlab data prepare --limit -5", ["data", "prepare", "nmnist-emulated", "--limit", "-5", "--quiet",
                                           "--root", str(work / "data")])
    cli("snnlab data prepare --seed -1", ["data", "prepare", "nmnist-emulated", "--limit", "2", "--seed", "-1",
                                          "--quiet", "--root", str(work / "data")])
    cli("snnlab data prepare cifar10", ["data", "prepare", "cifar10"])
    cli("snnlab data verify mnist", ["data", "verify", "mnist"])
    # -- simulate (item 3, 8)
    garbage_pt = work / "garbage.pt"
    garbage_pt.write_bytes(b"this is not a network")
    foreign_pt = work / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign_pt)
    cli("snnlab simulate --model garbage.pt", ["simulate", "--model", str(garbage_pt), "--samples", "2"])
    cli("snnlab simulate --model foreign.pt (a torch dict)", ["simulate", "--model", str(foreign_pt), "--samples", "2"])
    cli("snnlab simulate --model missing.pt", ["simulate", "--model", str(work / "missing.pt")])
    cli("snnlab simulate --clock-mhz nan", ["simulate", "--model", str(garbage_pt), "--clock-mhz", "nan"])
    cli("snnlab simulate --seed -1", ["simulate", "--model", str(garbage_pt), "--seed", "-1"])
    # -- API: neurons (item 5), conversion (item 6), options (item 7), simulator (item 8)
    from snnlab.neurons import LIFNode, simulate
    from snnlab.surrogate import ArcTan, Sigmoid

    x = torch.ones(3, 2)
    x[1, 0] = nan
    api("snnlab.neurons.simulate(x with a NaN)", lambda: simulate(x))
    api('LIFNode(v_reset=nan, backend="torch")(x)',
        lambda: LIFNode(v_reset=nan, backend="torch", step_mode="m")(torch.ones(3, 2)))
    api('LIFNode(v_reset=nan, backend="numba")(x)',
        lambda: LIFNode(v_reset=nan, backend="numba", step_mode="m")(torch.ones(3, 2)))
    api("LIFNode(v_threshold=torch.tensor(1., requires_grad=True))",
        lambda: LIFNode(v_threshold=torch.tensor(1.0, requires_grad=True), backend="torch", step_mode="m")(torch.ones(3, 2)))
    api("ArcTan(alpha=1e6)", lambda: ArcTan(1e6))
    api("Sigmoid(alpha=nan)", lambda: Sigmoid(nan))
    from snnlab.conversion.ttfs import spike_times

    v = torch.rand(4)
    api("spike_times(v, 4, (alpha=0, beta=0, k=1))", lambda: spike_times(v, 4, (0.0, 0.0, 1.0)))
    api("spike_times(v, 4, (1, 0, k=-1))", lambda: spike_times(v, 4, (1.0, 0.0, -1.0)))
    api('spike_times(v, 4, (nan, 0, 1), backend="torch")', lambda: spike_times(v, 4, (nan, 0.0, 1.0), backend="torch"))

    def nan_beta():
        from snnlab.conversion.ttfs import SCTTFSNeuron

        layer = SCTTFSNeuron(4, (1.0, 0.0, 0.5), (0.5, 0.0, 0.5))
        with torch.no_grad():
            layer.beta_e.fill_(nan)
        return layer(torch.rand(2, 3))

    api("SCTTFSNeuron forward after beta_e turned NaN in fine-tuning", nan_beta)
    from snnlab.data import load_dataset

    api('load_dataset("digits", train=False, augment="no")', lambda: load_dataset("digits", train=False, augment="no").augment)
    from snnlab.hardware.config import AcceleratorConfig

    api("AcceleratorConfig(clock_hz=inf)", lambda: AcceleratorConfig(clock_hz=math.inf))
    api('AcceleratorConfig(clock_hz="500e6")', lambda: AcceleratorConfig(clock_hz="500e6"))
    from snnlab.training import train

    api("train(momentum=5, lr=1)", lambda: train(momentum=5.0, lr=1.0, model="spiking_mlp", epochs=1, T=2,
                                                   max_batches=2, progress=False).history[-1]["train_loss"])
    from snnlab.training.checkpoint import load_checkpoint

    api("load_checkpoint(<garbage file>)", lambda: load_checkpoint(garbage_pt))
    api("load_checkpoint(<a directory>)", lambda: load_checkpoint(work))

    # -- snnlab convert: the same output-folder, resume and option rules as train
    conv = work / "conv"
    cli("snnlab convert --out-dir <an existing file>", [*CONVERT, "--out-dir", str(a_file)])
    cli("snnlab convert --out-dir <folder holding a conversion run> (no flag)", [*CONVERT, "--out-dir", str(conv)],
        setup=lambda: run_cli([*CONVERT, "--out-dir", str(conv)]))
    cli("snnlab convert --resume --out-dir <empty folder> (a typo)", [*CONVERT, "--resume", "--out-dir", str(work / "cnov")])
    cli("snnlab convert --resume --ann-lr 0.5 (the run had 1e-2)", [*CONVERT, "--resume", "--ann-lr", "0.5", "--out-dir", str(conv)])
    cli("snnlab convert --resume --overwrite", [*CONVERT, "--resume", "--overwrite", "--out-dir", str(conv)])
    cli("snnlab convert --resume, snn-rate.pt garbage", [*CONVERT, "--resume", "--out-dir", str(conv)],
        setup=lambda: (conv / "snn-rate.pt").write_bytes(b"garbage"))
    cli("snnlab convert --seed -1", [*CONVERT, "--seed", "-1"])
    cli("snnlab convert --device mps", [*CONVERT, "--device", "mps"])
    cli("snnlab convert --kind snn", [*CONVERT, "--kind", "snn"])
    cli("snnlab convert --percentile 0", [*CONVERT, "--percentile", "0"])
    cli("snnlab convert --ann-weight-decay -1", [*CONVERT, "--ann-weight-decay", "-1"])
    cli("snnlab convert --dataset nmnist-emulated (events)", [*CONVERT, "--dataset", "nmnist-emulated"])
    cli("snnlab convert --ann garbage.pt", [*CONVERT, "--ann", str(garbage_pt)])
    cli("snnlab convert --ann <a train run's folder>", [*CONVERT, "--ann", str(run)])
    cli("snnlab convert --data-option augment=train", [*CONVERT, "--data-option", "augment=train"])
    # -- snnlab evaluate
    cli("snnlab evaluate garbage.pt", ["evaluate", str(garbage_pt)])
    cli("snnlab evaluate <a folder without checkpoint.pt>", ["evaluate", str(work / "rnu")])
    cli("snnlab evaluate <convert's ann.pt>", ["evaluate", str(work / "cnov-ann.pt")],
        setup=lambda: shutil.copy(work / "conv" / "ann.pt", work / "cnov-ann.pt"))
    cli("snnlab evaluate RUN --exit atsn --cl-init 1.5", ["evaluate", str(run), "--exit", "atsn", "--cl-init", "1.5"])
    cli("snnlab evaluate RUN --exit dtsnn (no --theta)", ["evaluate", str(run), "--exit", "dtsnn"])
    cli("snnlab evaluate RUN --theta 0.1 (fixed T)", ["evaluate", str(run), "--theta", "0.1"])
    cli("snnlab evaluate RUN --samples 0", ["evaluate", str(run), "--samples", "0"])
    cli("snnlab evaluate RUN --dataset mnist", ["evaluate", str(run), "--dataset", "mnist"])
    cli("snnlab evaluate RUN --readout max", ["evaluate", str(run), "--readout", "max"])
    # -- snnlab export and train --init-from
    cli("snnlab export --checkpoint garbage.pt", ["export", "--checkpoint", str(garbage_pt), "--dt", "1e-3",
                                                  "-o", str(work / "g.nir")])
    cli("snnlab export --dt 0", ["export", "--checkpoint", str(run), "--dt", "0", "-o", str(work / "g.nir")])
    cli("snnlab export -o net.h5", ["export", "--checkpoint", str(run), "--dt", "1e-3", "-o", str(work / "g.h5")])
    graph, other, init_run = work / "start.nir", work / "other.nir", work / "init-run"
    cli("snnlab train --init-from missing.nir", [*TRAIN, "--init-from", str(work / "missing.nir")])
    cli("snnlab train --init-from <a folder>", [*TRAIN, "--init-from", str(work)])

    def init_run_then_swap_graph():
        run_cli(["export", "--checkpoint", str(run), "--dt", "1e-3", "-o", str(graph)])
        run_cli(["export", "--checkpoint", str(run), "--dt", "2e-3", "-o", str(other)])
        started = run_cli([*INIT_TRAIN, "--epochs", "2", "--stop-after", "1", "--init-from", str(graph),
                           "--out-dir", str(init_run)])
        assert started[0] == "exit 0", started
        shutil.copy(other, graph)

    cli("snnlab train --resume --init-from <the run's graph, rewritten>",
        [*INIT_TRAIN, "--epochs", "2", "--resume", "--init-from", str(graph), "--out-dir", str(init_run)],
        setup=init_run_then_swap_graph)
    # -- snnlab data fetch (nothing leaves this machine: a file:// mirror and a closed local port)
    mirror, fetch_root = work / "mirror", work / "fetch-root"

    def bad_mirror():
        mirror.mkdir(exist_ok=True)
        (mirror / "cifar-10-python.tar.gz").write_bytes(b"not the CIFAR-10 archive")

    cli("snnlab data fetch mnist", ["data", "fetch", "mnist", "--root", str(fetch_root)])
    cli("snnlab data fetch cifar10 --mirror not-a-url", ["data", "fetch", "cifar10", "--mirror", "not-a-url",
                                                         "--root", str(fetch_root), "--quiet"])
    cli("snnlab data fetch cifar10 --timeout 0", ["data", "fetch", "cifar10", "--timeout", "0", "--root", str(fetch_root)])
    cli("snnlab data fetch cifar10 --mirror <a wrong archive> (checksum)",
        ["data", "fetch", "cifar10", "--mirror", mirror.as_uri(), "--root", str(fetch_root), "--quiet", "--retries", "0"],
        setup=bad_mirror)
    cli("snnlab data fetch cifar10 --mirror http://127.0.0.1:9 (nothing listens)",
        ["data", "fetch", "cifar10", "--mirror", "http://127.0.0.1:9", "--root", str(fetch_root), "--quiet",
         "--retries", "0"])

    def fetch_while_locked():
        from snnlab.files import folder_lock

        with folder_lock(fetch_root / "downloads" / ".cifar10.lock", wait=False):
            return run_cli(["data", "fetch", "cifar10", "--mirror", mirror.as_uri(), "--root", str(fetch_root),
                            "--quiet"])

    out.append(("CLI", "snnlab data fetch cifar10 (another fetch holds the lock)", fetch_while_locked))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--before", default=None, help="a --json file from another checkout: add its column")
    args = parser.parse_args()
    os.environ.setdefault("SNNLAB_QUICK", "1")
    work = Path(tempfile.mkdtemp(prefix="snnlab-bad-inputs-"))
    rows = []
    try:
        for i, (kind, label, run) in enumerate(cases(work), 1):
            outcome, message = run()
            rows.append({"n": i, "kind": kind, "input": label, "outcome": outcome, "message": message})
    finally:
        for point in ("full", "ro"):
            subprocess.run(["umount", str(work / point)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    import re

    def short(text: str) -> str:  # the scratch folder of any run as <tmp>
        return re.sub(r"/tmp/snnlab-bad-inputs-[A-Za-z0-9_]+", "<tmp>", text)

    for r in rows:
        r["message"] = short(r["message"])
    before = {r["input"]: r for r in json.loads(Path(args.before).read_text())} if args.before else None
    head = "| # | kind | bad input | " + ("before | " if before else "") + "now: outcome | message |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        message = r["message"].replace("|", "\\|")
        old = ""
        if before is not None:
            b = before.get(r["input"])
            old = ("(not run)" if b is None else f"{b['outcome']}: {short(b['message'])[:160]}").replace("|", "\\|") + " | "
        print(f"| {r['n']} | {r['kind']} | `{r['input']}` | {old}{r['outcome']} | {message} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
