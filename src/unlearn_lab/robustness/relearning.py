"""Relearning attack: a few fine-tuning steps on the unlearned model, then the forget metrics again.

Forgetting that a handful of steps on related text restores was suppressed, not removed (Lynch et
al. 2024, arXiv 2402.16835; Hu et al. 2024, arXiv 2406.13356). Two kinds of attack data:
- `forget`: every other forget fact; the attack is scored on the forget facts it did not see,
  which only come back if the model still holds them;
- `retain_correlated` / `retain`: retain facts (those correlated with the forget set, or any),
  which tests whether ordinary fine-tuning undoes unlearning.

The control: the same attack (data, steps, lr, seed) on the oracle, which never saw the forget
facts, tells how much the attack teaches by itself; `recovered_over_oracle` (scores.py) is the
knowledge the attacked unlearned model holds beyond the attacked oracle.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..data.links import check_relearn_links, people
from ..data.records import person
from ..errors import UserError
from ..models.hardware import device
from ..settings import Finetune, Hardware, Model, Relearn, Settings
from ..timing import part
from ..training.finetune import finetune
from .common import RECOVERY_SCORES, add_recovery, recovered_headline, score_sets
from .scores import recovered_over_oracle


def resolve_data(data: str, forget: list[dict], retain: list[dict]) -> str:
    """`auto`: half the forget set when it has 2 facts or more, else the correlated retain facts
    (the world benchmark forgets one capital), else any retain facts."""
    if data != "auto":
        return data
    if len(forget) >= 2:
        return "forget"
    return "retain_correlated" if any(r.get("correlated") for r in retain) else "retain"


def relearn_split(forget: list[dict], retain: list[dict], data: str, examples: int) -> tuple[list[dict], list[dict]]:
    """(attack records, forget records to score) for a resolved `data` choice. Deterministic."""
    if data == "forget":
        attack, scored = forget[0::2], forget[1::2]
        if not scored:
            raise UserError("relearn.data 'forget' needs at least 2 forget facts (one to train, one to score)")
    elif data == "retain_correlated":
        attack, scored = [r for r in retain if r.get("correlated")], forget
        if not attack:
            raise UserError("relearn.data 'retain_correlated': the retain set has no correlated facts; "
                            "use 'retain' or 'forget'")
    elif data == "retain":
        attack, scored = list(retain), forget
    else:
        raise ValueError(f"unknown relearn data {data!r}")
    if examples > 0:
        attack = attack[:examples]
    return attack, scored


def relearn_documents_split(forget: list[dict], documents: dict[str, list[dict]], data: str,
                            examples: int) -> tuple[list[dict], list[dict], list[dict]]:
    """Documents benchmark: (attack documents, forget questions to score, forget documents to
    score). `forget`: the documents of every other forgotten person train the attack, and the
    other people's questions (knowmem) and documents (verbmem) are scored (every document and
    question must name its person: data/links.py); `retain`: the retain documents train it and
    everything forgotten is scored (`retain_correlated` has no documents form: settings refuse
    it). Deterministic."""
    docs = documents.get("forget", [])
    if data == "retain_correlated":
        raise UserError("relearn.data: 'retain_correlated' has no documents form (documents have no correlated "
                        "retain set); use retain, forget or auto with benchmark: documents")
    if data != "forget":
        attack = list(documents.get("retain", []))
        return (attack[:examples] if examples > 0 else attack), forget, docs
    named = people(docs)
    if len(named) < 2:
        raise UserError("relearn.data 'forget' on documents needs the documents of 2 people or more "
                        "(one to train, one to score); use relearn.data: retain")
    check_relearn_links("forget", docs, forget)
    taught = set(named[0::2])
    attack = [d for d in docs if person(d) in taught]
    if examples > 0:
        attack = attack[:examples]
    return attack, [r for r in forget if person(r) not in taught], [d for d in docs if person(d) not in taught]


@dataclass
class RelearnPlan:
    """What the attack trains on and what it scores, the same for the unlearned model and the
    oracle's control (the relearn and relearn_control stages each draw it)."""
    data: str  # the resolved `relearn.data`
    attack: list[dict]
    scored: list[dict]  # forget questions scored after the attack
    scored_docs: dict[str, list[dict]] | None  # documents benchmark: forget documents scored too

    @property
    def scored_sets(self) -> dict[str, list[dict]]:
        return {"forget": self.scored}


