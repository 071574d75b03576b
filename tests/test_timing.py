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
