"""Does a change keep behaviour? The tiny pipeline (the end-to-end tests' tiny random model and
sizes) of two checkouts, every output compared byte for byte.

    python scripts/tiny_snapshot.py snapshot CHECKOUT OUT   # dvc repro of CHECKOUT's tiny repo in OUT/repo
    python scripts/tiny_snapshot.py compare OUT_A OUT_B     # every declared output file, A against B

Run `snapshot` with each checkout's own code (PYTHONPATH=CHECKOUT/src), one at a time (torch).
`compare` lists the outputs only one side has, then each shared output file that differs; a JSON file whose only differences are wall
times (keys naming `seconds`) is reported apart, since no two runs take the same time. Exit 1 if any
other file differs.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path


def snapshot(checkout: Path, out: Path) -> None:
    sys.path[:0] = [str(checkout), str(checkout / "src")]
    os.chdir(checkout)
    from tests import test_pipeline_e2e as e2e

    repo = out / "repo"
    repo.mkdir(parents=True)
    e2e.setup_repo(repo)
    env = {**os.environ, "PATH": f"{e2e.BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    subprocess.run([str(e2e.BIN / "dvc"), "repro"], cwd=repo, env=env, check=True)
    lines = []
    for declared in e2e.declared_outputs(repo / "dvc.yaml"):
        path = repo / declared
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.exists() else []
        lines += [f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.relative_to(repo)}" for f in files]
    (out / "hashes.txt").write_text("\n".join(lines) + "\n")
    print(f"{out / 'hashes.txt'}: {len(lines)} files")


def _timeless(value):
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def compare(a: Path, b: Path) -> int:
    def read(out):
        return dict(reversed(line.split("  ", 1)) for line in (out / "hashes.txt").read_text().splitlines())
    ha, hb = read(a), read(b)
    only_a, only_b = sorted(ha.keys() - hb.keys()), sorted(hb.keys() - ha.keys())
    if only_a or only_b:
        # A change may add outputs (a new stage) or drop them: said, then the shared ones compared.
        print(f"only in A: {', '.join(only_a) or '-'}; only in B: {', '.join(only_b) or '-'}")
        ha = {k: v for k, v in ha.items() if k in hb}
    timed, other = [], []
    for name in sorted(ha):
        if ha[name] == hb[name]:
            continue
        fa, fb = a / "repo" / name, b / "repo" / name
        if name.endswith(".json") and _timeless(json.loads(fa.read_text())) == _timeless(json.loads(fb.read_text())):
            timed.append(name)
        else:
            other.append(name)
    print(f"{len(ha)} files in both: {len(ha) - len(timed) - len(other)} byte-identical, {len(timed)} differ in wall "
          f"times only ({', '.join(timed) or '-'}), {len(other)} differ ({', '.join(other) or '-'})")
    return 1 if other else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("snapshot")
    s.add_argument("checkout", type=Path)
    s.add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args()
    if args.command == "snapshot":
        snapshot(args.checkout.resolve(), args.out.resolve())
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
