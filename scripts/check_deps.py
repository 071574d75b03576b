"""Check that each dvc.yaml stage depends on every package module its script runs.

    python scripts/check_deps.py [dvc.yaml] [--root DIR]   # a line per problem; exit 1 if a dep is missing
    python scripts/check_deps.py --closure finetune@target  # the files one stage runs

Also checks that each stage lists, under `params:` from versions.yaml, the library versions its
closure imports (unlearn_lab.environment.stage_keys): a library upgrade must re-run it.

A stage's closure: its script plus each src/unlearn_lab file imported from it, transitively. Any
import statement counts (function-level too; not under `if TYPE_CHECKING:`); importing a.b.c runs
a/__init__.py and a/b/__init__.py; `from pkg import name` imports pkg/name.py if there is one;
`importlib.import_module(f"{__package__}.{name}")` (a package scanning its own folder, like methods/)
imports every module of that folder. A dep
covers a file it names or a directory holding it. Over-broad deps under src/ are information only.
"""
import argparse
import ast
import itertools
import posixpath
import re
import shlex
import sys
from pathlib import Path

from ruamel.yaml import YAML

PACKAGE, SRC = "unlearn_lab", "src"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / SRC))
from unlearn_lab.environment import FILE as VERSIONS, MACHINE_FILE, MACHINE_KEYS, stage_keys  # noqa: E402

HARDWARE = f"{SRC}/{PACKAGE}/models/hardware.py"


def _to_str(value):
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _interpolate(node, ctx):
    """Substitute ${item}, ${key} and ${item.a.b} in every string of node; unknown names stay."""
    if isinstance(node, dict):
        return {_interpolate(k, ctx): _interpolate(v, ctx) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, ctx) for v in node]
    if not isinstance(node, str):
        return node

    def sub(match):
        value = ctx
        for part in match.group(1).strip().split("."):
            if not isinstance(value, dict) or part not in value:
                return match.group(0)
            value = value[part]
        return _to_str(value)

    return re.sub(r"\$\{([^}]*)\}", sub, node)


def load_stages(dvc_path):
    """{stage name: stage dict}, with foreach and matrix groups expanded to their name@key stages."""
    with open(dvc_path, encoding="utf-8") as fh:
        stages = (YAML(typ="safe", pure=True).load(fh) or {}).get("stages") or {}
    out = {}
    for name, stage in stages.items():
        if "foreach" in stage:
            data, template = stage["foreach"], stage["do"]
            if isinstance(data, dict):
                pairs = [(_to_str(k), {"key": _to_str(k), "item": v}) for k, v in data.items()]
            elif not isinstance(data, list):
                raise ValueError(f"{name}: foreach {data!r} is not a literal list or mapping")
            elif any(isinstance(v, (dict, list)) for v in data):  # DVC names composite items by index
                pairs = [(str(i), {"item": v}) for i, v in enumerate(data)]
            else:
                pairs = [(_to_str(v), {"item": v}) for v in data]
        elif "matrix" in stage:
            axes, template, pairs = stage["matrix"], {k: v for k, v in stage.items() if k != "matrix"}, []
            for combo in itertools.product(*(list(enumerate(v)) for v in axes.values())):
                key = "-".join(f"{axis}{i}" if isinstance(v, (dict, list)) else _to_str(v)
                               for axis, (i, v) in zip(axes, combo))
                pairs.append((key, {"key": key, "item": {axis: v for axis, (_, v) in zip(axes, combo)}}))
        else:
            out[name] = stage
            continue
        for key, ctx in pairs:
            out[f"{name}@{key}"] = _interpolate(template, ctx)
    return out


def entry_points(cmd):
    """The .py scripts and `-m` modules a stage's cmd (a string or a list of them) runs."""
    tokens = [t for c in (cmd if isinstance(cmd, list) else [cmd]) for t in shlex.split(c)]
    return [t for prev, t in zip([""] + tokens, tokens) if t.endswith(".py") or prev == "-m"]


def _module_file(root, dotted):
    base = Path(root, SRC, *dotted.split("."))
    return next((p for p in (base.with_name(base.name + ".py"), base / "__init__.py") if p.is_file()), None)


