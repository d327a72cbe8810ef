# Two commands do all the set-up: `make lab` opens the series, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# `make setup` installs the exact versions of requirements.lock (`make lock` refreshes it; LOCK= installs the
# newest releases instead). The install is redone only when pyproject.toml's or the lock's content changes
# (nbdev-export rewrites pyproject.toml, so its modification time says nothing).
LOCK ?= requirements.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha256sum | cut -c1-16)
LAB_ARGS ?=

.PHONY: lab lab-test test outputs setup lock data export clean-nbs readme bench help

help:
	@echo "make lab   - set up .venv if needed, prepare the data, open JupyterLab on your copies of nbs/ in _lab/nbs/ (LAB_ARGS=... passes options)"
	@echo "make lab-test - run every notebook in JupyterLab in headless Chromium (screenshots in _lab/screenshots/)"
	@echo "make lock  - refresh requirements.lock, the exact versions make setup installs (newest releases that fit)"
	@echo "make test  - set up .venv if needed, then every check CI makes (tools/run_checks.py)"
	@echo "make outputs - run the notebooks and write their outputs into them (NB=14_accuracy for one)"
	@echo "make site  - write the reading version to _site/ (pages and slides) from the committed outputs"
	@echo "make site-test - check _site/ in headless Chromium and save screenshots"
	@echo "make bench - time imports, loading and scoring against the chapter's way (a few minutes; writes benchmarks/results.md)"

setup: $(STAMP)

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing mnist_basics and its dependencies into $(VENV) (first time only, a few minutes)..."
	@# pip's notes about this machine's unused local package folders are noise: keep every other line.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" $(if $(LOCK),-c $(LOCK)) 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

# The newest releases that install together, frozen into requirements.lock (in a throw-away venv; commit the lock).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
	@# PyTorch pins its own CUDA runtime exactly (nvidia-*, cuda-*, triton): those are left to it.
	@{ echo "# Exact versions that make setup installs (pip constraints), made with Python $$(.lock-venv/bin/python -V | cut -d' ' -f2)."; \
	   echo "# Refresh with make lock (PYTHON=python3.x picks the Python; use the oldest you support)."; \
	   .lock-venv/bin/python -m pip freeze --exclude-editable | grep -viE '^(nvidia-|cuda-|triton==)'; } > $(LOCK)
	rm -rf .lock-venv
	@echo "wrote $(LOCK): $$(grep -vc '^#' $(LOCK)) packages"

data: $(STAMP)
	@$(BIN)/mnist-basics data

# JupyterLab opens your own copies of the lessons in _lab/nbs/ (gitignored; see tools/lab.py), so running
# and saving never changes nbs/. No news pop-up; kernels idle for 20 minutes are shut down.
lab: data
	$(BIN)/python tools/lab.py $(LAB_ARGS)

# Every notebook run in JupyterLab in headless Chromium (tools/lab_test.py); screenshots in _lab/screenshots/.
lab-test: data
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium for the browser test..."; \
		$(APT) update -qq && $(APT) install -y -qq chromium >/dev/null; }
	$(BIN)/python tools/lab_test.py $(LAB_TEST_ARGS)

# (node_modules/ holds MathJax and reveal.js for the reading site that `make test` builds and checks)
test: $(STAMP) node_modules/.package-lock.json
	@$(BIN)/python tools/run_checks.py

# Run notebooks (two at a time, OMP_NUM_THREADS=1 each, tools/run_notebooks.py) and write their outputs into
# them, cleaned with nbdev-clean: `make outputs` for all, `make outputs NB=14_accuracy` (or several) for some.
NB ?=
outputs: $(STAMP)
	$(BIN)/python tools/run_notebooks.py --write $(NB)

export: $(STAMP)
	$(BIN)/nbdev-export

clean-nbs: $(STAMP)
	$(BIN)/nbdev-clean

readme: $(STAMP)
	$(BIN)/python tools/make_readme.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

# ---- The reading site and slides: tools/build_site.py, checked in Chromium by tools/site_test.py ----
# `make site` renders the committed notebooks (their outputs as committed: nothing is run) to _site/: one page
# per notebook, a deck of its hand-picked cells in _site/slides/ (`make slides` is another name for the same build)
# and Pagefind's search index; `make site-test` opens every page in headless Chromium (Debian's chromium, installed
# when missing, or $CHROMIUM), runs axe-core on it and saves screenshots in _site_shots/.
.PHONY: site slides site-test
NPM ?= npm
NODE_STAMP := node_modules/.package-lock.json
APT := $(shell [ "$$(id -u)" = 0 ] || echo sudo) env DEBIAN_FRONTEND=noninteractive apt-get

# MathJax, reveal.js, Pagefind and axe-core for the pages and their test, from the npm registry (package-lock.json).
$(NODE_STAMP): package.json package-lock.json
	@command -v $(NPM) >/dev/null || { echo "npm not found: install Node.js and npm (e.g. $(APT) install -y nodejs npm)"; exit 1; }
	$(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

site: $(STAMP) $(NODE_STAMP)
	$(BIN)/python tools/build_site.py

slides: site

site-test: $(STAMP) $(NODE_STAMP)
	@[ -n "$$CHROMIUM" ] || command -v chromium >/dev/null || { echo "Installing Debian's chromium for the browser test..."; \
		$(APT) update -qq && $(APT) install -y -qq chromium >/dev/null; }
	$(BIN)/python tools/site_test.py
