"""Deletion requests that arrive one after another (MUSE's sustainability setting): the forget set
cut into `unlearn.requests` disjoint requests of whole people, applied in turn, each starting from
the model the previous one left, and the model measured before the first and after every one.

Across requests:
- the retain term pairs each request's forget questions with the same retain set (a request's
  pairing and adapter seed is `unlearn.seed + r` for its index r, so request 0 is the one-request run);
- the reference model of the methods that read one (NPO, the KL retain term, ...) is, with
  `unlearn.request_reference: previous`, the model before the request (the model in service when
  it arrived); with `target`, the original target throughout;
- the divergence guard watches each request on its own: a request it stops keeps its last good
  weights, and the next request starts from them;
- with LoRA each request trains a fresh adapter on the weights the previous ones left (merged in).
"""
from __future__ import annotations

import copy
import random

import numpy as np

from ..data.records import person
from ..data.sets import sample
from ..errors import UserError
from ..evaluation.questions import evaluate_set, metrics_from_rows
from ..models.hardware import resolve_eval
from ..evaluation.intervals import bootstrap_intervals
from ..evaluation.metrics import truth_ratio_forget_score
from ..settings import Eval
from ..timing import part

FORGET_KEYS = ("rouge_l_recall", "prob")
UTILITY_KEYS = ("retain_rouge_l_recall", "world_rouge_l_recall", "model_utility")


def split_requests(forget: list[dict], k: int, seed: int) -> list[list[dict]]:
    """`forget` cut into k disjoint requests of whole people: the people shuffled with `seed`
    (the data seed, so every method and unlearning seed gets the same requests), then dealt into
    k groups whose sizes differ by at most one person. Records keep their order inside a request;
    k = 1 returns the forget set unchanged."""
    if k == 1:
        return [list(forget)]
    people = list(dict.fromkeys(person(r) for r in forget))
    if k > len(people):
        raise UserError(f"params.yaml: unlearn.requests is {k}, but the forget set has only {len(people)} "
                        "people (a request forgets whole people)")
    order = sorted(people)
    random.Random(f"unlearn_lab.training.deletion:{seed}").shuffle(order)
    groups = [set(g) for g in np.array_split(np.array(order, dtype=object), k)]
    return [[r for r in forget if person(r) in g] for g in groups]


class RequestEvaluation:
    """The model before the first request and after each one: per request, ROUGE-L recall and
    answer probability on its forget questions (whether it is already applied or still to come),
    with retain and world ROUGE-L and model utility on fixed samples of `size` questions each,
    every value with its 95% bootstrap interval over the questions behind it.

    `epoch_log` (an EpochEvaluation) receives each point's forget ROUGE-L, retain ROUGE-L and forget
    truth-ratio score as the epoch `applied * epochs` of the epoch curves."""

    def __init__(self, tok, requests: list[list[dict]], retain: list[dict], world: list[dict], eval_cfg: Eval,
                 size: int = 16, resamples: int | None = None, epoch_log=None, epochs: int = 1):
        self.tok, self.requests, self.cfg = tok, requests, resolve_eval(eval_cfg)
        self.retain, self.world = sample(retain, size), sample(world, size)
        self.resamples = self.cfg.bootstrap if resamples is None else resamples
        self.epoch_log, self.epochs = epoch_log, epochs
        self.history: list[dict] = []

    def measured_sets(self) -> tuple[tuple[str, list[dict]], ...]:
        forget = [r for request in self.requests for r in request]
        return ("forget", forget), ("retain", self.retain), ("world", self.world)

    def rows(self, model) -> list[dict]:
        rows = []
        for name, records in self.measured_sets():
            got, _ = evaluate_set(model, self.tok, records, self.cfg, name, bertscore=False)
            rows += got
        return self.by_request(rows)

    def rows_from(self, evaluated: list[dict]) -> list[dict] | None:
        """The rows `rows` would compute, taken from an evaluation of the same model (the evaluate
        stage's rows of the target: the same per-question metrics, computed in other batches, so
        equal up to float rounding); None when that evaluation left out a question measured here."""
        have = {(r["set"], r["id"]): r for r in evaluated}
        wanted = [(name, r["id"]) for name, records in self.measured_sets() for r in records]
        if any(key not in have for key in wanted):
            return None
        return self.by_request([have[key] for key in wanted])

    def by_request(self, rows: list[dict]) -> list[dict]:
        of = {r["id"]: i for i, request in enumerate(self.requests) for r in request}
        # Each forget question is marked with its request, so the bootstrap resamples each request
        # on its own (a stratified resample, like the sets of the evaluation).
        return [{**row, "set": f"request_{of[row['id']] + 1}"} if row["set"] == "forget" else row for row in rows]

    def summary(self, rows: list[dict]) -> dict:
        out: dict = {}
        for i in range(len(self.requests)):
            mine = [r for r in rows if r["set"] == f"request_{i + 1}"]
            if mine:
                out[f"request_{i + 1}"] = {k: float(np.mean([r[k] for r in mine])) for k in FORGET_KEYS}
        utility_rows = [r for r in rows if r["set"] in ("retain", "world")]
        metrics = metrics_from_rows(utility_rows, eval_cfg=self.cfg)
        for s in ("retain", "world"):
            if s in metrics:
                out[f"{s}_rouge_l_recall"] = metrics[s]["rouge_l_recall"]
        if "model_utility" in metrics:
            out["model_utility"] = metrics["model_utility"]
        return out

    def measure(self, model, applied: int, rows: list[dict] | None = None) -> dict:
        """One point of the study: `applied` requests done; its `rows` when already evaluated
        (`rows_from`), else measured on `model`."""
        if rows is None:
            was_training = model.training
            model.eval()
            with part("request measurements"):
                rows = self.rows(model)
            if was_training:
                model.train()
        point = {"applied": applied, **self.summary(rows)}
        keys = [(f"request_{i + 1}", k) for i in range(len(self.requests)) for k in FORGET_KEYS]
        keys += [(k,) for k in UTILITY_KEYS]
        if self.resamples:
            for key, interval in bootstrap_intervals(rows, lambda s, _: self.summary(s), keys,
                                                     resamples=self.resamples).items():
                place = point[key[0]] if len(key) == 2 else point
                if interval is not None and isinstance(place, dict):
                    place[f"{key[-1]}_ci95"] = interval
        if self.epoch_log is not None:
            forget = [r for r in rows if r["set"].startswith("request_")]
            self.epoch_log.record(applied * self.epochs, {
                "forget_rouge_l_recall": float(np.mean([r["rouge_l_recall"] for r in forget])),
                "retain_rouge_l_recall": point.get("retain_rouge_l_recall", float("nan")),
                "forget_truth_ratio": truth_ratio_forget_score([r["truth_ratio"] for r in forget]),
            })
        self.history.append(point)
        return point


