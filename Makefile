# Two commands do all the set-up on a fresh machine:
#   make repro   -- create .venv (when absent), install llfer, run `dvc repro` (embedded synthetic data, CPU, offline)
#   make test    -- create or reuse .venv and run the test suite
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.llfer-installed
TORCH_PINS := "torch>=2.4,<=2.14.1" "torchvision<=0.29.1"
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install repro test test-fast bench ci-pipeline baseline clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q $(TORCH_PINS)
	$(PY) -m pip install --disable-pip-version-check -q -e ".[test]"
	@touch $(STAMP)

repro: $(STAMP)
	$(VENV)/bin/dvc repro

test: $(STAMP)
	$(PY) -m pytest -q -m "not gpu"

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not gpu and not slow"

bench: $(STAMP)
	$(PY) benchmarks/bench_pipeline.py

# What the pull-request workflow runs: pull the DVC cache, re-run changed stages, push, report (ci/pipeline.sh).
# BASE: the revision to compare metrics and params with (default HEAD); DVC_REMOTE_URL: the remote.
ci-pipeline: $(STAMP)
	ci/pipeline.sh $(BASE)

# Reproduce the default pipeline and commit dvc.lock and metrics/ as the published baseline (ci/baseline.sh).
baseline: $(STAMP)
	ci/baseline.sh

clean-venv:
	rm -rf $(VENV)
