# rlbind-bench developer targets. `make setup` is idempotent (seconds when nothing changed).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-slow lint lock bench clean

setup:
	@scripts/setup.sh

# The offline demo: real packaged data for four modalities, the committed demo zoo, the quick suite.
demo: setup
	$(BIN)/rlbind-bench data prepare demo
	$(BIN)/rlbind-bench run --out runs/demo

test: setup
	$(BIN)/python -m pytest -q -x --durations=15

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check .

lock:
	$(BIN)/pip freeze --all --exclude-editable | grep -v '^rlbind' > requirements/lock.txt

bench: setup
	$(BIN)/python benchmarks/attack_throughput.py --append docs/benchmarks.md
	$(BIN)/python benchmarks/end_to_end_pgd.py --n 600 --size small --append docs/benchmarks.md
	$(BIN)/python benchmarks/corruption_share.py --append docs/benchmarks.md

clean:
	rm -rf runs .pytest_cache
