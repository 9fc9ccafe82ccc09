# Two commands for a fresh machine (Python 3.11, git, make):
#   make demo   install into .venv and run the main job on data/sample, outputs in out/
#   make test   install the test extras and run the whole suite
#   make lab    JupyterLab on notebooks/ (from the venv)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One PyTensor compile cache for every run and test (compiling dominates PyMC's cost).
export PYTENSOR_FLAGS ?= base_compiledir=$(CURDIR)/.cache/pytensor
export MPLBACKEND ?= Agg

.PHONY: demo test test-portable lint install install-test clean lab

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,spark,bigquery,snowflake]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/roi demo --out out

test: install-test
	$(BIN)/python -m pytest

# "Another machine" (README, Reproducibility): numpy without its AVX2/AVX-512 loops (numpy 2.4
# names: older names such as AVX2 are ignored with only an ImportWarning), OpenBLAS's Sandybridge
# kernels, XLA compiling for SSE4.2, numba for a generic x86-64. make test-portable PYTEST_ARGS="tests/test_did.py -x"
ANOTHER_CPU := NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR" \
	OPENBLAS_CORETYPE=Sandybridge XLA_FLAGS=--xla_cpu_max_isa=SSE4_2 NUMBA_CPU_NAME=generic

test-portable: install-test
	$(ANOTHER_CPU) $(BIN)/python -m pytest $(PYTEST_ARGS)

# JupyterLab from the project's venv on the notebooks (they open out/, the demo's run)
lab: install
	$(BIN)/jupyter lab notebooks/

lint: install-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) out .cache .pytest_cache
