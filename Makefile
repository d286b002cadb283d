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
	# torchaudio for the parity extra: --no-deps so pip cannot swap torch for a CUDA build;
	# if its compiled extension cannot load (CUDA wheel beside a CPU torch), remove it:
	# torchaudio then runs pure-Python, which is all ltx-core uses (mel + resample).
	$(PY) -c "import torchaudio" 2>/dev/null || $(PY) -m pip install --quiet --no-deps "torchaudio>=2.11,<3"
	$(PY) -c "import torchaudio" 2>/dev/null || rm -f "$$($(PY) -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('torchaudio').origin).parent / 'lib')")"/*.so
	$(PY) -c "import torchaudio"
	$(PY) -m pip install --quiet -e ".[test,parity,ray,fal]"
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
