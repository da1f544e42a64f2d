"""N-MNIST through tonic's reader (snnlab.data.nmnist), on small files written in the real binary format.

The writer below follows the format as Orchard et al. publish it (5 bytes per event: x, y, polarity
in bit 7 of byte 2, a 23-bit microsecond timestamp big-endian in the rest of bytes 2-4; a row with
y = 240 is a timestamp overflow, +2^13 us for every later event), independently of tonic's decoder,
which the loader uses.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnlab.data import DataMissingError, dataset_info, load_dataset
from snnlab.data.dvs_camera import EVENT_DTYPE
from snnlab.data.real import verify_dataset


def nmnist_bytes(x, y, t, p, overflow_before=None) -> bytes:
    """Events in N-MNIST's binary format; ``overflow_before``: insert an overflow row before that index
    (the raw timestamps after it are then stored 2^13 us smaller)."""
    rows, shift = [], 0
    for i, (xi, yi, ti, pi) in enumerate(zip(x, y, t, p)):
        if i == overflow_before:
            rows.append((0, 240, 0, 0, 0))
            shift = 1 << 13
        raw = int(ti) - shift
        rows.append((int(xi), int(yi), (int(pi) << 7) | (raw >> 16), (raw >> 8) & 255, raw & 255))
    return np.asarray(rows, dtype=np.uint8).tobytes()


def recording(seed: int, n: int = 400):
    """A saccade-like recording: n events over 300 ms on the 34x34 sensor."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 300_000, n))
    return rng.integers(0, 34, n), rng.integers(0, 34, n), t, rng.integers(0, 2, n)


def write_nmnist(root, per_digit=2, splits=("Train", "Test")) -> dict:
    """``<root>/NMNIST/<split>/<digit>/<id>.bin``; returns {path: (x, y, t, p)}."""
    written = {}
    for s, split in enumerate(splits):
        for digit in range(10):
            folder = root / "NMNIST" / split / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_digit):
                events = recording(1000 * s + 10 * digit + k)
                path = folder / f"{k:05d}.bin"
                path.write_bytes(nmnist_bytes(*events))
                written[path] = events
    return written


def test_reads_the_binary_format_with_tonic_and_frames_like_the_emulated_set(tmp_path):
    written = write_nmnist(tmp_path)
    train = load_dataset("nmnist", train=True, root=str(tmp_path))
    test = load_dataset("nmnist", train=False, root=str(tmp_path))
    assert len(train) == 20 and len(test) == 20
    assert [train.label(i) for i in range(20)] == [d for d in range(10) for _ in range(2)]
    events = train.events(3)  # digit 1, second file
    x, y, t, p = written[tmp_path / "NMNIST" / "Train" / "1" / "00001.bin"]
    assert events.dtype == EVENT_DTYPE  # the emulated set's dtype: recordings compare field by field
    assert np.array_equal(events["x"], x) and np.array_equal(events["y"], y)
    assert np.array_equal(events["t"], t) and np.array_equal(events["p"], p.astype(bool))
    frames, label = train[3]
    assert label == 1 and frames.shape == (10, 2, 34, 34) and frames.dtype == torch.float32
    # every event lands in one of the T equal bins (tonic's ToFrame may drop the very last one)
    assert len(x) - 1 <= float(frames.sum()) <= len(x)
    assert int(p.sum()) - 1 <= float(frames[:, 1].sum()) <= int(p.sum())  # channel 1 = ON
    first_bin = t < t.min() + (t.max() - t.min()) / 10
    assert abs(float(frames[0].sum()) - int(first_bin.sum())) <= 1  # bin edge rounding
    assert dataset_info("nmnist")["input_shape"] == (10, 2, 34, 34)
    small = load_dataset("nmnist", train=False, root=str(tmp_path), T=5, size=17)[0][0]
    assert small.shape == (5, 2, 17, 17)


