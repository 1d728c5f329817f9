# Every target sets up .venv itself when it is missing, so a fresh clone needs only Python 3.11.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# pytest workers: the suite is CPU bound and mostly numpy; two workers fit a 2-core machine.
WORKERS ?= 2

.PHONY: help setup lab test test-slow test-fast exercises demo bench bench-gpu references calibrate clean

help:
	@echo "make lab        set up .venv and start JupyterLab on the course (nbgrader extension on)"
	@echo "make test       set up .venv and run the whole test suite"
	@echo "make demo       grade the bandit solution headlessly; feedback plots land in demo/"
	@echo "make exercises  regenerate exercises/ from solutions/ with nbgrader"
	@echo "make bench      run the speed benchmarks"
	@echo "make bench-gpu  run the GPU and multi-GPU benchmarks (on a machine with CUDA devices)"
	@echo "make references regenerate our own reference data (minutes)"
	@echo "make calibrate  regenerate the autograder calibration report (tens of minutes)"

setup: $(STAMP)

# On a machine without CUDA, install the CPU build of torch first: a plain `torch` requirement
# would otherwise pull several GB of CUDA packages.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "CUDA device found: installing torch from the index"; \
	else \
		echo "No CUDA device: installing the CPU build torch==2.13.0 first"; \
		$(PY) -m pip install --quiet torch==2.13.0; \
	fi
	$(PY) -m pip install --quiet -e ".[dev]"
	@# The grading sandbox uses bubblewrap when present (autograder/sandbox.py); install it where we can.
	@if ! command -v bwrap >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing bubblewrap for the grading sandbox"; \
		apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1) || \
		echo "bubblewrap could not be installed: grading falls back to rlimits and its bwrap tests are skipped"; \
	fi
	@touch $(STAMP)

# nbgrader's lab and server extensions are enabled by its package (tests/test_lab.py checks it).
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root,) course/00_rl_loop.ipynb

test: $(STAMP)
	$(PY) -m pytest -n $(WORKERS) -m "not slow and not gpu"

test-fast: $(STAMP)
	$(PY) -m pytest -n $(WORKERS) -m "not slow and not gpu and not notebooks"

test-slow: $(STAMP)
	$(PY) -m pytest -n $(WORKERS) -m "slow and not gpu"

exercises: $(STAMP)
	$(PY) -m autograder.release

demo: $(STAMP)
	$(PY) -m autograder check solutions/01_bandits/01_bandits.ipynb --json demo/results.json --plots demo

# Each benchmark measures rlcore against the alternative a user would pick, in the same run, and writes
# benchmarks/results/*.json. The bench extra adds the comparison libraries (Stable-Baselines3).
bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/bandits.py
	$(PY) benchmarks/vector_envs.py
	$(PY) benchmarks/ppo_cartpole.py
	$(PY) benchmarks/ppo_scaling.py
	$(PY) benchmarks/batch_scaling.py --jobs 2
	$(PY) benchmarks/ppo_gpu.py --device cpu --variants --variant-sizes 32 256 4096

# On a CUDA machine: on-device PPO from 1k to 1M environments, then data-parallel PPO over every GPU (nccl).
bench-gpu: $(STAMP)
	$(PY) benchmarks/ppo_gpu.py --device cuda --variants
	$(PY) benchmarks/ppo_scaling.py --device cuda --nproc $$(nvidia-smi -L | wc -l) --backend torch --num-envs 4096

references: $(STAMP)
	$(PY) -m autograder.references.generate

calibrate: $(STAMP)
	$(PY) -m autograder.calibration.calibrate

clean:
	rm -rf $(VENV) demo .pytest_cache
