"""Stage relearn: a few fine-tuning steps on the unlearned model, then the forget scores again;
the same attack on the oracle as the control."""
from pathlib import Path

from unlearn_lab.models import hardware
from unlearn_lab.data.links import check_relearn_links, people
from unlearn_lab.data.sets import load_documents, load_sets
from unlearn_lab.environment import stamp
from unlearn_lab.io import read_jsonl, staged_outputs, write_json, write_jsonl
from unlearn_lab.models.loading import load_model, load_tokenizer, read_meta
from unlearn_lab.robustness.common import baseline_scores, score_sets
from unlearn_lab.robustness.plots import relearn_plot
from unlearn_lab.robustness.relearning import (headline, relearn, relearn_documents_split, relearn_result,
                                               relearn_split, resolve_data)
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args


def main():
    from dvclive import Live

    args = stage_args(__doc__, unlearned="the unlearned model folder", unlearned_rows="its evaluation rows",
                      target_rows="the target's evaluation rows", oracle="the oracle model folder",
                      oracle_rows="the oracle's evaluation rows", data="folder of the processed sets",
                      rows="per-question rows after the attack", logs="DVCLive curves of the attack",
                      metrics="metrics (JSON)", plot="plot (PNG)")
    settings = load_settings()
    cfg = settings.relearn
    sets = load_sets(args.data, ("forget", "retain"))
    documents = load_documents(args.data)
    scored_docs = None
    if documents:
        # Documents benchmark: the attack trains on documents; knowmem and verbmem are re-scored.
        # process_data checked the links already; data made before that check is checked here.
        check_relearn_links(cfg.data, documents.get("forget", []), sets["forget"])
        data = resolve_data(cfg.data, people(documents.get("forget", [])), documents.get("retain", []))
        attack, scored, docs = relearn_documents_split(sets["forget"], documents, data, cfg.examples)
        scored_docs = {"forget": docs}
    else:
        data = resolve_data(cfg.data, sets["forget"], sets["retain"])
        attack, scored = relearn_split(sets["forget"], sets["retain"], data, cfg.examples)
    scored_sets = {"forget": scored}
    full = {m: baseline_scores(read_jsonl(path), scored_sets, str(path), scored_docs)
            for m, path in (("target", args.target_rows), ("unlearned", args.unlearned_rows))}
    oracle_meta = read_meta(args.oracle)
    oracle_reason = "" if oracle_meta["kind"] != "none" else "no oracle: " + oracle_meta.get("reason", "none trained")
    if not oracle_reason:
        full["oracle"] = baseline_scores(read_jsonl(args.oracle_rows), scored_sets, str(args.oracle_rows), scored_docs)
    hw = hardware.resolve(settings.hardware)
    tok, model = load_tokenizer(args.unlearned), load_model(args.unlearned)
    with staged_outputs(files=[args.rows, args.metrics, args.plot], dirs=[args.logs]) as out:
        with Live(str(out[args.logs]), dvcyaml=False, save_dvc_exp=False, report=None) as live:
            model, report = relearn(model, tok, attack, settings.model, cfg, hw, Path(".scratch") / "relearn",
                                    settings.seed, live)
        scores, rows = score_sets(model.to(hardware.device()), tok, scored_sets, settings.eval, "relearned", scored_docs)
        del model
        oracle_scores = None
        if not oracle_reason:
            # The control: the same attack, data, steps, lr and seed on a model that never saw the facts.
            oracle, oracle_report = relearn(load_model(args.oracle), tok, attack, settings.model, cfg, hw,
                                Path(".scratch") / "relearn_oracle", settings.seed)
            oracle_scores, oracle_rows = score_sets(oracle.to(hardware.device()), tok, scored_sets, settings.eval,
                                                    "oracle_relearned", scored_docs)
            rows += oracle_rows
            del oracle
        result = relearn_result(data, report, attack, scored, full, scores, oracle_scores, oracle_reason)
        if oracle_scores is not None:
            result["oracle_seconds"] = oracle_report["seconds"]
        result["headline"] = headline(result)
        write_jsonl(out[args.rows], rows)
        write_json(out[args.metrics], stamp(result))
        relearn_plot(result, out[args.plot])
    print(f"relearn ({data}, {report['steps']} steps): forget ROUGE-L {full['unlearned']['forget_rouge_l_recall']:.3f}"
          f" -> {scores['forget_rouge_l_recall']:.3f} (target {full['target']['forget_rouge_l_recall']:.3f})")
    if oracle_scores is not None:
        print(f"the same attack on the oracle: forget ROUGE-L {full['oracle']['forget_rouge_l_recall']:.3f} -> "
              f"{oracle_scores['forget_rouge_l_recall']:.3f}")
    print("headline", result["headline"])


if __name__ == "__main__":
    run_stage(main)
