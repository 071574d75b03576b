"""The environment as a dependency: the hashed lock, versions.yaml and the stages that list it."""
import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from unlearn_lab import environment
from unlearn_lab.errors import UserError

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PY = "%d.%d" % sys.version_info[:2]
_spec = importlib.util.spec_from_file_location("check_deps", REPO / "scripts" / "check_deps.py")
check_deps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_deps)


def pins(path: Path) -> dict[str, tuple[str, list[str]]]:
    """{name: (version, [sha256...])} of a uv/pip-compile lock, read here without uv."""
    out, name = {}, None
    for line in path.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line):
            name = norm(m.group(1))
            out[name] = (m.group(2), [])
        elif name and (h := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            out[name][1].append(h.group(1))
    return out


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_locked_package_has_a_hash_and_torch_is_apart():
    base = pins(REPO / "requirements" / f"py{PY}.txt")
    assert {"transformers", "peft", "dvc", "pytest", "uv", "setuptools"} <= set(base)
    assert all(hashes for _, hashes in base.values()), [n for n, (_, h) in base.items() if not h]
    assert "torch" not in base  # its build is the machine's choice
    (torch_version, torch_hashes), = pins(REPO / "requirements" / f"torch-cpu-py{PY}.txt").values()
    assert torch_version.endswith("+cpu") and len(torch_hashes) == 1
    cluster = pins(REPO / "requirements" / f"py{PY}-cluster.txt")
    assert "ray" in cluster and all(cluster[n] == base[n] for n in base)  # the cluster lock only adds


def test_the_lock_covers_every_declared_requirement():
    from packaging.requirements import Requirement

    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = pins(REPO / "requirements" / f"py{PY}.txt")
    wanted = project["dependencies"] + project["optional-dependencies"]["test"] + project["optional-dependencies"]["lock"]
    for text in wanted:
        req = Requirement(text)
        if req.name == "torch":
            version = next(iter(pins(REPO / "requirements" / f"torch-cpu-py{PY}.txt").values()))[0]
        else:
            version = base[norm(req.name)][0]
        assert req.specifier.contains(version, prereleases=True), (text, version)


def test_the_installed_environment_is_the_locked_one():
    """What `make install` installed (CI: from the lock) is what the lock pins, torch included."""
    locked = {**pins(REPO / "requirements" / f"py{PY}.txt"), **pins(REPO / "requirements" / "models.txt"),
              **pins(REPO / "requirements" / f"torch-cpu-py{PY}.txt")}
    installed = {norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differ = {n: (v, installed.get(n)) for n, (v, _) in locked.items() if installed.get(n) != v}
    assert not differ, f"installed != locked (make install): {differ}"


def test_versions_file_is_this_environment_and_round_trips(tmp_path):
    assert environment.recorded(REPO / "versions.yaml") == environment.installed()
    path = tmp_path / "versions.yaml"
    path.write_text(environment.render(environment.installed()))
    assert environment.check(path) == environment.installed()
    assert environment.installed()["torch"] == __import__("torch").__version__
    assert environment.installed()["python"] == PY


def test_a_changed_version_is_refused_with_one_line(tmp_path):
    versions = {**environment.installed(), "transformers": "0.0.1"}
    (tmp_path / "versions.yaml").write_text(environment.render(versions))
    with pytest.raises(UserError, match=r"transformers 0\.0\.1 -> " + re.escape(metadata.version("transformers"))):
        environment.check(tmp_path / "versions.yaml")
    # a stage refuses before it reads anything: exit 2, one line, no traceback
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "random_labels.py"), "--data", "nowhere",
                           "--out", "nowhere/x.jsonl"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "versions.yaml" in proc.stderr and "make env" in proc.stderr
    assert not (tmp_path / "nowhere").exists()
    cli = subprocess.run([sys.executable, "-m", "unlearn_lab.environment", "--check"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert cli.returncode == 2 and "transformers" in cli.stderr


def test_stamp_records_the_versions_in_a_metrics_file():
    stamped = environment.stamp({"rouge": 0.5})
    assert stamped["rouge"] == 0.5 and stamped["versions"] == environment.installed()
    assert json.loads(json.dumps(stamped)) == stamped


def test_stage_keys_follow_imports_and_what_they_run():
    assert environment.stage_keys(set()) == ["python"]
    assert environment.stage_keys({"json", "random"}) == ["python"]
    # transformers tokenises with tokenizers and loads safetensors with torch
    assert environment.stage_keys({"transformers"}) == ["python", "torch", "transformers", "tokenizers", "safetensors"]
    assert environment.stage_keys({"sklearn"}, {"gguf"}) == ["python", "gguf", "scikit-learn"]


def test_dvc_yaml_lists_exactly_the_versions_each_stage_imports():
    assert check_deps.check_versions(REPO / "dvc.yaml", REPO) == {}
    stages = check_deps.load_stages(REPO / "dvc.yaml")
    listing = {n for n, s in stages.items() if "transformers" in check_deps.version_keys(s, REPO)[1]}
    assert listing == set(stages) - {"random_labels"}  # every stage that loads a model or scores text
    assert "gguf" in check_deps.version_keys(stages["prepare_model"], REPO)[1]
    assert "bitsandbytes" in check_deps.version_keys(stages["quantize"], REPO)[1]
    assert not [n for n, s in stages.items() if "pytest" in check_deps.version_keys(s, REPO)[1]]


def test_check_deps_reports_a_missing_version_param(tmp_path):
    yaml = YAML()
    dvc = yaml.load((REPO / "dvc.yaml").read_text())
    params = dvc["stages"]["quantize"]["params"]
    entry = next(p for p in params if isinstance(p, dict) and "versions.yaml" in p)
    entry["versions.yaml"].remove("bitsandbytes")
    entry["versions.yaml"].append("pandas")
    with open(tmp_path / "dvc.yaml", "w") as fh:
        yaml.dump(dvc, fh)
    assert check_deps.check_versions(tmp_path / "dvc.yaml", REPO) == {"quantize": (["versions.yaml:bitsandbytes"], ["versions.yaml:pandas"])}


def git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_dvc_reruns_exactly_the_stages_listing_a_changed_version(tmp_path):
    """DVC's own params tracking of versions.yaml: a transformers bump changes the stage that lists
    it, a pytest bump (no stage lists it) changes nothing."""
    dvc = [str(BIN / "dvc")]
    (tmp_path / "versions.yaml").write_text('python: "3.11"\ntransformers: "5.0.0"\npytest: "9.0.0"\n')
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  model:\n    cmd: echo m > m.txt\n    params:\n      - versions.yaml:\n          - python\n"
        "          - transformers\n    outs:\n      - m.txt\n"
        "  labels:\n    cmd: echo l > l.txt\n    params:\n      - versions.yaml:\n          - python\n"
        "    outs:\n      - l.txt\n")
    git(tmp_path, "init", "-q")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(dvc + ["init", "-q"], cwd=tmp_path, check=True, env=env)
    subprocess.run(dvc + ["repro", "-q"], cwd=tmp_path, check=True, env=env)

    def changed():
        out = subprocess.run(dvc + ["status", "--json"], cwd=tmp_path, check=True, env=env,
                             capture_output=True, text=True).stdout
        return set(json.loads(out))

    assert changed() == set()
    text = (tmp_path / "versions.yaml").read_text()
    (tmp_path / "versions.yaml").write_text(text.replace('pytest: "9.0.0"', 'pytest: "9.1.0"'))
    assert changed() == set()
    (tmp_path / "versions.yaml").write_text(text.replace('"5.0.0"', '"5.1.0"'))
    assert changed() == {"model"}


def test_make_install_names_the_missing_lock(tmp_path):
    fake = tmp_path / "python3.99"
    fake.write_text("#!/bin/sh\necho 3.99\n")
    fake.chmod(0o755)
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "install", f"PYTHON={fake}",
                           f"VENV={tmp_path / 'venv'}"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "no lock for Python 3.99 (requirements/py3.99.txt)" in proc.stderr
    assert not (tmp_path / "venv").exists()