def plan_relearn(cfg: Relearn, sets: dict[str, list[dict]], documents: dict[str, list[dict]]) -> RelearnPlan:
    """On the documents benchmark the attack trains on documents and knowmem and verbmem are
    re-scored (process_data checked the links already; data made before that check is checked
    here); otherwise on questions. Deterministic."""
    if documents:
        check_relearn_links(cfg.data, documents.get("forget", []), sets["forget"])
        data = resolve_data(cfg.data, people(documents.get("forget", [])), documents.get("retain", []))
        attack, scored, docs = relearn_documents_split(sets["forget"], documents, data, cfg.examples)
        return RelearnPlan(data, attack, scored, {"forget": docs})
    data = resolve_data(cfg.data, sets["forget"], sets["retain"])
    attack, scored = relearn_split(sets["forget"], sets["retain"], data, cfg.examples)
    return RelearnPlan(data, attack, scored, None)


def attack_and_score(model, tok, plan: RelearnPlan, settings: Settings, hw: Hardware, scratch, label: str,
                     live=None) -> tuple[dict, dict, list[dict]]:
    """(report, scores, rows): `plan`'s attack on `model`, then its scored sets again."""
    with part("relearn"):
        model, report = relearn(model, tok, plan.attack, settings.model, settings.relearn, hw, scratch, settings.seed,
                                live)
    scores, rows = score_sets(model.to(device()), tok, plan.scored_sets, settings.eval, label, plan.scored_docs)
    return report, scores, rows


def relearn(model, tok, attack: list[dict], model_cfg: Model, cfg: Relearn, hw: Hardware, scratch, seed: int,
            live=None):
    """Fine-tune `model` (the unlearned weights, merged) on `attack` for `cfg.steps` steps with
    a fresh LoRA adapter when `model_cfg.lora` is set; returns (model, report)."""
    train_cfg = Finetune(lr=cfg.lr, batch_size=cfg.batch_size, epochs=1, scheduler="constant", checkpoint=False)
    model, report = finetune(model, tok, attack, model_cfg, train_cfg, hw, scratch, seed, live, max_steps=cfg.steps)
    model.eval()
    return model, {**report, "lr": cfg.lr}


def add_oracle_control(scores: dict, oracle_scores: dict | None, target: dict, oracle: dict | None,
                       reason: str = "", set_name: str = "forget") -> dict:
    """Add `recovered_over_oracle*` keys (see `recovered_over_oracle`) for the forget scores of
    the attacked unlearned model, given the attacked oracle's and the oracle's own scores; with
    no oracle, a `*_reason` per key saying why (`reason`)."""
    out = dict(scores)
    for key, name in RECOVERY_SCORES.items():
        name = name.replace("recovered", "recovered_over_oracle")
        full = f"{set_name}_{key}"
        if full not in scores:
            continue
        if oracle_scores is None or oracle is None:
            out[f"{name}_reason"] = reason or "the oracle was not attacked"
            continue
        value = recovered_over_oracle(scores[full], oracle_scores[full], target[full], oracle[full])
        if value is None:
            out[f"{name}_reason"] = f"target and oracle {full} are equal: the target knows no more than the oracle"
        else:
            out[name] = value
    return out


def relearn_result(data: str, report: dict, attack: list[dict], scored: list[dict], full: dict, scores: dict,
                   oracle_scores: dict | None = None, oracle_reason: str = "") -> dict:
    """metrics/relearn.json: the attack, the full-precision target, unlearned (and oracle) scores
    on the scored facts, the relearned scores with the recovered fractions (`knowledge_recovered`)
    and, when the oracle was attacked too (`full["oracle"]` and `oracle_scores`), its relearned
    scores and `recovered_over_oracle`; otherwise `oracle_reason` says why not."""
    relearned = add_recovery(scores, full["unlearned"], full["target"])
    relearned = add_oracle_control(relearned, oracle_scores, full["target"], full.get("oracle"), oracle_reason)
    result = {"data": data, "steps": report["steps"], "lr": report["lr"], "attack_examples": len(attack),
              "scored": len(scored), "seconds": report["seconds"], "target": full["target"],
              "unlearned": full["unlearned"], "relearned": relearned}
    if oracle_scores is not None and "oracle" in full:
        result["oracle"], result["oracle_relearned"] = full["oracle"], oracle_scores
    for key in ("recovered", "recovered_over_oracle"):
        if key in relearned:
            result[key] = relearned[key]
    return result


def headline(result: dict) -> dict:
    """The forget ROUGE-L fraction that relearning brings back, and the knowledge the attacked
    unlearned model holds beyond the attacked oracle (`recovered_over_oracle`)."""
    block = result.get("relearned")
    return {**recovered_headline("relearn_recovered", block, "relearn"),
            **recovered_headline("relearn_recovered_over_oracle", block, "relearn", "recovered_over_oracle")}
