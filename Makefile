# rlbind-bench developer targets. `make setup` is idempotent (seconds when nothing changed).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo demo-results test test-slow lint lock bench bench-device bench-plan bench-options bench-vit-l clean

setup:
	@scripts/setup.sh

# The offline demo: real packaged data for four modalities, the committed demo zoo, the quick suite.
demo: setup
	$(BIN)/rlbind-bench data prepare demo
	$(BIN)/rlbind-bench run --out runs/demo

# The demo publication, from the committed run folders only (no training, no evaluation): docs/tuning-demo.md
# from experiments/demo-tuning/, docs/results-demo.md and leaderboards/demo/ from leaderboards/demo/runs/.
demo-results: setup
	$(BIN)/python scripts/zoo_table.py
	$(BIN)/python scripts/tuning_table.py
	$(BIN)/python scripts/results_demo.py
	find leaderboards/demo -mindepth 1 -maxdepth 1 ! -name runs -exec rm -rf {} +
	$(BIN)/rlbind-bench leaderboard $(sort $(dir $(wildcard leaderboards/demo/runs/*/*/summary.parquet))) --reference demo/backbone --out leaderboards/demo \
	  > /dev/null

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

# benchmarks/device.sh end to end on CPU with tiny sizes (the real run is one device call: docs/benchmarks.md).
bench-device: setup
	bash benchmarks/device.sh --dry-run --out out/device-dry-run.md

# The plan's expected time against measured runs (quick suite, reduced full suite, PGD on 64 images, AutoAttack on
# a subset of spoken digits and of videos: about 20 min), then AutoAttack's plan sub-attack by sub-attack (13 min).
bench-plan: setup
	$(BIN)/python benchmarks/plan_accuracy.py --threads 1 --append docs/benchmarks.md
	$(BIN)/python benchmarks/autoattack_stages.py --dataset demo-digits-audio --append docs/benchmarks.md
	$(BIN)/python benchmarks/autoattack_stages.py --dataset demo-digits-video --append docs/benchmarks.md

# --workers, --precision bf16 and --compile against the baseline on the quick suite: time and rows (6 min).
bench-options: setup
	$(BIN)/python benchmarks/runner_options.py --append docs/benchmarks.md

# LanguageBind-size towers: one process per modality (time, peak RSS), then the full-suite plan for an H100.
bench-vit-l: setup
	$(BIN)/python benchmarks/vit_l_towers.py --append docs/benchmarks.md
	$(BIN)/python benchmarks/plan_vit_l_h100.py --append docs/benchmarks.md

clean:
	rm -rf runs .pytest_cache
