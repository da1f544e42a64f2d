"""Real-data loaders (snnlab.data.real) on small files written in the real on-disk formats.

- CIFAR-10/100: the pickled batches exactly as the official archives hold them (dicts with
  ``data`` uint8 [N, 3072] channel-major and ``labels`` / ``fine_labels``, plus the meta file);
  torchvision's own reading code parses them. torchvision's MD5 check cannot pass on made-up files,
  so loading checks presence (snnlab's subclass) and ``verify`` is tested to flag the mismatch.
- DVS Gesture: tonic's preprocessed layout (``ibmGestureTrain/userNN_lighting/<label>.npy``, each
  an [N, 4] array of x, y, p, t in ms), read by tonic's own ``__getitem__``.
- CIFAR10-DVS: tonic reads ``.aedat4`` files through the Rust ``aedat`` decoder, a compressed
  flatbuffers container we cannot reasonably write here (and ``aedat`` is not a dependency). The
  test writes tonic's folder layout with placeholder files and replaces only the file reader with
  synthetic events, so the folder scan, labels, the 9000/1000-style split and the preprocessing
  are tested; the reader's own error when ``aedat`` is missing is tested too.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import snnlab.data.real as real
from snnlab.data import DataMissingError, load_dataset
from snnlab.data.real import CIFAR_STATS, cifar10dvs_split, verify_dataset
from snnlab.errors import CorruptFileError

CLASSES10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any download attempt fails the test (it would hang offline)."""
    import tonic.dataset
    import torchvision.datasets.cifar

    def forbidden(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", forbidden)
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", forbidden)


def _pickle(path, obj):
    with open(path, "wb") as out:
        pickle.dump(obj, out, protocol=2)


def write_cifar10(root, n=4):
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = np.zeros((n, 3072), np.uint8)
        for i in range(n):
            data[i, :1024] = 10 * b + i  # red plane, a value that identifies the image
            data[i, 1024:2048] = 200  # green
        _pickle(folder / name, {"batch_label": f"batch {b}", "labels": [(b + i) % 10 for i in range(n)],
                                "data": data, "filenames": [f"img{b}_{i}.png" for i in range(n)]})
    _pickle(folder / "batches.meta", {"label_names": CLASSES10, "num_cases_per_batch": n, "num_vis": 3072})
    return folder


def write_cifar100(root, n=3):
    folder = root / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True)
    for name in ("train", "test"):
        _pickle(folder / name, {"data": np.full((n, 3072), 7, np.uint8),
                                "fine_labels": [99, 0, 42][:n], "coarse_labels": [19, 0, 5][:n],
                                "filenames": ["a"] * n, "batch_label": name})
    _pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)],
                              "coarse_label_names": [f"s{i}" for i in range(20)]})


def test_cifar10_reads_the_official_batch_format(tmp_path):
    write_cifar10(tmp_path)
    train = load_dataset("cifar10", train=True, root=str(tmp_path), augment=False)
    test = load_dataset("cifar10", train=False, root=str(tmp_path), augment=False)
    assert len(train) == 20 and len(test) == 4 and train.classes == CLASSES10
    mean, std = CIFAR_STATS[10]
    x, y = train[6]  # batch 1 (b=1), image 2
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 3
    red = x[0] * std[0] + mean[0]
    green = x[1] * std[1] + mean[1]
    assert torch.allclose(red, torch.full_like(red, 12 / 255), atol=1e-5)
    assert torch.allclose(green, torch.full_like(green, 200 / 255), atol=1e-5)
    aug = load_dataset("cifar10", train=True, root=str(tmp_path))  # crop + flip by default
    torch.manual_seed(0)
    xa, _ = aug[6]
    assert xa.shape == (3, 32, 32)
    padded = [aug[6][0] for _ in range(30)]  # random crops with zero padding show the border
    assert any(float((p[1] * std[1] + mean[1]).min()) < 0.1 for p in padded)


