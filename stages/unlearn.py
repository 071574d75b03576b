"""Stage unlearn: apply `method` to the target model, at `lr` or the method's own default lr."""
from contextlib import nullcontext
from pathlib import Path

from unlearn_lab import hardware
from unlearn_lab.cli import PROCESSED, RAW, load_sets, run_stage
from unlearn_lab.data import load_idk_pool
from unlearn_lab.epoch_eval import EpochEvaluation
from unlearn_lab.io import discarded_outputs, read_jsonl, staged_outputs, write_json
from unlearn_lab.methods import get_method
from unlearn_lab.modeling import load_model, load_tokenizer, save_trained
from unlearn_lab.params import load_params, number
from unlearn_lab.unlearning import TRAINING_KEYS, resolve_lr, unlearn
from unlearn_lab.validation import validate_params

TARGET = "models/target"


def main():
    from dvclive import Live

    params = load_params()
    validate_params(params)
    method = str(params["method"])
    knobs = dict((params.get("methods") or {}).get(method) or {})
    # Fail on a bad method, knob or lr before spending half a minute loading the model.
    needs = set(get_method(method, {k: v for k, v in knobs.items() if k not in TRAINING_KEYS}).views)
    lr = resolve_lr(params)
    sets = load_sets(("forget", "retain"))
    idk_pool = load_idk_pool(RAW) if needs & {"forget_idk", "retain_idk"} else None
    random_labels = read_jsonl(PROCESSED / "random_labels.jsonl") if "forget_wrong" in needs else None
    hw = params.get("hardware") or {}
    tok, model = load_tokenizer(TARGET), load_model(TARGET, attn_implementation=hardware.resolve(hw).attn_implementation)
    # Under `accelerate launch` every process trains; only rank 0 writes, logs and evaluates.
    writer = hardware.is_main_process()

    def live_run(folder):
        return Live(str(folder), dvcyaml=False, save_dvc_exp=False, report=None) if writer else nullcontext()

    # Model, curves and metrics replace the previous run's together, and only when it finished.
    model_dir, log_dir, epoch_dir, metrics_file = "models/unlearned", "logs/unlearn", "logs/unlearn_epochs", "metrics/unlearn.json"
    outputs = staged_outputs if writer else discarded_outputs
    with outputs(files=[metrics_file], dirs=[model_dir, log_dir, epoch_dir]) as out:
        with live_run(out[log_dir]) as live, live_run(out[epoch_dir]) as epoch_live:
            epoch_eval = None
            if writer and params["unlearn"].get("epoch_eval", True):
                retain_size = number(params, "unlearn.epoch_eval_retain", int, 0)

                def epoch_eval(m):
                    return EpochEvaluation(m, tok, sets["forget"], sets["retain"], params["eval"], epoch_live, retain_size)
            model, report = unlearn(
                model, tok, sets["forget"], sets["retain"], method, knobs, lr, params["model"],
                {**params["unlearn"], "hardware": hw},
                Path(".scratch") / "unlearn", number(params, "seed", int), live,
                idk_pool=idk_pool, random_labels=random_labels, epoch_eval=epoch_eval,
            )
        save_trained(model, out[model_dir], parent=TARGET, extra={"unlearn": report})
        write_json(out[metrics_file], report)
    if not writer:
        return
    if report["stopped_early"]:
        print(f"unlearning stopped early: {report['stop_reason']} (the last good weights were kept)")
    print(f"models/unlearned: {method} lr={lr} steps={report['steps']} in {report['seconds']} s")


if __name__ == "__main__":
    run_stage(main)
