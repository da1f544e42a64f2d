"""The snnlab command line: entry points and error behaviour."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from snnlab.cli import main

SNNLAB = Path(sys.executable).with_name("snnlab")


def test_info_prints_json(capsys):
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"snnlab", "torch", "numba", "quick_mode"} <= set(info)


def test_console_script_and_module_entry_points():
    for command in ([str(SNNLAB), "--version"], [sys.executable, "-m", "snnlab", "--version"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and result.stdout.startswith("snnlab "), result.stderr


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: snnlab" in capsys.readouterr().out


def test_unknown_command_exits_with_usage_error():
    result = subprocess.run([str(SNNLAB), "frobnicate"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "invalid choice" in result.stderr


# --- lazy start-up: `snnlab --help` must not pay for torch and Numba ----------------------------

_HEAVY = ("torch", "numba", "numpy", "sklearn", "matplotlib")


def _modules_after(code: str) -> set[str]:
    """Top-level module names imported by ``code`` in a fresh interpreter."""
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_help_and_version_import_neither_torch_nor_numba():
    help_all = ("from snnlab.cli import build_parser, COMMAND_MODULES\n"
                "import contextlib, io\n"
                "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
                "    build_parser().format_help()\n"
                "    try:\n"
                "        build_parser().parse_args(['--version'])\n"
                "    except SystemExit:\n"
                "        pass\n")
    loaded = _modules_after(help_all)
    assert "snnlab" in loaded
    assert not loaded & set(_HEAVY), sorted(loaded & set(_HEAVY))


@pytest.mark.parametrize("command", ["convert", "export", "evaluate", "data", "data fetch", "bench"])
def test_help_of_commands_without_model_lists_stays_light(command):
    # these commands' options name no model or data set, so their --help needs neither torch nor nir
    code = ("from snnlab.cli import build_parser\n"
            "import contextlib, io\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n"
            f"        build_parser().parse_args({command.split() + ['--help']!r})\n"
            "    except SystemExit:\n"
            "        pass\n"
            "assert '--help' in out.getvalue() or 'usage' in out.getvalue()\n")
    loaded = _modules_after(code)
    assert not loaded & {*_HEAVY, "nir"}, sorted(loaded & {*_HEAVY, "nir"})


def test_a_command_loads_what_it_needs_only_when_parsed():
    # `snnlab bench --help` lists the benchmarks without importing them (their docstrings are read
    # from source); parsing `snnlab bench neurons` adds its options, which imports that module
    listing = _modules_after("from snnlab.cli import build_parser\n"
                             "p = build_parser()\n"
                             "p._subparsers._group_actions[0].choices['bench'].format_help()\n")
    assert not listing & set(_HEAVY)
    parsed = _modules_after("from snnlab.cli import build_parser\n"
                            "args = build_parser().parse_args(['bench', 'neurons', '--quick'])\n"
                            "assert args.quick and args.benchmark == 'neurons'\n")
    assert "torch" in parsed


def test_bench_help_lists_every_benchmark_with_its_summary():
    from snnlab.bench import BENCHMARKS
    from snnlab.bench.cli import summary

    result = subprocess.run([str(SNNLAB), "bench", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for name, module in BENCHMARKS.items():
        assert name in text
        first = summary(module)
        assert first and first.split()[0] in text
    assert summary("snnlab.bench.neurons").startswith("Neuron kernels against SpikingJelly")


def test_lazy_parser_populates_once_on_parse_and_on_help():
    from snnlab.cli import LazyParser

    calls = []

    def populate(parser):
        calls.append(1)
        parser.add_argument("--size", type=int, default=3)

    p = LazyParser(prog="x", populate=populate)
    assert calls == []
    assert "--size" in p.format_help()
    assert p.parse_args(["--size", "5"]).size == 5
    assert calls == [1]


def test_package_names_still_resolve_lazily():
    loaded = _modules_after("import snnlab.training, snnlab.hardware, snnlab.data, snnlab.conversion, "
                            "snnlab.inference, snnlab.interop\n")
    assert not loaded & {"torch", "numba", "nir"}  # importing the packages is free ...
    from snnlab.conversion import convert
    from snnlab.data import DATASETS, load_dataset  # ... and their names still work
    from snnlab.hardware import simulate
    from snnlab.inference import adaptive_inference, evaluate_exit
    from snnlab.interop import from_nir
    from snnlab.training import BPTT, train

    assert "digits" in DATASETS and callable(load_dataset) and callable(simulate) and callable(train)
    assert BPTT.__module__ == "snnlab.training.methods"
    assert evaluate_exit.__module__ == "snnlab.inference.evaluate"
    assert adaptive_inference.__module__ == "snnlab.inference.adaptive"
    assert convert.__module__ == "snnlab.conversion.pipeline" and from_nir.__module__ == "snnlab.interop.importer"
    import snnlab.training

    try:
        snnlab.training.no_such_name
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:  # pragma: no cover
        raise AssertionError("an unknown name must raise AttributeError")


def test_an_exported_name_wins_over_its_same_named_submodule():
    # snnlab.conversion exports the functions energy() and codebook(), defined in the submodules
    # snnlab.conversion.energy and .codebook; importing a submodule first must not hide the function
    code = ("import snnlab.conversion.energy, snnlab.conversion.codebook, snnlab.viz.conversion\n"
            "import snnlab.conversion as c\n"
            "from snnlab.conversion import codebook, energy\n"
            "import types\n"
            "assert callable(c.energy) and not isinstance(c.energy, types.ModuleType), c.energy\n"
            "assert callable(codebook) and not isinstance(codebook, types.ModuleType), codebook\n"
            "assert energy is c.energy and codebook.__module__ == 'snnlab.conversion.codebook'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# ---- every error: one line and an exit code; --debug shows the traceback (issue 18, item 3) ----


def _fail_with(monkeypatch, error):
    """Make `snnlab info` raise ``error`` from inside the command."""
    import argparse

    import snnlab.cli as cli

    def func(args):
        raise error

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", lambda argv=None: argparse.Namespace(command="info", func=func))


def test_snnlab_errors_are_one_line_with_their_exit_code(monkeypatch, capsys):
    from snnlab.errors import CorruptFileError, NonFiniteLossError

    cases = [(CorruptFileError("/x/checkpoint.pt: unreadable; expected a checkpoint. Fix it."), 2),
             (NonFiniteLossError("the training loss became nan at epoch 1, batch 3"), 1),
             (ValueError("T must be >= 1, got 0."), 2),
             (PermissionError(13, "Permission denied", "/root/x"), 1),
             (FileNotFoundError("no checkpoint at /x"), 2),
             (KeyboardInterrupt(), 130)]
    for error, code in cases:
        _fail_with(monkeypatch, error)
        assert main(["info"]) == code, error
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("snnlab info: "), err
        assert "Traceback" not in err[0]
    assert err == ["snnlab info: interrupted."]


def test_unexpected_errors_say_so_and_debug_shows_the_traceback(monkeypatch, capsys):
    _fail_with(monkeypatch, RuntimeError("something deep inside torch"))
    assert main(["info"]) == 70
    err = capsys.readouterr().err
    assert "internal error (RuntimeError): something deep inside torch" in err
    assert "--debug" in err and "Traceback" not in err
    assert main(["info", "--debug"]) == 70  # --debug anywhere on the line
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: something deep inside torch" in err
    monkeypatch.setenv("SNNLAB_DEBUG", "1")
    main(["info"])
    assert "Traceback" in capsys.readouterr().err


def test_dataloader_worker_errors_are_reduced_to_their_message():
    from snnlab.errors import report_error

    wrapped = ValueError("Caught CorruptFileError in DataLoader worker process 0.\nOriginal Traceback (most "
                         "recent call last):\n  File \"x.py\", line 1, in f\nsnnlab.errors.CorruptFileError: "
                         "/d/4.npy: unreadable (truncated); expected a recording. Re-extract it.")
    import io

    stream = io.StringIO()
    assert report_error(wrapped, "train", stream=stream) == 2
    assert stream.getvalue() == ("snnlab train: error: /d/4.npy: unreadable (truncated); expected a recording. "
                                 "Re-extract it.\n")


def test_simulate_with_a_garbage_model_file_names_it(tmp_path, capsys):
    import torch

    cases = {"garbage.pt": b"definitely not a torch file", "empty.pt": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    (tmp_path / "folder.pt").mkdir()
    for name in ("garbage.pt", "empty.pt", "foreign.pt", "folder.pt"):
        assert main(["simulate", "--model", str(tmp_path / name), "--samples", "2"]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"snnlab simulate: error: {tmp_path / name}: "), err
        assert "expected an ATSN network saved by snnlab.models.atsn_vgg.save_atsn_vgg" in err[0]
        assert "save_atsn_vgg(model, path)" in err[0]
