"""Stage relearn_control: the relearning attack on the oracle, which never saw the forget facts,
with the same data, steps, lr and seed as on the unlearned model: how much the attack teaches by
itself. It does not depend on the unlearning, so an experiment re-uses it."""
from pathlib import Path

from unlearn_lab.data.sets import load_documents, load_sets
from unlearn_lab.environment import stamp
from unlearn_lab.io import staged_outputs, write_json
from unlearn_lab.models import hardware
from unlearn_lab.models.loading import load_model, load_tokenizer, read_meta
from unlearn_lab.robustness.relearning import attack_and_score, plan_relearn
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args
from unlearn_lab import timing


def main():
    args = stage_args(__doc__, oracle="the oracle model folder", data="folder of the processed sets",
                      out="the attacked oracle's scores, rows and seconds (JSON)")
    settings = load_settings()
    plan = plan_relearn(settings.relearn, load_sets(args.data, ("forget", "retain")), load_documents(args.data))
    meta = read_meta(args.oracle)
    if meta["kind"] == "none":
        result = {"reason": "no oracle: " + meta.get("reason", "none trained")}
    else:
        hw = hardware.resolve(settings.hardware)
        report, scores, rows = attack_and_score(load_model(args.oracle), load_tokenizer(args.oracle), plan, settings,
                                                hw, Path(".scratch") / "relearn_oracle", "oracle_relearned")
        result = {"data": plan.data, "scores": scores, "seconds": report["seconds"], "rows": rows}
    result["seconds_by_part"] = timing.report()
    with staged_outputs(files=[args.out]) as out:
        write_json(out[args.out], stamp(result))
    print(result.get("reason") or f"the attack on the oracle ({plan.data}): forget ROUGE-L "
          f"{result['scores']['forget_rouge_l_recall']:.3f}")


if __name__ == "__main__":
    run_stage(main)
