"""Sharpness-aware NPO (Fan et al. 2025, "Towards LLM unlearning resilient to relearning
attacks: a sharpness-aware minimization perspective and beyond", arXiv 2502.05374)."""
from typing import Optional

import torch
from pydantic import Field

from .base import (RetainKnobs, Step, current_gradients, dot, gradients_of, register, trained_parameters,
                   tuned_lr)
from .npo import NegativePreferenceOptimization, npo_term


@register
class SharpnessAwareNPO(NegativePreferenceOptimization):
    """Update direction g = grad F(theta + eps) + alpha grad R(theta), with F the NPO forget term,
    eps = rho g_F / ||g_F|| and g_F = grad F(theta): the two-pass SAM step (Foret et al. 2021) on the
    forget term only. Forgetting that holds in a neighbourhood of radius rho is forgetting a few
    relearning steps do not undo (the paper's argument and finding).

    The loss is F; the perturbed gradient and the retain gradient are taken in `shape_gradients`.
    Logged: `sam_forget_loss` (F at theta + eps). Single-process training (extra backwards per step).
    """

    name = "sam_npo"
    shared_retain = False  # its retain gradient is added apart from the perturbed forget one

    class Knobs(RetainKnobs):
        lr: Optional[float] = tuned_lr(2.5e-4)
        beta: float = Field(0.1, gt=0, description="inverse temperature (divides the loss)")
        rho: float = Field(0.01, ge=0, description="radius of the weight perturbation")

    def __init__(self, knobs):
        super().__init__(knobs)
        self._parts: dict = {}

    def forget_loss(self, step):
        loss, parts = super().forget_loss(step)
        self._parts = parts  # the trainer logs this dict: shape_gradients adds to it
        return loss, parts

    def shape_gradients(self, step, model):
        params = trained_parameters(model)
        g = current_gradients(params)
        norm = dot(g, g).sqrt()
        eps = [self.rho * gi / norm.to(gi.dtype) if norm > 0 else torch.zeros_like(gi) for gi in g]
        saved = [p.detach().clone() for p in params]  # restored exactly, not by subtracting eps
        with torch.no_grad():
            for p, e in zip(params, eps):
                p.add_(e)
        try:
            perturbed, _ = npo_term(Step(model, step.batch, step.reference), self.beta)
            g_sam = gradients_of(perturbed, params)
        finally:
            with torch.no_grad():
                for p, old in zip(params, saved):
                    p.copy_(old)
        if self.alpha:
            g_r = gradients_of(self.retain_term(Step(model, step.batch, step.reference)), params)
            g_sam = [a + self.alpha * b for a, b in zip(g_sam, g_r)]
        for p, gs in zip(params, g_sam):
            p.grad = gs
        self._parts["sam_forget_loss"] = perturbed.item()
