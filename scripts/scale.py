"""Scalability: the default method at several forget-set sizes, each a DVC experiment
`scale-<n>p` (`data.forget_fraction` forgetting n people; process_data, both fine-tunes, the
oracle's and the unlearned model's evaluation run anew), then metrics/scale.csv and plots/scale.png
(forget quality, forget ROUGE-L and utility against the number of forget questions).

    python scripts/scale.py --people 1 2 3 5        # run the sizes not run yet, then the table and plot
    python scripts/scale.py --collect-only          # only the table and plot, from the experiments there
    python scripts/scale.py --input exps.json       # from saved `dvc exp show --json` output
    python scripts/scale.py --rev HEAD --rev 1a2b3c4 # sizes run on several commits of the same pipeline
    python scripts/scale.py --readme                 # only the docs/studies.md table, from metrics/scale.csv

The size the committed run forgets is that run itself. Each experiment runs the pipeline up to
evaluate@unlearned (about 30 minutes per size on 2 CPU cores; the audit stages are not run). It
runs HEAD: refused while a file the pipeline reads has uncommitted changes (`dvc exp run` would
carry them into the experiment, code no commit has). The table has the sizes of --people (and the
committed run), each row naming the commit it ran on; the table in docs/studies.md (the block
between its `metrics/scale.csv` markers) is rewritten from it.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from ruamel.yaml import YAML

from unlearn_lab.studies.comparison import load_exp_show
from unlearn_lab.data.synthetic import n_forget_people
from unlearn_lab.errors import UserError
from unlearn_lab.io import write_text_atomic
from unlearn_lab.studies.readme_blocks import read_rows, write_block
from unlearn_lab.studies.scale import experiment_name, forget_fraction, readme_block, scale_plot, scale_rows
from unlearn_lab.studies.scratch import require_committed


# The dvc of the environment this script runs in (make scale runs it without activating it).
DVC = str(Path(sys.executable).parent / "dvc")


def existing_experiments() -> set[str]:
    done = subprocess.run([DVC, "exp", "list", "--name-only"], capture_output=True, text=True)
    return set(done.stdout.split()) if done.returncode == 0 else set()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, nargs="+", default=[1, 2, 3, 5], help="forget-set sizes, in people")
    ap.add_argument("--collect-only", action="store_true", help="run nothing; table and plot from what is there")
    ap.add_argument("--input", help="saved `dvc exp show --json` output (implies --collect-only)")
    ap.add_argument("--rev", action="append", default=[],
                    help="commits whose scale experiments count (`dvc exp show --rev`; default HEAD); the "
                         "first is the committed run. Repeat it when sizes were run before a later commit")
    ap.add_argument("--readme", action="store_true", help="run and collect nothing; the docs/studies.md table from --csv")
    ap.add_argument("--csv", default="metrics/scale.csv")
    ap.add_argument("--plot", default="plots/scale.png")
    ap.add_argument("--readme-path", default="docs/studies.md", help="the page holding the table's markers")
    args = ap.parse_args()
    try:
        if not args.readme:
            study(args)
        changed = write_block(args.readme_path, args.csv, readme_block(read_rows(args.csv), args.csv))
        print(f"{args.readme_path}: the {args.csv} table {'rewritten' if changed else 'already matches'}")
    except (UserError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def study(args):
    params = YAML(typ="safe").load(open("params.yaml", encoding="utf-8"))
    data = params["data"]
    if data["benchmark"] != "synthetic":
        raise UserError(f"params.yaml: data.benchmark is {data['benchmark']!r}; the scale study forgets whole "
                 "people of the synthetic benchmark")
    total, committed = data["people"], n_forget_people(data["forget_fraction"], data["people"])
    if not (args.collect_only or args.input):
        require_committed(".")
        done = existing_experiments()
        for people in args.people:
            try:
                fraction = forget_fraction(people, total)
            except ValueError as err:
                raise UserError(f"--people {people}: {err} (params.yaml data.people is {total})")
            name = experiment_name(people)
            if people == committed or name in done:
                # (`dvc exp list` names the experiments of HEAD: one run on an older commit runs again)
                print(f"{name}: {'the committed run' if people == committed else 'already run'}; skipped")
                continue
            print(f"{name}: forgetting {people} of {total} people (data.forget_fraction={fraction})", flush=True)
            cmd = [DVC, "exp", "run", "--temp", "--name", name, "evaluate@unlearned",
                   "-S", f"data.forget_fraction={fraction}"]
            if subprocess.run(cmd).returncode:
                raise UserError(f"{' '.join(cmd)} failed")
    if args.input:
        exp_show = json.load(open(args.input, encoding="utf-8"))
    else:
        try:
            exp_show = load_exp_show(DVC, [arg for rev in args.rev for arg in ("--rev", rev)])
        except RuntimeError as err:
            raise UserError(str(err)) from None
    rows = scale_rows(exp_show, args.people)
    if len(rows) < 2:
        raise UserError("fewer than two forget-set sizes have results (run without --collect-only)")
    write_text_atomic(args.csv, pd.DataFrame(rows).to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    scale_plot(rows, args.plot)
    print(f"{args.csv}, {args.plot}: {len(rows)} sizes")
    for r in rows:
        print(f"  {r['forget_people']} people ({r['forget_questions']} questions, {r['experiment']}): "
              f"forget quality {r['forget_quality']:.3g} [{r['forget_quality_low']:.3g}, {r['forget_quality_high']:.3g}], "
              f"forget ROUGE-L {r['forget_rouge_l_recall']:.3f}, utility {r['model_utility']:.3f} "
              f"[{r['model_utility_low']:.3f}, {r['model_utility_high']:.3f}]")


if __name__ == "__main__":
    main()
