"""Nothing lost on failure: a stage that fails or is killed leaves its earlier outputs intact."""
from __future__ import annotations

import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

import unlearn_lab.io as uio
from unlearn_lab.io import staged_outputs

ROOT = Path(__file__).resolve().parents[1]
SETS = ("forget", "retain", "holdout", "world", "replay")


def make_repo(path: Path, seed: int) -> Path:
    shutil.copytree(ROOT / "data" / "raw", path / "data" / "raw")
    set_seed(path, seed)
    return path


def set_seed(repo: Path, seed: int) -> None:
    yaml = YAML()
    params = yaml.load((ROOT / "params.yaml").read_text())
    params["seed"] = seed
    with open(repo / "params.yaml", "w") as fh:
        yaml.dump(params, fh)


def outputs(repo: Path) -> dict[str, bytes]:
    return {name: (repo / "data" / "processed" / f"{name}.jsonl").read_bytes() for name in SETS}


def leftovers(repo: Path) -> list[str]:
    return sorted(p.name for p in (repo / "data" / "processed").iterdir() if p.name.startswith("."))


STAGE_ARGS = ["--raw", "data/raw", "--base", "models/base", "--out", "data/processed"]


def run_process_data(repo: Path, monkeypatch) -> None:
    monkeypatch.chdir(repo)
    monkeypatch.setattr(sys, "argv", [str(ROOT / "stages" / "process_data.py"), *STAGE_ARGS])
    runpy.run_path(str(ROOT / "stages" / "process_data.py"), run_name="stage")["main"]()


@pytest.fixture()
def repo(tmp_path, monkeypatch, tiny_dir):
    """A directory where process_data has run once (seed 1); params now say seed 2."""
    repo = make_repo(tmp_path / "repo", seed=1)
    shutil.copytree(tiny_dir, repo / "models" / "base")  # its tokenizer measures the questions
    run_process_data(repo, monkeypatch)
    set_seed(repo, 2)
    return repo


def test_failure_while_writing_leaves_all_five_files(repo, monkeypatch):
    before = outputs(repo)
    calls = []
    real_open = open

    def open_that_fills_the_disk(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 4:
            raise OSError(28, "No space left on device")
        return real_open(path, *args, **kwargs)

    # Shadows the builtin inside unlearn_lab.io only.
    monkeypatch.setattr(uio, "open", open_that_fills_the_disk, raising=False)
    with pytest.raises(OSError, match="No space left"):
        run_process_data(repo, monkeypatch)
    assert len(calls) == 4
    assert outputs(repo) == before
    assert leftovers(repo) == []


def test_failure_while_committing_rolls_back(repo, monkeypatch):
    before = outputs(repo)
    real_replace = os.replace
    calls = []

    def replace_failing_once(src, dst):
        calls.append(dst)
        # The 4th rename moves the second new file into place: one output is already replaced.
        if len(calls) == 4:
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(uio.os, "replace", replace_failing_once)
    with pytest.raises(OSError, match="Input/output error"):
        run_process_data(repo, monkeypatch)
    monkeypatch.setattr(uio.os, "replace", real_replace)
    assert outputs(repo) == before
    assert leftovers(repo) == []


KILLABLE = """
import runpy, sys, time
from pathlib import Path
import unlearn_lab.io as uio

MARKER = Path(sys.argv[1])

def commit_slowly(moves):
    MARKER.write_text("staged")
    time.sleep(120)

uio._commit = commit_slowly
sys.argv = [sys.argv[2], "--raw", "data/raw", "--base", "models/base", "--out", "data/processed"]
runpy.run_path(sys.argv[0], run_name="stage")["main"]()
"""


def test_killed_stage_keeps_previous_outputs_and_the_rerun_cleans_up(repo):
    before = outputs(repo)
    marker = repo / "staged.marker"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(marker),
                             str(ROOT / "stages" / "process_data.py")], cwd=repo, env=env)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None, "the stage ended before it was killed"
            assert time.time() < deadline, "the stage never reached its commit"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert outputs(repo) == before
    # Killed after every new file (the five sets and documents.jsonl) was written in scratch: scratch
    # copies are left over ...
    assert len(leftovers(repo)) == 6
    rerun = subprocess.run([sys.executable, str(ROOT / "stages" / "process_data.py"), *STAGE_ARGS], cwd=repo,
                           env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    # ... and the next run removes them and writes the seed-2 sets.
    assert leftovers(repo) == []
    after = outputs(repo)
    assert all(after[name] != before[name] for name in ("forget", "retain"))


def test_staged_outputs_replace_files_and_folders_together(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights").write_text("old weights")
    (tmp_path / "metrics.json").write_text("old metrics")
    with pytest.raises(RuntimeError):
        with staged_outputs(files=[tmp_path / "metrics.json"], dirs=[tmp_path / "model"]) as out:
            (out[str(tmp_path / "model")] / "weights").write_text("new weights")
            out[str(tmp_path / "metrics.json")].write_text("new metrics")
            raise RuntimeError("training diverged")
    assert (tmp_path / "model" / "weights").read_text() == "old weights"
    assert (tmp_path / "metrics.json").read_text() == "old metrics"
    with staged_outputs(files=[tmp_path / "metrics.json"], dirs=[tmp_path / "model"]) as out:
        (out[str(tmp_path / "model")] / "weights").write_text("new weights")
        out[str(tmp_path / "metrics.json")].write_text("new metrics")
    assert (tmp_path / "model" / "weights").read_text() == "new weights"
    assert (tmp_path / "metrics.json").read_text() == "new metrics"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "model"]


def test_a_backup_left_by_a_kill_mid_commit_is_put_back(tmp_path):
    # Killed right after moving the old output aside, before the new one moved in.
    (tmp_path / ".model.old").mkdir()
    (tmp_path / ".model.old" / "weights").write_text("old weights")
    with pytest.raises(RuntimeError):
        with staged_outputs(dirs=[tmp_path / "model"]):
            raise RuntimeError("fails again")
    assert (tmp_path / "model" / "weights").read_text() == "old weights"
    assert not (tmp_path / ".model.old").exists()


def test_discarded_outputs_never_touch_the_targets(tmp_path):
    from unlearn_lab.io import discarded_outputs

    target_file, target_dir = tmp_path / "m.json", tmp_path / "model"
    target_file.write_text("old")
    with discarded_outputs(files=[str(target_file)], dirs=[str(target_dir)]) as out:
        assert out[str(target_file)].name == "m.json" and out[str(target_dir)].is_dir()
        out[str(target_file)].write_text("new")
        (out[str(target_dir)] / "w").write_text("x")
    assert target_file.read_text() == "old" and not target_dir.exists()
    assert not out[str(target_file)].exists()
