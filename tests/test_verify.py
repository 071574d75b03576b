"""`make verify` (src/unlearn_lab/studies/verify.py, tolerances.py): the comparison against hand-made
committed and re-run metrics and dvc.lock entries, the scratch clone, and the CLI's exit codes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from unlearn_lab.errors import UserError
from unlearn_lab.evaluation.metrics.mia import privleak
from unlearn_lab.studies.tolerances import Sizes, flatten, tolerance
from unlearn_lab.studies.verify import compare_metrics, compare_outputs, main, read_lock, scratch_clone, select, upstream_inputs

BIN = Path(sys.executable).parent


def statuses(rows):
    return {(r.path, r.key): r.status for r in rows}


def test_flatten_joins_nested_keys_and_list_indices_like_dvc_metrics_show():
    assert flatten({"forget": {"rouge": 0.5, "ci95": [0.1, 0.9]}, "n": 3, "steps": []}) == {
        "forget.rouge": 0.5, "forget.ci95.0": 0.1, "forget.ci95.1": 0.9, "n": 3}


# 16 forget and 16 holdout questions, docs/reproducibility.md's measured cross-machine case: one swapped pair
# moves an AUC by 1/256 (0.5195 vs 0.5156 seen).
COMMITTED = {"metrics/target.json": {
    "forget": {"n": 16, "prob": 0.97868, "rouge_l_recall": 0.5, "truth_ratio": 0.3860},
    "holdout": {"n": 16},
    "mia_minkpp_auc": 0.51953125, "mia_mink_auc": 0.8, "privleak": privleak(0.8, 0.6),
    "seconds": 12.0, "versions": {"torch": "2.9.0"}, "method": "npo", "steps": 10, "stopped_early": False}}


def rerun_with(**changes):
    new = json.loads(json.dumps(COMMITTED))
    for key, value in changes.items():
        place = new["metrics/target.json"]
        *path, last = key.split("__")
        for part in path:
            place = place[part]
        if value is KeyError:
            del place[last]
        else:
            place[last] = value
    return new


def test_metrics_within_the_cross_machine_tolerances_are_ok():
    rows = compare_metrics(COMMITTED, rerun_with(forget__prob=0.97875, mia_minkpp_auc=0.515625,
                                                 forget__truth_ratio=0.3828, seconds=99.0), "cross-machine")
    assert {r.status for r in rows} == {"ok", "skipped"}
    assert {r.key for r in rows if r.status == "skipped"} == {"seconds", "versions.torch"}


def test_differences_beyond_tolerance_missing_and_changed_strings_are_mismatches():
    rows = compare_metrics(COMMITTED, rerun_with(forget__prob=0.981, mia_minkpp_auc=0.51953125 - 2 / 256,
                                                 forget__rouge_l_recall=0.5 + 2 / 16, method="ga",
                                                 stopped_early=True, steps=KeyError), "cross-machine")
    bad = {r.key for r in rows if r.status == "MISMATCH"}
    assert bad == {"forget.prob", "mia_minkpp_auc", "forget.rouge_l_recall", "method", "stopped_early", "steps"}
    assert next(r for r in rows if r.key == "steps").rerun == "<missing>"
    missing_file = compare_metrics(COMMITTED, {"metrics/target.json": None}, "cross-machine")
    assert [r.status for r in missing_file] == ["MISMATCH"]


def test_same_machine_is_exact_for_ranks_and_1e6_for_floats():
    close = compare_metrics(COMMITTED, rerun_with(forget__prob=0.97868 + 5e-7), "same-machine")
    assert "MISMATCH" not in {r.status for r in close}
    far = compare_metrics(COMMITTED, rerun_with(forget__prob=0.97875, mia_minkpp_auc=0.515625), "same-machine")
    assert {r.key for r in far if r.status == "MISMATCH"} == {"forget.prob", "mia_minkpp_auc"}


def test_one_answer_of_rouge_is_allowed_across_machines_but_not_on_the_same_machine():
    one = rerun_with(forget__rouge_l_recall=0.5 + 1 / 16)
    assert statuses(compare_metrics(COMMITTED, one, "cross-machine"))[("metrics/target.json", "forget.rouge_l_recall")] == "ok"
    assert statuses(compare_metrics(COMMITTED, one, "same-machine"))[("metrics/target.json", "forget.rouge_l_recall")] == "MISMATCH"


def test_privleak_tolerance_is_one_swap_in_each_auc():
    """PrivLeak recomputed from AUCs one swapped pair away (model and oracle) is inside; three
    pairs in the model's AUC are outside."""
    flat = flatten(COMMITTED["metrics/target.json"])
    sizes = Sizes.from_metrics({"u": flat})
    tol, _ = tolerance("privleak", flat["privleak"], flat, sizes, "cross-machine")
    assert abs(privleak(0.8 + 1 / 256, 0.6 - 1 / 256) - privleak(0.8, 0.6)) <= tol
    assert abs(privleak(0.8 + 3 / 256, 0.6) - privleak(0.8, 0.6)) > tol
    # a summary's copy without its AUC beside it gets the same tolerance
    summary = {"target.privleak": flat["privleak"]}
    assert tolerance("target.privleak", flat["privleak"], summary, sizes, "cross-machine")[0] == tol
    # the unlearned model's, across machines: 20 swaps' worth
    unlearned = {"unlearned.privleak": flat["privleak"]}
    wide = tolerance("unlearned.privleak", flat["privleak"], unlearned, sizes, "cross-machine", "metrics/summary.json")[0]
    # 20 swaps in each AUC: 20 x (1/0.4 + 0.2/0.16) / 2.56 = 29.3, as 30 swaps in the model's alone
    assert wide == pytest.approx(20 * tol)
    assert abs(privleak(0.8 + 29 / 256, 0.6) - privleak(0.8, 0.6)) <= wide < abs(privleak(0.8 + 31 / 256, 0.6) - privleak(0.8, 0.6))


