"""snnlab.data: the registry contract, embedded digits, the emulated event data set, frame
transforms, and random temporal deletion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import snnlab.data.emulated as emulated
from snnlab.data import DATASETS, DataMissingError, data_root, dataset_info, load_dataset
from snnlab.data.digits import DigitsAugment, DigitsDataset, digits_split
from snnlab.data.dvs_camera import EVENT_DTYPE
from snnlab.data.frames import EventsToFrames
from snnlab.data.transforms import RandomTemporalDeletion, fix_frame_count

SMALL = {"limit": 60}  # emulate only the first 60 digits: fast, still covers both splits


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_unknown_name():
    for name in ("digits", "nmnist-emulated", "cifar10", "cifar100", "dvsgesture", "cifar10dvs"):
        assert name in DATASETS and isinstance(DATASETS[name], str)
    with pytest.raises(ValueError, match="valid names: digits, nmnist-emulated, cifar10"):
        load_dataset("mnist", train=True)
    with pytest.raises(ValueError, match="unknown data set"):
        dataset_info("mnist")


def test_dataset_info_contract():
    expected = {"digits": ("static", 10, (1, 8, 8)), "cifar10": ("static", 10, (3, 32, 32)),
                "cifar100": ("static", 100, (3, 32, 32)),
                "nmnist-emulated": ("events", 10, (10, 2, 34, 34)),
                "dvsgesture": ("events", 11, (40, 2, 32, 32)),
                "cifar10dvs": ("events", 10, (10, 2, 42, 42))}
    for name, (kind, classes, shape) in expected.items():
        info = dataset_info(name)
        assert (info["kind"], info["num_classes"], info["input_shape"]) == (kind, classes, shape)
    assert dataset_info("digits", size=32, channels=3)["input_shape"] == (3, 32, 32)
    assert dataset_info("cifar10dvs", preset="ottt")["input_shape"] == (10, 2, 48, 48)
    assert dataset_info("dvsgesture", preset="sew", T=20)["input_shape"] == (20, 2, 128, 128)


def test_bad_arguments_raise():
    with pytest.raises(TypeError, match="train"):
        load_dataset("digits", train=1)
    with pytest.raises(ValueError, match="T"):
        load_dataset("nmnist-emulated", train=True, T=0)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['contrats'\].*valid: .*contrast"):
        load_dataset("nmnist-emulated", train=True, contrats=0.1)
    with pytest.raises(ValueError, match="valid: augment, channels, max_degrees, normalize, size"):
        load_dataset("digits", train=True, colour=True)
    with pytest.raises(ValueError, match="unknown option"):
        dataset_info("cifar10", size=64)
    with pytest.raises(ValueError, match="preset"):
        dataset_info("dvsgesture", preset="nope")


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("SNNLAB_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("SNNLAB_DATA")
    assert str(data_root()).endswith(".cache/snnlab")


# ----------------------------------------------------------------------------- digits


def test_digits_split_is_fixed_disjoint_and_stratified():
    train, test = digits_split(True), digits_split(False)
    assert len(train) == 1347 and len(test) == 450
    assert not set(train) & set(test)
    assert np.array_equal(train, digits_split(True))
    labels = DigitsDataset(False).targets.numpy()
    assert np.bincount(labels, minlength=10).min() >= 40  # every class in the test split


def test_digits_items_shapes_and_normalisation():
    ds = load_dataset("digits", train=True, augment=False)
    x, y = ds[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and isinstance(y, int)
    stack = torch.stack([ds[i][0] for i in range(len(ds))])
    assert abs(float(stack.mean())) < 1e-4 and abs(float(stack.std()) - 1) < 1e-3
    big = load_dataset("digits", train=False, size=32, channels=3)
    x, _ = big[0]
    assert x.shape == (3, 32, 32) and torch.equal(x[0], x[2])


def test_digits_augmentation_pads_crops_and_rotates_without_flipping():
    image = torch.zeros(1, 32, 32)
    image[0, 8:24, 14:18] = 1.0
    assert torch.equal(DigitsAugment(pad=0, max_degrees=0)(image), image)
    torch.manual_seed(0)
    crops = [DigitsAugment(pad=4, max_degrees=0)(image) for _ in range(20)]
    assert all(c.shape == image.shape for c in crops)
    assert any(not torch.equal(c, image) for c in crops)
    # a crop is a shift: the stroke's mass is kept (it stays inside the padded window)
    assert all(abs(float(c.sum()) - float(image.sum())) < 1e-4 for c in crops)
    torch.manual_seed(1)
    rotated = DigitsAugment(pad=0, max_degrees=10)(image)
    assert not torch.equal(rotated, image) and abs(float(rotated.sum() - image.sum())) < 0.05 * float(image.sum())
    ds = DigitsDataset(True, size=32)
    assert ds.augment is not None and DigitsDataset(False, size=32).augment is None
    assert not hasattr(ds.augment, "flip")


# ----------------------------------------------------------------------------- emulated set


def test_emulated_frames_have_documented_shape(tmp_path):
    train = load_dataset("nmnist-emulated", train=True, root=str(tmp_path), progress=False, **SMALL)
    test = load_dataset("nmnist-emulated", train=False, root=str(tmp_path), progress=False, **SMALL)
    assert len(train) + len(test) == 60
    x, y = train[0]
    assert x.shape == dataset_info("nmnist-emulated")["input_shape"] == (10, 2, 34, 34)
    assert x.dtype == torch.float32 and 0 <= y < 10 and x.sum() > 0
    # the frames hold the item's events (n_time_bins: tonic may leave out the last few
    # microseconds, never more than one bin's rounding)
    events = train.events(0)
    assert events.dtype == EVENT_DTYPE
    assert 0.99 * len(events) <= float(x.sum()) <= len(events)
    assert train.label(0) == y
    small = load_dataset("nmnist-emulated", train=False, T=6, size=17, root=str(tmp_path),
                         progress=False, **SMALL)
    assert small[0][0].shape == (6, 2, 17, 17)
    windows = load_dataset("nmnist-emulated", train=False, T=4, time_window_ms=50.0,
                           root=str(tmp_path), progress=False, **SMALL)
    xw, _ = windows[0]
    ev = windows.events(0)
    first = ev["t"][0]
    assert xw.shape == (4, 2, 34, 34)
    assert float(xw.sum()) == np.sum(ev["t"] < first + 200_000)
    rtd = load_dataset("nmnist-emulated", train=True, T=8, rtd_T=5, root=str(tmp_path),
                       progress=False, **SMALL)
    assert rtd[0][0].shape == (5, 2, 34, 34)
    rtd_test = load_dataset("nmnist-emulated", train=False, T=8, rtd_T=5, root=str(tmp_path),
                            progress=False, **SMALL)
    assert rtd_test[0][0].shape == (8, 2, 34, 34)  # deletion is for training only


def test_emulated_set_is_cached_and_deterministic(tmp_path, monkeypatch):
    config = emulated.EmulatedConfig.from_options(**SMALL)
    path = emulated.prepare_emulated_digits(config, str(tmp_path / "a"), progress=False)
    assert path.is_file() and path.parent.name == "emulated"
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left no temporary file
    first = emulated.EmulatedRecordings.load(path)

    def fail(*args, **kwargs):
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(emulated, "generate_emulated_digits", fail)
    assert emulated.prepare_emulated_digits(config, str(tmp_path / "a"), progress=False) == path
    load_dataset("nmnist-emulated", train=True, root=str(tmp_path / "a"), progress=False, **SMALL)
    monkeypatch.undo()
    again = emulated.EmulatedRecordings.load(
        emulated.prepare_emulated_digits(config, str(tmp_path / "b"), progress=False))
    for field in ("x", "y", "t", "p", "offsets", "labels"):
        assert np.array_equal(getattr(first, field), getattr(again, field))
    other = emulated.EmulatedConfig.from_options(seed=1, **SMALL)
    assert emulated.emulated_cache_path(other, str(tmp_path)) != emulated.emulated_cache_path(config, str(tmp_path))
    assert len(first) == 60 and first.sensor_size == (34, 34, 2)
    assert np.array_equal(first.labels, np.asarray(__import__("sklearn.datasets").datasets.load_digits().target[:60]))


def test_interrupted_write_leaves_no_cache_file(tmp_path, monkeypatch):
    config = emulated.EmulatedConfig.from_options(limit=3)

    def broken_write(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", broken_write)
    with pytest.raises(KeyboardInterrupt):
        emulated.prepare_emulated_digits(config, str(tmp_path), progress=False)
    # no cache file and no temporary file: only the (released) lock file of the folder remains
    assert [p.name for p in (tmp_path / "emulated").iterdir()] == [emulated.PREPARE_LOCK]


def test_emulated_contrast_option_changes_event_counts(tmp_path):
    counts = []
    for contrast in (0.3, 0.15):
        ds = load_dataset("nmnist-emulated", train=False, root=str(tmp_path), progress=False,
                          contrast=contrast, limit=20)
        counts.append(int(ds.recordings.offsets[-1]))
    assert counts[0] < counts[1]


# ----------------------------------------------------------------------------- transforms


def test_random_temporal_deletion_keeps_a_sorted_subset():
    frames = torch.arange(16.0).view(16, 1, 1, 1).expand(16, 2, 3, 3)
    g = torch.Generator().manual_seed(0)
    out = RandomTemporalDeletion(12, generator=g)(frames)
    kept = out[:, 0, 0, 0]
    assert out.shape == (12, 2, 3, 3)
    assert torch.all(kept[1:] > kept[:-1])  # sorted, distinct
    assert set(kept.tolist()) <= set(range(16))
    draws = {tuple(RandomTemporalDeletion(12, generator=g)(frames)[:, 0, 0, 0].tolist()) for _ in range(10)}
    assert len(draws) > 1
    with pytest.raises(ValueError, match="T_train"):
        RandomTemporalDeletion(20)(frames)


def test_fix_frame_count_pads_and_cuts():
    frames = torch.ones(3, 2, 4, 4)
    padded = fix_frame_count(frames, 5)
    assert padded.shape == (5, 2, 4, 4) and padded[3:].sum() == 0 and padded[:3].sum() == 96
    assert fix_frame_count(frames, 2).shape == (2, 2, 4, 4)


def test_events_to_frames_downsample_denoise_and_polarity_channels():
    ev = np.zeros(4, EVENT_DTYPE)
    ev["x"] = [0, 1, 127, 60]
    ev["y"] = [0, 0, 127, 60]
    ev["t"] = [5000, 5010, 5020, 900_000]
    ev["p"] = [True, True, False, True]
    whole = dict(time_window_us=1e6)  # one window holds every event
    frames = EventsToFrames((128, 128, 2), 2, size=32, **whole)(ev)
    assert frames.shape == (2, 2, 32, 32) and float(frames.sum()) == 4 and frames[1].sum() == 0
    assert frames[0, 1, 0, 0] == 2 and frames[0, 0, 31, 31] == 1  # ON channel 1, OFF channel 0
    # tonic's Denoise is causal: it keeps an event only if a 4-neighbour fired within
    # filter_time before it. Only the second of the two neighbouring events survives.
    denoised = EventsToFrames((128, 128, 2), 2, size=32, denoise_us=1000, **whole)(ev)
    assert float(denoised.sum()) == 1 and denoised[0, 1, 0, 0] == 1
    # n_time_bins: T equal bins between the first and the last event
    bins = EventsToFrames((128, 128, 2), 3, size=128)(ev)
    assert bins.shape == (3, 2, 128, 128) and float(bins[0].sum()) == 3
    empty = EventsToFrames((34, 34, 2), 3)(np.zeros(0, EVENT_DTYPE))
    assert empty.shape == (3, 2, 34, 34) and empty.sum() == 0


# ---- damaged emulated caches, training-only options (issue 18, items 3 and 7) ----------------


def test_a_truncated_emulated_cache_names_itself_and_is_rebuilt(tmp_path, capsys):
    from snnlab.cli import main
    from snnlab.errors import CorruptFileError, SnnlabWarning

    config = emulated.EmulatedConfig.from_options(limit=4)
    path = emulated.prepare_emulated_digits(config, str(tmp_path), progress=False)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # a copy cut short, or a full disk
    with pytest.raises(CorruptFileError) as info:
        emulated.EmulatedRecordings.load(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "expected an emulated-digits cache" in message
    assert "snnlab data prepare nmnist-emulated --force" in message
    # the data set rebuilds it by itself, saying so
    with pytest.warns(SnnlabWarning, match="rebuilding it"):
        ds = emulated.EmulatedDigitsDataset(True, root=str(tmp_path), limit=4, progress=False)
    assert len(ds.recordings) == 4 and path.read_bytes() == good
    # so does `snnlab data prepare` (with the same options)
    path.write_bytes(b"garbage")
    assert main(["data", "prepare", "nmnist-emulated", "--root", str(tmp_path), "--limit", "4", "--quiet"]) == 0
    assert "generated" in capsys.readouterr().out and path.read_bytes() == good


def test_training_only_options_stay_off_the_test_split(monkeypatch):
    """train(data_options={"augment": True}) augments the training split only."""
    import snnlab.data as data
    from snnlab.training import train

    calls = []
    real = data.load_dataset

    def spy(name, *, train, **options):
        calls.append((train, options.get("augment")))
        return real(name, train=train, **options)

    monkeypatch.setattr(data, "load_dataset", spy)
    train(model="spiking_mlp", dataset="digits", T=2, epochs=1, batch_size=64, max_batches=1, progress=False,
          data_options={"augment": True}, model_options={"hidden": (8,)})
    assert calls == [(True, True), (False, None)]  # the test split keeps its default: not augmented
    test_set = real("digits", train=False)
    assert test_set.augment is None
