#!/usr/bin/env bash
# Create (or update) snnlab's environment in the given folder (default .venv) and install
# snnlab into it in editable mode with its test and bench extras (the bench extra brings
# SpikingJelly, snnTorch and Norse: the baselines of `snnlab bench` and the NIR cross-check that
# the tests run). Safe to run again. SNNLAB_EXTRAS=test installs the test extra only.
set -euo pipefail
venv="${1:-.venv}"
cd "$(dirname "$0")/.."

find_python() {
    for candidate in "${SNNLAB_PYTHON:-}" python3.11 python3 python; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}

if [ ! -x "$venv/bin/python" ]; then
    if ! py=$(find_python); then
        echo "snnlab needs Python 3.11 to create $venv, and found none on PATH (tried python3.11, python3, python)." >&2
        echo "Install Python 3.11 (for example with pyenv or your package manager), or point SNNLAB_PYTHON at one:" >&2
        echo "  SNNLAB_PYTHON=/path/to/python3.11 make test" >&2
        exit 1
    fi
    echo "==> creating $venv with $py ($("$py" --version))"
    "$py" -m venv "$venv"
fi

echo "==> installing snnlab and its dependencies into $venv (first time: a few minutes)"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --progress-bar off -e ".[${SNNLAB_EXTRAS:-test,bench}]"
# JupyterLab: open the book's Jupytext chapters (.md) as notebooks on a double click.
settings="$venv/share/jupyter/lab/settings"
mkdir -p "$settings"
cat > "$settings/overrides.json" <<'JSON'
{
  "@jupyterlab/docmanager-extension:plugin": {
    "defaultViewers": {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}
  }
}
JSON
echo "==> environment ready: $venv/bin/python, $venv/bin/snnlab"
