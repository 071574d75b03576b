"""What every unlearning method shares: the registry, knob handling, the frozen reference and
the answer log-probabilities."""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..logprobs import (answer_logprobs, answer_token_kl, answer_token_logprobs, example_mean_nll,  # noqa: F401
                        token_mean_nll)
from ..settings import KNOBS, Knobs, Settings

Batch = dict[str, torch.Tensor]
METHODS: dict[str, type["UnlearningMethod"]] = {}

# The views of a training example a method can ask for (besides "forget" and "retain"):
#   forget_idk   - the forget question answered with a refusal from the IDK pool
#   retain_idk   - the retain question answered with a refusal
#   forget_wrong - the forget question answered with a wrong answer (random_labels stage)
VIEWS = ("forget", "retain", "forget_idk", "retain_idk", "forget_wrong")


def register(cls):
    METHODS[cls.name] = cls
    return cls


def get_method(name: str, knobs: Knobs | None = None) -> "UnlearningMethod":
    """The method `name` with its `methods.<name>` knobs (their defaults when None)."""
    if name not in METHODS:
        raise UserError(f"params.yaml: method: unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[name](knobs if knobs is not None else KNOBS.get(name, Knobs)())


def build_method(settings: Settings) -> "UnlearningMethod":
    """The unlearning method params.yaml chooses, with its knobs."""
    return get_method(settings.method, settings.knobs)


# Logits of views already computed together by `fused_views`: (model, [(view batch, logits)]).
_FUSED: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("fused_views", default=None)


def forward_logits(model, batch: Batch) -> torch.Tensor:
    fused = _FUSED.get()
    if fused is not None and fused[0] is model:
        for view_batch, logits in fused[1]:
            if view_batch is batch:
                return logits
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@contextlib.contextmanager
def fused_views(model, batch: dict[str, Batch], views: Iterable[str]):
    """Run the named views of a step through `model` in one forward; inside the block,
    `forward_logits(model, batch[view])` returns that view's rows instead of running it again.

    One forward of 2B rows keeps a GPU busier than two of B, and under DDP it is the one forward
    per backward that DDP expects. The views are right-padded to a common width: a causal model
    never lets a token see the padding after it, and positions count from 0 regardless of the
    mask, so each view's logits are those of its own forward (up to float rounding), cut back to
    its own width.
    """
    chosen = [batch[v] for v in dict.fromkeys(views) if v in batch]
    if len(chosen) < 2:
        yield
        return
    width = max(b["input_ids"].shape[1] for b in chosen)
    ids = torch.cat([F.pad(b["input_ids"], (0, width - b["input_ids"].shape[1])) for b in chosen])
    mask = torch.cat([F.pad(b["attention_mask"], (0, width - b["attention_mask"].shape[1])) for b in chosen])
    logits = model(input_ids=ids, attention_mask=mask).logits
    rows, start = [], 0
    for b in chosen:
        n, w = b["input_ids"].shape
        rows.append((b, logits[start : start + n, :w]))
        start += n
    token = _FUSED.set((model, rows))
    try:
        yield
    finally:
        _FUSED.reset(token)


class Reference:
    """The model as it was before unlearning, run without gradients.

    `run(batch, **forward_kwargs)` returns the model outputs; with LoRA it is the trained network
    with its adapter switched off, otherwise a frozen copy. `network` is the module it runs
    (for hooks on its layers).
    """

    def __init__(self, run: Callable[..., object], network):
        self._run = run
        self.network = network

    def outputs(self, batch: Batch, **kwargs):
        with torch.no_grad():
            return self._run(batch, **kwargs)

    def logits(self, batch: Batch) -> torch.Tensor:
        return self.outputs(batch).logits


def frozen_reference(model) -> Reference:
    """A reference from a separate (already frozen) model."""
    def run(batch, **kwargs):
        # The copy is made before the Trainer moves the trained model to the GPU: follow the batch.
        if next(model.parameters()).device != batch["input_ids"].device:
            model.to(batch["input_ids"].device)
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
    return Reference(run, model)


def decoder_layer(model, index: int):
    """The `index`-th (0-based) decoder layer of a causal LM, with or without a PEFT wrapper."""
    import re

    pattern = re.compile(rf"(^|\.)layers\.{index}$")
    for name, module in model.named_modules():
        if pattern.search(name):
            return module
    raise UserError(f"the model has no decoder layer {index} (layers are named like 'model.layers.0')")


def layer_output(model, layer: int, batch: Batch, run=None) -> torch.Tensor:
    """The hidden states a decoder layer outputs, caught with a forward hook (the model's own
    `hidden_states` tuple puts the final norm on the last one)."""
    caught = []

    def hook(module, args, out):
        caught.append(out[0] if isinstance(out, tuple) else out)

    handle = decoder_layer(model, layer).register_forward_hook(hook)
    try:
        if run is None:
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        else:
            run(batch)
    finally:
        handle.remove()
    return caught[0]


class UnlearningMethod:
    """One unlearning objective. Subclasses set `name` and implement `loss`; their knobs and
    defaults are declared in settings/knobs.py."""

    name = ""
    # True when the loss compares against the model before unlearning (p_ref).
    needs_reference = False
    # Views of each example the loss reads beyond "forget" and "retain" (see VIEWS).
    views: tuple[str, ...] = ()
    # The views the loss runs through the trained model with `forward_logits` (each once, with
    # gradient): the shared code may compute them in one forward (`hardware.fuse_views`).
    # Leave empty when the loss reads hidden states or runs one view only.
    forward_views: tuple[str, ...] = ()

    def __init__(self, knobs: Knobs):
        # Types and ranges were checked when params.yaml was loaded (settings/knobs.py).
        self.knobs = knobs.loss_knobs()
        for key, value in self.knobs.items():
            setattr(self, key, value)

    def trainable_pattern(self) -> str | None:
        """A regular expression over parameter names; only matching weights train (None: all)."""
        return None

    def loss(self, model, batch: dict[str, Batch], reference: Reference | None) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the loss to minimise and the named parts to log (floats).

        `batch` maps each view ("forget", "retain", ...) to input_ids / attention_mask / labels.
        """
        raise NotImplementedError