def test_forget_quality_moves_by_one_ks_step_across_machines():
    """KS p-values of real samples whose statistic differs by one step (1/16) pass, two do not."""
    a = list(range(16))
    p = [stats.ks_2samp(a, [x + k - 0.25 for x in a]).pvalue for k in (3, 4, 5)]
    committed = {"m.json": {"forget_quality": p[0], "forget_quality_sizes": {"model": 16, "oracle": 16},
                            "forget": {"n": 16}, "holdout": {"n": 16}}}
    for value, status in ((p[1], "ok"), (p[2], "MISMATCH")):
        rerun = json.loads(json.dumps(committed))
        rerun["m.json"]["forget_quality"] = value
        assert statuses(compare_metrics(committed, rerun, "cross-machine"))[("m.json", "forget_quality")] == status


LOCK = """schema: '2.0'
stages:
  process_data:
    cmd: python stages/process_data.py
    deps:
    - path: data/raw
      md5: aaa.dir
    outs:
    - path: data/processed/forget.jsonl
      md5: d1
  finetune@target:
    cmd: python stages/finetune.py target
    deps:
    - path: data/processed/forget.jsonl
      md5: d1
    outs:
    - path: models/target
      md5: m1.dir
    - path: metrics/finetune_target.json
      md5: j1
  finetune@oracle:
    cmd: python stages/finetune.py oracle
    deps:
    - path: data/processed/forget.jsonl
      md5: d1
    outs:
    - path: models/oracle
      md5: o1.dir
"""


def test_output_hashes_decide_on_the_same_machine_only():
    committed = read_lock(LOCK)
    rerun = read_lock(LOCK.replace("m1.dir", "m2.dir").replace("md5: j1", "md5: j2").replace(
        "    - path: models/oracle\n      md5: o1.dir\n", ""))
    names = list(committed)
    same = statuses(compare_outputs(committed, rerun, names, "same-machine"))
    cross = statuses(compare_outputs(committed, rerun, names, "cross-machine"))
    assert same[("data/processed/forget.jsonl", "process_data")] == cross[("data/processed/forget.jsonl", "process_data")] == "ok"
    assert same[("models/target", "finetune@target")] == "MISMATCH"
    assert cross[("models/target", "finetune@target")] == "differs"
    # metrics files hold timings: their values decide, not their hash
    assert same[("metrics/finetune_target.json", "finetune@target")] == "differs"
    assert same[("models/oracle", "finetune@oracle")] == cross[("models/oracle", "finetune@oracle")] == "MISMATCH"


