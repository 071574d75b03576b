"""What every unlearning method shares: the registry and the checks of its knobs, the step a loss
reads (views, model, reference, each view's logits computed once), the retain term, the
gradient hook, the frozen reference and the answer log-probabilities.

A method is one file in this folder: its knobs class (pydantic, with its tuned default lr) next
to its loss, registered with `@register`. The folder is scanned for modules, so nothing else
lists the methods (settings/knobs.py reads the same folder without importing it).
"""
from __future__ import annotations

import functools
import importlib
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationError, create_model

from ...models import architecture
from ...errors import UserError
from ...models.global_mean import example_mean  # noqa: F401  (methods import it from here)
from ...models.global_mean import mean_over
from ...models.logprobs import (answer_batch, answer_logprobs, answer_token_kl, answer_token_logprobs,  # noqa: F401
                        answer_window, batch_logits, example_mean_nll, keep_kwargs, token_mean_nll)
from ...settings import Knobs, Settings, method_names, tuned_lr, weight  # noqa: F401  (methods import them from here)
from ...settings.base import Section, explain

Batch = dict[str, torch.Tensor]
METHODS: dict[str, type["UnlearningMethod"]] = {}

# The views of a training example a method can ask for (besides "forget" and "retain"):
#   forget_idk   - the forget question answered with a refusal from the IDK pool
#   retain_idk   - the retain question answered with a refusal
#   forget_wrong - the forget question answered with a wrong answer (random_labels stage)
VIEWS = ("forget", "retain", "forget_idk", "retain_idk", "forget_wrong")


# ---------------------------------------------------------------- registry and knobs


def register(cls):
    if cls.shared_retain and not issubclass(cls.Knobs, RetainKnobs):
        raise TypeError(f"method {cls.name}: its Knobs must derive from RetainKnobs (alpha, retain), "
                        "or set shared_retain = False")
    METHODS[cls.name] = cls
    return cls


def discover() -> None:
    """Import every method module of this folder (importing registers them)."""
    for name in method_names():
        importlib.import_module(f"{__package__}.{name}")


