"""Metrics on generated text."""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(reference: str, generated: str) -> float:
    """ROUGE-L recall = LCS(reference, generated) / |reference| in tokens.

    Tokens are rouge-score's lower-cased, Porter-stemmed words (Lin 2004). TOFU (Maini et al.
    2024) reports recall: the fraction of the reference answer the generation reproduces.
    """
    return float(_scorer().score(reference, generated)["rougeL"].recall)


def rouge_l_f1(reference: str, generated: str) -> float:
    """ROUGE-L F1 = 2 P R / (P + R) with P = LCS/|generated|, R = LCS/|reference| (Lin 2004)."""
    return float(_scorer().score(reference, generated)["rougeL"].fmeasure)
