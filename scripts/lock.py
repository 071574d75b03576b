"""Regenerate the hashed lock in requirements/ that `make install` installs (uv pip compile).

    python scripts/lock.py              # `make lock`: keep today's pins, add what pyproject.toml now needs
    python scripts/lock.py --upgrade    # every package to its newest release that fits (`make upgrade`)

Files, for the Python running this script (3.11 is the one the README supports):
  requirements/py3.11.txt          the package, its `test` and `lock` extras and the build back end,
                                   every dependency pinned with its hashes; torch left out (below)
  requirements/py3.11-cluster.txt  the same plus the `cluster` extra (Ray), agreeing with the above
  requirements/torch-cpu-py3.11.txt  torch's CPU build (requirements/torch.in), with its hash
  requirements/models.txt          the two model wheels, without their unused dependencies
torch is apart because its build is a choice of the machine (CPU here, CUDA on a GPU machine:
docs/gpu.md), and the rest of the lock must not loosen with it. uv does not hash a --find-links
file, so torch's hash is computed here from the wheel pip resolves.
"""
import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQ = ROOT / "requirements"
# pip's find-links folder on this project's machines holds the CPU torch wheel; elsewhere, pass yours.
FIND_LINKS = "/opt/wheels"


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        sys.exit("error: uv is not installed: `make install` brings it (the `lock` extra)")
    return found


def compile_(inputs, out: Path, python: str, upgrade: bool, *extra: str) -> None:
    cmd = [uv(), "pip", "compile", "--quiet", "--generate-hashes", "--python-version", python,
           "--custom-compile-command", "make lock", *map(str, inputs), *extra, "-o", str(out)]
    if Path(FIND_LINKS).is_dir():
        cmd += ["--find-links", FIND_LINKS]
    if upgrade:
        cmd.append("--upgrade")
    subprocess.run(cmd, check=True, cwd=ROOT)


def add_wheel_hash(lock: Path, requirement: str) -> None:
    """Append the sha256 of the wheel pip picks for `requirement` to its line in `lock`."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, requirement],
                       check=True)
        (wheel,) = Path(tmp).glob("*.whl")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    lines = lock.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(requirement))
    # uv carries a hash it finds in the previous output over: replace, never append twice
    end = at + 1
    while end < len(lines) and lines[end].strip().startswith("--hash="):
        end += 1
    lines[at:end] = [f"{requirement} \\", f"    --hash=sha256:{digest}"]
    lock.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upgrade", action="store_true", help="newest releases instead of today's pins")
    args = parser.parse_args()
    py = "%d.%d" % sys.version_info[:2]
    base, cluster = REQ / f"py{py}.txt", REQ / f"py{py}-cluster.txt"
    project = [ROOT / "pyproject.toml", REQ / "build.in"]
    extras = ["--extra", "test", "--extra", "lock", "--no-emit-package", "torch"]
    compile_(project, base, py, args.upgrade, *extras)
    compile_(project, cluster, py, args.upgrade, *extras, "--extra", "cluster", "-c", str(base))
    torch = REQ / f"torch-cpu-py{py}.txt"
    compile_([REQ / "torch.in"], torch, py, False, "--no-deps")
    pin = next(line.split()[0] for line in torch.read_text().splitlines() if line.startswith("torch=="))
    add_wheel_hash(torch, pin)
    compile_([REQ / "models.in"], REQ / "models.txt", py, args.upgrade, "--no-deps")


if __name__ == "__main__":
    main()