def get_method(name: str, knobs: Knobs | None = None) -> "UnlearningMethod":
    """The method `name` with its knobs (their defaults when None)."""
    discover()
    if name not in METHODS:
        raise UserError(f"params.yaml: method: unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    cls = METHODS[name]
    return cls(knobs if knobs is not None else cls.Knobs())


@functools.lru_cache(maxsize=None)
def _knobs_model(name: str):
    """A model of `methods: {name: ...}`, so that errors name the key as params.yaml spells it."""
    discover()
    cls = METHODS[name].Knobs
    inner = create_model(f"Methods_{name}", __base__=Section, **{name: (cls, Field(default_factory=cls))})
    return create_model(f"Params_{name}", __base__=Section, methods=(inner, Field(default_factory=inner)))


def parse_knobs(name: str, raw: dict, source: str = "params.yaml") -> Knobs:
    """`methods.<name>` typed by the method's Knobs; a UserError names the first bad key."""
    model = _knobs_model(name)
    try:
        knobs = model.model_validate({"methods": {name: raw}}).methods.__dict__[name]
    except ValidationError as exc:
        raise explain(exc, model, source) from None
    knobs._place(f"methods.{name}")
    return knobs


def knobs_of(settings: Settings, name: str | None = None) -> Knobs:
    """`methods.<name>` (default: the chosen method's), typed and checked."""
    name = name or settings.method
    return parse_knobs(name, settings.method_knobs(name))


def check_knobs(settings: Settings, source: str = "params.yaml") -> dict[str, Knobs]:
    """Every `methods.<name>` entry typed and checked (types, ranges, unknown knobs), and a
    learning rate for the chosen method; the unlearn stage calls it before any work."""
    knobs = {name: parse_knobs(name, settings.method_knobs(name), source) for name in method_names()}
    if settings.lr is None and knobs[settings.method].lr is None:
        raise UserError(f"{source}: no learning rate for method {settings.method!r}: "
                        f"set `lr` or `methods.{settings.method}.lr`")
    return knobs


def effective_lr(settings: Settings) -> float:
    """The top-level `lr` when set, else the method's own tuned `methods.<method>.lr`."""
    return settings.lr if settings.lr is not None else knobs_of(settings).lr


def trainable(settings: Settings) -> str | None:
    """`methods.<method>.trainable`, else `unlearn.trainable` (None: the method decides)."""
    return knobs_of(settings).trainable or settings.unlearn.trainable


def build_method(settings: Settings, source: str = "params.yaml") -> "UnlearningMethod":
    """The unlearning method params.yaml chooses, with its knobs (all of `methods:` checked first)."""
    return get_method(settings.method, check_knobs(settings, source)[settings.method])


class RetainKnobs(Knobs):
    """Knobs of a method whose loss is its forget term + alpha * the shared retain term."""

    alpha: float = weight(1.0)
    retain: Literal["nll", "kl"] = Field("nll", description="the retain term: nll (the retain answers' NLL) or kl "
                                                            "(KL from the reference at the retain answer tokens)")


# ---------------------------------------------------------------- what a loss reads


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask` is set (0 when nothing is); over the global batch in a
    multi-process loss (global_mean)."""
    return mean_over((values * mask).sum(), mask.sum())


def shifted(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Position t predicts token t+1: the logits without the last position (float), the targets
    (labels without the first) and the answer mask over them."""
    targets = labels[:, 1:]
    return logits[:, :-1].float(), targets, targets != -100


def fused_logits(model, views: dict[str, Batch]) -> dict[str, torch.Tensor]:
    """Each view's logits from one forward of all of them.

    One forward of 2B rows keeps a GPU busier than two of B, and under DDP it is the one forward
    per backward that DDP expects. The views are right-padded to a common width: a causal model
    never lets a token see the padding after it, and positions count from 0 regardless of the
    mask, so each view's logits are those of its own forward (up to float rounding), cut back to
    its own width (its answer window when it has one: the forward keeps the widest of them).
    """
    chosen = list(views.values())
    width = max(b["input_ids"].shape[1] for b in chosen)
    ids = torch.cat([F.pad(b["input_ids"], (0, width - b["input_ids"].shape[1])) for b in chosen])
    mask = torch.cat([F.pad(b["attention_mask"], (0, width - b["attention_mask"].shape[1])) for b in chosen])
    # where each view's kept logits begin, in its own (and so in the padded) positions
    starts = [b["input_ids"].shape[1] - (b.get("logits_to_keep") or b["input_ids"].shape[1]) for b in chosen]
    first = min(starts)
    keep = {"logits_to_keep": width - first} if first > 0 else {}
    logits = model(input_ids=ids, attention_mask=mask, **keep).logits
    out, row = {}, 0
    for (view, b), start in zip(views.items(), starts):
        n, w = b["input_ids"].shape
        out[view] = logits[row : row + n, start - first : w - first]
        row += n
    return out


class Step:
    """One training step as a loss sees it: `batch` maps each view ("forget", "retain", ...) to
    input_ids / attention_mask / labels; `model` is the trained model, `reference` the model
    before unlearning (None unless the method needs one).

    `logits(view)` is that view's forward through `model`, with gradient, run once and kept;
    the views named in `fuse` (when two or more are present) are run together in one padded
    forward as the step is made (`hardware.fuse_views`). Logits and labels cover each view's
    answer window (logprobs.answer_batch): the positions whose logits a loss reads.
    """

    def __init__(self, model, batch: dict[str, Batch], reference: "Reference | None" = None, fuse=()):
        windowed = {view: answer_batch(model, b) for view, b in batch.items()}
        self.model, self.batch, self.reference = model, windowed, reference
        fuse = [v for v in dict.fromkeys(fuse) if v in batch]
        self._logits: dict[str, torch.Tensor] = {}
        if len(fuse) > 1:
            self._logits.update(fused_logits(model, {v: self.batch[v] for v in fuse}))

    def logits(self, view: str) -> torch.Tensor:
        if view not in self._logits:
            self._logits[view] = batch_logits(self.model, self.batch[view])
        return self._logits[view]

    def labels(self, view: str) -> torch.Tensor:
        return self.batch[view]["labels"]


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
        return self.outputs(batch, **keep_kwargs(batch)).logits


def frozen_reference(model) -> Reference:
    """A reference from a separate (already frozen) model."""
    def run(batch, **kwargs):
        # The copy is made before the Trainer moves the trained model to the GPU: follow the batch.
        if next(model.parameters()).device != batch["input_ids"].device:
            model.to(batch["input_ids"].device)
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
    return Reference(run, model)


def layer_output(model, layer: int, batch: Batch, run=None) -> torch.Tensor:
    """The hidden states a decoder layer outputs, caught with a forward hook (the model's own
    `hidden_states` tuple puts the final norm on the last one)."""
    caught = []

    def hook(module, args, out):
        caught.append(out[0] if isinstance(out, tuple) else out)

    handle = architecture.layer(model, layer).register_forward_hook(hook)
    try:
        if run is None:
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        else:
            run(batch)
    finally:
        handle.remove()
    return caught[0]


# ---------------------------------------------------------------- the method


class UnlearningMethod:
    """One unlearning objective: L = forget term + alpha * retain term.

    A subclass sets `name`, declares its `Knobs` (a pydantic class with its tuned default `lr`;
    `RetainKnobs` adds `alpha` and `retain: nll | kl`) and implements `forget_loss`. The shared
    retain term is added here: alpha * NLL of the retain answers (`retain: nll`) or alpha * the
    mean KL(p_ref || p_theta) over the retain answer tokens (`retain: kl`); with alpha 0 the
    retain view is not run. A method with no retain term, or its own, sets
    `shared_retain = False` and returns its whole loss from `forget_loss`.
    """

    name = ""
    Knobs: type[Knobs] = Knobs
    # False: the method has no retain term or computes its own (its Knobs need not have alpha / retain).
    shared_retain = True
    # True when the forget term compares against the model before unlearning (p_ref).
    needs_reference = False
    # Views of each example the loss reads beyond "forget" and "retain" (see VIEWS).
    views: tuple[str, ...] = ()
    # The views the forget term reads with `step.logits` (the retain term adds "retain"): the
    # trainer may compute them in one forward (`hardware.fuse_views`). Leave empty when the loss
    # reads hidden states.
    forward_views: tuple[str, ...] = ()

    def __init__(self, knobs: Knobs):
        # Types and ranges were checked when params.yaml's `methods:` was (check_knobs).
        self.knobs = knobs.loss_knobs()
        for key, value in self.knobs.items():
            setattr(self, key, value)
        self.retain_on = self.shared_retain and bool(self.alpha)
        if self.retain_on:
            self.forward_views = tuple(dict.fromkeys(type(self).forward_views + ("retain",)))
            self.needs_reference = type(self).needs_reference or self.retain == "kl"

    def trainable_pattern(self, model) -> str | None:
        """A regular expression over `model`'s parameter names; only matching weights train
        (None: all)."""
        return None

    def loss(self, step: Step) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to minimise and the named parts to log (floats): the forget term, plus
        alpha times the retain term (logged as retain_nll or retain_kl)."""
        loss, parts = self.forget_loss(step)
        if self.retain_on:
            term = self.retain_term(step)
            loss = loss + self.alpha * term
            parts[f"retain_{self.retain}"] = term.item()
        return loss, parts

    def retain_term(self, step: Step) -> torch.Tensor:
        r = step.batch["retain"]
        if self.retain == "kl":
            return answer_token_kl(step.reference.logits(r), step.logits("retain"), r["labels"])
        return token_mean_nll(step.logits("retain"), r["labels"])

    def forget_loss(self, step: Step) -> tuple[torch.Tensor, dict[str, float]]:
        """The method's own term and its parts to log (the whole loss when shared_retain is False)."""
        raise NotImplementedError

    def shape_gradients(self, step: Step, model) -> None:
        """Called after the loss's backward and before gradient clipping and the optimizer step,
        with the step (its batch, reference; its logits' graph is freed) and the trained model:
        a method may run more forwards / backwards here and rewrite each parameter's `.grad`
        (gradient projection, sharpness-aware steps). With gradient accumulation it runs after
        each micro-batch. The default leaves the gradients as they are."""


# ---------------------------------------------------------------- for gradient-shaping methods


def trained_parameters(model) -> list[torch.Tensor]:
    """The weights the optimizer steps (those with requires_grad), in a fixed order."""
    return [p for p in model.parameters() if p.requires_grad]


def gradients_of(loss: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """d loss / d p for each p (zeros where the loss does not depend on it), leaving `.grad` alone."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def current_gradients(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each parameter's `.grad` (zeros where there is none), detached copies."""
    return [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]


def dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """<a, b> over every parameter, in float64 (sums over millions of weights)."""
    return sum((x.double() * y.double()).sum() for x, y in zip(a, b))
