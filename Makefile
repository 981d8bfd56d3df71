# The two commands of the README: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
RUNS   ?= runs
DEMO   ?= build/demo

.PHONY: install lock jack test lint demo report tensorboard

# Installs come from requirements.lock (every direct and transitive dependency, exact versions), so a
# clean clone gets what CI tested. `make lock` regenerates it after a change to pyproject.toml.
PIP_VERSION := 26.3
UV_VERSION  := 0.13.9
# The reference NSGT, a test oracle only (sdist; its setup.py imports numpy, so no build isolation).
NSGT_VERSION := 0.19

# Reinstall only when the lock or the project's requirements change.
$(VENV)/.installed: requirements.lock pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q pip==$(PIP_VERSION)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip install -q --no-deps --no-build-isolation nsgt==$(NSGT_VERSION)
	@touch $@

# Resolve pyproject.toml (with the test extra) to exact versions for every platform and Python >= 3.11.
lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv==$(UV_VERSION)
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --universal --fork-strategy fewest \
	  --python-version 3.11 --custom-compile-command "make lock" -o requirements.lock
	@echo "requirements.lock written; run make install (or make test) to install it"

install: $(VENV)/.installed

# The MIDI tests use real rtmidi ports through a JACK dummy server (no ALSA sequencer on CI machines).
# Installed with apt where there is apt; elsewhere (macOS) say so once and go on.
jack:
	@if command -v jackd >/dev/null; then scripts/start_jackd.sh; \
	elif command -v apt-get >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends jackd2 >/dev/null \
	  && scripts/start_jackd.sh; \
	else echo "make jack: no jackd and no apt-get here; skipping the JACK install (macOS: brew install jack), the MIDI port tests will say so"; fi

# TensorBoard on the runs of `make demo` (or RUNS=...): scalars, audio, figures.
tensorboard: install
	$(VENV)/bin/tensorboard --logdir $(RUNS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Two pytest workers (pytest-xdist): each test runs on one thread, so a 2-core machine runs two at once. The
# tests on JACK ports keep to one worker (tests/conftest.py). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test: install jack
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

# Short runs of every model on the built-in corpora, exports, devices and example renders.
demo: install
	$(PY) -m latentlive.demo --runs $(RUNS) --out $(DEMO)

# The quality tables of docs/quality.md: demo configs at seeds 0, 1, 2, each scored on its test split.
report: install
	$(VENV)/bin/latentlive report --out build/report
	cp build/report/report.md docs/quality.md
