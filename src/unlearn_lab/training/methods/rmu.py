"""Representation misdirection for unlearning (RMU, Li et al. 2024, "The WMDP Benchmark",
arXiv 2403.03218): steer the forget activations of one layer towards a fixed random direction
while keeping the retain activations where the reference model has them."""
from typing import Optional

import torch
from pydantic import Field

from ...models import architecture
from ...settings.sections import MAX_SEED
from .base import Knobs, UnlearningMethod, layer_output, masked_mean, register, tuned_lr, weight


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over non-padding positions of the mean squared difference over hidden units."""
    return masked_mean(((a - b) ** 2).mean(-1), mask)


@register
class RMU(UnlearningMethod):
    """L = MSE(h_l(x_f), c u) + alpha MSE(h_l(x_r), h_l^ref(x_r)).

    h_l is the output of decoder layer `layer` (0-based); u is a random unit vector drawn once
    (uniform [0,1) entries, normalised) from `vector_seed`. Only the MLPs of layers
    layer-2 .. layer train, as in the paper. The activation MSE is its own retain term (no
    `retain` knob).

    The forget term is taken at the positions that produce the forget answer (each position
    whose next token is an answer token), the retain term at every non-padding token. The paper
    uses every token of forget documents; in chat-formatted QA the shared system prompt would
    then be pushed to c u by the forget term and held in place by the retain term at once.
    c must exceed the activations' own norm: the paper's 6.5-20 suits Zephyr-7B; layer 7 of
    SmolLM2-135M has norms around 134 at answer positions, hence the default 300.
    """

    name = "rmu"
    shared_retain = False
    needs_reference = True

    class Knobs(Knobs):
        lr: Optional[float] = tuned_lr(1e-2)
        # (le: no released model has 1000 decoder layers; the model itself is checked when it loads)
        layer: int = Field(7, ge=0, le=1000, description="decoder layer (0-based) whose activations are steered")
        steering_coeff: float = Field(300.0, gt=0, description="norm c of the random control vector")
        alpha: float = weight(100.0, "weight of the retain activation MSE")
        vector_seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the random direction")

    def __init__(self, knobs):
        super().__init__(knobs)
        self._direction: torch.Tensor | None = None

    def trainable_pattern(self, model) -> str:
        return architecture.mlp_pattern(model, list(range(max(0, self.layer - 2), self.layer + 1)))

    def direction(self, width: int, device) -> torch.Tensor:
        if self._direction is None or self._direction.shape[0] != width:
            gen = torch.Generator().manual_seed(int(self.vector_seed))
            u = torch.rand(width, generator=gen)
            self._direction = u / u.norm()
        return self._direction.to(device)

    def forget_loss(self, step):
        model, f, r, reference = step.model, step.batch["forget"], step.batch["retain"], step.reference
        h_f = layer_output(model, self.layer, f).float()
        control = self.steering_coeff * self.direction(h_f.shape[-1], h_f.device)
        # the positions that predict an answer token; labels may cover only the last positions
        # (the step's answer window), which hold every answer token
        answer_positions = torch.zeros_like(f["attention_mask"])
        width, kept = answer_positions.shape[1], f["labels"].shape[1]
        answer_positions[:, width - kept : width - 1] = (f["labels"][:, 1:] != -100).long()
        forget_mse = masked_mse(h_f, control, answer_positions)
        h_r = layer_output(model, self.layer, r).float()
        h_r_ref = layer_output(reference.network, self.layer, r, run=reference.outputs).float()
        retain_mse = masked_mse(h_r, h_r_ref, r["attention_mask"])
        loss = forget_mse + self.alpha * retain_mse
        return loss, {"forget_mse": forget_mse.item(), "retain_mse": retain_mse.item(),
                      "forget_hidden_norm": (h_f.detach().norm(dim=-1) * answer_positions).sum().item()
                      / answer_positions.sum().clamp(min=1).item()}
