"""Negative preference optimisation (Zhang et al. 2024, arXiv 2404.05868), with a retain term."""
from typing import Optional

import torch.nn.functional as F
from pydantic import Field

from .base import RetainKnobs, UnlearningMethod, answer_logprobs, example_mean, register, tuned_lr


@register
class NegativePreferenceOptimization(UnlearningMethod):
    """L = -(2/beta) E_f log sigmoid(-beta (log p_theta(y|x) - log p_ref(y|x))) + alpha R.

    log p(y|x) is the summed answer-token log-probability; p_ref is the model before unlearning.
    """

    name = "npo"
    forward_views = ("forget",)
    needs_reference = True

    class Knobs(RetainKnobs):
        lr: Optional[float] = tuned_lr(5e-4)
        beta: float = Field(0.1, gt=0, description="inverse temperature (divides the loss)")

    def forget_loss(self, step):
        return npo_term(step, self.beta)


def npo_term(step, beta: float):
    """NPO's forget term and its logged parts, for any method that uses it (gru, sam_npo)."""
    f = step.batch["forget"]
    logp, _ = answer_logprobs(step.logits("forget"), f["labels"])
    ref_logp, _ = answer_logprobs(step.reference.logits(f), f["labels"])
    log_ratio = logp - ref_logp
    npo = -(2.0 / beta) * example_mean(F.logsigmoid(-beta * log_ratio))
    return npo, {"npo_loss": npo.item(), "log_ratio": log_ratio.mean().item()}
