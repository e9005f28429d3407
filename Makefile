# Every target does its own set-up on a fresh machine: a .venv, installed with constraints.txt
# (which pins torch to the local CPU wheel, 2.13.0).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EVO_HOME ?= ./demo-home
export EVO_HOME

.PHONY: test demo bench typecheck clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,train,serve,http,track,ray]' --config-settings editable_mode=compat
	$(BIN)/python -m compileall -q evo_core ledger projections adapters
	touch $(STAMP)

# llama.cpp's own converter, for the tests that compare evo's GGUF with it (not in the wheel).
CONVERTER := $(VENV)/llama.cpp/VERSION
$(CONVERTER): constraints.txt | $(STAMP)
	$(BIN)/python scripts/fetch_llama_converter.py $(VENV)/llama.cpp

# Chromium for the report's browser test (Debian's package: playwright drives it, downloads none).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: $(STAMP) $(CONVERTER) $(CHROMIUM)
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

$(VENV)/.bench: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,train,serve,http,track,ray,bench]' --config-settings editable_mode=compat
	touch $(VENV)/.bench

bench: $(VENV)/.bench
	$(BIN)/python -m bench

typecheck: $(STAMP)
	$(BIN)/python -m mypy

clean:
	chmod -R u+w demo-home 2>/dev/null || true
	rm -rf $(VENV) demo-home demo-home-operator bench/out
