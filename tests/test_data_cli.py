"""``snnlab data list | prepare | verify``."""

from __future__ import annotations

import json


from snnlab.cli import main
from snnlab.data.emulated import EmulatedConfig, emulated_cache_path
from test_data_real import write_cifar10, write_dvsgesture


def test_data_list_reports_what_is_where(tmp_path, capsys):
    write_dvsgesture(tmp_path)
    assert main(["data", "list", "--json", "--root", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in report["datasets"]}
    assert report["root"] == str(tmp_path)
    assert rows["digits"]["ready"] and not rows["nmnist-emulated"]["ready"]
    assert rows["dvsgesture"]["ready"] and not rows["cifar10"]["ready"]
    assert rows["cifar10"]["where"] == str(tmp_path / "cifar10" / "cifar-10-batches-py")
    assert rows["cifar10dvs"]["input_shape"] == [10, 2, 42, 42]
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    assert "missing" in capsys.readouterr().out


def test_data_prepare_generates_and_caches(tmp_path, capsys):
    args = ["data", "prepare", "nmnist-emulated", "--limit", "12", "--quiet", "--root", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    path = emulated_cache_path(EmulatedConfig.from_options(limit=12), str(tmp_path))
    assert path.is_file() and "12 recordings" in out and str(path) in out
    mtime = path.stat().st_mtime_ns
    assert main(args) == 0 and path.stat().st_mtime_ns == mtime  # cached: not rewritten
    assert main(args + ["--force"]) == 0 and path.stat().st_mtime_ns != mtime
    assert main(["data", "prepare", "cifar10", "--root", str(tmp_path)]) == 2  # cannot generate
    assert "cannot generate" in capsys.readouterr().err


def test_data_verify_exit_codes(tmp_path, capsys):
    assert main(["data", "verify", "--root", str(tmp_path)]) == 0  # nothing present, nothing asked
    assert main(["data", "verify", "cifar10", "--root", str(tmp_path)]) == 1  # asked, missing
    assert "missing" in capsys.readouterr().out
    write_cifar10(tmp_path)
    assert main(["data", "verify", "cifar10", "--root", str(tmp_path)]) == 1  # made-up files
    assert "MD5 mismatch" in capsys.readouterr().out
    assert main(["data", "verify", "cifar10", "--no-checksums", "--root", str(tmp_path)]) == 0
    assert main(["data", "verify", "digits", "--root", str(tmp_path)]) == 2
