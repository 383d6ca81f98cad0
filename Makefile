# One-command setup: `make run` starts the service, `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
# `make run` serves resnet50.mar: fp32 compiled ahead of time (the same answers as eager, compiled speed from
# the worker's start). FAST=1 serves resnet50-fast.mar: the fastest precision this CPU runs that answers like
# fp32 (bf16, int8 or fp32, timed at build), compiled too. Workers and threads follow the cores.
ifeq ($(FAST),1)
ARCHIVE ?= model_store/resnet50-fast.mar
ARCHIVE_FLAGS ?= --precision auto --aot
else
ARCHIVE ?= model_store/resnet50.mar
ARCHIVE_FLAGS ?= --aot
endif
ARCHIVE_V2 ?= model_store/resnet50-2.0.mar

.PHONY: help venv venv-dev archive run stop test lint bench clean check-java

help:
	@echo "make run     start TorchServe and the control API (http://127.0.0.1:8000); FAST=1: bf16/int8"
	@echo "make stop    stop both"
	@echo "make test    run the test suite (unit + real TorchServe + real databases)"
	@echo "make lint    ruff format --check, ruff check, mypy"
	@echo "make bench   benchmark harness (results under bench/results/, summary into README.md)"
	@echo "make archive build the 1.0 and 2.0 archives (WEIGHTS=/WEIGHTS_V2= local weight files)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt constraints.txt | $(BIN)/python
	$(PIP) -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt constraints.txt | $(BIN)/python
	$(PIP) -r requirements-dev.txt
	@touch $@ $(VENV)/.runtime

venv: $(VENV)/.runtime
venv-dev: $(VENV)/.dev

check-java:
	@scripts/check_java.sh

# 1.0: IMAGENET1K_V1 weights, resize 256 (served at start). 2.0: IMAGENET1K_V2, resize 232 (ops roll it out
# through POST /models). Offline, both fall back to seeded random weights, marked "-untrained".
$(ARCHIVE): | $(VENV)/.runtime
	$(BIN)/python -m handlers.build_archive --export-path model_store --force --version 1.0 \
		--archive-name $(basename $(notdir $(ARCHIVE))) --workers auto $(ARCHIVE_FLAGS) \
		$(if $(WEIGHTS),--weights $(WEIGHTS),)

$(ARCHIVE_V2): | $(VENV)/.runtime
	$(BIN)/python -m handlers.build_archive --export-path model_store --force --version 2.0 \
		--weights-variant IMAGENET1K_V2 --archive-name resnet50-2.0 $(if $(WEIGHTS_V2),--weights $(WEIGHTS_V2),)

archive: $(ARCHIVE) $(ARCHIVE_V2)

run: check-java venv archive
	@RUN_ARCHIVE=$(notdir $(ARCHIVE)) scripts/run.sh

stop:
	@scripts/stop.sh

test: check-java venv-dev
	$(BIN)/pytest

lint: venv-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# The run writes bench/results/ (latest.md and latest.png are committed); then README's Performance section.
bench: check-java venv-dev
	$(BIN)/python -m bench
	$(BIN)/python -m bench.readme
	$(BIN)/python -m bench.shadow

clean:
	rm -rf model_store/*.mar logs
