"""Cross-entropy unlearning (CE-U, Yang et al. 2025, arXiv 2503.01224)."""
from typing import Optional

import torch.nn.functional as F
from pydantic import Field

from ...settings.sections import MAX_TOKENS
from .base import RetainKnobs, UnlearningMethod, masked_mean, register, shifted, tuned_lr


@register
class CrossEntropyUnlearning(UnlearningMethod):
    """L = mean_t CE(q_t, p_theta(.|x_f, y_<t)) + alpha R over the answer positions after the first
    `skip_first`, with q_t = softmax(z_t with z_t[y_t] = -inf), z_t the model's own logits without
    gradient: the model's distribution with the true token removed and renormalised.

    Unlike gradient ascent the loss is bounded below and its gradient vanishes once the true token
    has no mass, so it does not diverge. The first answer tokens are often forced by the question
    (a name repeated, "in"); the paper's training settings skip the first.
    """

    name = "ce_u"
    forward_views = ("forget",)

    class Knobs(RetainKnobs):
        lr: Optional[float] = tuned_lr(2.5e-4)
        skip_first: int = Field(1, ge=0, le=MAX_TOKENS, description="answer tokens at the start left out of the loss")

    def forget_loss(self, step):
        logits, targets, mask = shifted(step.logits("forget"), step.labels("forget"))
        mask = mask & (mask.cumsum(-1) > self.skip_first)
        teacher = logits.detach().scatter(-1, targets.clamp(min=0).unsqueeze(-1), float("-inf")).softmax(-1)
        ce = -(teacher * F.log_softmax(logits, -1)).sum(-1)
        loss = masked_mean(ce, mask)
        return loss, {"ce_u_loss": loss.item()}
