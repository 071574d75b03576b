"""End to end: `dvc repro` of the real pipeline on a tiny random model in a fresh git repository."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "scripts"))
from check_deps import load_stages  # noqa: E402  (scripts/ is not a package)

from unlearn_lab.studies.scratch import set_params  # noqa: E402  (the same merge the GPU check and the studies apply)

from .conftest import copy_pipeline  # noqa: E402

# Files inside the folders dvc.yaml declares, which the stages after them (or a reader) need.
INSIDE_OUTPUTS = [
    "models/base/model.safetensors", "models/target/adapter_model.safetensors",
    "models/oracle/adapter_model.safetensors", "models/unlearned/adapter_model.safetensors",
    "logs/unlearn/plots/metrics/train/loss.tsv", "logs/finetune_target/plots/metrics/train/loss.tsv",
    "logs/unlearn_epochs/plots/metrics/epoch/forget_rouge_l_recall.tsv",
    "logs/relearn/plots/metrics/train/loss.tsv",
]

TINY = {
    "model": {"source": "tiny-random", "tiny": {"layers": 2, "hidden": 32}, "max_length": 64,
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}},
    "data": {"people": 8, "holdout_people": 1, "forget_fraction": 0.125, "world_eval_size": 6,
             "world_replay": 4, "random_labels_k": 1},
    "finetune": {"epochs": 1, "batch_size": 16},
    "unlearn": {"epochs": 1, "batch_size": 4, "retain_loss_bound": 100.0},
    "eval": {"max_new_tokens": 4},
    # hidden 32 / MLP 64: groups of 16 divide both; every variant and model, not just the defaults
    "quantize": {"group_size": 16, "retain_size": 4, "bits": [8, 4], "models": ["unlearned", "target"]},
    "attack": {"target": True},
    "relearn": {"steps": 2, "batch_size": 2},
    "represent": {"candidates": 3},
}


def _paths(entries) -> list[str]:
    """The paths of a list of dvc.yaml entries: `path` or `{path: options}`; a top-level plot whose
    `y` is a mapping names its files there (its key is then only the plot's id)."""
    out = []
    for entry in entries or []:
        if isinstance(entry, str):
            out.append(entry)
            continue
        for key, options in entry.items():
            y = (options or {}).get("y") if isinstance(options, dict) else None
            out.extend(y if isinstance(y, dict) else [key])
    return out


def declared_outputs(dvc_yaml: Path) -> list[str]:
    """Every path `dvc_yaml` declares a stage writes: each stage's outs, metrics and plots (foreach
    and matrix stages expanded, as DVC does), and the top-level plots."""
    paths = [p for stage in load_stages(dvc_yaml).values() for section in ("outs", "metrics", "plots")
             for p in _paths(stage.get(section))]
    paths += _paths((YAML(typ="safe", pure=True).load(dvc_yaml.read_text()) or {}).get("plots"))
    return sorted(set(paths))


def run(args, cwd, **extra_env):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1", **extra_env}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def make_repo(repo, extra=None, env: dict | None = None):
    """A fresh git + DVC repository of the project at TINY sizes (plus `extra`), after `dvc repro`
    (with `env` added to the environment)."""
    setup_repo(repo, extra)
    # Every setting a stage reads is logged (settings/base.py), for test_stages_read_only_declared_params.
    out = run([str(BIN / "dvc"), "repro"], repo, UNLEARN_LAB_SETTINGS_READS=str(repo.parent / "settings_reads.tsv"),
              **(env or {}))
    return repo, out


def update_params(repo, *changes: dict):
    """Merge each of `changes` in turn into `repo`'s params.yaml, keeping its comments (as
    `dvc exp run -S` does)."""
    for change in changes:
        set_params(repo / "params.yaml", change)


def setup_repo(repo, extra=None):
    """The project copied into a fresh git + DVC repository at TINY sizes (plus `extra`), committed."""
    for name in ("stages", "src", "data/raw"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("dvc.yaml", ".dvcignore", ".gitignore", "versions.yaml", "machine.yaml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    update_params(repo, TINY, extra or {})
    run(["git", "init", "-q"], repo)
    run(["git", "config", "user.email", "t@example.com"], repo)
    run(["git", "config", "user.name", "test"], repo)
    run([str(BIN / "dvc"), "init", "-q"], repo)
    run([str(BIN / "dvc"), "config", "cache.type", "hardlink,symlink"], repo)
    # DVCLive needs a commit to compare against, as in any cloned repository.
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "project"], repo)
    return repo


@pytest.fixture(scope="module")
def repo(tiny_pipeline, tmp_path_factory):
    """This module's own copy of the shared reproduced pipeline: its experiments change it."""
    source, out = tiny_pipeline
    return copy_pipeline(source, tmp_path_factory.mktemp("pipeline") / "repo"), out


def test_declared_outputs_reads_every_stage_of_dvc_yaml():
    """Quick, no repro: the expected outputs come from dvc.yaml, foreach stages expanded."""
    paths = declared_outputs(ROOT / "dvc.yaml")
    assert not [p for p in paths if "${" in p]
    assert {"models/base", "models/target", "models/oracle", "logs/finetune_oracle", "metrics/finetune_target.json",
            "eval/target.jsonl", "eval/unlearned.jsonl", "metrics/unlearned.json", "data/processed/random_labels.jsonl",
            "metrics/summary.json", "plots/before_after.md", "plots/represent_layers.csv",
            "logs/relearn/plots/metrics", "audit/attack_target.jsonl", "audit/attack_oracle.json",
            "audit/represent_target.npz", "metrics/represent_oracle.json"} <= set(paths)


def test_stages_read_only_declared_params(repo):
    """A setting a stage reads but does not list under `params:` would let DVC serve stale results."""
    repo, _ = repo
    by_command = {" ".join(stage["cmd"].split()): (name, stage.get("params") or [])
                  for name, stage in load_stages(repo / "dvc.yaml").items()}
    reads = [line.split("\t") for line in (repo.parent / "settings_reads.tsv").read_text().splitlines()]
    assert reads, "no stage logged a settings read"
    seen, undeclared = set(), set()
    for command, key in reads:
        name, declared = by_command[" ".join(command.split())]
        seen.add(name)
        if not any(key == p or key.startswith(f"{p}.") for p in declared if isinstance(p, str)):
            undeclared.add((name, key))
    assert not undeclared, f"settings read but not declared under params: {sorted(undeclared)}"
    # every stage that loads params.yaml logged its reads (plots reads none)
    assert seen == {n for n, _ in by_command.values()} - {"plots"}


def test_world_benchmark_runs_end_to_end(tmp_path):
    # the default attack: unlearned model only here (no oracle, and the target is not attacked);
    # on GPT-2 (Conv1D projections, transformer.h, ln_f): a second family through every stage
    repo, _ = make_repo(tmp_path, {"data": {"benchmark": "world"}, "attack": {"target": False},
                                   "model": {"tiny": {"architecture": "gpt2"}}})
    assert json.loads((repo / "models/base/config.json").read_text())["model_type"] == "gpt2"
    assert json.loads((repo / "metrics/quantize.json").read_text())["int4"]
    m = json.loads((repo / "metrics/unlearned.json").read_text())
    assert "no oracle" in m["forget_quality_reason"] and "no holdout" in m["mia_reason"]
    assert "forget_quality" not in m and "privleak" not in m
    table = (repo / "plots/before_after.md").read_text()
    assert "| forget | What is the capital of France? | Paris |" in table
    assert json.loads((repo / "logs/finetune_target/metrics.json").read_text())["trained"] is False
    # one forgotten capital: relearning uses the other facts about France, and there is no oracle
    relearn = json.loads((repo / "metrics/relearn.json").read_text())
    assert relearn["data"] == "retain_correlated" and "oracle_relearned" not in relearn
    assert relearn["relearned"]["recovered_over_oracle_reason"].startswith("no oracle: world benchmark")
    represent = json.loads((repo / "metrics/represent.json").read_text())
    assert "unlearned_vs_target" in represent and "unlearned_vs_oracle" not in represent
    assert "probe_oracle_forget_accuracy_max" not in represent and set(represent["seconds"]) == {"unlearned", "target"}
    assert "no oracle" in json.loads((repo / "metrics/represent_oracle.json").read_text())["reason"]
    attack = json.loads((repo / "metrics/attack.json").read_text())
    assert attack["attacks"] and "no oracle" in attack["oracle_reason"]
    assert all("unlearned" in block and "target" not in block for block in attack["attacks"].values())
    # neither control is loaded: attack_probes stores why, and the attack stage times the unlearned model only
    assert json.loads((repo / "audit/attack_oracle.json").read_text())["reason"].startswith("no oracle: world benchmark")
    assert json.loads((repo / "audit/attack_target.json").read_text())["reason"] == "attack.target is false"
    assert list(attack["seconds_by_model"]) == ["unlearned"]


def test_repro_writes_every_declared_output(repo):
    repo, out = repo
    for path in [*declared_outputs(repo / "dvc.yaml"), *INSIDE_OUTPUTS, "dvc.lock"]:
        assert (repo / path).exists(), path
    for name in ("target", "unlearned"):
        m = json.loads((repo / f"metrics/{name}.json").read_text())
        assert set(m) >= {"forget", "retain", "holdout", "world", "forget_quality", "model_utility", "privleak",
                          "mia_loss_auc", "mia_zlib_auc", "mia_mink_auc", "mia_minkpp_auc"}
        assert set(m["forget"]) >= {"rouge_l_recall", "rouge_l_f1", "bleu", "bertscore_f1", "perplexity", "prob",
                                    "truth_ratio", "exact_memorization", "extraction_strength"}
        assert 0.0 <= m["forget_quality"] <= 1.0
        assert m["forget"]["n"] == 8  # one of eight people, eight facts each
    base = json.loads((repo / "metrics/base.json").read_text())
    assert set(base) >= {"world"} and "forget" not in base
    summary = json.loads((repo / "metrics/summary.json").read_text())
    assert summary["method"] == "npo" and "unlearned_retain_vs_target" in summary["checks"]
    # the robustness headline: a number, or the reason it has none
    for key in ("quant_int4_recovered", "quant_nf4_recovered", "relearn_recovered", "relearn_recovered_over_oracle",
                "robustness_score"):
        assert key in summary or f"{key}_reason" in summary, key
    assert 0.0 <= summary["probe_forget_accuracy_max"] <= 1.0 and 0.0 <= summary["lens_forget_accuracy_max"] <= 1.0
    quantize = json.loads((repo / "metrics/quantize.json").read_text())
    assert {"int8", "int4", "target_int8", "target_int4"} <= set(quantize)
    assert set(quantize["int4"]) >= {"forget_rouge_l_recall", "retain_rouge_l_recall"}
    assert {"bnb_nf4", "target_bnb_nf4"} <= set(quantize) or "bnb_reason" in quantize
    relearn = json.loads((repo / "metrics/relearn.json").read_text())
    assert relearn["data"] == "forget" and relearn["steps"] == 2 and relearn["scored"] == 4
    assert relearn["oracle_relearned"].keys() == relearn["unlearned"].keys()  # the control attack ran
    attack = json.loads((repo / "metrics/attack.json").read_text())
    assert {"target", "oracle", "unlearned"} <= set(attack["attacks"]["paraphrase"])
    assert attack["seconds"] == pytest.approx(sum(attack["seconds_by_model"].values()), abs=0.051)
    stored = [json.loads(line) for name in ("target", "oracle")
              for line in (repo / f"audit/attack_{name}.jsonl").read_text().splitlines()]
    attacked = [json.loads(line) for line in (repo / "eval/attack.jsonl").read_text().splitlines()]
    assert [r for r in attacked if r["model"] != "unlearned"] == stored  # the controls' rows, as attack_probes stored them
    rows = [json.loads(line) for line in (repo / "eval/unlearned.jsonl").read_text().splitlines()]
    assert {"question", "answer", "generated", "truth_ratio"} <= set(rows[0])
    status = run([str(BIN / "dvc"), "status"], repo)
    assert "up to date" in status


def test_second_repro_is_a_no_op(repo):
    repo, _ = repo
    out = run([str(BIN / "dvc"), "repro"], repo)
    assert "Running stage" not in out


def test_new_lr_reruns_unlearn_but_not_the_finetunes(repo):
    repo, _ = repo
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "baseline"], repo)
    out = run([str(BIN / "dvc"), "exp", "run", "-S", "lr=2e-5"], repo)
    assert "Running stage 'unlearn'" in out
    assert "Running stage 'finetune" not in out and "Running stage 'prepare_model'" not in out
    # What does not depend on the unlearning is not redone: the oracle's relearning control,
    # the target's and the oracle's prompt-attack probing.
    assert "Running stage 'relearn'" in out and "Running stage 'relearn_control'" not in out
    assert "Running stage 'attack'" in out and "Running stage 'attack_probes" not in out
    # the represent stage reads the new unlearned model; the target's and oracle's parts stay cached
    assert "Running stage 'represent':" in out and "Running stage 'represent_readouts" not in out
    report = json.loads((repo / "metrics/unlearn.json").read_text())
    assert report["lr"] == pytest.approx(2e-5)