def imported_names(path, module=None):
    """Dotted names the file imports; `from x import n` gives x and x.n. module: the file's own name."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    package = module if Path(path).name == "__init__.py" else (module or "").rpartition(".")[0]
    names, stack = [], [tree]
    while stack:
        node = stack.pop()
        test = node.test if isinstance(node, ast.If) else None  # `if TYPE_CHECKING:` never runs
        if "TYPE_CHECKING" in (getattr(test, "id", None), getattr(test, "attr", None)):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module
            if node.level:  # relative: only meaningful inside the package
                parts = package.split(".") if package else []
                if node.level > len(parts):
                    continue
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            names += [base] + [f"{base}.{a.name}" for a in node.names if a.name != "*"]
        elif _scans_own_folder(node) and package:
            names += [f"{package}.{p.stem}" for p in sorted(Path(path).parent.glob("*.py")) if p.stem != "__init__"]
        stack.extend(ast.iter_child_nodes(node))
    return names


def _scans_own_folder(node):
    """`import_module(f"{__package__}.{...}")`: a module loading the other modules of its folder."""
    if not (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args and isinstance(node.args[0], ast.JoinedStr)):
        return False
    return any(isinstance(v, ast.FormattedValue) and getattr(v.value, "id", None) == "__package__"
               for v in node.args[0].values)


def closure(entries, root="."):
    """Sorted repo-relative paths: the scripts (or -m modules) plus every package file they import."""
    root, done, todo = Path(root), set(), []

    def add(name):  # a.b.c runs a/__init__, a/b/__init__ and a/b/c
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                path = _module_file(root, ".".join(parts[:i]))
                if path:
                    todo.append((path.relative_to(root).as_posix(), ".".join(parts[:i])))

    for entry in entries:
        if entry.endswith(".py"):
            todo.append((posixpath.normpath(entry), None))
        else:
            add(entry)
    while todo:
        rel, module = todo.pop()
        if rel not in done:
            done.add(rel)
            if (root / rel).is_file():
                for name in imported_names(root / rel, module):
                    add(name)
    return sorted(done)


def _covers(dep, path):
    return path == dep or path.startswith(dep.rstrip("/") + "/")


def check_stage(stage, root="."):
    """(missing, over_broad): closure files no dep covers; [(dep under src/, [files it holds
    that the stage never imports])]."""
    deps = [posixpath.normpath(d if isinstance(d, str) else next(iter(d))) for d in stage.get("deps") or []]
    files = closure(entry_points(stage.get("cmd", "")), root)
    missing = [f for f in files if not any(_covers(d, f) for d in deps)]
    over = []
    for dep in (d for d in deps if _covers(SRC, d)):
        if Path(root, dep).is_dir():
            held = sorted(p.relative_to(root).as_posix() for p in Path(root, dep).rglob("*.py"))
            extra = [f for f in held if f not in files]
        else:
            extra = [] if dep in files else [dep]
        if extra:
            over.append((dep, extra))
    return missing, over


def version_keys(stage, root="."):
    """(needed, declared): the versions.yaml keys the stage's closure imports, and those its
    `params:` list."""
    files = [Path(root, f) for f in closure(entry_points(stage.get("cmd", "")), root) if Path(root, f).is_file()]
    imports = {name.split(".")[0] for f in files for name in imported_names(f)}
    uses = {u for f in files for u in declared_uses(f)}
    declared = [k for p in stage.get("params") or [] if isinstance(p, dict) for k in p.get(str(VERSIONS), [])]
    return stage_keys(imports, uses), declared


def machine_keys(stage, root="."):
    """(needed, declared): machine.yaml's keys when the stage's closure imports the hardware
    module (it resolves `auto` on the machine), and those its `params:` list."""
    needed = list(MACHINE_KEYS) if HARDWARE in closure(entry_points(stage.get("cmd", "")), root) else []
    declared = [k for p in stage.get("params") or [] if isinstance(p, dict) for k in p.get(str(MACHINE_FILE), [])]
    return needed, declared


def declared_uses(path):
    """A module's `USES_VERSIONS = ("dist", ...)`: libraries it depends on without importing them."""
    for node in ast.parse(Path(path).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "USES_VERSIONS" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []


def check_versions(dvc_path="dvc.yaml", root=None):
    """{stage name: (missing keys, keys listed but not imported)} for the stages with either."""
    root = Path(dvc_path).parent if root is None else Path(root)
    out = {}
    for name, stage in load_stages(dvc_path).items():
        missing, extra = [], []
        for keys, file in ((version_keys, VERSIONS), (machine_keys, MACHINE_FILE)):
            needed, declared = keys(stage, root)
            missing += [f"{file}:{k}" for k in needed if k not in declared]
            extra += [f"{file}:{k}" for k in declared if k not in needed]
        if missing or extra:
            out[name] = (missing, extra)
    return out


def check(dvc_path="dvc.yaml", root=None):
    """{stage name: (missing, over_broad)} for every stage of dvc_path; root defaults to its folder."""
    root = Path(dvc_path).parent if root is None else Path(root)
    return {name: check_stage(stage, root) for name, stage in load_stages(dvc_path).items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dvc_yaml", nargs="?", default="dvc.yaml")
    ap.add_argument("--root", help="repository root (default: the dvc.yaml folder)")
    ap.add_argument("--closure", metavar="STAGE", help="print the closure of one stage and exit")
    args = ap.parse_args(argv)
    root = Path(args.dvc_yaml).parent if args.root is None else Path(args.root)
    if args.closure:
        stages = load_stages(args.dvc_yaml)
        if args.closure not in stages:
            sys.exit(f"no stage {args.closure!r}; stages: {', '.join(stages)}")
        print("\n".join(closure(entry_points(stages[args.closure].get("cmd", "")), root)))
        return 0
    failed = False
    for name, (missing, over) in check(args.dvc_yaml, root).items():
        failed |= bool(missing)
        for path in missing:
            print(f"{name}: missing dep {path}")
        for dep, extra in over:
            why = "not in the closure" if extra == [dep] else \
                "never imports " + ", ".join(posixpath.relpath(f, dep) for f in extra)
            print(f"{name}: over-broad dep {dep} (info): {why}")
    for name, (missing, extra) in check_versions(args.dvc_yaml, root).items():
        failed = True
        for key in missing:
            print(f"{name}: missing param {key}")
        for key in extra:
            print(f"{name}: param {key} it never uses")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
