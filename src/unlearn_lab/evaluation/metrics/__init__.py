"""Evaluation metrics; each function's docstring gives its formula and source."""
from .aggregate import forget_quality, model_utility
from .likelihood import (
    TRUTH_RATIOS,
    answer_probability,
    perplexity,
    probability_over_options,
    truth_ratio,
    truth_ratio_forget_score,
    truth_ratio_mean_prob,
    truth_ratio_retain_score,
)
from .memorization import exact_memorization, extraction_strength
from .mia import auc, loss_score, mink_score, minkpp_score, privleak, zlib_score
from .text import bertscore_f1, bleu, rouge_l_f1, rouge_l_recall

__all__ = [
    "TRUTH_RATIOS", "answer_probability", "auc", "bertscore_f1", "bleu", "exact_memorization",
    "extraction_strength", "forget_quality", "loss_score", "mink_score", "minkpp_score", "model_utility",
    "perplexity", "privleak", "probability_over_options", "rouge_l_f1", "rouge_l_recall", "truth_ratio",
    "truth_ratio_forget_score", "truth_ratio_mean_prob", "truth_ratio_retain_score", "zlib_score",
]
