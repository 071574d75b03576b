"""Stage process_data: build the forget / retain / holdout / world / replay sets."""
from unlearn_lab.cli import SETS, run_stage, stage_args
from unlearn_lab.data.benchmark import build_benchmark
from unlearn_lab.io import jsonl_text, write_files_atomic
from unlearn_lab.settings import load_settings


def main():
    args = stage_args(__doc__, raw="the shipped raw data (world facts, your imports)",
                      out="folder of the processed sets")
    settings = load_settings()
    sets = build_benchmark(settings.data, args.raw, settings.seed)
    # All five files or none: later stages must never see sets from two different runs.
    write_files_atomic({args.out / f"{name}.jsonl": jsonl_text(sets[name]) for name in SETS})
    print(", ".join(f"{name}: {len(records)}" for name, records in sets.items()))


if __name__ == "__main__":
    run_stage(main)
