# Two entry points that work on a fresh machine: `make demo` and `make test`.
# Each creates .venv, installs torch==2.13.0 (the CPU build) first, then the project.
# On a GPU machine, install your CUDA torch into .venv before `make` (see README).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,fal]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/longtake run configs/demo.yaml

bench: $(STAMP)
	$(PY) benchmarks/plan_bench.py

clean:
	rm -rf $(VENV) out configs/demo.longtake-work
