"""Alternate preference optimisation (Mekala et al. 2024, arXiv 2409.13474): DPO in which a
plausible alternate answer is preferred over the forget answer."""
from typing import Optional

from pydantic import Field

from .base import RetainKnobs, register, tuned_lr
from .idk_dpo import IdkDPO


@register
class AlternatePO(IdkDPO):
    """L = -(2/beta) E_f log sigmoid(beta [(log p_theta(a|x) - log p_ref(a|x))
                                         - (log p_theta(y|x) - log p_ref(y|x))]) + alpha R,

    a a wrong answer of the same field in the forget answer's sentence (the random_labels stage's
    alternates; one drawn per example and epoch), y the forget answer. Unlike a refusal, the
    alternate keeps the model answering in its own style.
    """

    name = "altpo"
    preferred = "forget_wrong"
    forward_views = ("forget", "forget_wrong")
    views = ("forget_wrong",)

    class Knobs(RetainKnobs):
        lr: Optional[float] = tuned_lr(2e-4)
        beta: float = Field(0.1, gt=0, description="inverse temperature (divides the loss)")
