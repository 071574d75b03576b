"""Evaluation of one model on documents (the documents benchmark): verbatim memorisation of
passages and their membership scores, as rows the metrics table summarises like questions.

A document is cut into passages of `eval.prefix_tokens + eval.continuation_tokens` tokens (a
document of the synthetic benchmark is one passage; a long imported text gives several, as MUSE
cuts its corpora). Each passage's first `prefix_tokens` tokens prompt a greedy continuation,
scored against its next tokens (verbmem), and the whole passage's token log-probabilities give
its membership scores (Min-k%).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..models.hardware import model_device, resolve_eval
from .metrics import table
from ..settings import Eval

# The rows' set names: documents of each split, beside the question sets of the same split.
DOCUMENT_SET = "{}_documents"


@dataclass(frozen=True)
class Passage:
    """One probe of a document: its record, the prompt's token ids and the true continuation's."""

    record: dict
    index: int
    prefix: list[int]
    continuation: list[int]

    @property
    def id(self) -> str:
        return f"{self.record['id']}#{self.index}"


@dataclass(frozen=True)
class ScoredPassage:
    """What the evaluation computed for one passage: the passage, the true continuation's text,
    the model's greedy continuation ("" where not generated), and the per-token log-probabilities
    of the whole passage (`stats["logp"]`, every token after the first)."""

    passage: Passage
    reference: str
    generated: str
    stats: dict
    cfg: object


def passages(tok, documents: list[dict], prefix_tokens: int, continuation_tokens: int) -> list[Passage]:
    """Each document's tokens (no special tokens) cut into consecutive windows of prefix +
    continuation tokens; a last window needs more than `prefix_tokens` tokens to be a probe, and
    a document too short for any probe is one with the prefix shortened to half its tokens."""
    width = prefix_tokens + continuation_tokens
    out = []
    for doc in documents:
        ids = tok(doc["text"], add_special_tokens=False)["input_ids"]
        windows = [ids[i : i + width] for i in range(0, len(ids), width)]
        windows = [w for w in windows if len(w) > prefix_tokens]
        if not windows and len(ids) >= 2:
            cut = len(ids) // 2
            out.append(Passage(doc, 0, ids[:cut], ids[cut:]))
            continue
        out.extend(Passage(doc, k, w[:prefix_tokens], w[prefix_tokens:]) for k, w in enumerate(windows))
    return out


@torch.no_grad()
def greedy_continuations(model, tok, prompts: list[list[int]], lengths: list[int], batch_size: int,
                         desc: str = "continue") -> list[str]:
    """The greedy continuation of each prompt (token ids), `lengths[i]` tokens at most (fewer if
    the model ends it with eos), decoded without special tokens."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = [""] * len(prompts)
    dev = model_device(model)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        idx = order[start : start + batch_size]
        enc = tok.pad({"input_ids": [prompts[i] for i in idx]}, padding_side="left", return_tensors="pt").to(dev)
        gen = model.generate(**enc, max_new_tokens=max(lengths[i] for i in idx), do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        new = gen[:, enc["input_ids"].shape[1] :].cpu()
        for row, i in enumerate(idx):
            out[i] = tok.decode(new[row, : lengths[i]], skip_special_tokens=True)
    return out


@torch.no_grad()
def passage_logprobs(model, tok, windows: list[list[int]], batch_size: int, desc: str = "log-probs") -> list[np.ndarray]:
    """log p(x_t | x_<t) of every token of each window after its first, in float64."""
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    out: list = [None] * len(windows)
    dev = model_device(model)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        idx = order[start : start + batch_size]
        enc = tok.pad({"input_ids": [windows[i] for i in idx]}, padding_side="right", return_tensors="pt").to(dev)
        logits = model(**enc).logits[:, :-1].double()
        logp = torch.gather(torch.log_softmax(logits, -1), 2, enc["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
        for row, i in enumerate(idx):
            out[i] = logp[row, : len(windows[i]) - 1].cpu().numpy()
    return out


def evaluate_documents(model, tok, documents: list[dict], eval_cfg: Eval, split: str,
                       generate: bool = True) -> list[dict]:
    """Rows of one split's documents (set `<split>_documents`), one per passage: every
    document-level metric of the table, and the passage's mean token NLL and token count (the
    set's perplexity). `generate=False` skips the continuations (holdout documents are only
    scored for membership)."""
    if not documents:
        return []
    eval_cfg = resolve_eval(eval_cfg)
    name = DOCUMENT_SET.format(split)
    probes = passages(tok, documents, eval_cfg.prefix_tokens, eval_cfg.continuation_tokens)
    generated = [""] * len(probes)
    if generate:
        generated = greedy_continuations(model, tok, [p.prefix for p in probes], [len(p.continuation) for p in probes],
                                         eval_cfg.gen_batch_size, desc=f"{name}: continue")
    logps = passage_logprobs(model, tok, [p.prefix + p.continuation for p in probes], eval_cfg.batch_size,
                             desc=f"{name}: log-probs")
    scored = [ScoredPassage(p, tok.decode(p.continuation, skip_special_tokens=True), g, {"logp": lp}, eval_cfg)
              for p, g, lp in zip(probes, generated, logps)]
    values = {m.name: [m.compute(s) for s in scored] for m in table.of_level("document")
              if (m.sets is None or name in m.sets) and (generate or not m.needs_generation)}
    rows = []
    for i, s in enumerate(scored):
        rows.append({"id": s.passage.id, "set": name, "document": s.passage.record["id"],
                     "subject": s.passage.record.get("subject", ""), "prefix": tok.decode(s.passage.prefix),
                     "reference": s.reference, "generated": s.generated, "correlated": False,
                     "nll": float(-np.mean(s.stats["logp"])), "n_tokens": int(len(s.stats["logp"])),
                     **{key: v[i] for key, v in values.items()}})
    return rows


def evaluate_all_documents(model, tok, documents: dict[str, list[dict]], eval_cfg: Eval) -> list[dict]:
    """Rows of the forget, retain and holdout documents (holdout ones without continuations)."""
    rows: list[dict] = []
    for split in ("forget", "retain", "holdout"):
        rows += evaluate_documents(model, tok, documents.get(split, []), eval_cfg, split, generate=split != "holdout")
    return rows