def test_stage_selection_expands_foreach_groups_and_finds_upstream_inputs():
    lock = read_lock(LOCK)
    assert select(lock, ["finetune"]) == ["finetune@target", "finetune@oracle"]
    assert select(lock, ["finetune@oracle", "process_data"]) == ["process_data", "finetune@oracle"]
    assert select(lock, []) == list(lock)
    with pytest.raises(UserError, match="no stage 'train'"):
        select(lock, ["train"])
    assert upstream_inputs(lock, ["finetune@target"]) == ["data/processed/forget.jsonl"]
    assert upstream_inputs(lock, ["process_data", "finetune@target"]) == []


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_git_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    git("init", "-q", cwd=path)
    git("config", "user.email", "t@example.com", cwd=path)
    git("config", "user.name", "t", cwd=path)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git("add", "-A", cwd=path)
    git("commit", "-qm", "one", cwd=path)
    return path


def test_scratch_clone_is_brought_to_head_and_keeps_only_its_dvc_cache(tmp_path):
    root = make_git_repo(tmp_path / "root", {"a.txt": "1\n", ".gitignore": "out/\n"})
    clone = tmp_path / "scratch" / "verify"
    first = scratch_clone(root, clone)
    assert (clone / "a.txt").read_text() == "1\n"
    (root / "a.txt").write_text("2\n")
    git("commit", "-qam", "two", cwd=root)
    (clone / "a.txt").write_text("edited\n")
    (clone / "junk.txt").write_text("x")
    (clone / "out").mkdir()
    (clone / "out" / "stale.bin").write_text("old output")
    (clone / ".dvc" / "cache").mkdir(parents=True)
    (clone / ".dvc" / "cache" / "obj").write_text("kept")
    second = scratch_clone(root, clone)
    assert second != first
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip() == second
    assert (clone / "a.txt").read_text() == "2\n"
    assert not (clone / "junk.txt").exists() and not (clone / "out").exists()
    assert (clone / ".dvc" / "cache" / "obj").read_text() == "kept"
    other = tmp_path / "other"
    (other / "x").mkdir(parents=True)
    with pytest.raises(UserError, match="not a git clone"):
        scratch_clone(root, other)
    unrelated = make_git_repo(tmp_path / "unrelated", {"mine.txt": "keep\n"})
    with pytest.raises(UserError, match="not a git clone"):
        scratch_clone(root, unrelated)
    assert (unrelated / "mine.txt").read_text() == "keep\n"


def committed_clone(tmp_path: Path) -> Path:
    metrics = {"forget": {"n": 16, "prob": 0.5}, "holdout": {"n": 16}, "seconds": 3.0}
    lock = ("schema: '2.0'\nstages:\n  evaluate:\n    cmd: python e.py\n    outs:\n"
            "    - path: metrics/m.json\n      md5: x1\n    - path: eval/rows.jsonl\n      md5: r1\n")
    return make_git_repo(tmp_path / "clone", {"dvc.lock": lock, "metrics/m.json": json.dumps(metrics)})


