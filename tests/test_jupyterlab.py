"""JupyterLab opens the chapters (Jupytext MyST markdown) as notebooks.

Starts a Jupyter server from the environment on a free loopback port and asks its contents API
for a chapter as a notebook, the request JupyterLab makes when it opens the file with the
Jupytext Notebook viewer.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port, token = free_port(), secrets.token_hex(16)
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime), JUPYTER_TOKEN=token)
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.root_dir={ROOT}", "--ServerApp.port_retries=0", "--allow-root"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail("jupyter server exited: " + process.stderr.read()[-3000:])
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("jupyter server did not start within 60 s")
    yield base, token
    process.terminate()
    process.wait(timeout=30)


def get(server, path: str) -> dict:
    base, token = server
    with urllib.request.urlopen(f"{base}{path}{'&' if '?' in path else '?'}token={token}", timeout=30) as r:
        return json.loads(r.read())


def test_chapter_opens_as_a_notebook(server):
    model = get(server, "/api/contents/book/01_neurons.md?type=notebook&content=1")
    assert model["type"] == "notebook"
    cells = model["content"]["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert len(code) >= 5
    assert any("snnlab.quick_mode()" in c["source"] for c in code)
    assert model["content"]["metadata"]["kernelspec"]["name"] == "python3"


def test_double_click_opens_chapters_as_notebooks():
    """scripts/setup-env.sh makes the Jupytext Notebook the default viewer for markdown."""
    overrides = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    if not overrides.exists():
        pytest.skip(f"{overrides} missing: this environment was not made by scripts/setup-env.sh")
    viewers = json.loads(overrides.read_text())["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["markdown"] == "Jupytext Notebook"
