# Plain entry points. `make test` and `make demo` work on a fresh clone: they create .venv,
# install the project with pip (uv/poetry would download a multi-GB CUDA torch), then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install test test-fast demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# W&B's sweep schema ships in its `sweeps` package, which pins numpy<2 (pandas 3 needs 2):
	# install it without its dependencies, for the schema file alone (tests validate with it).
	$(BIN)/python -m pip install --quiet --no-deps 'sweeps==0.3.0'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/resnet-ablate demo --out reports/demo

bench: $(STAMP)
	$(BIN)/python benchmarks/complexity_time.py
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
