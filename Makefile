# Two entry points: `make demo` (main job on the built-in synthetic data) and `make test`.
# Both create .venv and install everything they need on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first, pinned, so that the `torch>=2.4` requirement below is already
# satisfied and pip never pulls a different (CUDA) build.
TORCH_SPEC ?= torch==2.13.0
DATA ?= data/synth
RUN ?= runs/demo
CONFIG ?= configs/demo.yaml

.PHONY: demo test install install-dev clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(VENV)/bin/spikekws synth --out $(DATA) --lang en --speakers 200
	$(VENV)/bin/spikekws train $(CONFIG) data.root=$(DATA) --out $(RUN)
	$(VENV)/bin/spikekws evaluate $(RUN) --split test

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build src/*.egg-info
