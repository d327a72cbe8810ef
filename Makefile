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

.PHONY: lab test setup data export clean-nbs readme help

help:
	@echo "make lab   - set up .venv if needed, prepare the data, open JupyterLab on nbs/ (LAB_ARGS=... passes options)"
	@echo "make test  - set up .venv if needed, then every check CI makes"

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
