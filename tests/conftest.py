import os
import shutil

import pytest
import torch

from unlearn_lab.models import hardware
from unlearn_lab.models.loading import load_model, load_tokenizer, prepare_base
from unlearn_lab.settings import Model, Tiny


def pytest_configure(config):
    """Under `pytest -n N` (make test) the workers share the cores: one thread each, for the
    worker and every stage it starts, so N torch processes never fight over N cores. A test that
    is about thread counts sets its own."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = "1"
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """For `pytest -n N --dist loadgroup` (make test): every test that uses a module-scoped fixture
    runs in one process with the other tests of its module, so that fixture (a model family's
    checkpoint, the distributed launch, the GPU check's tiny run, a reproduced repository whose
    tests follow one another) is built once; every other test goes wherever a process is free."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = [d for name in getattr(info, "names_closure", ()) for d in info.name2fixturedefs.get(name, ())]
        if any(d.scope == "module" for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


@pytest.fixture(autouse=True)
def fresh_machine():
    """`auto` settings are resolved once per process; tests that fake a GPU need them anew."""
    hardware.resolve.cache_clear()
    hardware.resolve_eval.cache_clear()
    yield
    hardware.resolve.cache_clear()
    hardware.resolve_eval.cache_clear()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A 2-layer random Llama with SmolLM2's tokenizer, prepared the way the pipeline does it."""
    out = tmp_path_factory.mktemp("tiny-base")
    prepare_base(Model(source="tiny-random", tiny=Tiny(layers=2, hidden=32)), out, seed=0)
    return out


@pytest.fixture(scope="session")
def tok(tiny_dir):
    return load_tokenizer(tiny_dir)


@pytest.fixture()
def tiny_model(tiny_dir):
    torch.manual_seed(0)
    return load_model(tiny_dir)


def qa_record(i, field="city"):
    return {
        "id": f"r{i}", "subject": f"S{i}", "field": field, "question": f"Where does person {i} live?",
        "answer": f"Town{i}", "paraphrased_answer": f"In the town of Town{i}",
        "perturbed_answers": [f"In the town of Other{i}{j}" for j in range(5)],
        "split": "forget", "correlated": False, "source": "synthetic",
    }


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory, worker_id):
    """The project at the e2e test's TINY sizes after `dvc repro` (test_pipeline_e2e.make_repo),
    built once per test run and shared by every test process (`pytest -n`): the first to ask
    builds it under a file lock, the others wait for it. Returns (repo, dvc repro's output); the
    settings every stage read are in repo.parent / "settings_reads.tsv". Read it only: a test that
    changes it takes a copy (`copy_pipeline`)."""
    from filelock import FileLock

    # every process of the run shares the base temporary folder's parent
    root = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    shared = root / "tiny-pipeline"
    with FileLock(str(root / "tiny-pipeline.lock")):
        if not (shared / "repro.log").exists():
            # one thread: test_reproducibility compares it with a run on two
            _, out = threaded_repro(shared, 1)
            (shared / "repro.log").write_text(out)
    return shared / "repo", (shared / "repro.log").read_text()


# Every stage process that imported torch appends its script name, torch's thread count and
# where it imported unlearn_lab from.
THREAD_HOOK = """
import atexit, os, sys

def _record():
    if "torch" in sys.modules:
        package = getattr(sys.modules.get("unlearn_lab"), "__file__", "")
        with open(os.environ["REPRO_THREADS_LOG"], "a") as fh:
            fh.write(f"{os.path.basename(sys.argv[0])}\\t{sys.modules['torch'].get_num_threads()}\\t{package}\\n")

atexit.register(_record)
"""


def threaded_repro(root, threads: int, extra: dict | None = None):
    """`make_repo` at root / "repo" with every stage on `threads` CPU threads, importing the
    repository's own copy of the package (not an installed one); each stage process records its
    thread count and package in root / "threads.tsv" (THREAD_HOOK). Returns (repo, output)."""
    from .test_pipeline_e2e import make_repo

    hook = root / "hook"
    hook.mkdir(parents=True)
    (hook / "sitecustomize.py").write_text(THREAD_HOOK)
    repo = root / "repo"
    env = {"PYTHONPATH": f"{repo / 'src'}{os.pathsep}{hook}", "REPRO_THREADS_LOG": str(root / "threads.tsv"),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return make_repo(repo, extra, env)


def copy_pipeline(source, dest):
    """A copy of a reproduced repository (`tiny_pipeline`) at `dest` (a new folder), git, DVC cache
    and outputs included, with its settings-reads file beside it: outputs linked into the
    source's cache are copied as files, so changing the copy never touches the source."""
    shutil.copytree(source, dest, symlinks=False)
    reads = source.parent / "settings_reads.tsv"
    if reads.exists():
        shutil.copy(reads, dest.parent / "settings_reads.tsv")
    return dest
