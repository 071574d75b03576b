"""Stage relearn: a few fine-tuning steps on the unlearned model, then the forget scores again,
against the same attack on the oracle (the relearn_control stage)."""
from pathlib import Path

from unlearn_lab.data.sets import load_documents, load_sets
from unlearn_lab.environment import stamp
from unlearn_lab.io import read_json, read_jsonl, staged_outputs, write_json, write_jsonl
from unlearn_lab.models import hardware
from unlearn_lab.models.loading import load_model, load_tokenizer
from unlearn_lab.robustness.common import baseline_scores
from unlearn_lab.robustness.plots import relearn_plot
from unlearn_lab.robustness.relearning import attack_and_score, headline, plan_relearn, relearn_result
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args
from unlearn_lab import timing


def main():
    from dvclive import Live

    args = stage_args(__doc__, unlearned="the unlearned model folder", unlearned_rows="its evaluation rows",
                      target_rows="the target's evaluation rows", oracle_rows="the oracle's evaluation rows",
                      control="the attacked oracle (relearn_control)", data="folder of the processed sets",
                      rows="per-question rows after the attack", logs="DVCLive curves of the attack",
                      metrics="metrics (JSON)", plot="plot (PNG)")
    settings = load_settings()
    plan = plan_relearn(settings.relearn, load_sets(args.data, ("forget", "retain")), load_documents(args.data))
    control = read_json(args.control)
    oracle_reason = control.get("reason", "")
    rows_of = {"target": args.target_rows, "unlearned": args.unlearned_rows}
    if not oracle_reason:
        rows_of["oracle"] = args.oracle_rows
    full = {m: baseline_scores(read_jsonl(path), plan.scored_sets, str(path), plan.scored_docs)
            for m, path in rows_of.items()}
    hw = hardware.resolve(settings.hardware)
    with staged_outputs(files=[args.rows, args.metrics, args.plot], dirs=[args.logs]) as out:
        with Live(str(out[args.logs]), dvcyaml=False, save_dvc_exp=False, report=None) as live:
            report, scores, rows = attack_and_score(load_model(args.unlearned), load_tokenizer(args.unlearned), plan,
                                                    settings, hw, Path(".scratch") / "relearn", "relearned", live)
        oracle_scores = control.get("scores")
        result = relearn_result(plan.data, report, plan.attack, plan.scored, full, scores, oracle_scores,
                                oracle_reason)
        if oracle_scores is not None:
            rows += control["rows"]
            result["oracle_seconds"] = control["seconds"]
        result["seconds_by_part"] = timing.report()
        result["headline"] = headline(result)
        write_jsonl(out[args.rows], rows)
        write_json(out[args.metrics], stamp(result))
        relearn_plot(result, out[args.plot])
    print(f"relearn ({plan.data}, {report['steps']} steps): forget ROUGE-L "
          f"{full['unlearned']['forget_rouge_l_recall']:.3f} -> {scores['forget_rouge_l_recall']:.3f} "
          f"(target {full['target']['forget_rouge_l_recall']:.3f})")
    if oracle_scores is not None:
        print(f"the same attack on the oracle: forget ROUGE-L {full['oracle']['forget_rouge_l_recall']:.3f} -> "
              f"{oracle_scores['forget_rouge_l_recall']:.3f}")
    print("headline", result["headline"])


if __name__ == "__main__":
    run_stage(main)
