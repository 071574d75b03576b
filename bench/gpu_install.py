"""Install the carried bundles on the GPU machine (standard library only: it runs before them).

Checks that every file of .gpu/CALLS.md's bundles reached the staging folder (sha256), joins the
parts of files that were cut to fit a call, and installs the wheels with pip into --target
(no index, no dependency resolution: the set is complete by construction, see scripts/gpu_wheels.py).

    python3 bench/gpu_install.py /tmp/gpu-stage /tmp/gpu-site
"""
import hashlib
import json
import subprocess
import sys
from pathlib import Path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble(stage: Path) -> list[Path]:
    """The complete wheels in `stage`, parts joined and every file checked; exits naming what is missing."""
    manifest = json.loads((stage / "manifest.json").read_text())
    missing = [f"{b['folder']}/{f['name']}" for b in manifest["bundles"] for f in b["files"]
               if not (stage / f["name"]).is_file() or (stage / f["name"]).stat().st_size != f["size"]]
    if missing:
        folders = sorted({m.split("/")[0] for m in missing})
        sys.exit(f"error: {stage}: {len(missing)} carried files missing or short (e.g. {missing[0]}): "
                 f"make the calls that carry {', '.join(folders)} first (.gpu/CALLS.md)")
    for b in manifest["bundles"]:
        for f in b["files"]:
            if sha256(stage / f["name"]) != f["sha256"]:
                sys.exit(f"error: {stage / f['name']}: sha256 differs from the manifest (a broken transfer): carry it again")
    for whole, meta in manifest["wholes"].items():
        parts = sorted(f["name"] for b in manifest["bundles"] for f in b["files"] if f["whole"] == whole)
        target = stage / whole
        if not target.is_file() or sha256(target) != meta["sha256"]:
            with open(target, "wb") as out:
                for part in parts:
                    out.write((stage / part).read_bytes())
            if sha256(target) != meta["sha256"]:
                sys.exit(f"error: {target}: the joined parts do not give the file's sha256")
    return sorted((stage / "wheels").glob("*.whl"))


def main():
    stage, site = Path(sys.argv[1]), Path(sys.argv[2])
    wheels = assemble(stage)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                          "--no-cache-dir", "--upgrade", "--disable-pip-version-check", "--target", str(site),
                          *map(str, wheels)], capture_output=True, text=True)
    if pip.returncode:
        sys.exit(f"error: pip could not install the carried wheels into {site}: {pip.stderr.strip()[-600:]}")
    print(f"installed {len(wheels)} wheels into {site}")


if __name__ == "__main__":
    main()
