"""UNDIAL: self-distillation towards the reference's logits with the true token pushed down
(Dong et al. 2024, arXiv 2402.13669)."""
import torch.nn.functional as F

from .base import UnlearningMethod, forward_logits, register, token_mean_nll


@register
class Undial(UnlearningMethod):
    """L = mean_t CE(q_t, p_theta(.|x_f, y_<t)) + alpha NLL_r,
    q_t = softmax(z_ref,t - beta * onehot(y_t)), z_ref the reference model's logits."""

    name = "undial"
    forward_views = ("forget", "retain")
    needs_reference = True

    def loss(self, model, batch, reference):
        f, r = batch["forget"], batch["retain"]
        targets = f["labels"][:, 1:]
        mask = targets != -100
        ref = reference.logits(f)[:, :-1].float()
        onehot = F.one_hot(targets.clamp(min=0), ref.shape[-1]).to(ref.dtype)
        teacher = F.softmax(ref - self.beta * onehot, -1)
        student = F.log_softmax(forward_logits(model, f)[:, :-1].float(), -1)
        ce = -(teacher * student).sum(-1)
        distill = (ce * mask).sum() / mask.sum().clamp(min=1)
        nll_r = token_mean_nll(forward_logits(model, r), r["labels"])
        loss = distill + self.alpha * nll_r
        return loss, {"distill_loss": distill.item(), "retain_nll": nll_r.item()}
