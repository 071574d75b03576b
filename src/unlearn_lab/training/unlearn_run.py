"""The unlearn stage's work: the forget set cut into deletion requests, each unlearned in turn
with the method, and the forgetting and keeping measured at every request's start and end (and
between epochs with `unlearn.epoch_eval`) into the per-epoch curves."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from ..data.idk import load_idk_pool
from ..data.sets import load_sets, training_sets
from ..io import read_jsonl
from ..settings import Settings
from .deletion import RequestEvaluation, combined_report, request_rows, split_requests, unlearn_requests
from .epoch_eval import EpochEvaluation
from .methods import trainable
from .unlearning import check_documents_method, unlearn

SCRATCH = Path(".scratch") / "unlearn"


@dataclass
class UnlearnInputs:
    sets: dict[str, list[dict]]
    train: dict[str, list[dict]]
    requests: list[list[dict]]
    idk_pool: list[str] | None
    random_labels: list[dict] | None
    target_rows: list[dict] | None = None


def load_inputs(settings: Settings, method, data: Path, idk: Path, random_labels: Path,
                target_rows: Path | None = None) -> UnlearnInputs:
    """The question sets; what is forgotten and kept (the questions, or on the documents
    benchmark the documents, the questions then measuring what is left between epochs); the
    requests; the extra views only the methods that read them need; and the evaluate stage's
    rows of the target (the measurement before the first request, already made there)."""
    needs = set(method.views)
    sets = load_sets(data, ("forget", "retain", "world"))
    train = training_sets(data, sets, settings.data.benchmark)
    check_documents_method(method, settings.data.benchmark, settings.unlearn.requests)
    requests = split_requests(sets["forget"], settings.unlearn.requests, settings.seed)
    return UnlearnInputs(sets, train, requests,
                         load_idk_pool(idk) if needs & {"forget_idk", "retain_idk"} else None,
                         read_jsonl(random_labels) if "forget_wrong" in needs else None,
                         read_jsonl(target_rows) if target_rows is not None else None)


@dataclass
class UnlearnRun:
    model: object
    report: dict  # the combined report of every request (steps, seconds, guard)
    metrics: dict  # the stage's metrics file, before its stamp
    model_record: dict  # what the model folder records (no wall time: it would change its hash)


def unlearn_all(model, tok, inputs: UnlearnInputs, method, lr: float, settings: Settings, hw, logs: Path,
                epoch_logs: Path, writer: bool) -> UnlearnRun:
    """Every request unlearned in turn. Only the writing process (rank 0 of a distributed run)
    logs curves and measures; every process trains."""
    from dvclive import Live

    cfg = settings.unlearn

    def live_run(folder):
        return Live(str(folder), dvcyaml=False, save_dvc_exp=False, report=None) if writer else nullcontext()

    with live_run(logs) as live, live_run(epoch_logs) as epoch_live:
        curves = measure = None
        if writer:
            curves = EpochEvaluation(None, tok, inputs.sets["forget"], inputs.sets["retain"], settings.eval,
                                     epoch_live, cfg.epoch_eval_retain, boundaries=True, epochs=cfg.epochs)
            measure = RequestEvaluation(tok, inputs.requests, inputs.sets["retain"], inputs.sets["world"],
                                        settings.eval, cfg.request_eval_size, epoch_log=curves, epochs=cfg.epochs)

        def epoch_eval_for(r):
            def epoch_eval(trained):
                curves.model, curves.epoch_offset = trained, r * cfg.epochs
                return curves
            return epoch_eval if curves is not None and cfg.epoch_eval else None

        def run_request(m, r, forget, reference_model):
            return unlearn(m, tok, forget, inputs.train["retain"], method, lr, settings.model, cfg, hw, SCRATCH,
                           cfg.seed + r, live, idk_pool=inputs.idk_pool, random_labels=inputs.random_labels,
                           epoch_eval=epoch_eval_for(r), trainable=trainable(settings),
                           reference_model=reference_model)
        # On the documents benchmark the one request forgets the documents, and its questions
        # (`requests`) are what is measured before and after.
        applied = [inputs.train["forget"]] if settings.data.benchmark == "documents" else inputs.requests
        model, reports, points = unlearn_requests(model, applied, run_request, cfg.request_reference, measure,
                                                  method.needs_reference, before=inputs.target_rows)
    report = combined_report(reports, cfg.request_reference)
    record = {k: v for k, v in report.items() if k != "seconds"}
    if len(inputs.requests) > 1:
        # The adapters of the requests add up; the model is kept whole (LoRA merged).
        model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        record["requests"] = request_rows(reports, seconds=False)
    metrics = {**report, "requests": request_rows(reports), "after_requests": points}
    return UnlearnRun(model, report, metrics, record)
