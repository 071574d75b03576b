"""SimNPO: reference-free NPO on length-normalised log-probabilities (Fan et al. 2024, arXiv 2410.07163)."""
import torch.nn.functional as F

from .base import UnlearningMethod, answer_logprobs, forward_logits, register, token_mean_nll


@register
class SimNPO(UnlearningMethod):
    """L = -(2/beta) E_f log sigmoid(-beta log p_theta(y|x) / |y| - gamma) + alpha NLL_r."""

    name = "simnpo"
    forward_views = ("forget", "retain")

    def loss(self, model, batch, reference):
        f, r = batch["forget"], batch["retain"]
        logp, count = answer_logprobs(forward_logits(model, f), f["labels"])
        mean_logp = logp / count.clamp(min=1)
        simnpo = -(2.0 / self.beta) * F.logsigmoid(-self.beta * mean_logp - self.gamma).mean()
        nll_r = token_mean_nll(forward_logits(model, r), r["labels"])
        loss = simnpo + self.alpha * nll_r
        return loss, {"simnpo_loss": simnpo.item(), "forget_mean_logp": mean_logp.mean().item(),
                      "retain_nll": nll_r.item()}
