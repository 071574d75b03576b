"""Answer log-probabilities of a causal LM's logits, and the answer window of a batch (the
positions whose logits they read): what the losses and the evaluation share."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import architecture
from .global_mean import mean_over


def answer_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: the summed log-probability of the answer tokens, and how many there are.

    Position t predicts token t+1, hence the shift; labels of -100 (prompt, padding) do not count.
    """
    token_logp, mask = answer_token_logprobs(logits, labels)
    return (token_logp * mask).sum(-1), mask.sum(-1)


def answer_token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(y_t | x, y_<t) at every position, aligned with the shifted labels, and the answer mask."""
    targets = labels[:, 1:]
    mask = targets != -100
    token_logp = torch.gather(
        F.log_softmax(logits[:, :-1].float(), dim=-1), 2, targets.clamp(min=0).unsqueeze(-1)
    ).squeeze(-1)
    return token_logp * mask, mask


def token_mean_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over every answer token of the batch (what HF models return as loss;
    in a multi-process unlearning loss, every token of the global batch: global_mean)."""
    logp, count = answer_logprobs(logits, labels)
    return mean_over(-logp.sum(), count.sum())


def example_mean_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per example: the cross-entropy averaged over that example's answer tokens."""
    logp, count = answer_logprobs(logits, labels)
    return -logp / count.clamp(min=1)


def answer_token_kl(ref_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """mean over answer positions t of KL(p_ref(.|t) || p_theta(.|t)), the KL summed over the vocabulary."""
    mask = labels[:, 1:] != -100
    ref_logp = F.log_softmax(ref_logits[:, :-1].float(), -1)
    logp = F.log_softmax(logits[:, :-1].float(), -1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return mean_over((kl * mask).sum(), mask.sum())


def answer_window(labels: torch.Tensor) -> int:
    """How many trailing positions of a batch any loss reads logits at: from the one before the
    earliest answer token of any row to the end (0: all of them, for a batch without answers).

    Position t predicts token t+1, so the earliest answer token at f needs the logits from f - 1
    on; the prompt's logits before that feed no loss, and the output layer (a 576 x 49,152 matrix
    for SmolLM2, a fifth of its FLOPs) and the log-softmax need not see them.
    """
    has_answer = (labels != -100).any(0).nonzero()
    if not len(has_answer) or int(has_answer[0]) == 0:
        return 0
    return labels.shape[1] - int(has_answer[0]) + 1


def answer_batch(model, batch: dict) -> dict:
    """The batch with `labels` cut to its answer window and `logits_to_keep` set to the window's
    width (read by `batch_logits`), where the model's family can compute the output layer on the
    last positions only; unchanged otherwise (then every position is computed)."""
    keep = answer_window(batch["labels"]) if architecture.takes_logits_to_keep(model) else 0
    return {**batch, "labels": batch["labels"][:, -keep:], "logits_to_keep": keep} if keep else batch


def keep_kwargs(batch: dict) -> dict:
    keep = batch.get("logits_to_keep", 0)
    return {"logits_to_keep": int(keep)} if keep else {}


def batch_logits(model, batch: dict) -> torch.Tensor:
    """The logits over a batch's answer window (answer_batch), every position otherwise; they
    line up with the batch's `labels`."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **keep_kwargs(batch)).logits
