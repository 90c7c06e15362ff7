# The README's two commands: `make demo` and `make test`. Both create .venv/ when missing.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.gfm-installed
# torch is installed first and pinned to the CPU build available here; a GPU user
# overrides it: `make TORCH_SPEC='torch' test` (or installs their CUDA torch into .venv first).
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export TORCH_EXTENSIONS_DIR ?= $(HOME)/.cache/gfm/torch_extensions
export TORCHINDUCTOR_CACHE_DIR ?= $(HOME)/.cache/gfm/inductor
export PYTHONHASHSEED := 0

# Tests use the real data folder beside the project when it exists (CI: ../shared/data);
# tests that need it skip with a reason otherwise. The demo never sets it.
TEST_DATA_DIR := $(or $(GFM_DATA_DIR),$(if $(wildcard ../shared/data/README.md),$(abspath ../shared/data),))

.PHONY: venv test test-slow demo lint fuzz bench clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet -e ".[dev]"
	@touch $(STAMP)

# pytest exits 5 when it collected no tests: that is a failure, not a pass.
# One OpenMP thread per process: the suite launches multi-process runs on 2 cores, where torch's
# default pool oversubscribes the machine and small ops slow down many-fold.
# The test targets let gfm delete torch-extension build locks older than 15 minutes
# (GFM_CLEAR_STALE_EXTENSION_LOCKS=1): a test run killed while DeepSpeed built an op under
# $(TORCH_EXTENSIONS_DIR) leaves its lock, and every later run would hang waiting for it.
# Library code never deletes them without this opt-in (it only names them in a warning).
test: $(STAMP)
	@GFM_CLEAR_STALE_EXTENSION_LOCKS=1 GFM_DATA_DIR="$(TEST_DATA_DIR)" OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -m "not slow" $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests (exit 5): failing" >&2; exit 1; fi; \
	exit $$status

test-slow: $(STAMP)
	GFM_CLEAR_STALE_EXTENSION_LOCKS=1 GFM_DATA_DIR="$(TEST_DATA_DIR)" $(PY) -m pytest -m "slow" $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m gfm.pipelines.demo $(DEMO_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(wildcard gfm tests benchmarks tokenizers pretrain finetune)

fuzz: $(STAMP)
	$(PY) -m gfm.testing.fuzz --num-graphs 100000

clean-venv:
	rm -rf $(VENV)
