"""params.yaml, typed and checked once: `load_settings()` at the start of every stage.

Every section (sections.py) is checked by every stage, so a typo anywhere fails the first stage
that runs; under `methods:` every stage checks the method names, and the methods package checks
the knobs' values (methods.check_knobs: the unlearn stage, first thing). YAML is read as 1.2
(ruamel), the dialect `dvc exp run -S` writes: `1e-05` is a float there, and `no` is the string
"no" (which a boolean setting rejects).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, ValidationError, model_validator

from ..errors import UserError
from .base import Section, explain, start_recording
from .knobs import Knobs, Methods, method_names, tuned_lr, weight
from .sections import MAX_LR, MAX_SEED
from .sections import (ATTACKS, Attack, Data, Documents, Eval, Finetune, Hardware, Import, Lora, Model, Quantize, Relearn, Represent,
                       Schedule, Tiny, Unlearn)

__all__ = ["ATTACKS", "Attack", "Data", "Documents", "Eval", "Finetune", "Hardware", "Import", "Knobs", "Lora", "Methods", "Model", "Quantize",
           "Relearn", "Represent", "Schedule", "Settings", "Tiny", "Unlearn", "load_settings", "method_names",
           "read_yaml", "tuned_lr", "weight"]

DEFAULT_PATH = Path("params.yaml")
MethodName = Literal[tuple(method_names())]


class Settings(Section):
    seed: int = Field(42, ge=0, le=MAX_SEED, description="seed of every random draw")
    method: MethodName = Field("npo", description="the unlearning method (methods/<name>.py)")
    lr: Optional[float] = Field(None, gt=0, le=MAX_LR, description="unlearning learning rate; null: methods.<method>.lr")
    model: Model = Field(default_factory=Model)
    data: Data = Field(default_factory=Data)
    finetune: Finetune = Field(default_factory=Finetune)
    unlearn: Unlearn = Field(default_factory=Unlearn)
    methods: Methods = Field(default_factory=Methods)
    quantize: Quantize = Field(default_factory=Quantize)
    represent: Represent = Field(default_factory=Represent)
    relearn: Relearn = Field(default_factory=Relearn)
    attack: Attack = Field(default_factory=Attack)
    eval: Eval = Field(default_factory=Eval)
    hardware: Hardware = Field(default_factory=Hardware)

    @model_validator(mode="after")
    def _documents_relearn(self):
        if self.data.benchmark == "documents" and self.relearn.data == "retain_correlated":
            # Documents carry no correlated flag: the attack would silently train on every retain document.
            raise ValueError("relearn.data: 'retain_correlated' has no documents form (documents have no "
                             "correlated retain set); use retain, forget or auto with benchmark: documents")
        return self

    def method_knobs(self, name: str | None = None) -> dict:
        """`methods.<name>` (default: the chosen method) as written, unchecked: methods.knobs_of types it."""
        return dict(self.methods.__dict__[name or self.method])


def read_yaml(path: str | Path) -> dict:
    from ruamel.yaml import YAML, YAMLError

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: not found (run from the repository root)")
    try:
        with open(path, encoding="utf-8") as fh:
            data = YAML(typ="safe", pure=True).load(fh)
    except YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of settings at the top level")
    return data


def parse_settings(raw: dict, source: str = "params.yaml") -> Settings:
    """Settings from a mapping (params.yaml's content); UserError names the first bad key."""
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise explain(exc, Settings, source) from None
    settings._place("")
    return settings


def load_settings(path: str | Path = DEFAULT_PATH) -> Settings:
    """Read and check params.yaml; from here on the stage's reads are logged when asked to."""
    settings = parse_settings(read_yaml(path), str(path))
    start_recording()
    return settings
