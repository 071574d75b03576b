"""The attack stage split in two (robustness/probing.py): the target and the oracle probed apart and
stored, the unlearned model probed later, give the rows and metrics of the single stage that probed
the three in one process; stored rows of other prompts are refused."""
import json
from types import SimpleNamespace

import pytest
import torch

from unlearn_lab.errors import UserError
from unlearn_lab.io import write_jsonl
from unlearn_lab.models.hardware import resolve_eval
from unlearn_lab.models.loading import load_model, prepare_base
from unlearn_lab.robustness.attacks import build_probes, run_probes
from unlearn_lab.robustness.leaks import add_oracle_floor, headline, leak_rates, worst
from unlearn_lab.robustness.prefix_attack import headline as prefix_headline, prefix_probes, prefix_results, run_prefix_probes
from unlearn_lab.robustness.probing import (
    ProbeRun, attack_inputs, attack_result, probe_model, read_probed, skip_reason, write_probed)
from unlearn_lab.settings import Attack, Eval, Model, Tiny

from .test_attacks import FORGET, POOL, RETAIN

DOCUMENT = {"id": "d1", "split": "forget", "text": "Fenna Kilbride was born in Bergen in 1996 and grew up by the "
            "harbour, where her father mended nets and her mother kept the lighthouse log for thirty years."}
