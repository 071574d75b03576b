"""A hub id `owner/name` at `model.revision`, resolved offline from a local Hugging Face cache laid
out as huggingface_hub writes it: `models--owner--name/refs/<branch>` holds a commit and
`models--owner--name/snapshots/<commit>/` its files. No test reaches a network."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from safetensors.torch import load_file

from unlearn_lab.errors import UserError
from unlearn_lab.models.hub import resolve_hub
from unlearn_lab.models.loading import META, prepare_base
from unlearn_lab.settings import Model, Tiny

ROOT = Path(__file__).resolve().parents[1]
REPO = "owner/name"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TRUST_REFUSAL = "set model.trust_remote_code: true only if you trust that code"


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> Path:
    """The files a hub repository of a tiny model would hold (our own metadata left out)."""
    out = tmp_path_factory.mktemp("tiny-hub-model")
    prepare_base(Model(source="tiny-random", tiny=Tiny(layers=1, hidden=16)), out, seed=0)
    (out / META).unlink()
    return out


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    """An empty hub cache that huggingface_hub reads offline."""
    import huggingface_hub.constants as constants

    folder = tmp_path / "hf-cache"
    folder.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Both are read from the environment once, when huggingface_hub is first imported.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return folder


def publish(cache: Path, files: Path, repo: str = REPO, commit: str = COMMIT, refs=("main",)) -> Path:
    """Lay `files` out as the snapshot of `repo` at `commit`, with each ref pointing at it."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / commit
    shutil.copytree(files, snapshot)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    for ref in refs:
        # huggingface_hub reads a ref file verbatim: no trailing newline, as it writes them.
        (storage / "refs" / ref).write_text(commit)
    return snapshot


def edited(files: Path, tmp_path: Path, changes: dict) -> Path:
    """A copy of `files` with each file of `changes` written with its text (None: removed)."""
    out = tmp_path / "edited"
    shutil.copytree(files, out)
    for name, text in changes.items():
        if text is None:
            (out / name).unlink()
        else:
            (out / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return out


@pytest.mark.parametrize("revision", ["main", COMMIT])
def test_hub_id_loads_from_the_cache_and_records_its_commit(tiny_files, cache, tmp_path, revision):
    snapshot = publish(cache, tiny_files)
    out = tmp_path / "base"
    meta = prepare_base(Model(source=REPO, revision=revision), out, seed=0)

    assert meta["source"] == REPO and meta["revision"] == revision and meta["commit"] == COMMIT
    assert json.loads((out / META).read_text())["commit"] == COMMIT
    cached, saved = load_file(snapshot / "model.safetensors"), load_file(out / "model.safetensors")
    assert cached.keys() == saved.keys()
    assert all(cached[k].equal(saved[k]) for k in cached)


def test_the_same_commit_gives_the_same_base_folder(tiny_files, cache, tmp_path):
    """Why re-resolving a branch re-runs the pipeline only when its commit moved: DVC hashes the
    base folder, and the same commit writes it byte for byte."""
    publish(cache, tiny_files)
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        prepare_base(Model(source=REPO), out, seed=0)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert all((first / n).read_bytes() == (second / n).read_bytes() for n in names)


def test_local_folders_record_no_revision(tiny_files, tmp_path):
    """The revision belongs to hub ids: a local folder's meta stays as it was."""
    meta = prepare_base(Model(source=str(tiny_files), revision="v9"), tmp_path / "base", seed=0)
    assert meta["source"] == str(tiny_files) and "revision" not in meta and "commit" not in meta


def test_pickled_weights_are_never_loaded(tiny_files, cache, tmp_path):
    # Not a pickle at all: a loader that tried to unpickle it would fail loudly, not quietly pass.
    publish(cache, edited(tiny_files, tmp_path, {"model.safetensors": None, "pytorch_model.bin": b"not a pickle"}))
    with pytest.raises(UserError, match=r"^params.yaml: model.source 'owner/name' .*"
                                        r"no safetensors weights \(pickled weights are never loaded\)$"):
        prepare_base(Model(source=REPO), tmp_path / "base", seed=0)
    assert not (tmp_path / "base").exists()


def test_custom_code_needs_trust_remote_code(tiny_files, cache, tmp_path, monkeypatch):
    config = json.loads((tiny_files / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "custom.Config", "AutoModelForCausalLM": "custom.Model"}
    publish(cache, edited(tiny_files, tmp_path, {"config.json": json.dumps(config)}))

    with pytest.raises(UserError) as refused:
        prepare_base(Model(source=REPO), tmp_path / "refused", seed=0)
    assert str(refused.value) == (f"params.yaml: model.source 'owner/name' (revision 'main', commit {COMMIT[:12]}) "
                                  f"needs its own Python code to load (auto_map in config.json); {TRUST_REFUSAL}")

    # Trusted, it gets past the refusal; the code it names is not in the snapshot, so loading then
    # fails. transformers would copy the code into its module cache: keep that under tmp_path.
    import transformers.dynamic_module_utils as dynamic

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(UserError) as failed:
        prepare_base(Model(source=REPO, trust_remote_code=True), tmp_path / "trusted", seed=0)
    assert TRUST_REFUSAL not in str(failed.value) and "custom.py" in str(failed.value)


@pytest.mark.parametrize("source, revision", [("other/missing", "main"), (REPO, "v2"), (REPO, "f" * 40)])
def test_what_the_cache_lacks_is_one_line_naming_it(tiny_files, cache, source, revision):
    publish(cache, tiny_files)
    with pytest.raises(UserError) as err:
        resolve_hub(source, revision, trust_remote_code=False)
    message = str(err.value)
    assert message.startswith(f"params.yaml: model.source {source!r} at model.revision {revision!r} is not in the "
                              "local Hugging Face cache")
    assert "\n" not in message


def test_revision_is_a_param_of_prepare_model():
    stages = YAML(typ="safe", pure=True).load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert "model.revision" in stages["prepare_model"]["params"]


def test_stage_prints_the_resolved_commit(tiny_files, cache, tmp_path):
    publish(cache, tiny_files)
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(f"model:\n  source: {REPO}\n  revision: main\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "stages" / "prepare_model.py"), "--out", "models/base"],
                          cwd=work, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"models/base: {REPO}@{COMMIT[:12]} (" in proc.stdout
    assert json.loads((work / "models" / "base" / META).read_text())["commit"] == COMMIT
