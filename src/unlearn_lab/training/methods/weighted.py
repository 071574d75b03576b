"""Per-example signed loss weights over a mixed forget + retain batch (the "weighted" baseline
of unlearning seeds: forget examples get a negative weight, retain examples a positive one)."""
from typing import Optional

import torch
from pydantic import Field

from .base import Knobs, UnlearningMethod, example_mean, example_mean_nll, register, tuned_lr


@register
class WeightedLoss(UnlearningMethod):
    """L = mean_i (w_i CE_i) over the forget and retain examples of the step together;
    CE_i is example i's token-averaged answer NLL, w_i = forget_weight or retain_weight
    (the retain examples are its own retain term: no `retain` knob).

    Seeds use -0.1 / +5.0 with full fine-tuning at lr 1e-6. With Adam the step size does not
    follow the loss scale, only the 1:50 ratio matters, and on the embedded benchmark that ratio
    never forgets before the retain answers degrade; -1 / +2 does (see params.yaml). At lr 1e-3
    it forgets by breaking the model (utility 66% of the target's); 5e-4 forgets and keeps it.
    """

    name = "weighted"
    shared_retain = False
    forward_views = ("forget", "retain")

    class Knobs(Knobs):
        lr: Optional[float] = tuned_lr(5e-4)
        # Signed by design: forget examples get a negative weight.
        forget_weight: float = Field(-1.0, description="loss weight of forget examples (signed)")
        retain_weight: float = Field(2.0, description="loss weight of retain examples (signed)")

    def forget_loss(self, step):
        ce_f = example_mean_nll(step.logits("forget"), step.labels("forget"))
        ce_r = example_mean_nll(step.logits("retain"), step.labels("retain"))
        weights = torch.cat([torch.full_like(ce_f, self.forget_weight), torch.full_like(ce_r, self.retain_weight)])
        loss = example_mean(weights * torch.cat([ce_f, ce_r]))
        return loss, {"forget_nll": ce_f.mean().item(), "retain_nll": ce_r.mean().item()}
