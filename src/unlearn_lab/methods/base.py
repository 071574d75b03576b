"""What every unlearning method shares: the registry, knob handling, the frozen reference and
the answer log-probabilities."""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from ..io import UserError

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


def get_method(name: str, knobs: dict | None = None) -> "UnlearningMethod":
    if name not in METHODS:
        raise UserError(f"params.yaml: method: unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[name](**(knobs or {}))


def answer_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: the summed log-probability of the answer tokens, and how many there are.

    Position t predicts token t+1, hence the shift; labels of -100 (prompt, padding) do not count.
    """
    token_logp, mask = answer_token_logprobs(logits, labels)
    return (token_logp * mask).sum(-1), mask.sum(-1)


def answer_token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(y_t | x, y_<t) at every position, aligned with the shifted labels, and the answer mask."""
    targets = labels[:, 1:]
    mask = targets != -100
    token_logp = torch.gather(
        F.log_softmax(logits[:, :-1].float(), dim=-1), 2, targets.clamp(min=0).unsqueeze(-1)
    ).squeeze(-1)
    return token_logp * mask, mask


def token_mean_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over every answer token of the batch (what HF models return as loss)."""
    logp, count = answer_logprobs(logits, labels)
    return -logp.sum() / count.sum().clamp(min=1)


def example_mean_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per example: the cross-entropy averaged over that example's answer tokens."""
    logp, count = answer_logprobs(logits, labels)
    return -logp / count.clamp(min=1)


def answer_token_kl(ref_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """mean over answer positions t of KL(p_ref(.|t) || p_theta(.|t)), the KL summed over the vocabulary."""
    mask = labels[:, 1:] != -100
    ref_logp = F.log_softmax(ref_logits[:, :-1].float(), -1)
    logp = F.log_softmax(logits[:, :-1].float(), -1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return (kl * mask).sum() / mask.sum().clamp(min=1)


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
    """One unlearning objective. Subclasses set `name`, `defaults` and implement `loss`."""

    name = ""
    defaults: dict = {}
    # True when the loss compares against the model before unlearning (p_ref).
    needs_reference = False
    # Views of each example the loss reads beyond "forget" and "retain" (see VIEWS).
    views: tuple[str, ...] = ()
    # The views the loss runs through the trained model with `forward_logits` (each once, with
    # gradient): the shared code may compute them in one forward (`hardware.fuse_views`).
    # Leave empty when the loss reads hidden states or runs one view only.
    forward_views: tuple[str, ...] = ()

    def __init__(self, **knobs):
        unknown = set(knobs) - set(self.defaults)
        if unknown:
            raise UserError(
                f"params.yaml: methods.{self.name}: unknown knob(s) {sorted(unknown)}; "
                f"known: {sorted(self.defaults)}"
            )
        self.knobs = {}
        for key, default in self.defaults.items():
            value = knobs.get(key, default)
            try:
                self.knobs[key] = type(default)(float(value)) if isinstance(default, (int, float)) else value
            except (TypeError, ValueError):
                raise UserError(f"params.yaml: methods.{self.name}.{key}: expected a number, got {value!r}") from None
            setattr(self, key, self.knobs[key])

    def trainable_pattern(self) -> str | None:
        """A regular expression over parameter names; only matching weights train (None: all)."""
        return None

    def loss(self, model, batch: dict[str, Batch], reference: Reference | None) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the loss to minimise and the named parts to log (floats).

        `batch` maps each view ("forget", "retain", ...) to input_ids / attention_mask / labels.
        """
        raise NotImplementedError
