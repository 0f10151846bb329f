# The two quickstart commands: `make sweep` (the main job) and `make test` (the suite).
# Each first creates/updates the virtual environment and prebuilds the C kernels.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MNIST_DIR ?= $(abspath ../shared/data/mnist)
export MNIST_DIR

.PHONY: setup sweep test test-all bench lint

$(STAMP): pyproject.toml $(wildcard */__init__.py)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0" "triton==3.6.0" "numpy<2.4"
	$(BIN)/pip install -q -e ".[test]" "torch==2.13.0" "triton==3.6.0" "numpy<2.4"
	touch $(STAMP)

setup: $(STAMP)
	$(BIN)/python -m kernels_c.build

sweep: setup
	$(BIN)/python -m harness sweep

lint: setup
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/python -m pytest -q
	TRITON_INTERPRET=1 $(BIN)/python -m pytest -q -m triton_interpret tests/kernels

test-all: setup
	$(BIN)/python -m pytest -q -m ""

# OPENBLAS_* tuning variables set on some machines slow numpy's baseline; unset them here only.
bench: setup
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python bench/matmul.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python bench/conv.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python bench/train_step.py
