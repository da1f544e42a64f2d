# snnlab: every target creates the environment in .venv/ when it is missing (or when
# pyproject.toml changed since it was made), then does its job.
#
#   make book    build the executed book site (offline) and print where to open it
#   make test    run the whole test suite: unit tests, every chapter (nbmake), browser check
#   make lab     open the chapters in JupyterLab

SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.snnlab-installed

.PHONY: env book test lab clean

env: $(STAMP)

$(STAMP): pyproject.toml
	@bash scripts/setup-env.sh $(VENV)
	@touch $(STAMP)

book: $(STAMP)
	$(PY) scripts/build_book.py --jobs 2

test: $(STAMP)
	@bash scripts/ensure-chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab book/

clean:
	rm -rf book/_build book/.jupyter_cache tests/_notebooks test-artifacts
