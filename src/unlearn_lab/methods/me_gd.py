"""Maximum entropy on forget answers plus gradient descent on retain (ME+GD, Yuan et al. 2024,
arXiv 2410.08109)."""
import math

import torch.nn.functional as F

from .base import UnlearningMethod, forward_logits, register, token_mean_nll


@register
class MaxEntropyGD(UnlearningMethod):
    """L = gamma mean_t KL(U || p_theta(.|x_f, y_<t)) + alpha NLL_r, U uniform over the vocabulary.

    KL(U || p) = -log V - (1/V) sum_v log p_v, so the forget term is zero exactly when the
    model is uniformly unsure at every forget answer position.
    """

    name = "me_gd"
    forward_views = ("forget", "retain")

    def loss(self, model, batch, reference):
        f, r = batch["forget"], batch["retain"]
        logits = forward_logits(model, f)[:, :-1].float()
        mask = f["labels"][:, 1:] != -100
        vocab = logits.shape[-1]
        kl = -math.log(vocab) - F.log_softmax(logits, -1).mean(-1)
        me = (kl * mask).sum() / mask.sum().clamp(min=1)
        nll_r = token_mean_nll(forward_logits(model, r), r["labels"])
        loss = self.gamma * me + self.alpha * nll_r
        return loss, {"forget_uniform_kl": me.item(), "retain_nll": nll_r.item()}
