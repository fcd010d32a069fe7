# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q -c constraints.txt

.PHONY: demo test test-all bench sysdeps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.core: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.full: $(VENV)/.core
	$(PIP) -e '.[keras,text,speech,export,serve,baselines,nixtla,tensorboard,dev]'
	touch $@

# System packages (espeak-ng for the speech corpus). Installs as root; otherwise says what to install.
sysdeps:
	@bash scripts/sysdeps.sh

$(VENV)/.demo: $(VENV)/.core
	$(PIP) -e '.[speech,export,serve]'
	touch $@

demo: $(VENV)/.demo sysdeps
	$(BIN)/rnnkit demo

test: $(VENV)/.full sysdeps
	OMP_NUM_THREADS=1 KERAS_BACKEND=torch $(BIN)/python -m pytest -q -n 2

test-all: $(VENV)/.full sysdeps
	OMP_NUM_THREADS=1 KERAS_BACKEND=torch $(BIN)/python -m pytest -q -n 2 -m ''

bench: $(VENV)/.full
	KERAS_BACKEND=torch $(BIN)/rnnkit bench

clean:
	rm -rf $(VENV) runs
