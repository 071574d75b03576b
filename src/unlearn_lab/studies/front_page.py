"""The README's headline table, generated from the committed `metrics/summary.json` between its
markers, so the front page cannot quote another run than the one committed.

`python -m unlearn_lab.studies.front_page` rewrites the block (`make readme`); `--check` exits 1
when the README's block is not the committed summary's (tests/test_studies.py checks too)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .readme_blocks import read_block, write_block
from .rows import cell, put

SUMMARY = "metrics/summary.json"
MODELS = ("target", "oracle", "unlearned")
# (summary key, label, format)
ROWS = (("forget_rouge_l_recall", "forget ROUGE-L recall", ".3f"),
        ("forget_truth_ratio", "forget truth-ratio score", ".3f"),
        ("forget_quality", "forget quality (KS p against the oracle)", ".1e"),
        ("privleak", "privleak (0: the oracle, -100: under-unlearned)", ".1f"),
        ("retain_rouge_l_recall", "retain ROUGE-L recall", ".3f"),
        ("model_utility", "model utility", ".3f"))


def headline_block(summary: dict, path: str = SUMMARY) -> str:
    """The table of target, oracle and unlearned, each value with its 95% interval, and the
    robustness headline under it."""
    sizes = next((summary[m]["forget_quality_sizes"] for m in MODELS if "forget_quality_sizes" in summary.get(m, {})),
                 {})
    lines = [f"From `{path}`: method `{summary['method']}` at lr {summary['lr']:g} on the {summary['benchmark']} "
             f"benchmark, {sizes.get('model', '?')} forget questions; 95% bootstrap intervals over questions "
             "in brackets.", "", "| headline | " + " | ".join(MODELS) + " |", "|---" * (len(MODELS) + 1) + "|"]
    for key, label, fmt in ROWS:
        cells = []
        for model in MODELS:
            row: dict = {}
            put(row, key, summary.get(model, {}))
            text = cell(row, key, fmt)
            cells.append(f"{text} (reference)" if model == "oracle" and key == "privleak" and text else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"Robustness score {summary['robustness_score']:.3f}: NF4 quantization recovers "
              f"{summary['quant_nf4_recovered']:.2f} of the forgotten answers, relearning extracts "
              f"{summary['relearn_recovered_over_oracle']:.2f} of the target-oracle gap beyond what it teaches the "
              f"oracle, and the worst prompt attack leaks {summary['attack_leak_over_oracle_max']:.2f} above the "
              "oracle's floor."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--summary", default=SUMMARY)
    ap.add_argument("--readme", default="README.md")
    ap.add_argument("--check", action="store_true", help="exit 1 if the README's block is out of date")
    args = ap.parse_args(argv)
    body = headline_block(json.loads(Path(args.summary).read_text()), args.summary)
    if args.check:
        same = read_block(args.readme, args.summary) == body
        print(f"{args.readme}: the headline table {'matches' if same else 'is NOT'} {args.summary}")
        return 0 if same else 1
    changed = write_block(args.readme, args.summary, body)
    print(f"{args.readme}: the headline table {'rewritten from' if changed else 'already matches'} {args.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
