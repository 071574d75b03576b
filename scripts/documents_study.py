"""The documents benchmark for several methods: target, oracle and one unlearned model per method,
then metrics/documents.csv, plots/documents.png (verbmem and knowmem on forget and retain, with
95% intervals) and the table in docs/studies.md (the block between its `metrics/documents.csv` markers).

    python scripts/documents_study.py --methods npo gd simnpo   # run, then the table and plot
    python scripts/documents_study.py --collect-only --methods npo gd   # only the table and plot
    python scripts/documents_study.py --readme                  # only the docs/studies.md table, from the CSV

The runs happen in a clone brought to this repository's HEAD (`--workdir`, sharing this DVC
cache; refused while a file the pipeline reads has uncommitted changes here, since HEAD is what
runs) with `data.benchmark: documents`: `dvc repro evaluate@target evaluate@unlearned` for the
first method (both fine-tunes, the three evaluations), then unlearn and evaluate@unlearned for
each other one. Each method's metrics are copied to `<workdir>/results/<method>/` with the commit
(study.json); results of methods not asked for this time are removed, and the CSV has exactly
the methods asked for, each row naming the commit. About 75 minutes for the first method and 15
for each other on 2 CPU cores; the workspace here is left as it is.
"""
import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from unlearn_lab.studies.documents import RUN_FILE, readme_block, study_csv, study_plot, study_rows
from unlearn_lab.errors import UserError
from unlearn_lab.io import write_json, write_text_atomic
from unlearn_lab.studies.readme_blocks import read_rows, write_block
from unlearn_lab.studies.scratch import clone_at_head, set_params

BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(cwd / "src")}
    if subprocess.run(args, cwd=cwd, env=env).returncode:
        raise UserError(f"{cwd}: {' '.join(args)} failed (its output is above)")


def run_methods(root: Path, workdir: Path, methods: list[str]) -> None:
    """Each method in the clone at HEAD; its metrics and the commit into results/<method>/."""
    fresh = not workdir.exists()
    commit = clone_at_head(root, workdir)
    if fresh:
        run([str(BIN / "dvc"), "cache", "dir", "--local", str(root / ".dvc" / "cache")], workdir)
    results = workdir / "results"
    # results of an earlier invocation ran other code or other methods: none may reach this table
    shutil.rmtree(results, ignore_errors=True)
    set_params(workdir / "params.yaml", {"data.benchmark": "documents"})
    for i, method in enumerate(methods):
        set_params(workdir / "params.yaml", {"method": method})
        targets = ["evaluate@target", "evaluate@unlearned"] if i == 0 else ["evaluate@unlearned"]
        run([str(BIN / "dvc"), "repro", *targets], workdir)
        out = results / method
        out.mkdir(parents=True, exist_ok=True)
        for f in (workdir / "metrics").glob("*.json"):
            shutil.copy(f, out / f.name)
        write_json(out / RUN_FILE, {"commit": commit, "method": method, "params": {"data.benchmark": "documents"}})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["npo", "gd", "simnpo"], help="unlearning methods, in order")
    ap.add_argument("--workdir", type=Path, default=Path(".scratch/documents"), help="the clone the runs happen in")
    ap.add_argument("--results", type=Path, help="folder of <method>/ metrics (default <workdir>/results)")
    ap.add_argument("--collect-only", action="store_true",
                    help="run nothing; table and plot from --results, for --methods only")
    ap.add_argument("--readme", action="store_true", help="run and collect nothing; the docs/studies.md table from --csv")
    ap.add_argument("--csv", default="metrics/documents.csv")
    ap.add_argument("--plot", default="plots/documents.png")
    ap.add_argument("--readme-path", default="docs/studies.md", help="the page holding the table's markers")
    args = ap.parse_args()
    try:
        if not args.readme:
            if not args.collect_only:
                run_methods(Path.cwd(), args.workdir, args.methods)
            rows = study_rows(args.results or args.workdir / "results", args.methods)
            write_text_atomic(args.csv, study_csv(rows))
            study_plot(rows, Path(args.plot))
            print(f"{args.csv} (commit {rows[0]['commit'][:7]}), {args.plot}")
        rows = read_rows(args.csv)
        changed = write_block(args.readme_path, args.csv, readme_block(rows, args.csv))
        print(f"{args.readme_path}: the {args.csv} table {'rewritten' if changed else 'already matches'}")
    except (UserError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
