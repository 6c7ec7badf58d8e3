# Plain entry points. `make test` and `make demo` work on a fresh clone: they create .venv,
# install the project with pip (uv/poetry would download a multi-GB CUDA torch), then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Two test processes, one test file each at a time (a file shares its fixtures): the many
# waits on subprocesses and W&B overlap.
WORKERS ?= 2
# Plain pip takes torch from PyPI, whose Linux x86_64 wheel is the CUDA build and pulls the
# nvidia-* libraries (a 6.3 GB venv). A CPU-only machine can take PyTorch's CPU wheel (a few
# hundred MB) first: make test TORCH_INDEX=https://download.pytorch.org/whl/cpu. Without
# TORCH_INDEX on a machine with no NVIDIA driver (no nvidia-smi), make says so first.
TORCH_INDEX ?=
CPU_INDEX := https://download.pytorch.org/whl/cpu

.PHONY: install test test-fast durations demo readme-figure bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(TORCH_INDEX)" ] && ! command -v nvidia-smi >/dev/null 2>&1; then \
	  echo "make: no NVIDIA GPU here (no nvidia-smi), and PyPI's torch is the CUDA build (a" \
	       "6.3 GB venv); for PyTorch's CPU wheels (a few hundred MB) instead, stop this" \
	       "(Ctrl-C; make clean if it has finished) and run:" \
	       "make $(or $(MAKECMDGOALS),install) TORCH_INDEX=$(CPU_INDEX)"; fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet --index-url $(TORCH_INDEX) torch torchvision)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# W&B's sweep schema ships in its `sweeps` package, which pins numpy<2 (pandas 3 needs 2):
	# install it without its dependencies, for the schema file alone (tests validate with it).
	$(BIN)/python -m pip install --quiet --no-deps 'sweeps==0.3.0'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile $(PYTEST_ARGS)

# Without the tests measured slower than 2 s (tests/durations.json, from `make durations`).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

# Measure every test once (one process, so the times are each test's own) and keep them.
durations: $(STAMP)
	$(BIN)/python -m pytest -p no:xdist --store-durations $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/resnet-ablate demo --out reports/demo

# The README's figure: Fig. 6 of the runs `make demo` left (run first if there are none),
# and where and when it was drawn, for the caption beneath it.
readme-figure: $(STAMP)
	test -f reports/demo/figures/fig6.png || $(MAKE) demo
	cp reports/demo/figures/fig6.png docs/demo-fig6.png
	@echo "docs/demo-fig6.png: make demo on $$(date +%Y-%m-%d), $$(nproc) cores ($$(uname -m))," \
	      "resnet-ablate $$($(BIN)/resnet-ablate --version | cut -d' ' -f2): put this in the README's caption"

bench: $(STAMP)
	$(BIN)/python benchmarks/cli_startup.py
	$(BIN)/python benchmarks/complexity_time.py
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/analysis_scale.py --sizes 100 1000 --design-space 10000

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