def test_cifar100_reads_fine_labels(tmp_path):
    write_cifar100(tmp_path)
    ds = load_dataset("cifar100", train=True, root=str(tmp_path), augment=False)
    assert len(ds) == 3 and [ds[i][1] for i in range(3)] == [99, 0, 42] and len(ds.classes) == 100


def test_cifar_missing_raises_clear_error(tmp_path):
    with pytest.raises(DataMissingError) as info:
        load_dataset("cifar10", train=True, root=str(tmp_path))
    message = str(info.value)
    assert "'cifar10'" in message and str(tmp_path / "cifar10" / "cifar-10-batches-py") in message
    assert "cifar-10-python.tar.gz" in message and "download=True" in message
    assert isinstance(info.value, FileNotFoundError)
    folder = write_cifar10(tmp_path)
    (folder / "data_batch_3").unlink()  # one file missing is missing data too
    with pytest.raises(DataMissingError, match="cifar10"):
        load_dataset("cifar10", train=False, root=str(tmp_path))


def test_verify_cifar_checks_md5(tmp_path):
    write_cifar10(tmp_path)
    status = verify_dataset("cifar10", str(tmp_path))
    assert status["present"] and not status["ok"] and status["files"] == 7
    assert all("MD5 mismatch" in p for p in status["problems"]) and len(status["problems"]) == 7
    assert verify_dataset("cifar10", str(tmp_path), checksums=False)["ok"]
    assert not verify_dataset("cifar100", str(tmp_path))["present"]


# ----------------------------------------------------------------------------- DVS Gesture


def write_dvsgesture(root, users=(("ibmGestureTrain", "user01_fluorescent"),
                                  ("ibmGestureTrain", "user02_led"),
                                  ("ibmGestureTest", "user24_natural")), labels=(0, 4, 10)):
    rng = np.random.default_rng(0)
    for split, user in users:
        folder = root / "DVSGesture" / split / user
        folder.mkdir(parents=True)
        for label in labels:
            n = 3000
            t_ms = np.sort(rng.integers(0, 1500, n))
            events = np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n),
                               rng.integers(0, 2, n), t_ms], axis=1).astype(np.int64)
            np.save(folder / f"{label}.npy", events)  # columns x, y, p, t [ms]: tonic's files


def test_dvsgesture_reads_tonic_layout_with_mlf_preprocessing(tmp_path):
    write_dvsgesture(tmp_path)
    train = load_dataset("dvsgesture", train=True, root=str(tmp_path))
    test = load_dataset("dvsgesture", train=False, root=str(tmp_path))
    assert len(train) == 6 and len(test) == 3
    assert sorted(train[i][1] for i in range(6)) == [0, 0, 4, 4, 10, 10]
    x, y = train[0]
    assert x.shape == (40, 2, 32, 32) and x.dtype == torch.float32  # 30 ms frames, 32x32, T=40
    raw = np.load(train.events_dataset.data[0])
    first = raw[:, 3].min()
    assert float(x.sum()) == np.sum(raw[:, 3] < first + 40 * 30)  # the first 1.2 s, all pixels
    assert float(x[0].sum()) == np.sum(raw[:, 3] < first + 30)
    assert float(x[:, 1].sum()) == np.sum((raw[:, 2] == 1) & (raw[:, 3] < first + 1200))  # ON
    assert train.settings.time_window_ms == 30.0
    # recordings are ordered by path (tonic's os.walk order depends on the file system)
    assert train.events_dataset.data == sorted(train.events_dataset.data)
    assert train.events_dataset.users == [1, 1, 1, 2, 2, 2]
    assert train.events_dataset.targets == [0, 10, 4, 0, 10, 4]  # "0.npy" < "10.npy" < "4.npy"


