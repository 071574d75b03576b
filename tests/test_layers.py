"""The package's rooms and the one direction of their imports (README "Where things live"):
stages, scripts and bench -> studies -> robustness -> training -> evaluation -> models -> data ->
the basics. A module imports its own room and the rooms below it, never one above, so a room can
be read, tested and changed without the ones that use it. Function-level imports count too."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "unlearn_lab"
# Lowest first. Anything at the package's top level (settings/, io, errors, stage, environment,
# figures) is a basic.
ROOMS = ("data", "models", "evaluation", "training", "robustness", "studies")


def room(module: str) -> str:
    """`unlearn_lab.training.methods.npo` -> `training`; a basic -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else ""


def rank(name: str) -> int:
    return ROOMS.index(name) + 1 if name else 0


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of the package in `path`, at any depth."""
    name = module_name(path, package)
    here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from . import x` names modules: each counts as its own import.
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names] if not node.module else \
                [(node.lineno, target)]
    return [(line, m) for line, m in found if m.split(".")[0] == package.name]


def upward_imports(package: Path) -> list[str]:
    """`file:line: room -> higher room (module)` for every import that goes up."""
    bad = []
    for path in sorted(package.rglob("*.py")):
        mine = room(module_name(path, package))
        for line, target in imports(path, package):
            theirs = room(target)
            if rank(theirs) > rank(mine):
                bad.append(f"{path.relative_to(package.parent)}:{line}: {mine or 'basics'} imports "
                           f"{theirs} ({target})")
    return bad


def test_no_room_imports_a_room_above_it():
    assert upward_imports(PACKAGE) == []


def test_every_module_lives_in_a_room_or_is_a_basic():
    """A new top-level folder must join ROOMS (and the README's map) before it can hold code."""
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders - set(ROOMS) == {"settings"}


@pytest.mark.parametrize("source, importer, expected", [
    ("from ..training.unlearning import unlearn\n", "models/loading.py",
     "models imports training (unlearn_lab.training.unlearning)"),
    ("from .. import studies\n", "data/sets.py", "data imports studies (unlearn_lab.studies)"),
    ("def f():\n    from unlearn_lab.robustness import common\n", "evaluation/questions.py",
     "evaluation imports robustness (unlearn_lab.robustness)"),
    ("from .training import finetune\n", "io.py", "basics imports training (unlearn_lab.training)"),
])
def test_an_upward_import_is_found(tmp_path, source, importer, expected):
    """The check itself, on a made-up package: relative, package-level, function-level and
    basic-level imports going up are each reported; the same imports going down are not."""
    package = tmp_path / "unlearn_lab"
    for room_name in ROOMS:
        (package / room_name).mkdir(parents=True)
        (package / room_name / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    target = package / importer
    target.write_text(source)
    (package / "studies" / "down.py").write_text("from ..models import loading\nfrom ..io import x\n")
    found = upward_imports(package)
    assert len(found) == 1 and found[0].endswith(expected), found
