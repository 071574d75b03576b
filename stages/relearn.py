"""Stage relearn: a few fine-tuning steps on the unlearned model, then the forget scores again."""
from pathlib import Path

from unlearn_lab.cli import load_sets, run_stage
from unlearn_lab.hardware import device
from unlearn_lab.io import read_jsonl, staged_outputs, write_json, write_jsonl
from unlearn_lab.modeling import load_model, load_tokenizer
from unlearn_lab.params import load_params, number
from unlearn_lab.relearning import relearn, relearn_result, relearn_split, resolve_data
from unlearn_lab.robustness import baseline_scores, score_sets
from unlearn_lab.robustness_plots import relearn_plot
from unlearn_lab.validation import validate_params

ROWS, LOGS, METRICS, PLOT = "eval/relearn.jsonl", "logs/relearn", "metrics/relearn.json", "plots/relearn.png"


def main():
    from dvclive import Live

    params = load_params()
    validate_params(params)
    cfg = params["relearn"]
    sets = load_sets(("forget", "retain"))
    data = resolve_data(str(cfg.get("data", "auto")), sets["forget"], sets["retain"])
    attack, scored = relearn_split(sets["forget"], sets["retain"], data, number(params, "relearn.examples", int))
    scored_sets = {"forget": scored}
    full = {m: baseline_scores(read_jsonl(f"eval/{m}.jsonl"), scored_sets, f"eval/{m}.jsonl")
            for m in ("target", "unlearned")}
    tok, model = load_tokenizer("models/unlearned"), load_model("models/unlearned")
    with staged_outputs(files=[ROWS, METRICS, PLOT], dirs=[LOGS]) as out:
        with Live(str(out[LOGS]), dvcyaml=False, save_dvc_exp=False, report=None) as live:
            model, report = relearn(model, tok, attack, params["model"], {**cfg, "hardware": params.get("hardware")},
                                    Path(".scratch") / "relearn", number(params, "seed", int), live)
        scores, rows = score_sets(model.to(device()), tok, scored_sets, params["eval"], "relearned")
        result = relearn_result(data, report, attack, scored, full, scores)
        write_jsonl(out[ROWS], rows)
        write_json(out[METRICS], result)
        relearn_plot(result, out[PLOT])
    print(f"relearn ({data}, {report['steps']} steps): forget ROUGE-L {full['unlearned']['forget_rouge_l_recall']:.3f}"
          f" -> {scores['forget_rouge_l_recall']:.3f} (target {full['target']['forget_rouge_l_recall']:.3f})")


if __name__ == "__main__":
    run_stage(main)