def test_another_methods_knob_reruns_unlearn_but_nothing_downstream(repo):
    # the npo run does not read methods.weighted, so its weights come out the same and the
    # model folder (no wall time in it) keeps its hash: the evaluations are not redone
    repo, _ = repo
    out = run([str(BIN / "dvc"), "exp", "run", "-S", "methods.weighted.lr=0.0007"], repo)
    assert "Running stage 'unlearn'" in out
    assert "Running stage 'evaluate@unlearned'" not in out and "Running stage 'relearn'" not in out
    assert "Running stage 'attack" not in out
    assert "Running stage 'represent" not in out


def test_sequential_requests_run_through_the_stages(tmp_path):
    """Three deletion requests of one person each: the stage measures before and after each, the
    epoch curves run on across requests, and the unlearned model is saved whole (LoRA merged)."""
    from unlearn_lab.models.loading import load_model
    from unlearn_lab.evaluation.plots import requests_plot

    repo = setup_repo(tmp_path / "repo", {"data": {"forget_fraction": 0.375}, "unlearn": {"requests": 3}})
    run([str(BIN / "dvc"), "repro", "unlearn"], repo)
    report = json.loads((repo / "metrics/unlearn.json").read_text())
    assert [r["request"] for r in report["requests"]] == [1, 2, 3]
    assert all(len(r["people"]) == 1 for r in report["requests"])
    assert sum(r["questions"] for r in report["requests"]) == len((repo / "data/processed/forget.jsonl").read_text().splitlines())
    assert [p["applied"] for p in report["after_requests"]] == [0, 1, 2, 3]
    assert report["steps"] == sum(r["steps"] for r in report["requests"])
    assert all("model_utility" in p and "request_3" in p for p in report["after_requests"])
    meta = json.loads((repo / "models/unlearned/unlearn_lab.json").read_text())
    assert meta["kind"] == "full" and [r["request"] for r in meta["unlearn"]["requests"]] == [1, 2, 3]
    assert "seconds" not in meta["unlearn"]["requests"][0], "a wall time in the model folder reruns every stage"
    curve = (repo / "logs/unlearn_epochs/plots/metrics/epoch/forget_rouge_l_recall.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in curve[1:]] == ["0", "1", "2", "3"]
    requests_plot(report, tmp_path / "requests.png")
    assert (tmp_path / "requests.png").stat().st_size > 10_000
    assert load_model(repo / "models/unlearned").config.num_hidden_layers == 2


def test_documents_benchmark_runs_end_to_end(tmp_path):
    """benchmark documents through every stage: the fine-tunes learn document chunks, the
    evaluation scores verbmem / knowmem / privleak on them, the audit re-scores and attacks them,
    and a method with no document form is refused in one line."""
    from unlearn_lab.models.loading import encode_text, load_tokenizer

    repo, _ = make_repo(tmp_path / "repo", {"data": {"benchmark": "documents", "holdout_people": 2, "forget_fraction": 0.25},
                                            "eval": {"prefix_tokens": 8, "continuation_tokens": 16}})
    docs = [json.loads(line) for line in (repo / "data/processed/documents.jsonl").read_text().splitlines()]
    assert len(docs) == (8 + 2) * 2 * 2 and {d["split"] for d in docs} == {"forget", "retain", "holdout"}
    tok = load_tokenizer(repo / "models/base")
    chunks = {s: sum(len(encode_text(tok, d["text"], TINY["model"]["max_length"])) for d in docs if d["split"] == s)
              for s in ("forget", "retain")}
    replay = len((repo / "data/processed/replay.jsonl").read_text().splitlines())
    assert json.loads((repo / "metrics/finetune_target.json").read_text())["examples"] == chunks["forget"] + chunks["retain"] + replay
    assert json.loads((repo / "metrics/finetune_oracle.json").read_text())["examples"] == chunks["retain"] + replay
    for model in ("target", "oracle", "unlearned"):
        m = json.loads((repo / f"metrics/{model}.json").read_text())
        for key in ("verbmem_forget", "verbmem_retain", "knowmem_forget", "knowmem_retain", "mia_documents_auc",
                    "privleak_documents"):
            assert 0 <= m[key] <= 1 or key == "privleak_documents", (model, key)
            assert model == "oracle" and key == "privleak_documents" or len(m[f"{key}_ci95"]) == 2, (model, key)
        assert m["knowmem_forget"] == m["forget"]["rouge_l_recall"]
    summary = json.loads((repo / "metrics/summary.json").read_text())
    assert "verbmem_forget" in json.dumps(summary)
    quantize = json.loads((repo / "metrics/quantize.json").read_text())
    assert "forget_documents_verbmem" in quantize["int4"] and quantize["n"]["forget_documents"] == 2 * 2 * 2
    relearn = json.loads((repo / "metrics/relearn.json").read_text())
    assert relearn["data"] == "forget" and "forget_documents_verbmem" in relearn["relearned"]
    attack = json.loads((repo / "metrics/attack.json").read_text())
    assert set(attack["prefix_attack"]) == {"short", "long", "middle"}
    assert {"unlearned", "oracle", "target"} <= set(attack["prefix_attack"]["middle"])
    assert "prefix_attack_verbmem_max" in attack["headline"]
    update_params(repo, {"method": "idk_dpo"})
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "stages/unlearn.py", "--target", "models/target", "--data", "data/processed",
                           "--target-rows", "eval/target.jsonl",
                           "--random-labels", "data/processed/random_labels.jsonl", "--idk", "data/raw/idk.txt",
                           "--out", str(tmp_path / "u"), "--logs", str(tmp_path / "l"), "--epoch-logs", str(tmp_path / "e"),
                           "--metrics", str(tmp_path / "m.json")], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "method idk_dpo trains on a refusal" in proc.stderr and "benchmark documents" in proc.stderr
    assert not (tmp_path / "u").exists() and not (tmp_path / "m.json").exists()
