import pytest
import torch

from unlearn_lab.models import hardware
from unlearn_lab.models.loading import load_model, load_tokenizer, prepare_base
from unlearn_lab.settings import Model, Tiny


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
