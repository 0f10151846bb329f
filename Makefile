# The two quickstart commands: `make sweep` (the main job) and `make test` (the suite).
# Each first creates/updates the virtual environment and prebuilds the C kernels.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Real MNIST for the main job and the tests: $MNIST_DIR if set, else the team's shared copy beside
# the checkout when there is one (otherwise the loader's own search: cache, download, fallbacks).
MNIST_DIR ?= $(wildcard $(abspath ../shared/data/mnist))
export MNIST_DIR

.PHONY: setup sweep test test-fast bench lint browser gpu-wheels

$(STAMP): pyproject.toml $(wildcard */__init__.py)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0" "triton==3.6.0" "numpy<2.4"
	$(BIN)/pip install -q -e ".[test]" "torch==2.13.0" "triton==3.6.0" "numpy<2.4"
	touch $(STAMP)

setup: $(STAMP)
	$(BIN)/python -m kernels_c.build

# The issue asks for kernels that work on Triton 3.6 (the GPU machine's) "and later": the newest
# release we know of, installed beside the venv's 3.6 and put first on PYTHONPATH for one test run.
TRITON_NEXT := 3.9.0
NEXT := $(VENV)/triton-$(TRITON_NEXT)
$(NEXT)/.installed: $(STAMP)
	$(BIN)/pip install -q --no-deps --target $(NEXT) "triton==$(TRITON_NEXT)"
	touch $@

sweep: setup
	$(BIN)/python -m harness sweep

lint: setup
	$(BIN)/ruff check .

# Headless Chromium renders the report in the browser test; installed when we may (root + apt).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
		echo "chromium not installed: the browser test will be skipped"

# The whole suite: the default run, the slow tests, the Triton kernels in the interpreter (on 3.6
# and on the newest Triton), compiling autotune candidates ahead and direct launches on the newest
# Triton too (both use Triton's launch path), and the device-parametrized op and engine tests on the
# cuda device in the interpreter.
test: setup lint browser $(NEXT)/.installed
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q -m slow
	TRITON_INTERPRET=1 $(BIN)/python -m pytest -q -m triton_interpret tests/kernels
	PYTHONPATH=$(abspath $(NEXT)) $(BIN)/python -c "import triton; print('triton', triton.__version__)"
	PYTHONPATH=$(abspath $(NEXT)) TRITON_INTERPRET=1 $(BIN)/python -m pytest -q \
		-m triton_interpret tests/kernels
	PYTHONPATH=$(abspath $(NEXT)) $(BIN)/python -m pytest -q tests/kernels/test_compile_ahead.py \
		tests/kernels/test_launch.py
	TRITON_INTERPRET=1 $(BIN)/python -m pytest -q -k cuda tests/backend tests/engine

# The quick loop while developing: the default run only.
test-fast: setup
	$(BIN)/python -m pytest -q

# Pure-Python wheels of the harness's config stack (plus PyYAML for CPython 3.12) for the lent GPU
# machine, which reaches no package index: carry .gpu_wheels with the working tree and
# bench/gpu_check.sh installs what that machine lacks.
gpu-wheels: setup
	rm -rf .gpu_wheels && mkdir -p .gpu_wheels
	$(BIN)/pip wheel -q --no-deps -w .gpu_wheels hydra-core==1.3.8 omegaconf==2.3.1 \
		antlr4-python3-runtime==4.9.3 packaging pytest-timeout==2.4.0
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--platform manylinux2014_x86_64 -d .gpu_wheels PyYAML==6.0.4

# OPENBLAS_* tuning variables set on some machines slow numpy's baseline; unset them here only.
bench: setup
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python bench/matmul.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python bench/conv.py
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python bench/train_step.py
