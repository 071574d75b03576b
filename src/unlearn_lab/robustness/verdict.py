"""One verdict on whether the forgetting holds, from the robustness stages' headlines.

Kept free of torch and of the other robustness modules: the summary stage imports it, and it
should re-run only when the verdict's formula changes.
"""
from __future__ import annotations

import math

# (headline key, what a missing one is called in the reason)
INPUTS = (("quant_nf4_recovered", "NF4 quantization"), ("relearn_recovered_over_oracle", "relearning over the oracle"))


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


def harmonic_mean(values: list[float]) -> float:
    """n / sum(1 / v_i) for values in [0, 1]; 0 as soon as one value is 0 (its limit), so a
    single broken check cannot be averaged away."""
    if any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1.0 / v for v in values)


def robustness_score(headlines: dict) -> dict:
    """`robustness_score` = harmonic mean of (1 - quant_nf4_recovered) and
    (1 - relearn_recovered_over_oracle), each clipped to [0, 1].

    1: neither an NF4 export nor the relearning attack brings back more of the forgotten facts
    than an oracle gets from the attack; 0: one of them brings everything back. A negative
    recovery (the attack forgot further) counts as 1 - 0 = 1, not more. The harmonic mean follows
    the OpenUnlearning meta-evaluation (Dorna et al. 2025, arXiv 2506.12618), which combines an
    evaluation metric's robustness to relearning and to quantization that way: the weaker check
    dominates. Returns
    `{"robustness_score": value}`, or `{"robustness_score_reason": why}` when an input headline
    is missing or not finite (the input's own reason is quoted).
    """
    parts, missing = [], []
    for key, name in INPUTS:
        value = headlines.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            parts.append(1.0 - _clip01(value))
        else:
            why = headlines.get(f"{key}_reason", "not in any robustness stage's headline block")
            missing.append(f"no {key} ({name}): {why}")
    if missing:
        return {"robustness_score_reason": "; ".join(missing)}
    return {"robustness_score": harmonic_mean(parts)}
