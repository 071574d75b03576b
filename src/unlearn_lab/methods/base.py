"""What every unlearning method shares: the registry, the knob handling and the answer log-probs."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..io import UserError

Batch = dict[str, torch.Tensor]
METHODS: dict[str, type["UnlearningMethod"]] = {}


def register(cls):
    METHODS[cls.name] = cls
    return cls


def get_method(name: str, knobs: dict | None = None) -> "UnlearningMethod":
    if name not in METHODS:
        raise UserError(f"params.yaml: method: unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[name](**(knobs or {}))


def answer_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: the summed log-probability of the answer tokens, and how many there are.

    Position t predicts token t+1, hence the shift; labels of -100 (prompt, padding) do not count.
    """
    logits = logits[:, :-1].float()
    targets = labels[:, 1:]
    mask = targets != -100
    token_logp = torch.gather(
        F.log_softmax(logits, dim=-1), 2, targets.clamp(min=0).unsqueeze(-1)
    ).squeeze(-1)
    token_logp = token_logp * mask
    return token_logp.sum(-1), mask.sum(-1)


def token_mean_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over every answer token of the batch (what HF models return as loss)."""
    logp, count = answer_logprobs(logits, labels)
    return -logp.sum() / count.sum().clamp(min=1)


def forward_logits(model, batch: Batch) -> torch.Tensor:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


class UnlearningMethod:
    """One unlearning objective. Subclasses set `name`, `defaults` and implement `loss`."""

    name = ""
    defaults: dict = {}
    # True when the loss compares against the model before unlearning (p_ref).
    needs_reference = False
    # True when the method reads a retain batch at all.
    uses_retain = False

    def __init__(self, **knobs):
        unknown = set(knobs) - set(self.defaults)
        if unknown:
            raise UserError(
                f"params.yaml: methods.{self.name}: unknown knob(s) {sorted(unknown)}; "
                f"known: {sorted(self.defaults)}"
            )
        self.knobs = {**self.defaults, **{k: float(v) for k, v in knobs.items()}}
        for key, value in self.knobs.items():
            setattr(self, key, value)

    def loss(
        self,
        model,
        forget: Batch,
        retain: Batch,
        reference: Callable[[Batch], torch.Tensor] | None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the loss to minimise and the named parts to log (floats)."""
        raise NotImplementedError
