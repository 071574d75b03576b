"""Stage finetune@{target,oracle}: target learns forget+retain, the oracle learns retain only."""
import sys
from contextlib import nullcontext
from pathlib import Path

from unlearn_lab.cli import load_sets, run_stage
from unlearn_lab import hardware
from unlearn_lab.io import UserError, atomic_dir, write_json
from unlearn_lab.modeling import META, load_model, load_tokenizer, save_trained
from unlearn_lab.params import load_params, number
from unlearn_lab.training import finetune

BASE = "models/base"


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which not in ("target", "oracle"):
        raise UserError(f"usage: finetune.py target|oracle (got {which!r})")
    params = load_params()
    seed = number(params, "seed", int)
    # Under `accelerate launch` every process trains; only rank 0 writes.
    writer = hardware.is_main_process()
    with (atomic_dir(f"models/{which}") if writer else nullcontext()) as tmp:
        if params["data"].get("benchmark") == "world":
            # The pretrained model already knows world facts: it is the target, and no model
            # exists that knows the rest of them but never saw the forgotten one.
            meta = ({"kind": "alias", "parent": BASE, "reason": "world benchmark: the target is the base model"}
                    if which == "target" else
                    {"kind": "none", "reason": "world benchmark: no oracle (the base model saw every world fact)"})
            report = {"trained": False, "reason": meta["reason"]}
            if writer:
                write_json(Path(tmp) / META, meta)
                # The training-curve folder is a declared output: say why it has no curves.
                write_json(f"logs/finetune_{which}/metrics.json", report)
        else:
            from dvclive import Live

            sets = load_sets(("forget", "retain", "replay"))
            records = sets["retain"] + sets["replay"] + (sets["forget"] if which == "target" else [])
            hw = params.get("hardware") or {}
            tok, model = load_tokenizer(BASE), load_model(BASE, attn_implementation=hardware.resolve(hw).attn_implementation)
            logs = Live(f"logs/finetune_{which}", dvcyaml=False, save_dvc_exp=False, report=None) if writer else nullcontext()
            with logs as live:
                model, report = finetune(model, tok, records, params["model"], {**params["finetune"], "hardware": hw},
                                         Path(".scratch") / f"finetune_{which}", seed, live)
            report["trained"] = True
            if writer:
                save_trained(model, tmp, parent=BASE, extra={"finetune": report})
    if writer:
        write_json(f"metrics/finetune_{which}.json", report)
        print(f"models/{which}: {report}")


if __name__ == "__main__":
    run_stage(main)
