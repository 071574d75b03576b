"""Maximum entropy on forget answers plus gradient descent on retain (ME+GD, Yuan et al. 2024,
arXiv 2410.08109)."""
import math
from typing import Optional

import torch.nn.functional as F

from .base import RetainKnobs, UnlearningMethod, masked_mean, register, shifted, tuned_lr, weight


@register
class MaxEntropyGD(UnlearningMethod):
    """L = gamma mean_t KL(U || p_theta(.|x_f, y_<t)) + alpha R, U uniform over the vocabulary.

    KL(U || p) = -log V - (1/V) sum_v log p_v, so the forget term is zero exactly when the
    model is uniformly unsure at every forget answer position.
    """

    name = "me_gd"
    forward_views = ("forget",)

    class Knobs(RetainKnobs):
        lr: Optional[float] = tuned_lr(5e-4)
        gamma: float = weight(0.1, "weight of the entropy (KL to uniform) term")

    def forget_loss(self, step):
        logits, _, mask = shifted(step.logits("forget"), step.labels("forget"))
        vocab = logits.shape[-1]
        kl = -math.log(vocab) - F.log_softmax(logits, -1).mean(-1)
        me = masked_mean(kl, mask)
        return self.gamma * me, {"forget_uniform_kl": me.item()}
