"""Stage unlearn: apply `method` at learning rate `lr` to the target model."""
from pathlib import Path

from unlearn_lab.cli import load_sets, run_stage
from unlearn_lab.io import atomic_dir, write_json
from unlearn_lab.modeling import load_model, load_tokenizer, save_trained
from unlearn_lab.params import load_params, number
from unlearn_lab.training import unlearn

TARGET = "models/target"


def main():
    from dvclive import Live

    params = load_params()
    method = str(params["method"])
    lr = number(params, "lr", float, 0, strictly=True)
    sets = load_sets(("forget", "retain"))
    tok, model = load_tokenizer(TARGET), load_model(TARGET)
    with atomic_dir("models/unlearned") as tmp:
        with Live("logs/unlearn", dvcyaml=False, save_dvc_exp=False, report=None) as live:
            model, report = unlearn(
                model, tok, sets["forget"], sets["retain"], method, (params.get("methods") or {}).get(method) or {},
                lr, params["model"], params["unlearn"], Path(".scratch") / "unlearn", number(params, "seed", int), live,
            )
        save_trained(model, tmp, parent=TARGET, extra={"unlearn": report})
    write_json("metrics/unlearn.json", report)
    if report["stopped_early"]:
        print(f"unlearning stopped early: {report['stop_reason']} (the last good weights were kept)")
    print(f"models/unlearned: {method} lr={lr} steps={report['steps']} in {report['seconds']} s")


if __name__ == "__main__":
    run_stage(main)
