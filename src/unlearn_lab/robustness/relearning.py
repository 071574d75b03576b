"""Relearning attack: a few fine-tuning steps on the unlearned model, then the forget metrics again.

Forgetting that a handful of steps on related text restores was suppressed, not removed (Lynch et
al. 2024, arXiv 2402.16835; Hu et al. 2024, arXiv 2406.13356). Two kinds of attack data:
- `forget`: every other forget fact; the attack is scored on the forget facts it did not see,
  which only come back if the model still holds them;
- `retain_correlated` / `retain`: retain facts (those correlated with the forget set, or any),
  which tests whether ordinary fine-tuning undoes unlearning.
"""
from __future__ import annotations

from ..errors import UserError
from ..settings import Finetune, Hardware, Model, Relearn
from ..training import finetune
from .common import add_recovery, recovered_headline


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


def relearn(model, tok, attack: list[dict], model_cfg: Model, cfg: Relearn, hw: Hardware, scratch, seed: int,
            live=None):
    """Fine-tune `model` (the unlearned weights, merged) on `attack` for `cfg.steps` steps with
    a fresh LoRA adapter when `model_cfg.lora` is set; returns (model, report)."""
    train_cfg = Finetune(lr=cfg.lr, batch_size=cfg.batch_size, epochs=1, scheduler="constant", checkpoint=False)
    model, report = finetune(model, tok, attack, model_cfg, train_cfg, hw, scratch, seed, live, max_steps=cfg.steps)
    model.eval()
    return model, {**report, "lr": cfg.lr}


def relearn_result(data: str, report: dict, attack: list[dict], scored: list[dict], full: dict, scores: dict) -> dict:
    """metrics/relearn.json: the attack, the full-precision target and unlearned scores on the
    scored facts, the relearned scores and the recovered fractions (see `knowledge_recovered`)."""
    result = {"data": data, "steps": report["steps"], "lr": report["lr"], "attack_examples": len(attack),
              "scored": len(scored), "seconds": report["seconds"], "target": full["target"],
              "unlearned": full["unlearned"], "relearned": add_recovery(scores, full["unlearned"], full["target"])}
    if "recovered" in result["relearned"]:
        result["recovered"] = result["relearned"]["recovered"]
    return result


def headline(result: dict) -> dict:
    """The forget ROUGE-L fraction that relearning brings back."""
    return recovered_headline("relearn_recovered", result.get("relearned"), "relearn")