def test_dvsgesture_sew_preset_uses_random_temporal_deletion_in_training(tmp_path):
    write_dvsgesture(tmp_path)
    x_train, _ = load_dataset("dvsgesture", train=True, root=str(tmp_path), preset="sew")[0]
    x_test, _ = load_dataset("dvsgesture", train=False, root=str(tmp_path), preset="sew")[0]
    assert x_train.shape == (12, 2, 128, 128) and x_test.shape == (16, 2, 128, 128)
    x, _ = load_dataset("dvsgesture", train=False, root=str(tmp_path), T=8, size=64,
                        time_window_ms=None)[0]
    assert x.shape == (8, 2, 64, 64) and 0.99 * 3000 <= float(x.sum()) <= 3000


def test_dvsgesture_missing_raises_clear_error(tmp_path):
    with pytest.raises(DataMissingError) as info:
        load_dataset("dvsgesture", train=True, root=str(tmp_path))
    message = str(info.value)
    assert "'dvsgesture'" in message and "ibmGestureTrain" in message and "figshare" in message
    write_dvsgesture(tmp_path, users=(("ibmGestureTrain", "user01_fluorescent"),))
    with pytest.raises(DataMissingError, match="ibmGestureTest"):
        load_dataset("dvsgesture", train=False, root=str(tmp_path))
    # tonic's class itself, asked for a missing split, raises instead of downloading
    cls = real._dvsgesture_class()
    with pytest.raises(DataMissingError):
        cls(str(tmp_path), train=False)


# ----------------------------------------------------------------------------- CIFAR10-DVS


def aedat4_bytes(packets=((0, b"\x00" * 40), (0, b"\x01" * 24)), data_table=False):
    """The structure of an AEDAT 4.0 file: the magic line, a uint32 header length, an IOHeader
    flatbuffer (a table whose field 1, dataTablePosition, is set only with ``data_table``) and
    packets of (uint32 stream id, uint32 size, body); packet bodies are not real compressed events."""
    import struct

    body = b"".join(struct.pack("<II", stream, len(payload)) + payload for stream, payload in packets)
    if data_table:
        # root offset -> table at 12; vtable at 4: [vtable size 8, table size 12, field0 absent, field1 at +4]
        header = struct.pack("<I", 12) + struct.pack("<HHHH", 8, 12, 0, 4) + struct.pack("<i", 8)
        header += struct.pack("<q", 0)  # placeholder, patched below
        start = len(real.AEDAT4_MAGIC) + 4 + len(header)
        header = header[:16] + struct.pack("<q", start + len(body))
        return real.AEDAT4_MAGIC + struct.pack("<I", len(header)) + header + body + b"TABLE"
    header = struct.pack("<I", 8) + struct.pack("<HH", 4, 4) + struct.pack("<i", 4)  # no fields: defaults
    return real.AEDAT4_MAGIC + struct.pack("<I", len(header)) + header + body


def write_cifar10dvs(root, per_class=10):
    for name in CLASSES10:
        folder = root / "CIFAR10DVS" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            (folder / f"cifar10_{name}_{i}.aedat4").write_bytes(aedat4_bytes())


def fake_read_aedat4(path):
    """Events as tonic's aedat4 reader returns them (fields t, x, y, on), seeded by the path."""
    rng = np.random.default_rng(abs(hash(str(path))) % 2**32)
    n = 500
    events = np.zeros(n, dtype=[("t", np.uint64), ("x", np.uint16), ("y", np.uint16), ("on", bool)])
    events["t"] = np.sort(rng.integers(0, 300_000, n))
    events["x"] = rng.integers(0, 128, n)
    events["y"] = rng.integers(0, 128, n)
    events["on"] = rng.random(n) < 0.5
    return events


