"""Evaluation metrics; each function's docstring gives its formula and source."""
from .aggregate import forget_quality, model_utility
from .likelihood import answer_probability, truth_ratio, truth_ratio_forget_score, truth_ratio_retain_score
from .text import rouge_l_f1, rouge_l_recall

__all__ = [
    "answer_probability",
    "forget_quality",
    "model_utility",
    "rouge_l_f1",
    "rouge_l_recall",
    "truth_ratio",
    "truth_ratio_forget_score",
    "truth_ratio_retain_score",
]
