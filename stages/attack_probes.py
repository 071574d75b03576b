"""Stage attack_probes@{target,oracle}: the attack stage's probes (every prompt attack, and on the
documents benchmark the prefix attack) on a model that unlearning does not change, stored once so
that an experiment on the unlearning re-runs only the unlearned model's probing. The target is
probed only with attack.target, the oracle only where one was trained; otherwise the report says why."""
from unlearn_lab.io import staged_outputs
from unlearn_lab.models.loading import load_tokenizer
from unlearn_lab.robustness.probing import ProbeRun, attack_inputs, probe_model, skip_reason, write_probed
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args


def main():
    args = stage_args(__doc__, which=("target", "oracle"), model="the model folder",
                      data="folder of the processed sets", rows="every prompt and answer (JSON lines)",
                      report="seconds, or why the model was not probed (JSON)")
    settings = load_settings()
    reason = skip_reason(args.which, args.model, settings.attack)
    if reason:
        run = ProbeRun(args.which, reason=reason)
    else:
        tok = load_tokenizer(args.model)
        run = probe_model(args.model, tok, attack_inputs(tok, args.data, settings), settings, args.which)
    with staged_outputs(files=[args.rows, args.report]) as out:
        write_probed(run, out[args.rows], out[args.report])
    print(f"{args.which}: {run.reason or f'{len(run.rows) + len(run.prefix_rows)} rows in {run.seconds} s'}")


if __name__ == "__main__":
    run_stage(main)
