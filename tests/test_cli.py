"""The snnlab command line: entry points and error behaviour."""

import json
import subprocess
import sys
from pathlib import Path

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
