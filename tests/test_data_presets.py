"""The emulated data set's named presets: ``faint`` (chapters 7 and 8) is reachable by name, sets
the camera as documented, leaves the default untouched, and gives frames with less signal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snnlab.cli import main
from snnlab.data import DATASETS, dataset_info, load_dataset
from snnlab.data.dvs_camera import DVSParams
from snnlab.data.emulated import (
    EMULATED_PRESETS, EmulatedConfig, emulated_cache_path, emulated_preset, frame_signal_to_noise,
)


def test_default_preset_is_the_unchanged_default_configuration():
    # chapter 2 and every cache file written before presets existed use this configuration
    assert EmulatedConfig.from_preset("default") == EmulatedConfig()
    assert EmulatedConfig().key() == "94496206d596"
    assert dataset_info("nmnist-emulated")["input_shape"] == (10, 2, 34, 34)


def test_faint_preset_is_reachable_by_name_with_its_knobs(tmp_path):
    assert "nmnist-emulated-faint" in DATASETS
    assert emulated_preset("faint").dataset_name == "nmnist-emulated-faint"
    info = dataset_info("nmnist-emulated-faint")
    assert info["kind"] == "events" and info["input_shape"] == (8, 2, 17, 17) and info["default_T"] == 8
    data = load_dataset("nmnist-emulated-faint", train=False, limit=40, root=str(tmp_path), progress=False)
    assert data.config.dvs == DVSParams(contrast=0.3, noise_rate_hz=3.0, dark_level=0.6)
    assert data.T == 8 and tuple(data[0][0].shape) == (8, 2, 17, 17)
    assert emulated_cache_path(data.config, str(tmp_path)).is_file()
    # options override the preset's camera settings; T and size its framing
    quiet = load_dataset("nmnist-emulated-faint", train=False, T=4, size=34, limit=40, noise_rate_hz=0.0,
                         root=str(tmp_path), progress=False)
    assert quiet.config.dvs == DVSParams(contrast=0.3, noise_rate_hz=0.0, dark_level=0.6)
    assert tuple(quiet[0][0].shape) == (4, 2, 34, 34)
    with pytest.raises(ValueError, match="presets: default, faint"):
        emulated_preset("dim")


def test_data_list_shows_the_preset(tmp_path, capsys):
    assert main(["data", "list", "--json", "--root", str(tmp_path)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["datasets"]}
    faint = rows["nmnist-emulated-faint"]
    assert faint["input_shape"] == [8, 2, 17, 17] and not faint["ready"]
    assert faint["where"] == str(emulated_cache_path(EmulatedConfig.from_preset("faint"), str(tmp_path)))
    assert main(["data", "prepare", "nmnist-emulated-faint", "--limit", "6", "--quiet", "--root", str(tmp_path)]) == 0
    assert emulated_cache_path(EmulatedConfig.from_preset("faint", limit=6), str(tmp_path)).is_file()


def test_faint_frames_have_lower_signal_to_noise_than_the_default():
    default = frame_signal_to_noise(EmulatedConfig(), 10, digits=8)
    faint = frame_signal_to_noise(EmulatedConfig.from_preset("faint"), 8, digits=8)
    # the noise's Poisson mean per frame, written out: rate x 34 x 34 pixels x 0.3 s / T
    assert faint.noise_per_frame == pytest.approx(3.0 * 34 * 34 * 0.3 / 8)
    assert default.noise_per_frame == pytest.approx(0.5 * 34 * 34 * 0.3 / 10)
    assert faint.signal_per_frame < default.signal_per_frame / 5     # fewer events per frame
    assert faint.snr < default.snr / 10 and faint.signal_fraction < 0.5 < default.signal_fraction
    # more frames, less signal per frame: the SNR falls as 1/sqrt(T)
    faint16 = frame_signal_to_noise(EmulatedConfig.from_preset("faint"), 16, digits=8)
    assert faint16.snr == pytest.approx(faint.snr / np.sqrt(2))


def test_faint_frames_count_fewer_events_than_the_default(tmp_path):
    kw = dict(train=False, T=8, size=17, limit=40, root=str(tmp_path), progress=False)
    default = load_dataset("nmnist-emulated", **kw)
    faint = load_dataset("nmnist-emulated-faint", **kw)
    assert float(faint[0][0].sum()) < float(default[0][0].sum()) / 2
    assert set(EMULATED_PRESETS) == {"default", "faint"}
