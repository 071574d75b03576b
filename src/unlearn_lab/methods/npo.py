"""Negative preference optimisation (Zhang et al. 2024, arXiv 2404.05868), with a retain NLL term."""
import torch.nn.functional as F

from .base import UnlearningMethod, answer_logprobs, forward_logits, register, token_mean_nll


@register
class NegativePreferenceOptimization(UnlearningMethod):
    """L = -(2/beta) E_f log sigmoid(-beta (log p_theta(y|x) - log p_ref(y|x))) + alpha NLL_r.

    log p(y|x) is the summed answer-token log-probability; p_ref is the model before unlearning.
    """

    name = "npo"
    forward_views = ("forget", "retain")
    needs_reference = True

    def loss(self, model, batch, reference):
        f, r = batch["forget"], batch["retain"]
        logp, _ = answer_logprobs(forward_logits(model, f), f["labels"])
        ref_logp, _ = answer_logprobs(reference.logits(f), f["labels"])
        log_ratio = logp - ref_logp
        npo = -(2.0 / self.beta) * F.logsigmoid(-self.beta * log_ratio).mean()
        nll_r = token_mean_nll(forward_logits(model, r), r["labels"])
        loss = npo + self.alpha * nll_r
        return loss, {"npo_loss": npo.item(), "log_ratio": log_ratio.mean().item(), "retain_nll": nll_r.item()}
