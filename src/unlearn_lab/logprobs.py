"""Answer log-probabilities of a causal LM's logits: what the losses and the evaluation share."""
from __future__ import annotations

import torch
import torch.nn.functional as F


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
    """Cross-entropy averaged over every answer token of the batch (what HF models return as loss)."""
    logp, count = answer_logprobs(logits, labels)
    return -logp.sum() / count.sum().clamp(min=1)


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
    return (kl * mask).sum() / mask.sum().clamp(min=1)