@pytest.mark.parametrize("prob, code", [(0.5004, 0), (0.502, 1)])
def test_cli_no_run_exit_code_follows_the_metrics(tmp_path, capsys, prob, code):
    clone = committed_clone(tmp_path)
    (clone / "metrics" / "m.json").write_text(json.dumps({"forget": {"n": 16, "prob": prob}, "holdout": {"n": 16},
                                                         "seconds": 9.0}))
    (clone / "dvc.lock").write_text((clone / "dvc.lock").read_text().replace("x1", "x2").replace("r1", "r2"))
    assert main(["--no-run", "--dir", str(clone)], root=tmp_path) == code
    out = capsys.readouterr().out
    assert "forget.prob" in out and ("MISMATCH metrics/m.json forget.prob" in out) == bool(code)
    table = (clone / "verify.csv").read_text()
    assert "eval/rows.jsonl" in table and "differs" in table
    assert main(["--no-run", "--dir", str(clone), "--tolerance", "same-machine"], root=tmp_path) == 1


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    clone = committed_clone(tmp_path)
    assert main(["--no-run", "--dir", str(clone), "--stages", "train"], root=tmp_path) == 2
    assert main(["--no-run", "--dir", str(tmp_path / "nowhere")], root=tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


TOY_STAGES = """\
import json, os, sys
# `hidden` is an input DVC does not know about: only a real re-run can see it change
hidden = open(os.environ["VERIFY_TOY_HIDDEN"]).read()
if sys.argv[1] == "a":
    os.makedirs("out", exist_ok=True)
    open("out/a.txt", "w").write(hidden)
else:
    text = open("out/a.txt").read()
    json.dump({"value": len(text) + (0.5 if "b" in hidden else 0), "seconds": 1}, open("metrics/b.json", "w"))
"""
TOY_DVC = """\
stages:
  a:
    cmd: python mk.py a
    deps: [mk.py]
    outs: [out/a.txt]
  b:
    cmd: python mk.py b
    deps: [mk.py, out/a.txt]
    metrics:
      - metrics/b.json:
          cache: false
"""


def test_rerun_recomputes_in_a_clone_with_its_own_cache(tmp_path, monkeypatch, capsys):
    """A toy DVC pipeline (no model): `b` alone runs on `a`'s committed output pulled from this
    repository's cache; the whole pipeline re-runs `a` and sees the input DVC does not track."""
    hidden = tmp_path / "hidden.txt"
    hidden.write_text("AA")
    monkeypatch.setenv("VERIFY_TOY_HIDDEN", str(hidden))
    root = make_git_repo(tmp_path / "root", {"mk.py": TOY_STAGES, "dvc.yaml": TOY_DVC, "metrics/.keep": ""})
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for args in (["init", "-q"], ["repro", "-q"]):
        subprocess.run([str(BIN / "dvc"), *args], cwd=root, check=True, env=env, capture_output=True)
    git("add", "-A", cwd=root)
    git("commit", "-qm", "run", cwd=root)
    clone = tmp_path / "scratch"
    assert main(["--dir", str(clone), "--stages", "b"], root=root) == 0
    assert (clone / "out" / "a.txt").read_text() == "AA"  # pulled, not re-run
    assert not (root / ".dvc" / "cache").samefile(clone / ".dvc" / "cache")
    hidden.write_text("AAb")
    assert main(["--dir", str(clone), "--stages", "b"], root=root) == 1  # b's value moved by 0.5
    hidden.write_text("AAA")
    assert main(["--dir", str(clone), "--tolerance", "same-machine"], root=root) == 1
    out = capsys.readouterr().out
    assert "MISMATCH metrics/b.json value: 2 vs 3" in out
    assert "out/a.txt" in out and (clone / "out" / "a.txt").read_text() == "AAA"
    # the clone's run cache now maps a's unchanged command and deps to "AAA": only a forced run
    # sees the input back at its committed value
    hidden.write_text("AA")
    assert main(["--dir", str(clone), "--tolerance", "same-machine"], root=root) == 0


def test_after_unlearning_the_cross_machine_rules_are_the_measured_wider_ones():
    """The unlearned model's forget probability moved 0.5837 -> 0.5712 between two CPUs (fp32,
    same code): allowed for it and what is measured on it, not for a fine-tuned model."""
    def status(path, key, a, b, mode="cross-machine"):
        rows = compare_metrics({path: {key: a, "forget": {"n": 40}}}, {path: {key: b, "forget": {"n": 40}}}, mode)
        return next(r.status for r in rows if r.key == key)

    assert status("metrics/unlearned.json", "prob", 0.5837, 0.5712) == "ok"
    assert status("metrics/relearn.json", "unlearned.forget_prob", 0.5965, 0.5847) == "ok"
    assert status("metrics/summary.json", "unlearned.forget_prob", 0.5837, 0.5712) == "ok"
    assert status("metrics/target.json", "prob", 0.5837, 0.5712) == "MISMATCH"
    assert status("metrics/summary.json", "target.forget_prob", 0.5837, 0.5712) == "MISMATCH"
    # the controls a robustness file holds beside the unlearned model keep the tight rules
    assert status("metrics/quantize.json", "full_precision.target.forget_prob", 0.5837, 0.5712) == "MISMATCH"
    assert status("metrics/unlearned.json", "prob", 0.5837, 0.5712, "same-machine") == "MISMATCH"
    assert status("metrics/unlearned.json", "prob", 0.58, 0.50) == "MISMATCH"  # 14%: beyond 5%