def unlearn_requests(model, requests: list[list[dict]], run_request, request_reference: str = "previous",
                     measure: RequestEvaluation | None = None, needs_reference: bool = False,
                     before: list[dict] | None = None):
    """Apply the requests in turn. `run_request(model, r, forget, reference_model)` runs one
    request on `model` and returns (the trained model, its report); `reference_model` is None
    (the method's usual reference: the model before the request) or the original target. Between
    requests a LoRA adapter is merged into the weights. Returns the final model, each request's
    report and the measurements (empty without `measure`). `before`: the evaluate stage's rows of
    the starting model, which the first measurement takes instead of evaluating it again."""
    target = None
    if request_reference == "target" and needs_reference and len(requests) > 1:
        target = copy.deepcopy(model).eval().requires_grad_(False)
    if measure is not None:
        measure.measure(model, 0, measure.rows_from(before) if before else None)
    reports = []
    for r, forget in enumerate(requests):
        if r > 0 and hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model, report = run_request(model, r, forget, target if r > 0 else None)
        reports.append({"request": r + 1, "people": sorted(dict.fromkeys(person(x) for x in forget)),
                        counted(forget): len(forget), **report})
        if measure is not None:
            measure.measure(model, r + 1)
    return model, reports, measure.history if measure is not None else []


def counted(records: list[dict]) -> str:
    """What a request's records are, as its report names their number: `questions`, or on the
    documents benchmark (records of text, no question) `documents`."""
    return "documents" if records and all("question" not in r for r in records) else "questions"


REQUEST_KEYS = ("request", "people", "questions", "documents", "steps", "seconds", "stopped_early", "stop_reason")


def request_rows(reports: list[dict], seconds: bool = True) -> list[dict]:
    """What each request did (who it forgot, how many steps, whether the guard stopped it),
    without the settings every request shares."""
    return [{k: r[k] for k in REQUEST_KEYS if k in r and (seconds or k != "seconds")} for r in reports]


def combined_report(reports: list[dict], request_reference: str) -> dict:
    """The run's report from its requests' reports: with one request that request's own report
    (the one-request run's, unchanged); with several, steps and seconds summed, stopped early if
    any request was, and which reference the later requests used."""
    own = [{k: v for k, v in r.items() if k not in ("request", "people", "questions", "documents")} for r in reports]
    if len(own) == 1:
        return own[0]
    stops = [f"request {r['request']}: {r['stop_reason']}" for r in reports if r["stopped_early"]]
    return {**own[-1], "steps": sum(r["steps"] for r in own), "seconds": round(sum(r["seconds"] for r in own), 1),
            "stopped_early": bool(stops), "stop_reason": "; ".join(stops), "request_reference": request_reference}
