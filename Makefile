# catdog: make install, make train, make test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# make train DATA=path/to/folder WEIGHTS=path/to/weights.h5 OUT=runs/mine
DATA ?= tfds:cats_vs_dogs
VAL_DATA ?=
WEIGHTS ?= imagenet
OUT ?= runs/cats_vs_dogs
ARGS ?=

# Real ImageNet weights and photographs, where a ../shared folder provides them.
SHARED ?= $(abspath ../shared)
ifneq ($(wildcard $(SHARED)/keras/models),)
export KERAS_HOME ?= $(SHARED)/keras
endif

.PHONY: install train test test-slow test-all bench levers bench-recipes clean

install: $(BIN)/catdog

$(BIN)/catdog: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[dev,jax,export,serve]"
	@touch $@

train: $(BIN)/catdog
	$(BIN)/catdog train --data $(DATA) $(if $(VAL_DATA),--val-data $(VAL_DATA)) --weights $(WEIGHTS) --out $(OUT) $(ARGS)

# Two workers (pytest-xdist), one test file each at a time; TEST_WORKERS=0 runs in
# this process. `make test` is the default suite (README, Tests); the long runs
# marked `slow` (benchmark scripts, JAX and multi-process runs, big backbones,
# killed and resumed runs) are `make test-slow`; CI runs both (`make test-all`).
TEST_WORKERS ?= 2
PYTEST = $(BIN)/python -m pytest -q --durations=15 $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
test: $(BIN)/catdog
	$(PYTEST) -m "not slow"

test-slow: $(BIN)/catdog
	$(PYTEST) -m slow

test-all: $(BIN)/catdog
	$(PYTEST)

# Speed and accuracy figures (9 minutes on the 2-core Intel Xeon, 27 on the older AMD): writes BENCHMARKS.md.
bench: $(BIN)/catdog
	$(BIN)/python benchmarks/bench.py --out BENCHMARKS.md $(BENCH_ARGS)

# Each speed lever on and off (3-4 minutes), then BENCHMARKS.md again with them.
levers: $(BIN)/catdog
	$(BIN)/python benchmarks/levers.py
	$(BIN)/python benchmarks/bench.py --out BENCHMARKS.md --render

# Candidate recipes x seeds on validation and the robustness suite (about 2 hours
# of both cores for all; resumable: runs already in benchmarks/results/recipes.json
# are skipped), then BENCHMARKS.md again with them. RECIPES_ARGS="--candidates default tutorial --seeds 0".
RECIPES_ARGS ?=
bench-recipes: $(BIN)/catdog
	$(BIN)/python benchmarks/recipes.py $(RECIPES_ARGS)
	$(BIN)/python benchmarks/bench.py --out BENCHMARKS.md --render

clean:
	rm -rf runs .pytest_cache build *.egg-info
