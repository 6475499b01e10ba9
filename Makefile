# Quick start: `make demo`, then `make test`. Both create .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.birdlab-installed
export ZIG_GLOBAL_CACHE_DIR ?= $(HOME)/.cache/birdlab/zig
export BIRDLAB_CACHE_DIR ?= $(HOME)/.cache/birdlab

.PHONY: demo test lint lab clean-venv wasm pi-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]' -c constraints.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m birdlab demo

# The notebooks run under nbval at the smoke size (BIRDLAB_NOTEBOOK_SIZE=smoke), after the tests.
test: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m mypy
	BIRDLAB_NOTEBOOK_SIZE=smoke $(BIN)/python -m pytest --nbval-lax --nbval-current-env tests notebooks

# edge_runtime in an emulated Raspberry Pi OS 64-bit userland (Debian bookworm arm64 under qemu-user-static)
# against the host: identical decisions, probabilities within 1e-6. Needs root; ~5+ min cold, cached after.
# Writes bench/results/pi-check.json; exit 75 = infrastructure error (mirror, PyPI, fork limits), worth a retry.
pi-check: $(STAMP)
	PI_CHECK_HOST_PYTHON=$(abspath $(BIN))/python bash bench/pi_check/pi_check.sh

lint: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m mypy

# melspec.wasm (cpp_melspec/) into the source-hash cache; the demo and the parity tests also build it when missing.
wasm: $(STAMP)
	$(BIN)/python -m birdlab wasm build

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean-venv:
	rm -rf $(VENV)
