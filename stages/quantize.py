"""Stage quantize: unlearned and target models at low bit widths, forget and retain scores again
(and the forget documents' verbatim memorisation on the documents benchmark)."""
from unlearn_lab.data.sets import load_documents, load_sets, sample
from unlearn_lab.models.hardware import device
from unlearn_lab.environment import stamp
from unlearn_lab.io import read_jsonl, staged_outputs, write_json, write_jsonl
from unlearn_lab.models.loading import load_model, load_tokenizer, read_meta
from unlearn_lab.robustness.plots import quantize_plot
from unlearn_lab.robustness.quantization import headline, quantize_variants
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args
from unlearn_lab import timing


def main():
    args = stage_args(__doc__, unlearned="the unlearned model folder", target="the target model folder",
                      unlearned_rows="the unlearned model's evaluation rows", target_rows="the target's evaluation rows",
                      data="folder of the processed sets", rows="per-question rows of every variant",
                      metrics="metrics (JSON)", plot="plot (PNG)")
    settings = load_settings()
    cfg = settings.quantize
    sets = load_sets(args.data, ("forget", "retain"))
    sets["retain"] = sample(sets["retain"], cfg.retain_size)
    folders = {"target": args.target, "unlearned": args.unlearned}
    rows = {"target": read_jsonl(args.target_rows), "unlearned": read_jsonl(args.unlearned_rows)}
    tok = load_tokenizer(args.unlearned)

    def loader(name):
        return load_model(folders[name])

    documents = {split: docs for split, docs in load_documents(args.data).items() if split == "forget"}
    result, variant_rows = quantize_variants(loader, tok, sets, rows, cfg, settings.eval, device(), documents)
    result["target_kind"] = read_meta(args.target)["kind"]
    result["seconds_by_part"] = timing.report()
    result["headline"] = headline(result)
    with staged_outputs(files=[args.rows, args.metrics, args.plot]) as out:
        write_jsonl(out[args.rows], variant_rows)
        write_json(out[args.metrics], stamp(result))
        quantize_plot(result, out[args.plot])
    for scheme in result["schemes"]:
        r = result[scheme]
        verbatim = f", forget verbmem {r['forget_documents_verbmem']:.3f}" if "forget_documents_verbmem" in r else ""
        print(f"{scheme}: forget ROUGE-L {r['forget_rouge_l_recall']:.3f}, retain {r['retain_rouge_l_recall']:.3f}"
              f"{verbatim}, recovered {r.get('recovered', float('nan')):.3f}")
    if "bnb_reason" in result:
        print(f"bitsandbytes skipped: {result['bnb_reason']}")


if __name__ == "__main__":
    run_stage(main)
