# Two commands set everything up on a fresh Debian or Raspberry Pi OS machine:
#   make demo   simulated meters + local broker + the bridge, live values in the terminal
#   make test   installs what the tests need (including Mosquitto) and runs the whole suite

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv mosquitto mbpoll addon-tools chromium lint typecheck test test-repeat ha-python test-ha test-fast demo bench bench-quick soak clean addon-repo

help:
	@echo "make demo        run the bridge on simulated meters with a local broker"
	@echo "make test        lint, type-check and run the test suite (all but the Home Assistant tests)"
	@echo "make test-repeat the suite N times in a row, stopping at the first failure (N=5)"
	@echo "make test-fast   the suite without the slow tests, stopping at the first failure"
	@echo "make test-ha     our discovery against a real Home Assistant (needs Python 3.13)"
	@echo "make lint        ruff on bridge/ and tests/, and the import contracts"
	@echo "make typecheck   mypy --strict on bridge/"
	@echo "make bench       benchmarks (bus utilisation, CPU, memory), results in bench-results/"
	@echo "make bench-quick the same figures in under a minute"
	@echo "make soak        one hour against 63 simulated meters with faults injected"
	@echo "make addon-repo  assemble the Home Assistant add-on repository in $(ADDON_OUT)/"
	@echo "make clean       remove the virtual environment and caches"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv is missing: sudo apt-get install python3-venv"; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

# Mosquitto from Debian's packages when it is missing (the tests and the demo start their own
# broker on a free loopback port; a system broker is not needed and not touched).
mosquitto:
	@.ci/ensure-mosquitto

# mbpoll, a Modbus client nobody here wrote, reads through the bridge's Modbus server in tests.
mbpoll:
	@.ci/ensure-command mbpoll mbpoll

# The add-on's tests: apparmor_parser checks its AppArmor profile (parse only, nothing is
# loaded) and strace records what the bridge touches (Debian's apparmor and strace).
addon-tools:
	@.ci/ensure-command apparmor_parser apparmor
	@.ci/ensure-command strace strace

# Chromium from Debian's packages when it is missing: the status page tests drive it with
# Playwright (never `playwright install`, which downloads a browser of its own).
chromium:
	@.ci/ensure-chromium

# ruff, and the import contracts in pyproject.toml (layers, edges, no cycles).
lint: venv
	$(VENV)/bin/ruff check bridge tests
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy

# The suite `make test` runs: everything but the Home Assistant tests (`make test-ha`); the
# gpio-sim tests run where the kernel module is there and skip with the reason where not.
SUITE := $(VENV)/bin/pytest -q -p no:cacheprovider -m "not homeassistant" tests

test: venv mosquitto mbpoll addon-tools chromium lint typecheck
	$(SUITE)

# The suite N times in a row, stopping at the first failure: a test that fails one run in a few
# is a defect. `make test-repeat N=5` (6-10 minutes a run).
N ?= 5
test-repeat: venv mosquitto mbpoll addon-tools chromium lint typecheck
	@for i in $$(seq 1 $(N)); do \
	  echo "== run $$i of $(N), $$(date -u +%H:%M:%S) UTC"; \
	  $(SUITE) || { echo "run $$i of $(N) failed"; exit 1; }; \
	done; echo "$(N) runs in a row passed"

# Our discovery against a real Home Assistant 2025.4.4 (Python 3.13, a few minutes to install).
HA_VENV ?= .ha-venv
# A python3.13 that runs (a pyenv shim may exist without the version being selected).
HA_PY ?= $(shell python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null || \
  ls -d $(HOME)/.pyenv/versions/3.13*/bin/python3 2>/dev/null | tail -1)
$(HA_VENV)/.installed:
	$(HA_PY) -m venv $(HA_VENV)
	# pymodbus for the modbus: integration; the frontend for the device-page screenshots.
	$(HA_VENV)/bin/pip install --quiet homeassistant==2025.4.4 pymodbus==3.8.3 \
	  home-assistant-frontend==20250411.0
	@touch $@

# Checked first: without it the install of Home Assistant would fail late and obscurely.
ha-python:
	@test -n "$(HA_PY)" && $(HA_PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' \
	  2>/dev/null || { \
	  echo "make test-ha needs Python 3.13 (Home Assistant 2025.4 requires it) found: $(or $(HA_PY),none)."; \
	  echo "Install it (Debian 13: apt-get install python3.13-venv; or pyenv install 3.13)"; \
	  echo "or name it: make test-ha HA_PY=/path/to/python3.13"; exit 2; }

test-ha: ha-python venv mosquitto $(HA_VENV)/.installed
	HA_PYTHON=$(HA_VENV)/bin/python $(VENV)/bin/pytest -q -p no:cacheprovider -m homeassistant tests

test-fast: venv
	$(VENV)/bin/pytest -q -x -p no:cacheprovider tests -m "not slow"

# `make demo DEMO_ARGS="--seconds 20"` ends by itself (used by the test suite).
demo: venv mosquitto
	$(PY) -m bridge demo $(DEMO_ARGS)

bench: venv mosquitto
	$(PY) -m tests.bench.run --out bench-results/latest.json

bench-quick: venv mosquitto
	$(PY) -m tests.bench.run --quick --out bench-results/quick.json

soak: venv mosquitto
	$(PY) -m tests.faults.soak --minutes 60 --meters 63 --faults 0.05 --poll-interval 1 \
	  --sample-s 60 --out bench-results/soak-1h.json

# The Home Assistant add-on repository: addon/ plus the bridge's wheel, which the add-on's
# Dockerfile installs (the Supervisor builds with addon/series4000/ as the context).
ADDON_OUT ?= dist/addon-repository

addon-repo:
	rm -rf $(ADDON_OUT)
	mkdir -p $(ADDON_OUT)
	cp -R addon/repository.yaml addon/README.md addon/series4000 $(ADDON_OUT)/
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir $(ADDON_OUT)/series4000/wheels .
	@echo "add-on repository in $(ADDON_OUT)/ (push its contents to the add-on repository)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
