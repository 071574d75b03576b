"""Stage random_labels: k wrong same-field answers for every forget question."""
from unlearn_lab.cli import PROCESSED, load_sets, run_stage
from unlearn_lab.data import make_random_labels
from unlearn_lab.io import write_jsonl
from unlearn_lab.params import load_params, number
from unlearn_lab.validation import validate_params


def main():
    params = load_params()
    validate_params(params)
    sets = load_sets()
    pool = [r for records in sets.values() for r in records]
    labels = make_random_labels(
        sets["forget"], pool, number(params, "data.random_labels_k", int, 1), number(params, "seed", int)
    )
    write_jsonl(PROCESSED / "random_labels.jsonl", labels)
    print(f"random labels: {len(labels)} for {len(sets['forget'])} forget questions")


if __name__ == "__main__":
    run_stage(main)
