"""UNDIAL: self-distillation towards the reference's logits with the true token pushed down
(Dong et al. 2024, arXiv 2402.13669)."""
from typing import Optional

import torch.nn.functional as F
from pydantic import Field

from .base import RetainKnobs, UnlearningMethod, masked_mean, register, shifted, tuned_lr


@register
class Undial(UnlearningMethod):
    """L = mean_t CE(q_t, p_theta(.|x_f, y_<t)) + alpha R,
    q_t = softmax(z_ref,t - beta * onehot(y_t)), z_ref the reference model's logits."""

    name = "undial"
    forward_views = ("forget",)
    needs_reference = True

    class Knobs(RetainKnobs):
        lr: Optional[float] = tuned_lr(5e-4)
        beta: float = Field(10.0, ge=0, description="logit subtracted from the true token in the target")

    def forget_loss(self, step):
        f = step.batch["forget"]
        ref, targets, mask = shifted(step.reference.logits(f), f["labels"])
        onehot = F.one_hot(targets.clamp(min=0), ref.shape[-1]).to(ref.dtype)
        teacher = F.softmax(ref - self.beta * onehot, -1)
        student = F.log_softmax(shifted(step.logits("forget"), f["labels"])[0], -1)
        ce = -(teacher * student).sum(-1)
        distill = masked_mean(ce, mask)
        return distill, {"distill_loss": distill.item()}
