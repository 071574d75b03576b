"""Stage process_data: build the forget / retain / holdout / world / replay sets into data/processed/."""
from unlearn_lab.cli import PROCESSED, RAW, run_stage
from unlearn_lab.data import build_benchmark
from unlearn_lab.io import jsonl_text, write_files_atomic
from unlearn_lab.params import load_params, number
from unlearn_lab.validation import validate_params


def main():
    params = load_params()
    validate_params(params)
    sets = build_benchmark(params["data"], RAW, number(params, "seed", int))
    # All five files or none: later stages must never see sets from two different runs.
    write_files_atomic({PROCESSED / f"{name}.jsonl": jsonl_text(records) for name, records in sets.items()})
    print(", ".join(f"{name}: {len(records)}" for name, records in sets.items()))


if __name__ == "__main__":
    run_stage(main)
