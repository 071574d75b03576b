"""Stage process_data: build the forget / retain / holdout / world sets into data/processed/."""
from unlearn_lab.cli import PROCESSED, RAW, run_stage
from unlearn_lab.data import build_benchmark
from unlearn_lab.io import write_jsonl
from unlearn_lab.params import load_params, number


def main():
    params = load_params()
    sets = build_benchmark(params["data"], RAW, number(params, "seed", int))
    for name, records in sets.items():
        write_jsonl(PROCESSED / f"{name}.jsonl", records)
    print(", ".join(f"{name}: {len(records)}" for name, records in sets.items()))


if __name__ == "__main__":
    run_stage(main)
