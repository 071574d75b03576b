"""Stage unlearn: apply `method` to the target model, at `lr` or the method's own default lr."""
from unlearn_lab import timing
from unlearn_lab.environment import stamp
from unlearn_lab.io import discarded_outputs, staged_outputs, write_json
from unlearn_lab.models import hardware
from unlearn_lab.models.loading import load_model, load_tokenizer, save_trained
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args
from unlearn_lab.training.methods import build_method, effective_lr
from unlearn_lab.training.unlearn_run import load_inputs, unlearn_all


def main():
    args = stage_args(__doc__, target="the target model folder", data="folder of the processed sets",
                      target_rows="the target's evaluation rows (JSON lines), the measurement before unlearning",
                      random_labels="the random labels (JSON lines)", idk="refusal answers, one per line",
                      out="the unlearned model folder", logs="DVCLive per-step curves",
                      epoch_logs="DVCLive per-epoch scores", metrics="run report (JSON)")
    settings = load_settings()
    # Every `methods.<name>` knob is checked here, before any work (settings check only the names).
    method, lr = build_method(settings), effective_lr(settings)
    inputs = load_inputs(settings, method, args.data, args.idk, args.random_labels, args.target_rows)
    hw = hardware.resolve(settings.hardware)
    tok, model = load_tokenizer(args.target), load_model(args.target, attn_implementation=hw.attn_implementation)
    # Under `accelerate launch` every process trains; only rank 0 writes, logs and evaluates.
    writer = hardware.is_main_process()
    # Model, curves and metrics replace the previous run's together, and only when it finished.
    outputs = staged_outputs if writer else discarded_outputs
    with outputs(files=[args.metrics], dirs=[args.out, args.logs, args.epoch_logs]) as out:
        run = unlearn_all(model, tok, inputs, method, lr, settings, hw, out[args.logs], out[args.epoch_logs], writer)
        save_trained(run.model, out[args.out], parent=str(args.target), extra={"unlearn": run.model_record})
        write_json(out[args.metrics], stamp({**run.metrics, "seconds_by_part": timing.report()}))
    if not writer:
        return
    if run.report["stopped_early"]:
        print(f"unlearning stopped early: {run.report['stop_reason']} (the last good weights were kept)")
    print(f"{args.out}: {method.name} lr={lr} steps={run.report['steps']} in {run.report['seconds']} s")


if __name__ == "__main__":
    run_stage(main)
