# The two commands of the README: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
RUNS   ?= runs
DEMO   ?= build/demo

.PHONY: install jack test lint demo clean-demo

# Reinstall only when the project's requirements change.
$(VENV)/.installed: pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# The reference NSGT, a test oracle only: its setup.py imports numpy, so no build isolation.
	$(PY) -m pip install -q wheel && $(PY) -m pip install -q --no-build-isolation nsgt==0.19
	@touch $@

install: $(VENV)/.installed

# The MIDI tests use real rtmidi ports through a JACK dummy server (no ALSA sequencer on CI machines).
jack:
	@command -v jackd >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends jackd2 >/dev/null; }
	@scripts/start_jackd.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install jack
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# Short runs of every model on the built-in corpora, exports, devices and example renders.
demo: install
	$(PY) -m latentlive.demo --runs $(RUNS) --out $(DEMO)
