# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# The torch pin lives here only (pyproject says torch>=2.4): 2.13.0 is the local CPU build, and installing
# everything in one pip command keeps pip from ever replacing it with a CUDA build.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
OUT ?= outputs

.PHONY: env test lint demo bench clean

env: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN) -r requirements.txt -e .
	touch $@

lint: env
	$(VENV)/bin/ruff check src tests benchmarks

test: env lint
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --durations=15 -q

demo: env
	$(VENV)/bin/stdpose demo --out $(OUT)

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
