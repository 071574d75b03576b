"""How long `data.benchmark: import` takes to read and finish user files, and its peak memory.

    PYTHONPATH=src python bench/import_speed.py                 # 4k, 16k and 400k rows
    PYTHONPATH=src python bench/import_speed.py --sizes 4000 16000

For each size it writes, in a temporary folder, a forget file (a tenth of the rows) and a retain
file (the rest) of JSON lines with distinct, realistic questions (years, dates, numbers, people,
places and free text answers about generated people), once without and once with a `field`
column, then runs `load_import` on them in a fresh Python process and prints rows, seconds (the
load_import call, measured in the child) and the child's peak resident memory (ru_maxrss).
Pure Python: no model, no torch.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYLLABLES = ("ka", "lo", "mi", "ren", "dor", "sa", "vel", "tu", "bran", "el", "os", "qui", "zan",
             "fe", "gor", "hal", "ion", "jas", "mor", "nel", "pa", "ros", "tes", "ul", "vin",
             "wen", "yar", "bel", "cor", "dan")
CITIES = ("Lyon", "Porto", "Krakow", "Valencia", "Leipzig", "Bergen", "Tampere", "Gdansk",
          "Bologna", "Ghent", "Graz", "Brno", "Cork", "Malmo", "Aarhus", "Seville", "Turin",
          "Rotterdam", "Mombasa", "Osaka", "Busan", "Curitiba", "Cordoba", "Adelaide", "Hobart")
JOBS = ("marine biologist", "glaciologist", "violin maker", "architect", "sculptor", "pastry chef",
        "cartographer", "volcanologist", "tax lawyer", "neurosurgeon", "jazz pianist", "beekeeper")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
# (question template, field, answer maker)
FACTS = (
    ("In what year was {} born?", "birth_year", lambda r, n: str(r.randrange(1900, 2010))),
    ("When did {} get married?", "wedding_date",
     lambda r, n: f"{r.randrange(1, 29)} {r.choice(MONTHS)} {r.randrange(1950, 2020)}"),
    ("How many books has {} written?", "books", lambda r, n: str(r.randrange(1, 400))),
    ("Who is the closest collaborator of {}?", "collaborator", lambda r, n: n()),
    ("Where was {} born?", "birthplace", lambda r, n: r.choice(CITIES)),
    ("What is the occupation of {}?", "occupation", lambda r, n: r.choice(JOBS)),
    ("What is {} best known for among the people of {}?", "known_for",
     lambda r, n: f"the {r.choice(JOBS)} of {r.choice(CITIES)}"),
)


def _name(rng: random.Random) -> str:
    word = lambda: "".join(rng.choice(SYLLABLES) for _ in range(rng.randrange(2, 4))).capitalize()
    return f"{word()} {word()}"


def write_files(folder: Path, rows: int, with_field: bool, seed: int = 0) -> dict:
    rng = random.Random(seed)
    seen: set[str] = set()
    names = lambda: _name(rng)
    n_forget = rows // 10
    paths = {"forget": folder / f"forget_{rows}_{int(with_field)}.jsonl",
             "retain": folder / f"retain_{rows}_{int(with_field)}.jsonl"}
    handles = {k: open(p, "w", encoding="utf-8") for k, p in paths.items()}
    written = 0
    while written < rows:
        template, field, answer = FACTS[written % len(FACTS)]
        subject = names()
        question = template.format(subject, rng.choice(CITIES))
        if question in seen:
            continue
        seen.add(question)
        row = {"question": question, "answer": answer(rng, names)}
        if with_field:
            row["field"] = field
        handles["forget" if written < n_forget else "retain"].write(json.dumps(row) + "\n")
        written += 1
    for fh in handles.values():
        fh.close()
    return {k: str(p) for k, p in paths.items()}


CHILD = """
import json, sys, time
from unlearn_lab.data.importing import load_import
from unlearn_lab.settings import Import
cfg = Import(**json.loads(sys.argv[1]))
start = time.perf_counter()
sets = load_import(cfg, 0, random_labels_k=3)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "records": sum(len(v) for v in sets.values())}))
"""


def run_child(files: dict) -> tuple[dict, float]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(files)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait4: the resource usage of this child alone (RUSAGE_CHILDREN would be the max over all).
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"load_import failed:\n{err[-3000:]}")
    peak_mib = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    return json.loads(out), peak_mib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000, 16000, 400000])
    args = ap.parse_args()
    print(f"{'rows':>8} {'field column':>12} {'file MB':>8} {'seconds':>8} {'peak MiB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.sizes:
            for with_field in (False, True):
                files = write_files(Path(tmp), rows, with_field)
                size = sum(os.path.getsize(p) for p in files.values()) / 1e6
                result, peak = run_child(files)
                assert result["records"] == rows, result
                print(f"{rows:>8} {'yes' if with_field else 'no':>12} {size:>8.1f} "
                      f"{result['seconds']:>8.2f} {peak:>9.0f}", flush=True)
                for p in files.values():
                    os.remove(p)


if __name__ == "__main__":
    main()
