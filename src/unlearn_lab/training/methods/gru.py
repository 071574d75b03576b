"""Gradient-rectified unlearning (GRU, Wang et al. 2025, "GRU: Mitigating the trade-off between
unlearning and retention for large language models")."""
from typing import Literal, Optional

import torch
from pydantic import Field

from .base import (RetainKnobs, Step, UnlearningMethod, current_gradients, dot, gradients_of, register,
                   token_mean_nll, trained_parameters, tuned_lr, weight)
from .npo import npo_term


@register
class GradientRectified(UnlearningMethod):
    """Update direction g = g_f' + alpha g_r, with g_f the gradient of the forget term (`forget`:
    NPO's, or gradient ascent's -NLL_f), g_r that of the retain term R, m <- ema m + (1 - ema) g_r
    (m = g_r at the first step), and g_f' = g_f - (<g_f, m> / ||m||^2) m when <g_f, m> < 0
    (the forget step would undo retention: its component against the retain direction is removed),
    g_f otherwise.

    The loss is the forget term; the retain gradient and the projection are taken in
    `shape_gradients`, after the backward and before clipping. Logged: `conflict` (1 when projected)
    and `cosine` (<g_f, m> / (||g_f|| ||m||)). Single-process training (a second backward per step).
    """

    name = "gru"
    forward_views = ("forget",)
    shared_retain = False  # its retain gradient is taken apart from the forget one

    class Knobs(RetainKnobs):
        lr: Optional[float] = tuned_lr(2.5e-4)
        forget: Literal["npo", "ga"] = Field("npo", description="the forget term: npo or ga (-NLL_f)")
        beta: float = Field(0.1, gt=0, description="NPO's inverse temperature (forget: npo)")
        ema: float = Field(0.8, ge=0, lt=1, description="weight of the past in the retain gradient's moving average")
        gamma: float = weight(1.0, "weight of the forget term")

    def __init__(self, knobs):
        super().__init__(knobs)
        self.needs_reference = self.forget == "npo" or self.retain == "kl"
        self._ema: list[torch.Tensor] | None = None
        self._parts: dict = {}

    def forget_loss(self, step):
        if self.forget == "npo":
            term, parts = npo_term(step, self.beta)
        else:
            nll = token_mean_nll(step.logits("forget"), step.labels("forget"))
            term, parts = -nll, {"forget_nll": nll.item()}
        self._parts = parts  # the trainer logs this dict: shape_gradients adds to it
        return self.gamma * term, parts

    def shape_gradients(self, step, model):
        params = trained_parameters(model)
        g_f = current_gradients(params)
        g_r = gradients_of(self.retain_term(Step(model, step.batch, step.reference)), params)
        self._ema = g_r if self._ema is None else [self.ema * m + (1 - self.ema) * r for m, r in zip(self._ema, g_r)]
        m = self._ema
        inner, m_sq = dot(g_f, m), dot(m, m)
        scale = (dot(g_f, g_f) * m_sq).sqrt()
        cosine = float(inner / scale) if scale > 0 else 0.0
        conflict = bool(inner < 0 and m_sq > 0)
        if conflict:
            g_f = [g - (inner / m_sq).to(g.dtype) * mm for g, mm in zip(g_f, m)]
        for p, g, r in zip(params, g_f, g_r):
            p.grad = g + self.alpha * r
        self._parts.update(conflict=float(conflict), cosine=cosine)
