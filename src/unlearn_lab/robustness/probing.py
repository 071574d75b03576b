"""The attack stages' shared work: one model's probing, its stored rows, and the combined result.

The target's and the oracle's answers do not depend on the unlearning method, so stage
attack_probes@{target,oracle} probes each of them once (DVC caches the rows) and stage attack
probes only the unlearned model, then reads the other two back and scores them together. Both
build the same probes: `build_probes` is a function of the tokenizer, the sets, `attack:` and the
seed, and `run_probes` reseeds torch before sampling, so a model's rows do not depend on which
process probed it or which model went before.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..data.sets import load_documents, load_sets
from ..errors import UserError
from ..io import read_json, read_jsonl, write_json, write_jsonl
from ..models.hardware import device, resolve_eval
from ..models.loading import load_model, read_meta
from ..settings import Attack
from .. import timing
from ..timing import part
from .attacks import Probe, build_probes, run_probes
from .leaks import add_oracle_floor, headline, leak_rates, worst
from .prefix_attack import PrefixProbe, headline as prefix_headline, prefix_probes, prefix_results, run_prefix_probes

PREFIX = "prefix"  # the `attack` of a prefix-attack row; no prompt attack has this name


@dataclass
class AttackInputs:
    """What every model of the attack stage is asked: the forget questions' probes and, on the
    documents benchmark, the forget documents' prefix prompts."""
    questions: int
    probes: list[Probe]
    prefixes: list[PrefixProbe]


@dataclass
class ProbeRun:
    """One model's rows (prompt attacks, prefix attack) and seconds; or, with `reason`, why that
    model was not probed."""
    model: str
    rows: list[dict] = field(default_factory=list)
    prefix_rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    reason: str = ""


def attack_inputs(tok, data: Path, settings) -> AttackInputs:
    """The probes of stage attack from the processed sets in `data` (reads `attack`, `eval` and `seed`)."""
    sets = load_sets(data, ("forget", "retain", "holdout", "world"))
    pool = [r for records in sets.values() for r in records]
    probes = build_probes(tok, sets["forget"], pool, sets["retain"], settings.attack, settings.seed)
    ev = resolve_eval(settings.eval)
    documents = load_documents(data).get("forget", [])
    return AttackInputs(len(sets["forget"]), probes, prefix_probes(tok, documents, ev.prefix_tokens,
                                                                    ev.continuation_tokens))


def skip_reason(model: str, folder: Path, cfg: Attack) -> str:
    """Why `model` (target or oracle) is not attacked, "" when it is: the target only with
    `attack.target`, the oracle only where one was trained."""
    if model == "target":
        return "" if cfg.target else "attack.target is false"
    meta = read_meta(folder)
    return "" if meta["kind"] != "none" else "no oracle: " + meta.get("reason", "none trained")


def probe_model(folder: Path, tok, inputs: AttackInputs, settings, label: str) -> ProbeRun:
    """Load the model in `folder` and run every probe on it; the seconds count the loading too."""
    start = time.perf_counter()
    with part("load"):
        model = load_model(folder).to(device())
    rows = run_probes(model, tok, inputs.probes, settings.attack, settings.eval, settings.seed, label)
    prefix_rows = []
    if inputs.prefixes:
        with part("prefix attack"):
            prefix_rows = run_prefix_probes(model, tok, inputs.prefixes, resolve_eval(settings.eval).gen_batch_size,
                                            label)
    del model
    return ProbeRun(label, rows, prefix_rows, round(time.perf_counter() - start, 1))


def write_probed(run: ProbeRun, rows_path: Path, report_path: Path) -> None:
    """The rows (prompt attacks, then prefix attack: the order of eval/attack.jsonl) and a report
    of the seconds or the reason."""
    write_jsonl(rows_path, run.rows + run.prefix_rows)
    write_json(report_path, {"model": run.model, "reason": run.reason} if run.reason else
               {"model": run.model, "seconds": run.seconds, "rows": len(run.rows), "prefix_rows": len(run.prefix_rows),
                "seconds_by_part": timing.report()})


def read_probed(model: str, rows_path: Path, report_path: Path, inputs: AttackInputs) -> ProbeRun:
    """What `write_probed` stored for `model`, checked against the probes this run asks, so
    rows from other settings or data are never scored as if they answered these."""
    report, rows = read_json(report_path), read_jsonl(rows_path)
    if report.get("model") != model:
        raise UserError(f"{report_path}: holds the rows of {report.get('model')!r}, not of {model!r}")
    if report.get("reason"):
        return ProbeRun(model, reason=report["reason"])
    run = ProbeRun(model, [r for r in rows if r["attack"] != PREFIX], [r for r in rows if r["attack"] == PREFIX],
                   report["seconds"])
    asked = [(p.attack, p.id, p.text or p.question) for p in inputs.probes]
    asked_prefix = [(p.variant, p.document) for p in inputs.prefixes]
    if ([(r["attack"], r["id"], r["prompt"]) for r in run.rows] != asked
            or [(r["set"], r["id"]) for r in run.prefix_rows] != asked_prefix):
        raise UserError(f"{rows_path}: answers other prompts than this run asks (other data or attack settings); "
                        f"run `dvc repro` so attack_probes@{model} probes again")
    return run


def attack_result(runs: dict[str, ProbeRun], oracle_reason: str, inputs: AttackInputs, settings) -> dict:
    """Stage attack's metrics from the probed models' rows (in the order target, unlearned, oracle);
    `seconds` is the models' probing time, by model in `seconds_by_model`."""
    rows = {name: run.rows for name, run in runs.items()}
    result = {"questions": inputs.questions, "probes_per_model": len(inputs.probes),
              "settings": settings.attack.model_dump(), "attacks": leak_rates(rows)}
    if oracle_reason:
        result["oracle_reason"] = oracle_reason
    else:
        add_oracle_floor(result["attacks"], rows, settings.seed)
    result["worst_attack"] = worst(result, "leak_rate")
    result["worst_attack_over_oracle"] = worst(result, "leak_over_oracle")
    if inputs.prefixes:
        result["prefix_attack"] = prefix_results({name: run.prefix_rows for name, run in runs.items()},
                                                 settings.eval.bootstrap, settings.seed)
    result["seconds_by_model"] = {name: run.seconds for name, run in runs.items()}
    result["seconds"] = round(sum(result["seconds_by_model"].values()), 1)
    result["headline"] = {**headline(result), **prefix_headline(result)}
    return result
