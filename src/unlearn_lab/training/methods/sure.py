"""Saliency-based unlearning at a large learning rate (SURE; Zhang et al. 2024, "Catastrophic
failure of LLM unlearning via quantization", arXiv 2410.16454)."""
import math
from typing import Literal, Optional

from pydantic import Field

from .base import (RetainKnobs, Step, UnlearningMethod, dot, get_method, gradients_of, register,
                   tuned_lr)


def module_of(name: str) -> str:
    """The module a weight belongs to, LoRA's A and B matrices counted as one ("...q_proj")."""
    parts = name.split(".")
    while parts and (parts[-1] in ("weight", "bias", "default") or parts[-1].startswith("lora_")):
        parts.pop()
    return ".".join(parts)


@register
class SaliencyUnlearning(UnlearningMethod):
    """The forget term of the method `forget` names, with that method's default knobs (ga or gd:
    -NLL_f; npo: NPO's), + alpha R (none with ga), updating only the most salient modules: those with the largest gradient
    norm ||grad F||_2 of the forget term at the first step (the top `saliency_fraction` of the
    trained modules, at least one). The other modules' gradients are zeroed every step, so they
    do not move; the lr is larger than the full method's, so that the change in the few trained
    weights is larger than 4-bit rounding (the remedy the paper proposes against quantization
    recovery). The default, 5e-4, is twice npo's: at 1e-3 the retain answers broke (ROUGE-L 0.46
    on the default benchmark).
    """

    name = "sure"
    forward_views = ("forget",)

    class Knobs(RetainKnobs):
        lr: Optional[float] = tuned_lr(5e-4)
        forget: Literal["ga", "gd", "npo"] = Field("npo", description="the forget term: that of ga, gd or npo (ga: no retain term)")
        saliency_fraction: float = Field(0.25, gt=0, le=1, description="share of the modules that train")

    def __init__(self, knobs):
        super().__init__(knobs)
        self.inner = get_method(self.forget)
        if self.forget == "ga":
            self.retain_on, self.forward_views = False, ("forget",)
        self.needs_reference = (self.retain_on and self.retain == "kl") or self.inner.needs_reference
        self.salient: list[str] | None = None

    def forget_loss(self, step):
        return self.inner.forget_loss(step)

    def choose_modules(self, model, step) -> list[str]:
        """The salient modules, ranked by the forget term's gradient norm at these weights."""
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        forget, _ = self.forget_loss(Step(model, step.batch, step.reference))
        grads = gradients_of(forget, [p for _, p in named])
        norms: dict[str, float] = {}
        for (name, _), g in zip(named, grads):
            norms[module_of(name)] = norms.get(module_of(name), 0.0) + float(dot([g], [g]))
        keep = max(1, math.ceil(self.saliency_fraction * len(norms)))
        return sorted(norms, key=norms.get, reverse=True)[:keep]

    def shape_gradients(self, step, model):
        if self.salient is None:
            self.salient = self.choose_modules(model, step)
        chosen = set(self.salient)
        for name, p in model.named_parameters():
            if p.requires_grad and p.grad is not None and module_of(name) not in chosen:
                p.grad.zero_()


