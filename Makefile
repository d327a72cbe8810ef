# Two commands do all the set-up: `make lab` opens the series, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The install is redone only when pyproject.toml's content changes (nbdev-export rewrites the file,
# so its modification time says nothing).
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
LAB_ARGS ?=
# JupyterLab refuses to start as root unless told it may.
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: lab test setup data export clean-nbs readme bench help

help:
	@echo "make lab   - set up .venv if needed, prepare the data, open JupyterLab on nbs/ (LAB_ARGS=... passes options)"
	@echo "make test  - set up .venv if needed, then every check CI makes"
	@echo "make site  - run every notebook and write the reading version to _site/ (pages and slides)"
	@echo "make site-test - check _site/ in headless Chromium and save screenshots"
	@echo "make bench - time imports, loading and scoring against the chapter's way (a few minutes; writes benchmarks/results.md)"

setup: $(STAMP)

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing mnist_basics and its dependencies into $(VENV) (first time only, a few minutes)..."
	@# pip's notes about this machine's unused local package folders are noise: keep every other line.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

data: $(STAMP)
	@$(BIN)/mnist-basics data --all

lab: data
	cd nbs && ../$(BIN)/jupyter lab $(ROOT_FLAG) $(LAB_ARGS)

test: $(STAMP)
	@$(BIN)/python tools/run_checks.py

export: $(STAMP)
	$(BIN)/nbdev-export

clean-nbs: $(STAMP)
	$(BIN)/nbdev-clean

readme: $(STAMP)
	$(BIN)/python tools/make_readme.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

# ---- The reading site and slides: tools/build_site.py, checked in Chromium by tools/site_test.py ----
# `make site` runs every notebook (2 at a time, cached in _proc/site_cache) and writes _site/: one page
# per notebook plus slides; `make slides` writes only _site/slides/; `make site-test` opens every page
# in headless Chromium (installed from Debian when missing) and saves screenshots in _site/screenshots/.
# SITE_ARGS=... passes options to build_site.py (e.g. SITE_ARGS="--flags slow" also runs #| slow cells).
.PHONY: site slides site-test
SITE_ARGS ?=
NPM ?= npm
NODE_STAMP := node_modules/.package-lock.json
APT := $(shell [ "$$(id -u)" = 0 ] || echo sudo) env DEBIAN_FRONTEND=noninteractive apt-get

# MathJax and reveal.js for the pages, from the npm registry (package-lock.json), never from a CDN.
$(NODE_STAMP): package.json package-lock.json
	@command -v $(NPM) >/dev/null || { echo "npm not found: install Node.js and npm (e.g. $(APT) install -y nodejs npm)"; exit 1; }
	$(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

site: $(STAMP) $(NODE_STAMP)
	$(BIN)/python tools/build_site.py $(SITE_ARGS)

slides: $(STAMP) $(NODE_STAMP)
	$(BIN)/python tools/build_site.py --slides-only $(SITE_ARGS)

site-test: $(STAMP)
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium for the browser test..."; \
		$(APT) update -qq && $(APT) install -y -qq chromium >/dev/null; }
	$(BIN)/python tools/site_test.py
