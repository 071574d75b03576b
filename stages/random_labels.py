"""Stage random_labels: k wrong same-field answers for every forget question."""
from unlearn_lab.data.random_labels import make_random_labels
from unlearn_lab.data.sets import load_sets
from unlearn_lab.io import write_jsonl
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args


def main():
    args = stage_args(__doc__, data="folder of the processed sets", out="the random labels (JSON lines)")
    settings = load_settings()
    sets = load_sets(args.data)
    pool = [r for records in sets.values() for r in records]
    labels = make_random_labels(sets["forget"], pool, settings.data.random_labels_k, settings.seed)
    write_jsonl(args.out, labels)
    print(f"random labels: {len(labels)} for {len(sets['forget'])} forget questions")


if __name__ == "__main__":
    run_stage(main)