SETTINGS = SimpleNamespace(attack=Attack(samples=2, max_new_tokens=4, paraphrases=1, priming=1),
                           eval=Eval(prefix_tokens=4, continuation_tokens=6, bootstrap=50), seed=3)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Three tiny random models of different weights, for target, unlearned and oracle."""
    out = {}
    for seed, name in enumerate(("target", "unlearned", "oracle")):
        out[name] = tmp_path_factory.mktemp(name)
        prepare_base(Model(source="tiny-random", tiny=Tiny(layers=2, hidden=32)), out[name], seed)
    return out


@pytest.fixture()
def data(tmp_path):
    folder = tmp_path / "processed"
    sets = {"forget": FORGET, "retain": RETAIN, "holdout": [], "world": [], "documents": [DOCUMENT]}
    for name, records in sets.items():
        write_jsonl(folder / f"{name}.jsonl", records)
    return folder


def one_process(models, tok):
    """The attack stage before the split: the three models probed in turn in one process, the
    rows concatenated per model, the metrics computed from them (minus the wall time)."""
    cfg, ev, seed = SETTINGS.attack, SETTINGS.eval, SETTINGS.seed
    probes = build_probes(tok, FORGET, POOL, RETAIN, cfg, seed)
    prefixes = prefix_probes(tok, [DOCUMENT], ev.prefix_tokens, ev.continuation_tokens)
    rows, prefix_rows = {}, {}
    for name in ("target", "unlearned", "oracle"):
        model = load_model(models[name])
        rows[name] = run_probes(model, tok, probes, cfg, ev, seed, name)
        prefix_rows[name] = run_prefix_probes(model, tok, prefixes, resolve_eval(ev).gen_batch_size, name)
    result = {"questions": len(FORGET), "probes_per_model": len(probes), "settings": cfg.model_dump(),
              "attacks": leak_rates(rows)}
    add_oracle_floor(result["attacks"], rows, seed)
    result["worst_attack"] = worst(result, "leak_rate")
    result["worst_attack_over_oracle"] = worst(result, "leak_over_oracle")
    result["prefix_attack"] = prefix_results(prefix_rows, ev.bootstrap, seed)
    result["headline"] = {**headline(result), **prefix_headline(result)}
    return [r for name in rows for r in rows[name] + prefix_rows[name]], result


def test_split_probing_gives_the_one_process_rows_and_metrics(models, tok, data, tmp_path):
    want_rows, want = one_process(models, tok)
    inputs = attack_inputs(tok, data, SETTINGS)
    stored = {}
    for name in ("oracle", "target"):  # another order, each stored and read back
        write_probed(probe_model(models[name], tok, inputs, SETTINGS, name), tmp_path / f"{name}.jsonl",
                     tmp_path / f"{name}.json")
        torch.rand(100)  # a global random state the one-process run never had
        stored[name] = read_probed(name, tmp_path / f"{name}.jsonl", tmp_path / f"{name}.json", inputs)
    runs = {"target": stored["target"], "unlearned": probe_model(models["unlearned"], tok, inputs, SETTINGS, "unlearned"),
            "oracle": stored["oracle"]}
    got = attack_result(runs, "", inputs, SETTINGS)
    assert [r for run in runs.values() for r in run.rows + run.prefix_rows] == want_rows
    assert {k: v for k, v in got.items() if not k.startswith("seconds")} == want
    assert set(got["seconds_by_model"]) == {"target", "unlearned", "oracle"}
    assert got["seconds"] == pytest.approx(sum(got["seconds_by_model"].values()), abs=0.051)
    # the sampled attack really drew at random: its answers hold more than one text per prompt
    assert any(len(set(r["answer"])) > 1 for r in want_rows if r["attack"] == "best_of_n")


def test_stored_rows_of_other_prompts_or_another_model_are_refused(tok, data, tmp_path):
    inputs = attack_inputs(tok, data, SETTINGS)
    rows = [{"model": "oracle", "attack": p.attack, "id": p.id, "prompt": p.text or p.question, "leaked": False}
            for p in inputs.probes]
    prefix = [{"model": "oracle", "attack": "prefix", "set": p.variant, "id": p.document, "verbmem": 0.0}
              for p in inputs.prefixes]
    write_probed(ProbeRun("oracle", rows, prefix, 1.5), tmp_path / "o.jsonl", tmp_path / "o.json")
    back = read_probed("oracle", tmp_path / "o.jsonl", tmp_path / "o.json", inputs)
    assert (back.rows, back.prefix_rows, back.seconds, back.reason) == (rows, prefix, 1.5, "")
    with pytest.raises(UserError, match="not of 'target'"):
        read_probed("target", tmp_path / "o.jsonl", tmp_path / "o.json", inputs)
    other = SimpleNamespace(**{**vars(SETTINGS), "attack": Attack(samples=2, max_new_tokens=4, paraphrases=2, priming=1)})
    with pytest.raises(UserError, match="answers other prompts than this run asks"):
        read_probed("oracle", tmp_path / "o.jsonl", tmp_path / "o.json", attack_inputs(tok, data, other))
    fewer_documents = attack_inputs(tok, data, SimpleNamespace(**{**vars(SETTINGS), "eval": Eval(prefix_tokens=64)}))
    with pytest.raises(UserError, match="answers other prompts"):
        read_probed("oracle", tmp_path / "o.jsonl", tmp_path / "o.json", fewer_documents)


def test_a_model_not_probed_says_why(tmp_path):
    (tmp_path / "oracle").mkdir()
    (tmp_path / "oracle/unlearn_lab.json").write_text(json.dumps({"kind": "none", "reason": "world benchmark: no oracle"}))
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora/unlearn_lab.json").write_text(json.dumps({"kind": "lora", "parent": "models/base"}))
    assert skip_reason("oracle", tmp_path / "oracle", Attack()) == "no oracle: world benchmark: no oracle"
    assert skip_reason("oracle", tmp_path / "lora", Attack()) == ""
    assert skip_reason("target", tmp_path / "lora", Attack(target=False)) == "attack.target is false"
    assert skip_reason("target", tmp_path / "lora", Attack(target=True)) == ""
    write_probed(ProbeRun("target", reason="attack.target is false"), tmp_path / "t.jsonl", tmp_path / "t.json")
    assert (tmp_path / "t.jsonl").read_text() == ""
    back = read_probed("target", tmp_path / "t.jsonl", tmp_path / "t.json", None)
    assert back.reason == "attack.target is false" and back.rows == [] and back.prefix_rows == []
