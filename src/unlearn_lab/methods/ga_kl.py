"""Gradient ascent with a KL anchor on retain data (TOFU's `KL`, Maini et al. 2024, arXiv 2401.06121)."""
from .base import UnlearningMethod, answer_token_kl, forward_logits, register, token_mean_nll


@register
class GradientAscentKL(UnlearningMethod):
    """L = -gamma NLL_f + alpha mean_t KL(p_ref(.|x_r, y_<t) || p_theta(.|x_r, y_<t)).

    The KL is taken over the vocabulary at each retain answer position and averaged over those
    positions.
    """

    name = "ga_kl"
    forward_views = ("forget", "retain")
    needs_reference = True

    def loss(self, model, batch, reference):
        f, r = batch["forget"], batch["retain"]
        nll_f = token_mean_nll(forward_logits(model, f), f["labels"])
        kl_r = answer_token_kl(reference.logits(r), forward_logits(model, r), r["labels"])
        loss = -self.gamma * nll_f + self.alpha * kl_r
        return loss, {"forget_nll": nll_f.item(), "retain_kl": kl_r.item()}
