"""Stage finetune@{target,oracle}: target learns forget+retain, the oracle learns retain only."""
import sys
from contextlib import nullcontext
from pathlib import Path

from unlearn_lab import hardware
from unlearn_lab.cli import load_sets, run_stage
from unlearn_lab.io import UserError, discarded_outputs, staged_outputs, write_json
from unlearn_lab.modeling import META, load_model, load_tokenizer, save_trained
from unlearn_lab.params import load_params, number
from unlearn_lab.training import finetune
from unlearn_lab.validation import validate_params

BASE = "models/base"


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which not in ("target", "oracle"):
        raise UserError(f"usage: finetune.py target|oracle (got {which!r})")
    params = load_params()
    validate_params(params)
    seed = number(params, "seed", int)
    # Under `accelerate launch` every process trains; only rank 0 writes.
    writer = hardware.is_main_process()
    model_dir, log_dir, metrics_file = f"models/{which}", f"logs/finetune_{which}", f"metrics/finetune_{which}.json"
    # Model, curves and metrics replace the previous run's together, and only when training
    # finished; a killed run resumes from its checkpoint in .scratch/ (see training.finetune).
    outputs = staged_outputs if writer else discarded_outputs
    with outputs(files=[metrics_file], dirs=[model_dir, log_dir]) as out:
        if params["data"].get("benchmark") == "world":
            # The pretrained model already knows world facts: it is the target, and no model
            # exists that knows the rest of them but never saw the forgotten one.
            meta = ({"kind": "alias", "parent": BASE, "reason": "world benchmark: the target is the base model"}
                    if which == "target" else
                    {"kind": "none", "reason": "world benchmark: no oracle (the base model saw every world fact)"})
            write_json(out[model_dir] / META, meta)
            report = {"trained": False, "reason": meta["reason"]}
            # The training-curve folder is a declared output: say why it has no curves.
            write_json(out[log_dir] / "metrics.json", report)
        else:
            from dvclive import Live

            sets = load_sets(("forget", "retain", "replay"))
            records = sets["retain"] + sets["replay"] + (sets["forget"] if which == "target" else [])
            hw = params.get("hardware") or {}
            tok = load_tokenizer(BASE)
            model = load_model(BASE, attn_implementation=hardware.resolve(hw).attn_implementation)
            logs = Live(str(out[log_dir]), dvcyaml=False, save_dvc_exp=False, report=None) if writer else nullcontext()
            with logs as live:
                model, report = finetune(model, tok, records, params["model"], {**params["finetune"], "hardware": hw},
                                         Path(".scratch") / f"finetune_{which}", seed, live)
            report["trained"] = True
            save_trained(model, out[model_dir], parent=BASE, extra={"finetune": report})
        write_json(out[metrics_file], report)
    if writer:
        print(f"models/{which}: {report}")


if __name__ == "__main__":
    run_stage(main)
