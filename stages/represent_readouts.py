"""Stage represent_readouts@{target,oracle}: the represent stage's part that no unlearning
changes, one model's pooled states, probes and logit lens, kept by DVC so an experiment re-runs
only the unlearned model's part."""
import time

from unlearn_lab import timing
from unlearn_lab.environment import stamp
from unlearn_lab.io import staged_outputs, write_json
from unlearn_lab.models.hardware import device
from unlearn_lab.models.loading import load_model, load_tokenizer, read_meta
from unlearn_lab.robustness.readouts import save_states
from unlearn_lab.robustness.representation import read_model, represent_facts
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args


def main():
    args = stage_args(__doc__, which=("target", "oracle"), model="the model folder",
                      data="folder of the processed sets", out="its pooled states (npz)",
                      metrics="its probes and logit lens, or why it has none (JSON)")
    settings = load_settings()
    cfg = settings.represent
    meta = read_meta(args.model)
    with staged_outputs(files=[args.out, args.metrics]) as out:
        if meta["kind"] == "none":
            # No model to read (the world benchmark has no oracle): the report says why.
            save_states(out[args.out], {})
            report = {"model": args.which, "reason": meta["reason"]}
        else:
            start = time.perf_counter()
            facts = represent_facts(args.data, cfg.retain_size)
            with timing.part("load"):
                model = load_model(args.model).to(device())
            states, probes = read_model(model, load_tokenizer(args.model), facts, cfg, settings.seed, args.which)
            save_states(out[args.out], states)
            report = {"model": args.which, **probes, "seconds": round(time.perf_counter() - start, 1),
                      "seconds_by_part": timing.report()}
        write_json(out[args.metrics], stamp(report))
    print(f"{args.which}: {report.get('reason') or report['seconds']}")


if __name__ == "__main__":
    run_stage(main)
