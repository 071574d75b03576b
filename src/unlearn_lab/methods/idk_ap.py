"""IDK fine-tuning with answer preservation (Yuan et al. 2024, "A Closer Look at Machine
Unlearning for Large Language Models", arXiv 2410.08109)."""
import torch.nn.functional as F

from .base import UnlearningMethod, answer_logprobs, forward_logits, register, token_mean_nll


@register
class IdkAnswerPreservation(UnlearningMethod):
    """L = NLL(x_f -> idk) + alpha * AP,
    AP = -(1/beta) E_r log sigmoid(beta (NLL(x_r -> idk) - NLL(x_r -> y_r))).

    The IDK term is token-averaged; AP compares summed answer NLLs, so it only pushes while a
    refusal is not clearly less likely than the true retain answer.
    """

    name = "idk_ap"
    forward_views = ("forget_idk", "retain", "retain_idk")
    views = ("forget_idk", "retain_idk")

    def loss(self, model, batch, reference):
        f_idk, r, r_idk = batch["forget_idk"], batch["retain"], batch["retain_idk"]
        nll_idk = token_mean_nll(forward_logits(model, f_idk), f_idk["labels"])
        retain_logits = forward_logits(model, r)
        nll_r = -answer_logprobs(retain_logits, r["labels"])[0]
        nll_r_idk = -answer_logprobs(forward_logits(model, r_idk), r_idk["labels"])[0]
        ap = -(1.0 / self.beta) * F.logsigmoid(self.beta * (nll_r_idk - nll_r)).mean()
        loss = nll_idk + self.alpha * ap
        return loss, {"forget_idk_nll": nll_idk.item(), "ap_loss": ap.item(),
                      "retain_nll": token_mean_nll(retain_logits.detach(), r["labels"]).item()}
