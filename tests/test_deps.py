"""scripts/check_deps.py: every stage of dvc.yaml depends on the package modules its script runs."""
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_deps", REPO / "scripts" / "check_deps.py")
check_deps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_deps)

PKG = "src/unlearn_lab"


def write(root: Path, files: dict) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def test_real_dvc_yaml_covers_every_closure():
    missing = {name: miss for name, (miss, _) in check_deps.check(REPO / "dvc.yaml", REPO).items() if miss}
    if missing:
        pytest.fail("stages whose deps miss modules they run (python scripts/check_deps.py):\n" +
                    "\n".join(f"{name}: {', '.join(m)}" for name, m in missing.items()), pytrace=False)


def test_planted_missing_dep_is_reported(tmp_path):
    """Give one stage exactly its closure as deps but for one package module: the checker names
    that module for that stage, and reports every other stage as it does for the real file."""
    yaml = YAML(typ="safe", pure=True)
    data = yaml.load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    plain = {n: s for n, s in data["stages"].items() if "foreach" not in s and "matrix" not in s}
    closures = {n: check_deps.closure(check_deps.entry_points(s["cmd"]), REPO) for n, s in plain.items()}
    modules = {n: [f for f in c if f.startswith(PKG + "/")] for n, c in closures.items()}
    # The first stage listing a package file of its closure as a dep; else the first that runs the package.
    name, removed = next(((n, d) for n, s in plain.items() for d in s.get("deps", []) if d in modules[n]), None) \
        or next((n, m[0]) for n, m in modules.items() if m)
    stage = data["stages"][name]
    kept = [d for d in stage.get("deps", []) if not check_deps._covers("src", d)]
    stage["deps"] = kept + [f for f in closures[name] if f != removed and f not in kept]
    with open(tmp_path / "dvc.yaml", "w", encoding="utf-8") as fh:
        yaml.dump(data, fh)

    planted, real = check_deps.check(tmp_path / "dvc.yaml", REPO), check_deps.check(REPO / "dvc.yaml", REPO)
    assert planted[name] == ([removed], [])
    assert {n: r for n, r in planted.items() if n != name} == {n: r for n, r in real.items() if n != name}

    cli = subprocess.run([sys.executable, str(REPO / "scripts" / "check_deps.py"), str(tmp_path / "dvc.yaml"),
                          "--root", str(REPO)], capture_output=True, text=True, cwd=tmp_path)
    assert cli.returncode == 1
    assert [ln for ln in cli.stdout.splitlines() if ln.startswith(f"{name}:")] == [f"{name}: missing dep {removed}"]


FAKE = {
    f"{PKG}/__init__.py": "",
    f"{PKG}/a.py": """\
        from . import sub
        from .b import helper
        from .io import UserError  # a name, not a module
        """,
    f"{PKG}/b.py": """\
        import os

        def helper():
            from .c import late  # function-level import
        """,
    f"{PKG}/c.py": "",
    f"{PKG}/io.py": "class UserError(Exception): ...\n",
    f"{PKG}/d.py": """\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from . import never
        """,
    f"{PKG}/never.py": "",
    f"{PKG}/sub/__init__.py": "from .leaf import y\n",
    f"{PKG}/sub/leaf.py": "from .. import d\ny = 1\n",
    f"{PKG}/sub/unused.py": "",
    f"{PKG}/deep/__init__.py": "",
    f"{PKG}/deep/er/__init__.py": "",
    f"{PKG}/deep/er/mod.py": "from ...c import z\n",
    "stages/one.py": "import numpy\nfrom unlearn_lab.a import helper\n",
    "stages/two.py": "import unlearn_lab.deep.er.mod as m\n",
    "stages/three.py": "from unlearn_lab import sub, version\n",
}


def test_closure_of_a_fake_package(tmp_path):
    root = write(tmp_path, FAKE)
    assert check_deps.closure(["stages/one.py"], root) == [
        f"{PKG}/__init__.py", f"{PKG}/a.py", f"{PKG}/b.py", f"{PKG}/c.py", f"{PKG}/d.py", f"{PKG}/io.py",
        f"{PKG}/sub/__init__.py", f"{PKG}/sub/leaf.py", "stages/one.py"]
    assert check_deps.closure(["stages/two.py"], root) == [
        f"{PKG}/__init__.py", f"{PKG}/c.py", f"{PKG}/deep/__init__.py", f"{PKG}/deep/er/__init__.py",
        f"{PKG}/deep/er/mod.py", "stages/two.py"]
    assert check_deps.closure(["stages/three.py"], root) == [
        f"{PKG}/__init__.py", f"{PKG}/d.py", f"{PKG}/sub/__init__.py", f"{PKG}/sub/leaf.py", "stages/three.py"]
    assert check_deps.closure(["unlearn_lab.b"], root) == [f"{PKG}/__init__.py", f"{PKG}/b.py", f"{PKG}/c.py"]


