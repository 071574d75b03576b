"""Stage process_data: build the forget / retain / holdout / world / replay sets, and the documents
of the documents benchmark (empty otherwise)."""
from unlearn_lab.data.benchmark import build_benchmark
from unlearn_lab.data.documents import build_documents
from unlearn_lab.data.checks import check_contrast, check_fits
from unlearn_lab.data.links import check_relearn_links
from unlearn_lab.data.sets import SETS
from unlearn_lab.io import jsonl_text, write_files_atomic
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args


def prompt_lengths(base, questions: list[str]) -> dict[str, int]:
    """Tokens of each question's chat prompt, as the training and evaluation encode it."""
    from unlearn_lab.models.loading import load_tokenizer, prompt_text

    tok = load_tokenizer(base)
    unique = list(dict.fromkeys(questions))
    ids = tok([prompt_text(tok, q) for q in unique], add_special_tokens=False)["input_ids"]
    return dict(zip(unique, map(len, ids)))


def main():
    args = stage_args(__doc__, raw="the shipped raw data (world facts, your imports)",
                      base="the base model folder (its tokenizer measures the questions)",
                      out="folder of the processed sets")
    settings = load_settings()
    sets = build_benchmark(settings.data, args.raw, settings.seed)
    documents = build_documents(settings.data, sets, settings.seed)
    # The relearn stage splits the forget documents by person: an unlinked set is refused now, not hours later.
    check_relearn_links(settings.relearn.data, [d for d in documents if d["split"] == "forget"], sets["forget"])
    # What later stages would refuse is refused here, before any model work.
    lengths = prompt_lengths(args.base, [r["question"] for records in sets.values() for r in records])
    check_fits(sets, lengths.__getitem__, settings.model.max_length)
    check_contrast(sets)
    # All six files or none: later stages must never see sets from two different runs.
    write_files_atomic({**{args.out / f"{name}.jsonl": jsonl_text(sets[name]) for name in SETS},
                        args.out / "documents.jsonl": jsonl_text(documents)})
    print(", ".join(f"{name}: {len(records)}" for name, records in sets.items()) + f", documents: {len(documents)}")


if __name__ == "__main__":
    run_stage(main)
