"""Stage unlearn: apply `method` to the target model, at `lr` or the method's own default lr."""
from contextlib import nullcontext
from pathlib import Path

from unlearn_lab import hardware
from unlearn_lab.data.idk import load_idk_pool
from unlearn_lab.data.sets import load_sets
from unlearn_lab.epoch_eval import EpochEvaluation
from unlearn_lab.environment import stamp
from unlearn_lab.io import discarded_outputs, read_jsonl, staged_outputs, write_json
from unlearn_lab.methods import build_method, effective_lr, trainable
from unlearn_lab.modeling import load_model, load_tokenizer, save_trained
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args
from unlearn_lab.unlearning import unlearn


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
    sets = load_sets(args.data, ("forget", "retain"))
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
            epoch_eval = None
            if writer and settings.unlearn.epoch_eval:
                retain_size = settings.unlearn.epoch_eval_retain

                def epoch_eval(m):
                    return EpochEvaluation(m, tok, sets["forget"], sets["retain"], settings.eval, epoch_live, retain_size)
            model, report = unlearn(
                model, tok, sets["forget"], sets["retain"], method, lr, settings.model, settings.unlearn, hw,
                Path(".scratch") / "unlearn", settings.unlearn.seed, live,
                idk_pool=idk_pool, random_labels=random_labels, epoch_eval=epoch_eval, trainable=trainable(settings),
            )
        # The wall time stays in the metrics: in the model folder it would give every rerun a new
        # hash and rerun every stage downstream even when the weights came out the same.
        timeless = {k: v for k, v in report.items() if k != "seconds"}
        save_trained(model, out[args.out], parent=str(args.target), extra={"unlearn": timeless})
        write_json(out[args.metrics], stamp(report))
    if not writer:
        return
    if report["stopped_early"]:
        print(f"unlearning stopped early: {report['stop_reason']} (the last good weights were kept)")
    print(f"{args.out}: {method.name} lr={lr} steps={report['steps']} in {report['seconds']} s")


if __name__ == "__main__":
    run_stage(main)
