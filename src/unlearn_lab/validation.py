"""Check params.yaml before a stage spends time: every stage calls `validate_params` first.

Each stage checks every section, not only its own, so a typo fails the first stage that runs
instead of the one that needs the value, minutes later. Messages name the key and the value.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from .io import UserError

MODEL_SOURCES = ("embedded", "tiny-random")
# A hub id is `owner/name`; a bare word is more likely a typo of embedded than a legacy id.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
TRUTH_RATIOS = ("tofu", "mean_prob")
# transformers' SchedulerType values that need no extra arguments (importing transformers'
# Trainer to ask would cost every stage seconds).
SCHEDULERS = ("constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "inverse_sqrt",
              "linear", "polynomial")
MISSING = object()


def _get(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def _fail(dotted: str, rule: str, value) -> None:
    raise UserError(f"params.yaml: {dotted} must be {rule}, got {value!r}")


def check_int(params: dict, dotted: str, minimum: int, required: bool = False) -> None:
    value = _get(params, dotted)
    if value is MISSING:
        if required:
            raise UserError(f"params.yaml: missing key {dotted}")
        return
    # bool is an int in Python; `epochs: true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(dotted, f"an integer >= {minimum}", value)


def check_number(params: dict, dotted: str, low: float, high: float = math.inf,
                 low_open: bool = True, high_open: bool = False, allow_none: bool = False) -> None:
    value = _get(params, dotted)
    if value is MISSING or (allow_none and value is None):
        return
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and (value > low if low_open else value >= low)
          and (value < high if high_open else value <= high))
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open or high == math.inf else "]"
        hi = "inf" if high == math.inf else f"{high:g}"
        _fail(dotted, f"a number in {left}{low:g}, {hi}{right}", value)


def check_choice(params: dict, dotted: str, choices: tuple[str, ...]) -> None:
    value = _get(params, dotted)
    if value is not MISSING and value not in choices:
        _fail(dotted, f"one of {', '.join(choices)}", value)


def check_model_source(source) -> None:
    if not isinstance(source, str) or not source.strip():
        _fail("model.source", "embedded, tiny-random, a local folder or a hub id owner/name", source)
    if source in MODEL_SOURCES or Path(source).expanduser().is_dir():
        return
    if source.startswith((".", "/", "~")) or Path(source).expanduser().exists():
        raise UserError(f"params.yaml: model.source: local folder {source!r} does not exist "
                        "(or is not a folder)")
    if not HUB_ID.match(source):
        raise UserError(f"params.yaml: model.source {source!r} is not {', '.join(MODEL_SOURCES)}, "
                        "an existing local folder, or a hub id like owner/name")


def check_method(params: dict) -> None:
    from .methods import METHODS, get_method
    from .params import TRAINING_KEYS, resolve_lr

    method = params.get("method", MISSING)
    if method is MISSING:
        raise UserError("params.yaml: missing key method")
    if not isinstance(method, str) or method not in METHODS:
        raise UserError(f"params.yaml: method: unknown method {method!r}; known: "
                        f"{', '.join(sorted(n for n in METHODS if not n.startswith('_')))}")
    knobs = (params.get("methods") or {}).get(method) or {}
    if not isinstance(knobs, dict):
        _fail(f"methods.{method}", "a mapping of knobs", knobs)
    get_method(method, {k: v for k, v in knobs.items() if k not in TRAINING_KEYS})
    resolve_lr(params)


def check_lora(params: dict) -> None:
    lora = _get(params, "model.lora")
    if lora is MISSING or lora is None:
        return
    if not isinstance(lora, dict):
        _fail("model.lora", "a mapping or null", lora)
    check_int(params, "model.lora.r", 1)
    check_number(params, "model.lora.alpha", 0)
    check_number(params, "model.lora.dropout", 0, 1, low_open=False, high_open=True)


def validate_params(params: dict) -> None:
    """Raise UserError naming the first bad key of params.yaml."""
    from .data import resolve_config

    check_int(params, "seed", 0, required=True)
    check_method(params)
    source = _get(params, "model.source")
    check_model_source("embedded" if source is MISSING else source)
    check_int(params, "model.max_length", 8)
    check_lora(params)
    data = _get(params, "data")
    if not isinstance(data, dict):
        _fail("data", "a mapping", None if data is MISSING else data)
    try:
        resolve_config(data)
    except UserError as exc:
        raise UserError(f"params.yaml: {exc}") from None
    check_int(params, "data.random_labels_k", 1)
    for section in ("finetune", "unlearn"):
        check_int(params, f"{section}.epochs", 1)
        check_int(params, f"{section}.batch_size", 1)
        check_number(params, f"{section}.max_grad_norm", 0)
        check_choice(params, f"{section}.scheduler", SCHEDULERS)
        check_number(params, f"{section}.weight_decay", 0, low_open=False)
        check_int(params, f"{section}.warmup_steps", 0)
    check_number(params, "finetune.lr", 0)
    checkpoint = _get(params, "finetune.checkpoint")
    if checkpoint is not MISSING and not isinstance(checkpoint, bool):
        _fail("finetune.checkpoint", "true or false", checkpoint)
    check_number(params, "unlearn.retain_loss_bound", 0)
    check_int(params, "unlearn.epoch_eval_retain", 0)
    for key in ("batch_size", "gen_batch_size"):
        # `auto`: sized for the device (see hardware.eval_batch_size)
        if _get(params, f"eval.{key}") != "auto":
            check_int(params, f"eval.{key}", 1)
    check_int(params, "eval.max_new_tokens", 1)
    for key in ("quantize.group_size", "quantize.retain_size", "relearn.examples"):
        check_int(params, key, 0)
    for key in ("relearn.steps", "relearn.batch_size", "represent.batch_size", "represent.candidates"):
        check_int(params, key, 1)
    check_number(params, "relearn.lr", 0)
    check_number(params, "represent.probe_c", 0)
    check_number(params, "eval.mink_k", 0, 1)
    check_choice(params, "eval.truth_ratio", TRUTH_RATIOS)
