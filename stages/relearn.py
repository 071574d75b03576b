"""Stage relearn: a few fine-tuning steps on the unlearned model, then the forget scores again."""
from pathlib import Path

from unlearn_lab.cli import load_sets, run_stage
from unlearn_lab.io import read_jsonl, write_json, write_jsonl
from unlearn_lab.modeling import load_model, load_tokenizer
from unlearn_lab.params import load_params, number
from unlearn_lab.relearning import relearn, relearn_split, resolve_data
from unlearn_lab.robustness import add_recovery, baseline_scores, score_sets
from unlearn_lab.robustness_plots import relearn_plot


def main():
    from dvclive import Live

    params = load_params()
    cfg = params["relearn"]
    sets = load_sets(("forget", "retain"))
    data = resolve_data(str(cfg.get("data", "auto")), sets["forget"], sets["retain"])
    attack, scored = relearn_split(sets["forget"], sets["retain"], data, number(params, "relearn.examples", int))
    scored_sets = {"forget": scored}
    full = {m: baseline_scores(read_jsonl(f"eval/{m}.jsonl"), scored_sets, f"eval/{m}.jsonl")
            for m in ("target", "unlearned")}
    tok, model = load_tokenizer("models/unlearned"), load_model("models/unlearned")
    with Live("logs/relearn", dvcyaml=False, save_dvc_exp=False, report=None) as live:
        model, report = relearn(model, tok, attack, params["model"], {**cfg, "hardware": params.get("hardware")},
                                Path(".scratch") / "relearn",
                                number(params, "seed", int), live)
    scores, rows = score_sets(model, tok, scored_sets, params["eval"], "relearned")
    result = {"data": data, "steps": report["steps"], "lr": report["lr"], "attack_examples": len(attack),
              "scored": len(scored), "seconds": report["seconds"],
              "target": full["target"], "unlearned": full["unlearned"],
              "relearned": add_recovery(scores, full["unlearned"], full["target"])}
    if "recovered" in result["relearned"]:
        result["recovered"] = result["relearned"]["recovered"]
    write_jsonl("eval/relearn.jsonl", rows)
    write_json("metrics/relearn.json", result)
    relearn_plot(result, Path("plots/relearn.png"))
    print(f"relearn ({data}, {report['steps']} steps): forget ROUGE-L {full['unlearned']['forget_rouge_l_recall']:.3f}"
          f" -> {scores['forget_rouge_l_recall']:.3f} (target {full['target']['forget_rouge_l_recall']:.3f})")


if __name__ == "__main__":
    run_stage(main)
