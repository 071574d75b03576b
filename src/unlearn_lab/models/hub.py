"""A hub id `owner/name` at `model.revision`, resolved to a snapshot folder and its commit.

`huggingface_hub.snapshot_download` fetches what is missing when the hub is reachable and, with
HF_HUB_OFFLINE=1, answers from the local cache (HF_HUB_CACHE) alone, so the same call serves a
fresh download, a pinned commit and an offline run. The commit is what makes a run reproducible:
a branch such as `main` moves, the commit it resolved to does not.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError

# Top-level files only: transformers loads a model folder's top level, and repositories keep other
# variants (ONNX, GGUF, original checkpoints) in subfolders that would only cost bandwidth.
WEIGHTS = ["*.safetensors", "*.safetensors.index.json"]
TOKENIZER = ["*.json", "*.jinja", "*.model", "*.txt", "*.tiktoken"]
SUBFOLDERS = ["*/*"]


def custom_code_files(folder: Path) -> list[str]:
    """The files of a model folder that ask transformers to run the folder's own code."""
    found = []
    for name in ("config.json", "tokenizer_config.json"):
        try:
            config = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and config.get("auto_map"):
            found.append(name)
    return found


def refuse_own_code(folder: Path, where: str, trust_remote_code: bool) -> None:
    """A model folder (local, or a hub snapshot) that would run its own code is refused unless
    `model.trust_remote_code` is true."""
    custom = custom_code_files(folder)
    if custom and not trust_remote_code:
        raise UserError(f"{where} needs its own Python code to load (auto_map in {' and '.join(custom)}); "
                        "set model.trust_remote_code: true only if you trust that code")


def _reason(exc: Exception) -> str:
    """huggingface_hub's message on one line, cut short: stages print errors as a single line."""
    return " ".join(str(exc).split())[:200]


def _download(source: str, revision: str, trust_remote_code: bool) -> Path:
    """The snapshot folder of `source` at `revision`; huggingface_hub's errors as one-line UserErrors."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    where = f"params.yaml: model.source {source!r} at model.revision {revision!r}"
    patterns = WEIGHTS + TOKENIZER + (["*.py"] if trust_remote_code else [])
    try:
        return Path(snapshot_download(repo_id=source, revision=revision, allow_patterns=patterns,
                                      ignore_patterns=SUBFOLDERS))
    except RevisionNotFoundError:
        raise UserError(f"{where}: the hub has no such branch, tag or commit") from None
    except RepositoryNotFoundError:
        raise UserError(f"{where}: no such model on the hub (or it is private or gated and no "
                        "token with access is set)") from None
    except LocalEntryNotFoundError as exc:
        # Offline (HF_HUB_OFFLINE=1) or an unreachable hub: only the local cache could answer.
        raise UserError(f"{where} is not in the local Hugging Face cache and the hub cannot be "
                        f"reached ({_reason(exc)})") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{where} cannot be fetched: {_reason(exc)}") from None


def resolve_hub(source: str, revision: str, trust_remote_code: bool) -> tuple[Path, str]:
    """Snapshot folder and resolved 40-hex commit of hub id `source` at `revision`.

    Refuses a snapshot that would run its own code without `trust_remote_code`, or that has only
    pickled weights (unpickling runs code too).
    """
    folder = _download(source, revision, trust_remote_code)
    # The hub's cache names each snapshot folder after its commit, whatever revision led there.
    commit = folder.name
    where = f"params.yaml: model.source {source!r} (revision {revision!r}, commit {commit[:12]})"
    refuse_own_code(folder, where, trust_remote_code)
    if not any(folder.glob("*.safetensors")):
        raise UserError(f"{where} has no safetensors weights (pickled weights are never loaded)")
    return folder, commit
