"""Gradient difference: ascend on forget, descend on retain (Liu et al. 2022; TOFU's `grad_diff`)."""
from .base import UnlearningMethod, forward_logits, register, token_mean_nll


@register
class GradientDifference(UnlearningMethod):
    """L = -gamma NLL_f + alpha NLL_r."""

    name = "gd"
    forward_views = ("forget", "retain")

    def loss(self, model, batch, reference):
        f, r = batch["forget"], batch["retain"]
        nll_f = token_mean_nll(forward_logits(model, f), f["labels"])
        nll_r = token_mean_nll(forward_logits(model, r), r["labels"])
        loss = -self.gamma * nll_f + self.alpha * nll_r
        return loss, {"forget_nll": nll_f.item(), "retain_nll": nll_r.item()}
