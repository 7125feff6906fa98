# Quick start: `make demo` then `make test` (see README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast test-slurm bench bench-faults clean

install: $(STAMP)

# torch first, pinned: any other version or an open range pulls gigabytes of CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $(STAMP)

# The main job: 2 seeds of recurrent-ppo on perceptual-decision-making, every checkpoint
# evaluated, the report written. Its registry lives in ./.neurorl unless NEURORL_HOME is set.
demo: install
	$(BIN)/neurorl train perceptual-decision-making recurrent-ppo --seeds 0-1 --steps 30000 \
		--checkpoint-every 5000 --jobs 2 --name demo
	$(BIN)/neurorl eval demo --all-checkpoints --trials 500
	$(BIN)/neurorl eval demo --best
	$(BIN)/neurorl report demo --out report/demo

# Two workers, one test file each at a time (module fixtures train once): most tests wait on
# subprocesses and files, so two share two cores well (pytest 12-13 min on a fresh clone of this 2-core machine, which varies by about 10%; one process took 15.5 min before the suite grew).
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15 tests

# A one-node Slurm cluster on this machine (root; apt-get install slurm-wlm munge), then real
# sbatch arrays, scancel and requeue through `--launcher slurm`. The requeue test waits out
# Slurm's delay before a requeued job may start again (about 2 minutes).
test-slurm: install
	NEURORL_TEST_SLURM=1 $(BIN)/python -m pytest -q --durations=5 tests/test_launch_slurm.py

# Crash-detection latency, most concurrent registry writers, ingest lag with 64 workers.
bench-faults: install
	$(BIN)/python bench/faults.py

bench: install
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/learning.py
	$(BIN)/python bench/metarl.py speed
	$(BIN)/python bench/metarl.py harlow
	$(BIN)/python bench/metarl.py two-step
	$(BIN)/python bench/firefly.py eval
	$(BIN)/python bench/doom_adapter.py
	$(BIN)/python bench/doom_fps.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
