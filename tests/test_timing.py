"""A stage's seconds by part, on a fake clock: each part sums its blocks, a block that raises
still counts, and the total runs from the clock's start."""
import pytest

from unlearn_lab import timing


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    timing.reset()
    yield now
    timing.reset()


def test_parts_add_up_in_the_order_they_first_ran(clock):
    with timing.part("generate"):
        clock[0] += 2.04
    with timing.part("log-probs"):
        clock[0] += 1.0
    with timing.part("generate"):
        clock[0] += 0.5
    clock[0] += 3.0  # outside any part: only in the total
    assert timing.report() == {"generate": 2.5, "log-probs": 1.0, "total": 6.5}
    assert list(timing.report()) == ["generate", "log-probs", "total"]


def test_a_part_that_raises_still_counts(clock):
    with pytest.raises(ValueError):
        with timing.part("judge"):
            clock[0] += 4.0
            raise ValueError("boom")
    assert timing.report()["judge"] == 4.0


def test_watched_model_counts_the_masks_tokens_and_flops(tiny_model, tmp_path, monkeypatch):
    import json

    import torch

    timing.reset()
    # N by hand: every linear map's weight (attention, MLP, and the output head tied to the embedding)
    linear = sum(m.weight.numel() for m in tiny_model.modules() if isinstance(m, torch.nn.Linear))
    assert tiny_model.get_output_embeddings().weight is tiny_model.get_input_embeddings().weight
    assert timing.matmul_params(tiny_model) == linear
    timing.watch(tiny_model)  # load_model watches it already: counted once
    ids = torch.randint(5, 100, (3, 6))
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[0, :2] = 0  # left padding is not work
    with torch.no_grad():
        tiny_model(input_ids=ids, attention_mask=mask)
    tiny_model(input_ids=ids[:2, :4])  # with gradient, no mask: every id
    got = timing.work()
    assert got["forward_tokens"] == 16 and got["trained_tokens"] == 8
    assert got["flops"] == 2 * linear * 16 + 6 * linear * 8
    log = tmp_path / "work.jsonl"
    monkeypatch.setenv(timing.WORK_LOG, str(log))
    timing.log_work("evaluate")
    entry = json.loads(log.read_text())
    assert entry["stage"] == "evaluate" and entry["flops"] == got["flops"]
    timing.reset()
    assert timing.work()["flops"] == 0
