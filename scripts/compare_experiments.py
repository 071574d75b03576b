"""Write metrics/comparison.csv, plots/pareto.png, the audit table metrics/robustness_comparison.csv
and, across seeds, metrics/comparison_seeds.csv (mean, std and 95% interval per configuration) and
metrics/method_pairs.csv (paired differences and their significance) from `dvc exp show --json`.

    python scripts/compare_experiments.py                  # runs `dvc exp show --json` (experiments on HEAD)
    python scripts/compare_experiments.py --all-commits    # experiments on every commit
    python scripts/compare_experiments.py --rev 1a2b3c4    # experiments based on that commit
    python scripts/compare_experiments.py --rev HEAD --rev 1a2b3c4   # one study over two commits
    python scripts/compare_experiments.py --input exps.json
"""
import argparse
import json
import math
import sys

from unlearn_lab.studies.audit import audit_rows, write_audit_csv
from unlearn_lab.studies.comparison import (best_forgetter, experiment_rows, load_exp_show, mixed_pipelines, plot_pareto,
                                    reference_points, write_csv)
from unlearn_lab.io import write_text_atomic
from unlearn_lab.studies.seeds import paired_differences, seed_summary


def write_seed_tables(rows, seeds_path, pairs_path):
    import pandas as pd

    summary, pairs = seed_summary(rows), paired_differences(rows)
    for table, path in ((summary, seeds_path), (pairs, pairs_path)):
        write_text_atomic(path, pd.DataFrame(table).to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    several = [g for g in summary if g["runs"] > 1]
    print(f"{seeds_path}: {len(summary)} configurations, {len(several)} with several seeds; {pairs_path}")
    tested = [p for p in pairs if "p_holm" in p]
    if not tested:
        print("no two configurations share two seeds: no difference can be told from noise (make seeds)")
    for p in tested:
        need = p["seeds_needed"]
        verdict = "differ" if p["significant"] else "no significant difference" + (
            f" (a difference this size would take about {need:.0f} paired seeds)" if math.isfinite(need) else "")
        print(f"  {p['metric']} ({p['scale']}): {p['a']} - {p['b']} = {p['difference']:+.3g} "
              f"[{p['lo']:.3g}, {p['hi']:.3g}] over {p['pairs']} seeds, Holm p {p['p_holm']:.3g}: {verdict}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", help="saved `dvc exp show --json` output (default: run it)")
    ap.add_argument("--all-commits", action="store_true",
                    help="experiments of every commit (`dvc exp show -A`), not only those based on HEAD")
    ap.add_argument("--rev", action="append", default=[],
                    help="experiments based on this commit (`dvc exp show --rev`), not on HEAD; repeat it to "
                         "join experiments of several commits that ran the same pipeline")
    ap.add_argument("--csv", default="metrics/comparison.csv")
    ap.add_argument("--plot", default="plots/pareto.png")
    ap.add_argument("--audit", default="metrics/robustness_comparison.csv")
    ap.add_argument("--seeds", default="metrics/comparison_seeds.csv")
    ap.add_argument("--pairs", default="metrics/method_pairs.csv")
    args = ap.parse_args()
    if args.input:
        with open(args.input, encoding="utf-8") as fh:
            data = json.load(fh)
    else:
        try:
            data = load_exp_show("dvc", (["--all-commits"] if args.all_commits else [])
                                 + [arg for rev in args.rev for arg in ("--rev", rev)])
        except RuntimeError as err:
            sys.exit(f"error: {err}")
    mixed = mixed_pipelines(data)
    for rev, paths in mixed.items():
        print(f"warning: the experiments based on {rev} ran other code than the newest commit's "
              f"({', '.join(paths)} differ): check that diff before comparing their rows", file=sys.stderr)
    rows = experiment_rows(data)
    if not rows:
        sys.exit("error: no experiment with unlearning results (run `dvc exp run` first)")
    refs = reference_points(data)
    write_csv(rows, args.csv)
    plot_pareto(rows, refs, args.plot)
    print(f"{args.csv}: {len(rows)} experiments; {args.plot}")
    write_seed_tables(rows, args.seeds, args.pairs)
    audit = audit_rows(data, (refs.get("target") or {}).get("forget_fluency_perplexity"))
    write_audit_csv(audit, args.audit)
    survivors = [r for r in audit if r["fails"] == "none"]
    print(f"{args.audit}: views failed per experiment: "
          + "; ".join(f"{r['method']} ({r['experiment']}): {r['fails']}" for r in audit))
    print("survives every view: " + (", ".join(f"{r['method']} ({r['experiment']})" for r in survivors) or "none"))
    if "target" in refs:
        best = best_forgetter(rows, refs["target"]["model_utility"])
        if best:
            print(f"best forget quality at >= 90% of the target's utility: {best['method']} lr={best['lr']:g} "
                  f"(forget quality {best['forget_quality']:.3g}, utility {best['model_utility']:.3f})")
        else:
            print("no experiment keeps >= 90% of the target's utility")


if __name__ == "__main__":
    main()