def test_timestamp_overflow_rows_are_decoded(tmp_path):
    x, y, t, p = [1, 2, 3, 4], [5, 6, 7, 8], [100, 5000, 9000, 20000], [1, 0, 1, 1]
    path = tmp_path / "NMNIST" / "Test" / "7" / "00000.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(nmnist_bytes(x, y, t, p, overflow_before=2))
    ds = load_dataset("nmnist", train=False, root=str(tmp_path))
    events = ds.events(0)
    assert events["t"].tolist() == t and events["x"].tolist() == x and len(events) == 4  # marker dropped
    assert ds.label(0) == 7


def test_same_items_as_the_emulated_set(tmp_path):
    write_nmnist(tmp_path, per_digit=1, splits=("Test",))
    real = load_dataset("nmnist", train=False, root=str(tmp_path))
    emulated = load_dataset("nmnist-emulated", train=False, root=str(tmp_path), limit=30, progress=False)
    (xr, yr), (xe, ye) = real[0], emulated[0]
    assert xr.shape == xe.shape and xr.dtype == xe.dtype and isinstance(yr, int) and isinstance(ye, int)
    assert real.events(0).dtype == emulated.events(0).dtype
    assert real.sensor_size == tuple(emulated.sensor_size)


def test_missing_data_says_how_to_fetch_it(tmp_path):
    with pytest.raises(DataMissingError) as info:
        load_dataset("nmnist", train=True, root=str(tmp_path))
    message = str(info.value)
    assert "'nmnist'" in message and str(tmp_path / "NMNIST" / "Train") in message
    assert "snnlab data fetch nmnist" in message
    write_nmnist(tmp_path, splits=("Train",))
    with pytest.raises(DataMissingError, match="Test"):
        load_dataset("nmnist", train=False, root=str(tmp_path))


def test_verify_counts_the_official_number_of_recordings(tmp_path, monkeypatch):
    import snnlab.data.nmnist as nmnist

    assert not verify_dataset("nmnist", str(tmp_path))["present"]
    write_nmnist(tmp_path, per_digit=2)
    status = verify_dataset("nmnist", str(tmp_path))
    assert status["present"] and not status["ok"] and status["files"] == 40
    assert any("expected 60000" in p for p in status["problems"])
    monkeypatch.setattr(nmnist, "NMNIST_COUNTS", {"Train": 20, "Test": 20})
    assert verify_dataset("nmnist", str(tmp_path))["ok"]


def test_recording_statistics_by_hand():
    from snnlab.data.nmnist import recording_statistics

    a = np.zeros(3, dtype=EVENT_DTYPE)
    a["x"], a["y"], a["t"], a["p"] = [0, 5, 2], [1, 1, 9], [100, 2000, 4000], [1, 0, 1]
    b = np.zeros(1, dtype=EVENT_DTYPE)
    b["x"], b["y"], b["t"], b["p"] = [33], [0], [10_000], [0]
    got = recording_statistics([a, b])
    # windows 34 x 10; last events at 4 and 10 ms; 2 events per recording; 2 ON of 4
    assert got == {"recordings": 2, "window": (34, 10), "median_ms": 7.0, "events_mean": 2.0, "on_fraction": 0.5}
    with pytest.raises(ValueError, match="at least one recording"):
        recording_statistics([])


def test_nmnist_statistics_reads_the_files_or_says_absent(tmp_path):
    from snnlab.data.nmnist import nmnist_statistics

    assert nmnist_statistics(tmp_path) is None
    written = write_nmnist(tmp_path, per_digit=2, splits=("Test",))
    got = nmnist_statistics(tmp_path, train=False, limit=1000)
    events = list(written.values())
    assert got["recordings"] == got["of"] == 20
    assert got["events_mean"] == 400.0
    assert got["on_fraction"] == pytest.approx(sum(int(np.sum(e[3])) for e in events) / (400 * 20))
    assert got["median_ms"] == pytest.approx(float(np.median([e[2].max() / 1000 for e in events])))
    assert got["window"] == (max(int(e[0].max()) for e in events) + 1, max(int(e[1].max()) for e in events) + 1)
