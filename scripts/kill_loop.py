#!/usr/bin/env python
"""kill -9 a training run again and again; it must end with the weights of an uninterrupted run.

1. Trains once without interruption (``snnlab train`` in a subprocess) into ``<work>/reference``.
2. Starts the same command with ``--resume-if-exists`` into ``<work>/killed``, waits until that
   process has written a random number of checkpoints (at least one: it is training; on average the
   kills spread evenly over the checkpoints still ahead), sleeps a random time between zero and one
   and a half checkpoint intervals (so kills land between checkpoints and during their writes) and
   sends SIGKILL; repeats until ``--kills`` kills have landed, then lets the last run finish.
3. Compares the final checkpoint's weights with the reference bit for bit, and the per-epoch
   metrics (all but the timings), and lists any debris: every file in the folder other than
   checkpoint.pt, metrics.json, metrics.csv, config.yaml and the lock file.

Prints one JSON line (the last line of stdout); exits 0 when the weights are equal, the metrics are
equal and there is no debris. Every subprocess runs with OMP_NUM_THREADS=1, so sums round the same
way in all of them. tests/test_training_reliability.py runs a quick form (3 kills).

    .venv/bin/python scripts/kill_loop.py --kills 10 --epochs 4
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALLOWED = {"checkpoint.pt", "metrics.json", "metrics.csv", "config.yaml", ".snnlab-train.lock"}


def command(out_dir: Path, args) -> list[str]:
    return [sys.executable, "-m", "snnlab", "train", "--model", "spiking_mlp", "--dataset", "digits",
            "--method", "bptt", "--T", "2", "--epochs", str(args.epochs), "--batch-size", "16",
            "--max-batches", str(args.max_batches), "--lr", "0.05", "--seed", "3", "--no-progress",
            "--model-option", "hidden=(32,)", "--checkpoint-every", str(args.checkpoint_every),
            "--out-dir", str(out_dir)]


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def checkpoint_stamp(out_dir: Path):
    """The checkpoint's (mtime_ns, size), or None: it changes whenever a new checkpoint lands."""
    try:
        st = (out_dir / "checkpoint.pt").stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def position(out_dir: Path):
    """(epoch, batch) of the checkpoint, or None."""
    import torch

    path = out_dir / "checkpoint.pt"
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    return [state["epoch"], state["batch"]]


def run_reference(out_dir: Path, args) -> tuple[float, int]:
    """Train without interruption; return the mean seconds between two checkpoint writes and how
    many checkpoints the run wrote."""
    proc = subprocess.Popen(command(out_dir, args), env=environment(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    stamps, last = [], None
    while proc.poll() is None:
        stamp = checkpoint_stamp(out_dir)
        if stamp != last and stamp is not None:
            stamps.append(time.perf_counter())
            last = stamp
        time.sleep(0.002)
    err = proc.stderr.read()
    if proc.returncode != 0:
        raise SystemExit(f"the reference run failed ({proc.returncode}):\n{err}")
    if len(stamps) < 2:
        return 0.5, len(stamps)
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1), len(stamps)


def checkpoints_done(out_dir: Path, args) -> int:
    """How many checkpoints of the whole run lie behind the current one."""
    pos = position(out_dir)
    if pos is None:
        return 0
    per_epoch = -(-args.max_batches // args.checkpoint_every)  # mid-epoch saves + the epoch's last
    return pos[0] * per_epoch + pos[1] // args.checkpoint_every


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-batches", type=int, default=40, help="batches per epoch")
    parser.add_argument("--checkpoint-every", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    parser.add_argument("--work", default=None, help="folder for the two runs (default: a temporary one)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="snnlab-kill-loop-"))
    reference, killed = work / "reference", work / "killed"
    for folder in (reference, killed):
        shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    interval, total = run_reference(reference, args)
    kills, attempts, positions = 0, 0, []
    while True:
        attempts += 1
        if attempts > 10 * args.kills + 10:
            raise SystemExit("the killed run does not make progress")
        proc = subprocess.Popen([*command(killed, args), "--resume-if-exists"], env=environment(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if kills >= args.kills:  # enough: let this one finish
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"the final run failed ({proc.returncode}):\n{err}")
            break
        ahead = max(1, total - checkpoints_done(killed, args))
        wait_for = rng.randint(1, max(1, 2 * ahead // (args.kills - kills + 1)))
        seen, last = 0, checkpoint_stamp(killed)
        while proc.poll() is None and seen < wait_for:  # this run is training: it saves checkpoints
            stamp = checkpoint_stamp(killed)
            if stamp is not None and stamp != last:
                seen, last = seen + 1, stamp
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 1.5 * interval))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            positions.append(position(killed))
        else:
            if proc.returncode != 0:
                raise SystemExit(f"a run failed ({proc.returncode}):\n{proc.stderr.read()}")
            break  # it finished before the kill: the run is complete

    import torch

    ref = torch.load(reference / "checkpoint.pt", map_location="cpu", weights_only=False)
    cut = torch.load(killed / "checkpoint.pt", map_location="cpu", weights_only=False)
    weights_equal = ref["model"].keys() == cut["model"].keys() and all(
        torch.equal(ref["model"][k], cut["model"][k]) for k in ref["model"])

    def deterministic(rows):
        return [{k: v for k, v in r.items() if k not in ("seconds", "rss_peak_bytes")} for r in rows]

    history_equal = deterministic(ref["history"]) == deterministic(cut["history"]) and deterministic(
        json.loads((killed / "metrics.json").read_text())) == deterministic(ref["history"])
    debris = sorted(p.name for p in killed.iterdir() if p.name not in ALLOWED)
    report = {"kills": kills, "target_kills": args.kills, "checkpoint_at_each_kill": positions,
              "epochs": args.epochs, "batches_per_epoch": args.max_batches,
              "checkpoint_every": args.checkpoint_every, "final_position": position(killed),
              "weights_equal": bool(weights_equal), "history_equal": bool(history_equal), "debris": debris,
              "seconds_between_checkpoints": round(interval, 3),
              "seconds": round(time.perf_counter() - started, 1), "work": str(work)}
    print(json.dumps(report))
    ok = kills == args.kills and weights_equal and history_equal and not debris
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
