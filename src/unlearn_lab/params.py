"""Read params.yaml the way DVC writes it.

`dvc exp run -S lr=1e-5` rewrites the file with ruamel, which prints `1e-05`; a YAML 1.1 reader
(PyYAML) takes that for a string. ruamel's safe loader speaks YAML 1.2, where it is a float.
"""
from __future__ import annotations

import math
from pathlib import Path

from .io import UserError

DEFAULT_PATH = Path("params.yaml")


def _plain(node):
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def load_params(path: str | Path = DEFAULT_PATH) -> dict:
    from ruamel.yaml import YAML, YAMLError

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: not found (run from the repository root)")
    try:
        with open(path, encoding="utf-8") as fh:
            data = YAML(typ="safe", pure=True).load(fh)
    except YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return _plain(data)


def number(params: dict, dotted: str, kind=float, minimum=None, strictly=False):
    """Fetch `a.b.c` from params as a number, with an error naming the key on bad values."""
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise UserError(f"params.yaml: missing key {dotted}")
        node = node[part]
    try:
        value = kind(node)
    except (TypeError, ValueError):
        raise UserError(f"params.yaml: {dotted} must be a {kind.__name__}, got {node!r}") from None
    if minimum is not None and (value < minimum or (strictly and value == minimum)):
        op = ">" if strictly else ">="
        raise UserError(f"params.yaml: {dotted} must be {op} {minimum}, got {value}")
    return value


# Keys of `methods.<name>` that set up training rather than the loss.
TRAINING_KEYS = ("lr", "trainable")


def resolve_lr(params: dict) -> float:
    """The top-level `lr` when set, else the method's own default `methods.<method>.lr`."""
    method = str(params.get("method"))
    lr = params.get("lr")
    where = "lr"
    if lr is None:
        lr = ((params.get("methods") or {}).get(method) or {}).get("lr")
        where = f"methods.{method}.lr"
    if lr is None:
        raise UserError(f"params.yaml: no learning rate for method {method!r}: set `lr` or `methods.{method}.lr`")
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise UserError(f"params.yaml: {where}: expected a number, got {lr!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise UserError(f"params.yaml: {where}: the learning rate must be a positive number, got {lr!r}")
    return value
