"""DPO with a refusal preferred over the forget answer (TOFU's `idk` + DPO, Maini et al. 2024;
DPO: Rafailov et al. 2023, arXiv 2305.18290)."""
from typing import Optional

import torch.nn.functional as F
from pydantic import Field

from .base import RetainKnobs, UnlearningMethod, answer_logprobs, example_mean, register, tuned_lr, weight


@register
class IdkDPO(UnlearningMethod):
    """L = -(2/beta) E_f log sigmoid(beta [(log p_theta(idk|x) - log p_ref(idk|x))
                                         - (log p_theta(y|x) - log p_ref(y|x))]) + alpha R.

    Log-probabilities are summed over answer tokens. The 2/beta scale (as in NPO) makes the
    gradient at the start equal to that of the plain log-probability difference, so learning
    rates carry over between methods.
    """

    name = "idk_dpo"
    # The preferred answer's view; a subclass may prefer another (altpo: a wrong same-field answer).
    preferred = "forget_idk"
    forward_views = ("forget", "forget_idk")
    needs_reference = True
    views = ("forget_idk",)

    class Knobs(RetainKnobs):
        # 2e-4 barely moved the answers (forget ROUGE-L 0.56); higher lrs at alpha 1 spread the
        # refusal to retain questions (retain ROUGE-L 0.36 to 0.73), which a heavier retain term stops.
        lr: Optional[float] = tuned_lr(6e-4)
        alpha: float = weight(3.0)
        beta: float = Field(0.1, gt=0, description="inverse temperature (divides the loss)")

    def forget_loss(self, step):
        f, good, ref = step.batch["forget"], step.batch[self.preferred], step.reference
        lose = answer_logprobs(step.logits("forget"), f["labels"])[0] - answer_logprobs(ref.logits(f), f["labels"])[0]
        win = answer_logprobs(step.logits(self.preferred), good["labels"])[0] - answer_logprobs(ref.logits(good), good["labels"])[0]
        dpo = -(2.0 / self.beta) * example_mean(F.logsigmoid(self.beta * (win - lose)))
        return dpo, {"dpo_loss": dpo.item(), "margin": (win - lose).mean().item()}
