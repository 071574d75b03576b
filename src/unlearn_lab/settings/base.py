"""The strict section model every params.yaml section derives from, the one-line error a bad
setting gets, and the optional log of which settings a stage reads (for the deps test).

Strict means what YAML says is what runs: `no`, `"false"` and `1` are not booleans, `7.9` and
`true` are not integers, an unknown key is a typo, `.inf` and `.nan` are not numbers (a float that
is not finite would only fail deep inside a run, or silently turn every score into nan). Ranges
and choices are declared on the field.
"""
from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import UserError

# When set, every setting a stage reads after loading is appended to this file as
# "<stage command>\t<dotted key>" (tests/test_pipeline_e2e.py checks them against dvc.yaml).
READS_LOG = "UNLEARN_LAB_SETTINGS_READS"
_recording = {"on": False}


class Section(BaseModel):
    """A params.yaml section: unknown keys rejected, types strict, read-only after loading."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True,
                              validate_default=True, allow_inf_nan=False)

    def __getattribute__(self, name: str):
        value = object.__getattribute__(self, name)
        if _recording["on"] and not name.startswith("_") and name in type(self).model_fields:
            # Only sections loaded from params.yaml have a place; ones the code builds do not count.
            prefix = self.__pydantic_private__.get("_at") if self.__pydantic_private__ else None
            key = type(self).model_fields[name].alias or name
            if prefix is not None and not isinstance(value, Section):
                _record(f"{prefix}.{key}" if prefix else key)
        return value

    def _place(self, prefix: str) -> None:
        """Remember where in params.yaml this section sits (for the reads log)."""
        if self.__pydantic_private__ is None:
            object.__setattr__(self, "__pydantic_private__", {})
        self.__pydantic_private__["_at"] = prefix
        for name, field in type(self).model_fields.items():
            child = self.__dict__.get(name)
            if isinstance(child, Section):
                key = field.alias or name
                child._place(f"{prefix}.{key}" if prefix else key)


def stage_command() -> str:
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    return " ".join(["python", script.as_posix(), *sys.argv[1:]])


def _record(key: str) -> None:
    with open(os.environ[READS_LOG], "a", encoding="utf-8") as fh:
        fh.write(f"{stage_command()}\t{key}\n")


def start_recording() -> None:
    _recording["on"] = bool(os.environ.get(READS_LOG))


# How to write each type in YAML, for the error message.
HOW = {
    "bool_type": "true or false (unquoted YAML booleans)",
    "int_type": "an integer",
    "float_type": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
    "none_required": "null",
}
BOUNDS = {"greater_than": "> {gt}", "greater_than_equal": ">= {ge}", "less_than": "< {lt}",
          "less_than_equal": "<= {le}", "multiple_of": "a multiple of {multiple_of}"}


def dotted(loc: tuple) -> str:
    parts = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif parts:
            parts.append(f".{item}")
        else:
            parts.append(str(item))
    return "".join(parts)


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed where an unknown key `loc` sits."""
    for part in loc[:-1]:
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        field = fields.get(part)
        inner = getattr(field, "annotation", None) if field else None
        candidates = [inner, *getattr(inner, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return [f.alias or n for n, f in model.model_fields.items()]


TAGS = ("bool", "int", "float", "str", "none")


def _clean(loc: tuple) -> tuple:
    """The loc without the union-branch tags pydantic adds (`bool`, `literal['auto']`, ...)."""
    return tuple(p for p in loc if not (isinstance(p, str) and (p in TAGS or "[" in p)))


def _rule(err: dict) -> str | None:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "literal_error":
        return ctx.get("expected", "").replace("'", "")
    if kind in HOW:
        return HOW[kind]
    if kind in BOUNDS:
        return BOUNDS[kind].format(**{k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()})
    return None


def explain(exc: ValidationError, root: type[BaseModel], source: str) -> UserError:
    """The first problem of a validation error, as one line naming the key, the rule and the value."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = _clean(err["loc"])
    # A union (`true | false | auto`) fails once per branch: one message listing the branches.
    same = [e for e in errors if _clean(e["loc"]) == loc]
    others = len(errors) - len(same)
    more = f" (and {others} more problem(s))" if others else ""
    key, value, kind = dotted(loc), err.get("input"), err["type"]
    if kind == "extra_forbidden":
        known = _known_keys(root, loc)
        near = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"did you mean {dotted(loc[:-1] + (near[0],))}? " if near else ""
        return UserError(f"{source}: {key}: unknown key; {hint}known here: {', '.join(known)}{more}")
    if kind == "missing":
        return UserError(f"{source}: {key}: missing{more}")
    rules = [_rule(e) for e in same]
    if all(rules):
        options = []
        for e, rule in zip(same, rules):
            if e["type"] == "literal_error":
                options += [o.strip() for o in rule.replace(" or ", ", ").split(",")]
            else:
                options.append(rule)
        literal = [o for e in same if e["type"] == "literal_error"
                   for o in _rule(e).replace(" or ", ", ").replace(" ", "").split(",")]
        near = difflib.get_close_matches(str(value), literal, n=1, cutoff=0.6) if isinstance(value, str) else []
        hint = f"; did you mean {near[0]}?" if near else ""
        if len(same) == 1 and kind == "literal_error":
            rule = f"one of {', '.join(options)}"
        else:
            rule = ", ".join(options[:-1]) + f" or {options[-1]}" if len(options) > 1 else options[0]
            rule = f"one of {rule}" if len(literal) > 1 else rule
        return UserError(f"{source}: {key}: must be {rule}, got {value!r}{hint}{more}")
    message = str((err.get("ctx") or {}).get("error", err["msg"])).removeprefix("Value error, ")
    if not key or isinstance(value, dict):
        # A check across keys: its message names them.
        return UserError(f"{source}: {message}{more}")
    got = "" if "got " in message else f", got {value!r}"
    return UserError(f"{source}: {key}: {message}{got}{more}")
