"""params.yaml checked once, strictly: each bad setting gets one line naming the key, the rule and
the value (and the nearest known key or value for a typo); stages stop before any work."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from unlearn_lab.errors import UserError
from unlearn_lab.training.methods import check_knobs, effective_lr
from unlearn_lab.settings import Settings, load_settings, method_names, parse_settings, read_yaml
from unlearn_lab.settings.sections import OPTIMIZERS, SCHEDULERS

ROOT = Path(__file__).resolve().parents[1]
PARAMS = read_yaml(ROOT / "params.yaml")
# The method files' names, sorted (settings list them from src/unlearn_lab/training/methods/).
METHOD_NAMES = method_names()
assert METHOD_NAMES == sorted(METHOD_NAMES) and {"ga", "ga_kl", "gd", "npo"} <= set(METHOD_NAMES)


def with_param(dotted: str, value) -> dict:
    params = copy.deepcopy(PARAMS)
    node = params
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return params


def test_shipped_params_are_valid_and_equal_the_declared_defaults():
    settings = parse_settings(PARAMS)
    # params.yaml spells out every default; a default changed in one place only would show here
    # (the methods' knobs, declared in methods/<name>.py: tests/test_methods.py)
    assert settings.model_dump(exclude={"methods"}) == Settings().model_dump(exclude={"methods"})
    assert effective_lr(settings) == PARAMS["methods"]["npo"]["lr"]


BAD = [
    # booleans: only YAML's true / false
    ("model.trust_remote_code", "no", "model.trust_remote_code: must be true or false (unquoted YAML booleans), got 'no'"),
    ("model.trust_remote_code", "false", "model.trust_remote_code: must be true or false (unquoted YAML booleans), got 'false'"),
    ("model.trust_remote_code", 1, "model.trust_remote_code: must be true or false (unquoted YAML booleans), got 1"),
    ("unlearn.epoch_eval", "yes", "unlearn.epoch_eval: must be true or false (unquoted YAML booleans), got 'yes'"),
    ("quantize.symmetric", 0, "quantize.symmetric: must be true or false (unquoted YAML booleans), got 0"),
    ("finetune.checkpoint", "yes", "finetune.checkpoint: must be true or false (unquoted YAML booleans), got 'yes'"),
    ("hardware.fuse_views", "on", "hardware.fuse_views: must be true or false (unquoted YAML booleans) or auto, got 'on'"),
    ("quantize.bnb", "maybe", "quantize.bnb: must be true or false (unquoted YAML booleans) or auto, got 'maybe'"),
    # unknown keys, with the nearest known one
    ("finetune.epoch", 3, "finetune.epoch: unknown key; did you mean finetune.epochs? known here: epochs, batch_size, "
     "scheduler, warmup_steps, weight_decay, max_grad_norm, lr, checkpoint"),
    ("data.forget_fracton", 0.3, "data.forget_fracton: unknown key; did you mean data.forget_fraction? known here: "
     "benchmark, split, people, holdout_people, forget_fraction, world_forget, world_eval_size, world_replay, "
     "random_labels_k, import, documents"),
    ("methods.npo.betta", 1.0, "methods.npo.betta: unknown key; did you mean methods.npo.beta? known here: lr, "
     "trainable, alpha, retain, beta"),
    ("methods.npoo", {}, f"methods.npoo: unknown key; did you mean methods.npo? known here: {', '.join(METHOD_NAMES)}"),
    ("methods.npo", [1], "methods.npo: must be a mapping of keys, got [1]"),
    ("data.import.fromat", "csv", "data.import.fromat: unknown key; did you mean data.import.format? known here: "
     "format, forget, retain, holdout, world, max_chars, on_long"),
    ("evall", {}, "evall: unknown key; did you mean eval? known here: seed, method, lr, model, data, finetune, unlearn, "
     "methods, quantize, represent, relearn, attack, eval, hardware"),
    # numbers: types strict, ranges checked
    ("lr", True, "lr: must be a number, got True"),
    ("lr", -0.001, "lr: must be > 0, got -0.001"),
    ("finetune.lr", -0.001, "finetune.lr: must be > 0, got -0.001"),
    ("methods.npo.beta", 0, "methods.npo.beta: must be > 0, got 0"),
    ("methods.simnpo.beta", -1.0, "methods.simnpo.beta: must be > 0, got -1.0"),
    ("methods.gd.alpha", -1.0, "methods.gd.alpha: must be >= 0, got -1.0"),
    ("methods.satimp.beta1", "5", "methods.satimp.beta1: must be a number, got '5'"),
    ("finetune.epochs", 7.9, "finetune.epochs: must be an integer, got 7.9"),
    ("finetune.epochs", 0, "finetune.epochs: must be >= 1, got 0"),
    ("unlearn.batch_size", True, "unlearn.batch_size: must be an integer, got True"),
    ("methods.rmu.layer", 7.5, "methods.rmu.layer: must be an integer, got 7.5"),
    ("model.lora.alpha", 7.9, "model.lora.alpha: must be an integer, got 7.9"),
    ("model.lora.dropout", 1.0, "model.lora.dropout: must be < 1, got 1.0"),
    ("data.forget_fraction", 1.0, "data.forget_fraction: must be < 1, got 1.0"),
    ("data.forget_fraction", 0, "data.forget_fraction: must be > 0, got 0"),
    ("eval.mink_k", 1.5, "eval.mink_k: must be <= 1, got 1.5"),
    ("eval.batch_size", 0, "eval.batch_size: must be auto or an integer from 1 to 4096, got 0"),
    ("seed", -1, "seed: must be >= 0, got -1"),
    ("quantize.bits", [16], "quantize.bits: every bit width must be between 2 and 8, got [16]"),
    ("model.tiny.hidden", 30, "model.tiny.hidden: must be a multiple of 4, got 30"),
    # enumerations, with the nearest valid value
    ("method", "npoo", f"method: must be one of {', '.join(METHOD_NAMES)}, got 'npoo'; did you mean npo?"),
    ("methods.gd.retain", "mse", "methods.gd.retain: must be one of nll, kl, got 'mse'"),
    ("relearn.data", "forgett", "relearn.data: must be one of auto, forget, retain_correlated, retain, got 'forgett'; "
     "did you mean forget?"),
    ("hardware.precision", "bf61", "hardware.precision: must be one of auto, bf16, fp16, fp32, got 'bf61'; did you mean bf16?"),
    ("eval.truth_ratio", "tofuu", "eval.truth_ratio: must be one of tofu, mean_prob, got 'tofuu'; did you mean tofu?"),
    ("eval.utility", "raw-prob", "eval.utility: must be one of tofu, raw_prob, got 'raw-prob'; did you mean raw_prob?"),
    ("finetune.scheduler", "cosin", "finetune.scheduler: must be one of constant, constant_with_warmup, cosine, "
     "cosine_with_restarts, inverse_sqrt, linear, polynomial, got 'cosin'; did you mean cosine?"),
    ("data.benchmark", "tofu", "data.benchmark: must be one of synthetic, world, import, documents, got 'tofu'"),
    ("data.import.on_long", "drop", "data.import.on_long: must be one of truncate, reject, got 'drop'"),
    ("hardware.attn_implementation", "flash", "hardware.attn_implementation: must be one of auto, sdpa, eager, "
     "flash_attention_2, got 'flash'"),
    ("quantize.models", ["target"], "quantize.models: must be [unlearned] or [unlearned, target], got ['target']"),
    # values checked beyond their type
    ("model.source", "embeded", "model.source: not embedded, tiny-random, an existing local folder, or a hub id like "
     "owner/name, got 'embeded'"),
    ("model.source", "./no/such/folder", "model.source: this local folder does not exist (or is not a folder), "
     "got './no/such/folder'"),
    ("unlearn.trainable", "layers[", "unlearn.trainable: not a valid regular expression (unterminated character set at "
     "position 6), got 'layers['"),
    ("data.world_forget", [], "data.world_forget: must be a non-empty list of country names, got []"),
    ("data.import.max_chars", 0, "data.import.max_chars: must be >= 1, got 0"),
    ("data.benchmark", "import", "data.import.forget: a forget file is required with benchmark: import"),
]


@pytest.mark.parametrize("dotted, value, expected", BAD, ids=[f"{d}={v!r}" for d, v, _ in BAD])
def test_bad_settings_name_the_key(dotted, value, expected):
    # settings check every section and the method names; the methods package the knobs' values
    with pytest.raises(UserError) as err:
        check_knobs(parse_settings(with_param(dotted, value)))
    assert str(err.value) == f"params.yaml: {expected}"


def test_a_method_without_a_learning_rate():
    params = with_param("methods.ga.lr", None)
    params["method"] = "ga"
    with pytest.raises(UserError, match=r"^params.yaml: no learning rate for method 'ga': set `lr` or `methods.ga.lr`$"):
        check_knobs(parse_settings(params))


@pytest.mark.parametrize("source", ["embedded", "tiny-random", "Qwen/Qwen2.5-1.5B-Instruct", "."])
def test_good_model_sources(source):
    assert parse_settings(with_param("model.source", source)).model.source == source


def test_yaml_12_reading(tmp_path):
    """`dvc exp run -S` writes 1e-05; YAML 1.2 reads a float. `no` stays the string it is in YAML 1.2."""
    path = tmp_path / "params.yaml"
    path.write_text("lr: 1e-05\nmodel:\n  trust_remote_code: no\n")
    with pytest.raises(UserError, match="trust_remote_code: must be true or false"):
        load_settings(path)
    path.write_text("lr: 1e-05\n")
    assert load_settings(path).lr == 1e-5
    path.write_text("lr: [1\n")
    with pytest.raises(UserError, match=r"params.yaml: not valid YAML"):
        load_settings(path)


def test_world_forget_accepts_one_country():
    assert parse_settings(with_param("data.world_forget", "Spain")).data.world_forget == ["Spain"]


def test_every_method_has_knobs_and_a_default_lr_in_params():
    assert set(PARAMS["methods"]) == set(method_names())
    knobs = check_knobs(parse_settings(PARAMS))
    for name in method_names():
        assert knobs[name].lr == PARAMS["methods"][name]["lr"]


def test_settings_never_import_the_methods():
    """Every stage imports settings: importing the methods (torch, every method file) would make
    each stage depend on them. The method names come from a directory listing."""
    code = "import sys, unlearn_lab.settings; print(sorted(m for m in sys.modules if 'methods' in m or m == 'torch'))"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_enumerations_match_the_installed_transformers():
    from transformers import SchedulerType
    from transformers.training_args import OptimizerNames

    assert set(SCHEDULERS) <= {s.value for s in SchedulerType}
    assert set(OPTIMIZERS) - {"auto"} <= {o.value for o in OptimizerNames}


def test_reads_are_logged_with_their_dotted_key(tmp_path, monkeypatch):
    log = tmp_path / "reads.tsv"
    monkeypatch.setenv("UNLEARN_LAB_SETTINGS_READS", str(log))
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    settings = load_settings(tmp_path / "params.yaml")
    try:
        _ = settings.model.lora.r, settings.data.import_.format, settings.seed, effective_lr(settings)
    finally:
        from unlearn_lab.settings import base

        base._recording["on"] = False
    keys = [line.split("\t")[1] for line in log.read_text().splitlines()]
    assert keys == ["model.lora.r", "data.import.format", "seed", "lr", "method", "methods.npo.lr"]


# ---- stages: one line on stderr, exit 2, nothing written ----------------------------------------

def run_stage(tmp_path, params_text: str, script="prepare_model.py", *args):
    (tmp_path / "params.yaml").write_text(params_text)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, str(ROOT / "stages" / script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True)


def test_a_typo_anywhere_stops_the_first_stage(tmp_path):
    proc = run_stage(tmp_path, "eval:\n  mink_k: 1.5\n", "process_data.py", "--raw", str(ROOT / "data/raw"),
                     "--base", "models/base", "--out", "data/processed")
    assert proc.returncode == 2
    assert proc.stderr == "error: params.yaml: eval.mink_k: must be <= 1, got 1.5\n"
    assert not (tmp_path / "data").exists()


def test_a_bad_knob_stops_the_unlearn_stage_before_any_work(tmp_path):
    """Knob values are the methods package's to check: the unlearn stage does it first thing."""
    proc = run_stage(tmp_path, "methods:\n  wga:\n    beta: -1\n", "unlearn.py", "--target", "models/target",
                     "--target-rows", "eval/target.jsonl",
                     "--data", "data/processed", "--random-labels", "rl.jsonl", "--idk", "idk.txt", "--out", "out",
                     "--logs", "logs", "--epoch-logs", "epoch_logs", "--metrics", "metrics.json")
    assert proc.returncode == 2
    assert proc.stderr == "error: params.yaml: methods.wga.beta: must be >= 0, got -1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_custom_code_without_trust_is_one_line(tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": {"AutoConfig": "evil.Config"}}))
    (folder / "evil.py").write_text("raise SystemExit('the folder code ran')\n")
    proc = run_stage(tmp_path, f"model:\n  source: {folder}\n  trust_remote_code: false\n", "prepare_model.py",
                     "--out", "models/base")
    assert proc.returncode == 2
    assert proc.stderr == (f"error: params.yaml: model.source '{folder}' needs its own Python code to load (auto_map "
                           "in config.json); set model.trust_remote_code: true only if you trust that code\n")
    assert not (tmp_path / "models" / "base").exists()


def test_pickled_weights_are_never_loaded(tmp_path, tiny_dir):
    """A folder with only pytorch_model.bin (a pickle) is refused, not unpickled."""
    import shutil

    import torch

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_dir, folder)
    weights = __import__("safetensors.torch", fromlist=["load_file"]).load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")
    proc = run_stage(tmp_path, f"model:\n  source: {folder}\n", "prepare_model.py", "--out", "models/base")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "safetensors" in proc.stderr and "Traceback" not in proc.stderr
