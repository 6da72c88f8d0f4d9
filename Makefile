# rlbind-bench developer targets. `make setup` is idempotent (seconds when nothing changed).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-slow lint lock bench clean

setup:
	@scripts/setup.sh

# Until the trained demo zoo lands: a LanguageBind-format checkpoint built here (random init, so accuracy
# is near chance) evaluated on real photos shipped in scikit-image, with the quick suite's threats.
demo: setup
	$(BIN)/rlbind-bench checkpoint build --modality image --size tiny --out runs/demo/checkpoint
	$(BIN)/rlbind-bench data prepare photos --data-root runs/demo/data
	$(BIN)/rlbind-bench run --model runs/demo/checkpoint --suite quick --dataset-dir image=runs/demo/data/photos \
	  --templates "a photo of a {}." --out runs/demo/results

test: setup
	$(BIN)/python -m pytest -q -x --durations=15

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check rlbind_bench tests benchmarks

lock:
	$(BIN)/pip freeze --all --exclude-editable | grep -v '^rlbind' > requirements/lock.txt

bench: setup
	$(BIN)/python benchmarks/attack_throughput.py

clean:
	rm -rf runs .pytest_cache