def test_a_folder_scanned_for_its_modules_counts_them_all(tmp_path):
    """methods/base.py imports each method file by name from a listing of its folder."""
    root = write(tmp_path, {
        f"{PKG}/__init__.py": "",
        f"{PKG}/plug/__init__.py": "",
        f"{PKG}/plug/base.py": """\
            import importlib

            def discover(names):
                for name in names:
                    importlib.import_module(f"{__package__}.{name}")
            """,
        f"{PKG}/plug/one.py": "",
        f"{PKG}/plug/two.py": "",
        f"{PKG}/lazy/__init__.py": "import importlib\nm = importlib.import_module(f'{__name__}.x')\n",
        f"{PKG}/lazy/x.py": "",
        f"{PKG}/lazy/y.py": "",
        "stages/s.py": "from unlearn_lab.plug.base import discover\nimport unlearn_lab.lazy\n",
    })
    assert check_deps.closure(["stages/s.py"], root) == [
        f"{PKG}/__init__.py", f"{PKG}/lazy/__init__.py", f"{PKG}/plug/__init__.py", f"{PKG}/plug/base.py",
        f"{PKG}/plug/one.py", f"{PKG}/plug/two.py", "stages/s.py"]


def test_check_stage_missing_and_over_broad(tmp_path):
    root = write(tmp_path, FAKE)
    stage = {"cmd": "python stages/three.py --flag", "deps": ["stages/three.py", f"{PKG}/__init__.py",
                                                             f"{PKG}/sub/", f"{PKG}/c.py", "data/raw"]}
    missing, over = check_deps.check_stage(stage, root)
    assert missing == [f"{PKG}/d.py"]
    assert over == [(f"{PKG}/sub", [f"{PKG}/sub/unused.py"]), (f"{PKG}/c.py", [f"{PKG}/c.py"])]
    assert check_deps.check_stage({"cmd": "python stages/three.py", "deps": ["src", "stages"]}, root)[0] == []
    assert check_deps.check_stage({"cmd": "python stages/three.py", "deps": [PKG]}, root)[0] == ["stages/three.py"]


def test_foreach_and_matrix_expansion(tmp_path):
    (tmp_path / "dvc.yaml").write_text(textwrap.dedent("""\
        stages:
          single:
            cmd: python stages/single.py
          ft:
            foreach: [target, oracle]
            do:
              cmd: python stages/finetune.py ${item}
              deps:
                - stages/finetune.py
                - models/${item}
          ev:
            foreach:
              target: {parent: base}
              unlearned: {parent: target}
            do:
              cmd: python stages/evaluate.py ${key}
              deps:
                - models/${item.parent}
                - models/${key}
                - ${not.a.var}
          runs:
            foreach:
              - {name: a, lr: 1}
              - {name: b, lr: 2}
            do:
              cmd: python stages/run.py ${item.name} ${item.lr}
          grid:
            matrix:
              method: [ga, npo]
              quant: [true, 4]
            cmd: python stages/grid.py ${item.method} ${item.quant} ${key}
            deps:
              - eval/${item.method}.jsonl
          mixed:
            matrix:
              opt: [{lr: 1}, {lr: 2}]
              m: [x]
            cmd: python stages/mixed.py ${item.opt.lr} ${item.m}
        """), encoding="utf-8")
    stages = check_deps.load_stages(tmp_path / "dvc.yaml")
    assert {n: s["cmd"] for n, s in stages.items()} == {
        "single": "python stages/single.py",
        "ft@target": "python stages/finetune.py target",
        "ft@oracle": "python stages/finetune.py oracle",
        "ev@target": "python stages/evaluate.py target",
        "ev@unlearned": "python stages/evaluate.py unlearned",
        "runs@0": "python stages/run.py a 1",
        "runs@1": "python stages/run.py b 2",
        "grid@ga-true": "python stages/grid.py ga true ga-true",
        "grid@ga-4": "python stages/grid.py ga 4 ga-4",
        "grid@npo-true": "python stages/grid.py npo true npo-true",
        "grid@npo-4": "python stages/grid.py npo 4 npo-4",
        "mixed@opt0-x": "python stages/mixed.py 1 x",
        "mixed@opt1-x": "python stages/mixed.py 2 x",
    }
    assert stages["ft@oracle"]["deps"] == ["stages/finetune.py", "models/oracle"]
    assert stages["ev@unlearned"]["deps"] == ["models/target", "models/unlearned", "${not.a.var}"]
    assert stages["grid@npo-4"]["deps"] == ["eval/npo.jsonl"]
    assert check_deps.entry_points(["python -m unlearn_lab.x", "accelerate launch 'stages/a b.py' c"]) == [
        "unlearn_lab.x", "stages/a b.py"]
