# nanonn: the front door. `make demo` sets up and runs the main demo; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.PHONY: setup test demo bench clean

setup: $(STAMP)

$(STAMP): requirements.txt host/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e host
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	cd examples/xor && MICROPYPATH=../../mpy:.frozen $(abspath $(BIN))/micropython train_xor.py

clean:
	rm -rf $(VENV) .pytest_cache

bench: $(STAMP)
	$(PY) tools/bench.py
