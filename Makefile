# Quick start: `make demo` (train, export, inpaint) and `make test`.
# Each target creates or reuses the virtual environment .venv: torch is installed
# first, pinned (a local CPU wheel where one is provided, the CUDA build from PyPI
# elsewhere), so that the package's `torch>=2.2` requirement is already met.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PY := $(VENV)/bin/python
# MNIST: $SURROGATE_DATA_DIR if set, else ../shared/data/mnist where it exists,
# else the cache (~/.cache/surrogate/mnist, downloaded with verification when online).
SURROGATE_DATA_DIR ?= $(wildcard $(abspath ../shared/data/mnist))
export SURROGATE_DATA_DIR

.PHONY: demo demo-map test bench clean-venv
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(PY) scripts/demo.py

# North Carolina SIDS: surrogates vs the exact BYM2, ICAR, CAR and GP models (libpysal's bundled map)
demo-map: $(VENV)/.installed
	$(PY) scripts/demo_map.py

# The Stan programs are compiled first, two at a time (a fresh machine: about 5 instead of 10 minutes), then the tests load them.
test: $(VENV)/.installed
	$(VENV)/bin/surrogate compile --jobs 2 --engine $${SURROGATE_TEST_ENGINE:-pystan}
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) scripts/bench_train.py
	$(PY) scripts/bench_inpaint.py

clean-venv:
	rm -rf $(VENV)
