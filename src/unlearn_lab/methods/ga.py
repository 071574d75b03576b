"""Gradient ascent: maximise the forget answers' NLL (Jang et al. 2023, arXiv 2210.01504; TOFU's `grad_ascent`)."""
from .base import UnlearningMethod, forward_logits, register, token_mean_nll


@register
class GradientAscent(UnlearningMethod):
    """L = -NLL_f."""

    name = "ga"

    def loss(self, model, batch, reference):
        nll_f = token_mean_nll(forward_logits(model, batch["forget"]), batch["forget"]["labels"])
        return -nll_f, {"forget_nll": nll_f.item()}