def test_cifar10dvs_split_and_preprocessing(tmp_path, monkeypatch):
    write_cifar10dvs(tmp_path)
    monkeypatch.setattr(real, "read_aedat4", fake_read_aedat4)
    train = load_dataset("cifar10dvs", train=True, root=str(tmp_path))
    test = load_dataset("cifar10dvs", train=False, root=str(tmp_path))
    assert len(train) == 90 and len(test) == 10
    assert not set(train.indices) & set(test.indices)
    labels = np.asarray(train.events_dataset.targets)
    assert np.bincount(labels[train.indices]).tolist() == [9] * 10  # 900/100 per class at full size
    again = load_dataset("cifar10dvs", train=False, root=str(tmp_path))
    assert np.array_equal(again.indices, test.indices)  # fixed seed
    paths = train.events_dataset.data
    assert paths == sorted(paths)  # split indices refer to the same files on every machine
    x, y = test[0]
    assert x.shape == (10, 2, 42, 42) and 0 <= y < 10  # MLF: 10 ms frames at 42x42, T=10
    events = fake_read_aedat4(train.events_dataset.data[test.indices[0]])
    first = int(events["t"].min())
    assert float(x.sum()) == np.sum(events["t"] < first + 100_000)
    xo, _ = load_dataset("cifar10dvs", train=False, root=str(tmp_path), preset="ottt")[0]
    assert xo.shape == (10, 2, 48, 48) and 0.99 * 500 <= float(xo.sum()) <= 500


def test_cifar10dvs_split_of_the_full_set_is_9000_1000():
    targets = np.repeat(np.arange(10), 1000)
    train, test = cifar10dvs_split(targets, True), cifar10dvs_split(targets, False)
    assert len(train) == 9000 and len(test) == 1000
    assert np.bincount(targets[test]).tolist() == [100] * 10
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(10_000))
    assert not np.array_equal(test, cifar10dvs_split(targets, False, seed=1))


def test_cifar10dvs_missing_raises_clear_error(tmp_path):
    with pytest.raises(DataMissingError) as info:
        load_dataset("cifar10dvs", train=True, root=str(tmp_path))
    assert "'cifar10dvs'" in str(info.value) and "CIFAR10DVS" in str(info.value)
    assert "aedat" in str(info.value)


def test_aedat4_reader_names_the_missing_package(tmp_path):
    pytest.importorskip("tonic")
    try:
        import aedat  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install aedat"):
            real.read_aedat4(str(tmp_path / "x.aedat4"))
    else:  # pragma: no cover - only where aedat is installed
        pytest.skip("aedat is installed; the missing-package message cannot be triggered")


def test_verify_dvs_counts_recordings(tmp_path):
    write_dvsgesture(tmp_path)
    status = verify_dataset("dvsgesture", str(tmp_path))
    assert status["ok"] and status["files"] == 9
    write_cifar10dvs(tmp_path, per_class=2)
    status = verify_dataset("cifar10dvs", str(tmp_path))
    assert status["present"] and not status["ok"] and status["files"] == 20
    assert any("expected 1000" in p for p in status["problems"])


# ----------------------------------------------------------------------------- damaged files


@pytest.mark.parametrize("damage, needle", [
    (lambda p: p.write_bytes(b"this is not a pickle"), "cannot be read"),
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "cannot be read (pickle data was truncated)"),
    (lambda p: _pickle(p, {"data": np.zeros((4, 100), np.uint8), "labels": [0, 1, 2, 3]}), "'data' is ndarray (4, 100)"),
    (lambda p: _pickle(p, [1, 2, 3]), "a pickle of a list"),
])
def test_garbage_cifar_batches_name_the_file(tmp_path, damage, needle):
    folder = write_cifar10(tmp_path)
    damage(folder / "data_batch_3")
    with pytest.raises(CorruptFileError) as info:
        load_dataset("cifar10", train=True, root=str(tmp_path))
    message = str(info.value)
    assert message.startswith(str(folder / "data_batch_3")) and needle in message
    assert "expected a CIFAR-10 batch" in message and "Re-extract cifar-10-python.tar.gz" in message
    assert "\n" not in message
    assert load_dataset("cifar10", train=False, root=str(tmp_path))  # the test split is intact


