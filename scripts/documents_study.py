"""The documents benchmark for several methods: target, oracle and one unlearned model per method,
then metrics/documents.csv and plots/documents.png (verbmem and knowmem on forget and retain, with
95% intervals).

    python scripts/documents_study.py --methods npo gd simnpo   # run, then the table and plot
    python scripts/documents_study.py --collect-only            # only the table and plot

The runs happen in a clone of this repository's HEAD (`--workdir`, sharing this DVC cache) with
`data.benchmark: documents`: `dvc repro evaluate@target evaluate@unlearned` for the first method
(both fine-tunes, the three evaluations), then unlearn and evaluate@unlearned for each other one.
Each method's metrics are copied to `<workdir>/results/<method>/`. About 75 minutes for the
first method and 15 for each other on 2 CPU cores; the workspace here is left as it is.
"""
import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from unlearn_lab.document_study import study_plot, study_rows
from unlearn_lab.io import write_text_atomic

BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(cwd / "src")}
    subprocess.run(args, cwd=cwd, env=env, check=True)


def set_param(params: Path, key: str, value: str) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load(params.read_text(encoding="utf-8"))
    place = data
    *path, last = key.split(".")
    for part in path:
        place = place[part]
    place[last] = value
    with params.open("w", encoding="utf-8") as fh:
        yaml.dump(data, fh)


def run_methods(workdir: Path, methods: list[str]) -> None:
    root = Path.cwd()
    if not workdir.exists():
        run(["git", "clone", "-q", str(root), str(workdir)], root)
        run([str(BIN / "dvc"), "cache", "dir", "--local", str(root / ".dvc" / "cache")], workdir)
    set_param(workdir / "params.yaml", "data.benchmark", "documents")
    for i, method in enumerate(methods):
        set_param(workdir / "params.yaml", "method", method)
        targets = ["evaluate@target", "evaluate@unlearned"] if i == 0 else ["evaluate@unlearned"]
        run([str(BIN / "dvc"), "repro", *targets], workdir)
        out = workdir / "results" / method
        out.mkdir(parents=True, exist_ok=True)
        for f in (workdir / "metrics").glob("*.json"):
            shutil.copy(f, out / f.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["npo", "gd", "simnpo"], help="unlearning methods, in order")
    ap.add_argument("--workdir", type=Path, default=Path(".scratch/documents"), help="the clone the runs happen in")
    ap.add_argument("--results", type=Path, help="folder of <method>/ metrics (default <workdir>/results)")
    ap.add_argument("--collect-only", action="store_true", help="run nothing; table and plot from --results")
    ap.add_argument("--csv", default="metrics/documents.csv")
    ap.add_argument("--plot", default="plots/documents.png")
    args = ap.parse_args()
    if not args.collect_only:
        run_methods(args.workdir, args.methods)
    rows = study_rows(args.results or args.workdir / "results")
    write_text_atomic(args.csv, pd.DataFrame(rows).to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    study_plot(rows, Path(args.plot))
    print(pd.DataFrame(rows)[["model", "verbmem_forget", "knowmem_forget", "privleak_documents", "verbmem_retain",
                              "knowmem_retain", "world_rouge_l_recall", "model_utility"]].to_string(index=False))
    print(f"{args.csv}, {args.plot}")


if __name__ == "__main__":
    main()
