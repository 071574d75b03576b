"""IDK fine-tuning with answer preservation (Yuan et al. 2024, "A Closer Look at Machine
Unlearning for Large Language Models", arXiv 2410.08109)."""
from typing import Optional

import torch.nn.functional as F
from pydantic import Field

from .base import Knobs, UnlearningMethod, answer_logprobs, example_mean, register, token_mean_nll, tuned_lr, weight


@register
class IdkAnswerPreservation(UnlearningMethod):
    """L = NLL(x_f -> idk) + alpha * AP,
    AP = -(1/beta) E_r log sigmoid(beta (NLL(x_r -> idk) - NLL(x_r -> y_r))).

    The IDK term is token-averaged; AP compares summed answer NLLs, so it only pushes while a
    refusal is not clearly less likely than the true retain answer. AP is its own retain term
    (no `retain` knob).
    """

    name = "idk_ap"
    shared_retain = False
    forward_views = ("forget_idk", "retain", "retain_idk")
    views = ("forget_idk", "retain_idk")

    class Knobs(Knobs):
        lr: Optional[float] = tuned_lr(5e-4)
        beta: float = Field(0.1, gt=0, description="inverse temperature of the preference term")
        alpha: float = weight(1.0, "weight of the answer-preservation term")

    def forget_loss(self, step):
        nll_idk = token_mean_nll(step.logits("forget_idk"), step.labels("forget_idk"))
        retain_logits = step.logits("retain")
        nll_r = -answer_logprobs(retain_logits, step.labels("retain"))[0]
        nll_r_idk = -answer_logprobs(step.logits("retain_idk"), step.labels("retain_idk"))[0]
        ap = -(1.0 / self.beta) * example_mean(F.logsigmoid(self.beta * (nll_r_idk - nll_r)))
        loss = nll_idk + self.alpha * ap
        return loss, {"forget_idk_nll": nll_idk.item(), "ap_loss": ap.item(),
                      "retain_nll": token_mean_nll(retain_logits.detach(), step.labels("retain")).item()}