def test_garbage_cifar_meta_names_the_file(tmp_path):
    folder = write_cifar100(tmp_path) or tmp_path / "cifar100" / "cifar-100-python"
    (folder / "meta").write_bytes(b"\x00\x01garbage")
    with pytest.raises(CorruptFileError, match=r"cifar-100-python/meta: cannot be read .* expected CIFAR's pickled meta"):
        load_dataset("cifar100", train=True, root=str(tmp_path))


@pytest.mark.parametrize("damage, needle", [
    (lambda p: p.write_bytes(p.read_bytes()[:200]), "truncated: shorter than its .npy header says"),
    (lambda p: p.write_bytes(b"garbage, not a .npy file"), "cannot be read"),
    (lambda p: np.save(p, np.zeros((10, 3))), "an array of shape (10, 3)"),
])
def test_damaged_dvsgesture_recordings_are_named_before_training(tmp_path, damage, needle):
    write_dvsgesture(tmp_path)
    bad = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user02_led" / "4.npy"
    damage(bad)
    with pytest.raises(CorruptFileError) as info:
        load_dataset("dvsgesture", train=True, root=str(tmp_path))  # when the data set is built
    assert str(info.value).startswith(str(bad)) and needle in str(info.value)
    assert "Re-extract ibmGestureTrain.tar.gz" in str(info.value)
    status = verify_dataset("dvsgesture", str(tmp_path))
    assert not status["ok"] and any(str(bad) in p for p in status["problems"])


def test_a_recording_damaged_after_loading_names_itself(tmp_path):
    write_dvsgesture(tmp_path)
    train = load_dataset("dvsgesture", train=True, root=str(tmp_path))
    path = train.events_dataset.data[0]
    with open(path, "r+b") as fh:
        fh.truncate(150)
    with pytest.raises(CorruptFileError, match=str(path)):
        train[0]


def test_aedat4_structure_is_checked(tmp_path):
    good = tmp_path / "good.aedat4"
    good.write_bytes(aedat4_bytes())
    real.check_aedat4(good)
    with_table = tmp_path / "table.aedat4"
    with_table.write_bytes(aedat4_bytes(data_table=True))
    real.check_aedat4(with_table)
    cases = {
        "garbage": (b"RIFF garbage" * 10, "no AEDAT 4.0 magic line"),
        "cut_in_packet": (aedat4_bytes()[:-10], "truncated: the packet at byte"),
        "cut_in_header": (aedat4_bytes()[:20], "truncated"),
        "table_cut": (aedat4_bytes(data_table=True)[:-20], "truncated"),
    }
    for name, (data, needle) in cases.items():
        path = tmp_path / f"{name}.aedat4"
        path.write_bytes(data)
        with pytest.raises(CorruptFileError) as info:
            real.check_aedat4(path)
        assert str(info.value).startswith(str(path)) and needle in str(info.value), name
        assert "expected a CIFAR10-DVS recording in AEDAT 4.0" in str(info.value)
        # reading it says the same before it needs the aedat decoder
        with pytest.raises(CorruptFileError):
            real.read_aedat4(str(path))


def test_verify_cifar10dvs_names_damaged_recordings(tmp_path):
    write_cifar10dvs(tmp_path, per_class=2)
    bad = tmp_path / "CIFAR10DVS" / "cat" / "cifar10_cat_1.aedat4"
    bad.write_bytes(aedat4_bytes()[:-5])
    status = verify_dataset("cifar10dvs", str(tmp_path))
    assert [p for p in status["problems"] if str(bad) in p and "truncated" in p]


def test_augment_is_a_strict_boolean(tmp_path):
    write_cifar10(tmp_path)
    for bad in ("no", "train", 1, "False"):
        with pytest.raises(TypeError, match="augment must be True, False or None"):
            load_dataset("cifar10", train=False, root=str(tmp_path), augment=bad)
    with pytest.raises(TypeError, match="augment must be True, False or None"):
        load_dataset("digits", train=False, augment="no")
