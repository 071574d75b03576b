"""Stage finetune@{target,oracle}: target learns forget+retain, the oracle learns retain only (the
documents of those sets on the documents benchmark, loss on every token)."""
from contextlib import nullcontext
from pathlib import Path

from unlearn_lab.models import hardware
from unlearn_lab.data.sets import load_sets, training_sets
from unlearn_lab.environment import stamp
from unlearn_lab.io import discarded_outputs, staged_outputs, write_json
from unlearn_lab.models.loading import META, load_model, load_tokenizer, save_trained
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args
from unlearn_lab.training.finetune import finetune


def main():
    args = stage_args(__doc__, which=("target", "oracle"), base="the base model folder",
                      data="folder of the processed sets", out="the fine-tuned model folder",
                      logs="DVCLive training curves", metrics="run report (JSON)")
    which = args.which
    settings = load_settings()
    # Under `accelerate launch` every process trains; only rank 0 writes.
    writer = hardware.is_main_process()
    # Model, curves and metrics replace the previous run's together, and only when training
    # finished; a killed run resumes from its checkpoint in .scratch/ (see training.finetune).
    outputs = staged_outputs if writer else discarded_outputs
    with outputs(files=[args.metrics], dirs=[args.out, args.logs]) as out:
        if settings.data.benchmark == "world":
            # The pretrained model already knows world facts: it is the target, and no model
            # exists that knows the rest of them but never saw the forgotten one.
            meta = ({"kind": "alias", "parent": str(args.base), "reason": "world benchmark: the target is the base model"}
                    if which == "target" else
                    {"kind": "none", "reason": "world benchmark: no oracle (the base model saw every world fact)"})
            write_json(out[args.out] / META, meta)
            report = {"trained": False, "reason": meta["reason"]}
            # The training-curve folder is a declared output: say why it has no curves.
            write_json(out[args.logs] / "metrics.json", report)
        else:
            from dvclive import Live

            sets = training_sets(args.data, load_sets(args.data, ("forget", "retain", "replay")),
                                 settings.data.benchmark)
            records = sets["retain"] + sets["replay"] + (sets["forget"] if which == "target" else [])
            hw = hardware.resolve(settings.hardware)
            tok = load_tokenizer(args.base)
            model = load_model(args.base, attn_implementation=hw.attn_implementation)
            logs = Live(str(out[args.logs]), dvcyaml=False, save_dvc_exp=False, report=None) if writer else nullcontext()
            with logs as live:
                model, report = finetune(model, tok, records, settings.model, settings.finetune, hw,
                                         Path(".scratch") / f"finetune_{which}", settings.seed, live)
            report["trained"] = True
            # The wall time stays out of the model folder: a rerun that trains the same weights must
            # hash the same, or every stage downstream reruns for nothing.
            lineage = {k: v for k, v in report.items() if k != "seconds"}
            save_trained(model, out[args.out], parent=str(args.base), extra={"finetune": lineage})
        write_json(out[args.metrics], stamp(report))
    if writer:
        print(f"{args.out}: {report}")


if __name__ == "__main__":
    run_stage(main)
