"""Stage unlearn: apply `method` to the target model, at `lr` or the method's own default lr."""
from contextlib import nullcontext
from pathlib import Path

from unlearn_lab.models import hardware
from unlearn_lab.data.idk import load_idk_pool
from unlearn_lab.data.sets import load_sets, training_sets
from unlearn_lab.training.epoch_eval import EpochEvaluation
from unlearn_lab.environment import stamp
from unlearn_lab.io import discarded_outputs, read_jsonl, staged_outputs, write_json
from unlearn_lab.training.methods import build_method, effective_lr, trainable
from unlearn_lab.models.loading import load_model, load_tokenizer, save_trained
from unlearn_lab.training.deletion import RequestEvaluation, combined_report, request_rows, split_requests, unlearn_requests
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args
from unlearn_lab.training.unlearning import check_documents_method, unlearn


def main():
    from dvclive import Live

    args = stage_args(__doc__, target="the target model folder", data="folder of the processed sets",
                      random_labels="the random labels (JSON lines)", idk="refusal answers, one per line",
                      out="the unlearned model folder", logs="DVCLive per-step curves",
                      epoch_logs="DVCLive per-epoch scores", metrics="run report (JSON)")
    settings = load_settings()
    # Every `methods.<name>` knob is checked here, before any work (settings check only the names).
    method, lr = build_method(settings), effective_lr(settings)
    needs = set(method.views)
    sets = load_sets(args.data, ("forget", "retain", "world"))
    cfg = settings.unlearn
    # What is forgotten and kept: the questions, or on the documents benchmark the documents (the
    # questions then measure what is left between epochs: knowledge memorisation).
    train = training_sets(args.data, sets, settings.data.benchmark)
    check_documents_method(method, settings.data.benchmark, cfg.requests)
    requests = split_requests(sets["forget"], cfg.requests, settings.seed)
    idk_pool = load_idk_pool(args.idk) if needs & {"forget_idk", "retain_idk"} else None
    random_labels = read_jsonl(args.random_labels) if "forget_wrong" in needs else None
    hw = hardware.resolve(settings.hardware)
    tok, model = load_tokenizer(args.target), load_model(args.target, attn_implementation=hw.attn_implementation)
    # Under `accelerate launch` every process trains; only rank 0 writes, logs and evaluates.
    writer = hardware.is_main_process()

    def live_run(folder):
        return Live(str(folder), dvcyaml=False, save_dvc_exp=False, report=None) if writer else nullcontext()

    # Model, curves and metrics replace the previous run's together, and only when it finished.
    outputs = staged_outputs if writer else discarded_outputs
    with outputs(files=[args.metrics], dirs=[args.out, args.logs, args.epoch_logs]) as out:
        with live_run(out[args.logs]) as live, live_run(out[args.epoch_logs]) as epoch_live:
            # Between epochs (epoch_eval) and at every request's start and end (always) the
            # forgetting and keeping so far go to the epoch curves.
            curves = measure = None
            if writer:
                curves = EpochEvaluation(None, tok, sets["forget"], sets["retain"], settings.eval, epoch_live,
                                         cfg.epoch_eval_retain, boundaries=True, epochs=cfg.epochs)
                measure = RequestEvaluation(tok, requests, sets["retain"], sets["world"], settings.eval,
                                            cfg.request_eval_size, epoch_log=curves, epochs=cfg.epochs)

            def run_request(m, r, forget, reference_model):
                def epoch_eval(trained):
                    curves.model, curves.epoch_offset = trained, r * cfg.epochs
                    return curves
                return unlearn(
                    m, tok, forget, train["retain"], method, lr, settings.model, cfg, hw, Path(".scratch") / "unlearn",
                    cfg.seed + r, live, idk_pool=idk_pool, random_labels=random_labels,
                    epoch_eval=epoch_eval if curves is not None and cfg.epoch_eval else None,
                    trainable=trainable(settings), reference_model=reference_model,
                )
            # On the documents benchmark the one request forgets the documents, and its questions
            # (`requests`) are what is measured before and after.
            applied = [train["forget"]] if settings.data.benchmark == "documents" else requests
            model, reports, points = unlearn_requests(model, applied, run_request, cfg.request_reference, measure,
                                                      method.needs_reference)
        report = combined_report(reports, cfg.request_reference)
        # The wall time stays in the metrics: in the model folder it would give every rerun a new
        # hash and rerun every stage downstream even when the weights came out the same.
        timeless = {k: v for k, v in report.items() if k != "seconds"}
        if len(requests) > 1:
            # The adapters of the requests add up; the model is kept whole (LoRA merged).
            model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
            timeless["requests"] = request_rows(reports, seconds=False)
        save_trained(model, out[args.out], parent=str(args.target), extra={"unlearn": timeless})
        write_json(out[args.metrics], stamp({**report, "requests": request_rows(reports), "after_requests": points}))
    if not writer:
        return
    if report["stopped_early"]:
        print(f"unlearning stopped early: {report['stop_reason']} (the last good weights were kept)")
    print(f"{args.out}: {method.name} lr={lr} steps={report['steps']} in {report['seconds']} s")


if __name__ == "__main__":
    run_stage(main)
