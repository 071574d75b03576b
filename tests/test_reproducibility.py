"""The tiny pipeline reproduces every metric to the precision docs/reproducibility.md states ("On one
machine, and across machines"), whatever the number of CPU threads: one run with 1 thread, one with
2, in two fresh repositories."""
import json
import math
import re
from pathlib import Path

import pytest

from .conftest import threaded_repro

# Wall-clock time is not a result.
TIMING = re.compile(r"seconds|runtime|per_second")
# Counted or ranked, not summed: a different thread count must not change them at all (an AUC only
# moves when two scores swap places, a ROUGE only when a greedy token changes).
DISCRETE = re.compile(r"rouge|bleu|_auc|privleak|forget_quality|exact_memorization|extraction_strength|accuracy|"
                      r"leak|repetition_rate|chance")
# The `recovered*` fractions divide by the target-minus-unlearned gap, so they carry the error of
# their inputs divided by it (the tiny models' gaps are about 1e-4): a fraction near 0 moves by
# as much as a large one, so the tolerance is absolute too (1.9e-4 seen on a clean clone).
RATIO = re.compile(r"recovered")
CONTINUOUS_TOL = 1e-6  # absolute or relative, whichever is larger
RATIO_TOL = 2e-3  # absolute or relative, whichever is larger

def leaves(value, path=()):
    """(path, value) of every scalar in nested dicts and lists."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, (*path, str(i)))
    else:
        yield path, value


def mismatch(key: str, a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, float) or not isinstance(b, float):
        return a != b
    if math.isnan(a) or math.isnan(b):
        return not (math.isnan(a) and math.isnan(b))
    if DISCRETE.search(key):
        return a != b
    if RATIO.search(key):
        return not math.isclose(a, b, rel_tol=RATIO_TOL, abs_tol=RATIO_TOL)
    return not math.isclose(a, b, rel_tol=CONTINUOUS_TOL, abs_tol=CONTINUOUS_TOL)


def differences(first: Path, second: Path) -> list[str]:
    """One line per metric of `first`/metrics/*.json that `second` does not reproduce."""
    out = []
    names = sorted(p.name for p in (first / "metrics").glob("*.json"))
    if names != sorted(p.name for p in (second / "metrics").glob("*.json")):
        return [f"metrics/ differs: {names} vs {sorted(p.name for p in (second / 'metrics').glob('*.json'))}"]
    for name in names:
        a = dict(leaves(json.loads((first / "metrics" / name).read_text())))
        b = dict(leaves(json.loads((second / "metrics" / name).read_text())))
        for path in sorted(a.keys() | b.keys()):
            key = ".".join(path)
            leaf = next((p for p in reversed(path) if not p.isdigit()), "")
            # A wall time, or a part of one (`seconds_by_part.generate`).
            if any(TIMING.search(p) for p in path):
                continue
            if path not in a or path not in b or mismatch(leaf, a[path], b[path]):
                out.append(f"metrics/{name} {key}: {a.get(path, '<missing>')!r} vs {b.get(path, '<missing>')!r}")
    return out


def test_differences_name_file_key_and_both_values(tmp_path):
    """The comparison itself: timing is skipped, counts exact, continuous values within tolerance."""
    base = {"seconds": 1.0, "steps": 4, "forget": {"prob": 0.5, "rouge_l_recall": 0.25},
            "quant": {"recovered_truth_ratio": 2.0}, "rows": [{"truth_ratio": 0.9}], "stopped_early": False}
    base["seconds_by_part"] = {"generate": 1.0, "total": 2.0}
    close = {"seconds": 9.0, "seconds_by_part": {"generate": 5.0, "total": 8.0}, "steps": 4, "forget": {"prob": 0.5 + 1e-7, "rouge_l_recall": 0.25},
             "quant": {"recovered_truth_ratio": 2.001}, "rows": [{"truth_ratio": 0.9 - 1e-7}], "stopped_early": False}
    far = {"seconds": 1.0, "steps": 5, "forget": {"prob": 0.5001, "rouge_l_recall": 0.25 + 1e-9},
           "quant": {"recovered_truth_ratio": 2.01}, "rows": [{"truth_ratio": 0.9}], "stopped_early": True}
    for name, metrics in (("a", base), ("b", close), ("c", far)):
        (tmp_path / name / "metrics").mkdir(parents=True)
        (tmp_path / name / "metrics" / "run.json").write_text(json.dumps(metrics))
    assert differences(tmp_path / "a", tmp_path / "b") == []
    assert differences(tmp_path / "a", tmp_path / "c") == [
        "metrics/run.json forget.prob: 0.5 vs 0.5001",
        f"metrics/run.json forget.rouge_l_recall: 0.25 vs {0.25 + 1e-9!r}",
        "metrics/run.json quant.recovered_truth_ratio: 2.0 vs 2.01",
        "metrics/run.json steps: 4 vs 5",
        "metrics/run.json stopped_early: False vs True",
    ]


def threads_used(root: Path, threads: int) -> Path:
    """The repository `threaded_repro` made in `root`, after checking that every stage that
    imported torch ran on `threads` threads with the repository's own package."""
    repo = root / "repo"
    stages = [line.split("\t") for line in (root / "threads.tsv").read_text().splitlines()]
    assert {"finetune.py", "unlearn.py", "evaluate.py", "relearn.py"} <= {script for script, _, _ in stages}
    assert {int(n) for _, n, _ in stages} == {threads}, stages
    assert {Path(package).parent.parent for _, _, package in stages} == {repo / "src"}, stages
    return repo


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_metrics_agree_across_thread_counts(precision, tmp_path, tiny_pipeline):
    """auto (fp32 on every CPU) and bf16 autocast alike (bf16 runs here even where the CPU
    emulates it: the tiny model makes that affordable). The one-thread auto run is the shared
    tiny pipeline (conftest.tiny_pipeline)."""
    extra = {"hardware": {"precision": precision}} if precision != "auto" else None
    if extra is None:
        one = threads_used(tiny_pipeline[0].parent, 1)
    else:
        threaded_repro(tmp_path / "threads1", 1, extra)
        one = threads_used(tmp_path / "threads1", 1)
    threaded_repro(tmp_path / "threads2", 2, extra)
    two = threads_used(tmp_path / "threads2", 2)
    assert len(list((one / "metrics").glob("*.json"))) >= 10
    diffs = differences(one, two)
    assert not diffs, f"{precision}, 1 thread vs 2 threads:\n" + "\n".join(diffs)
