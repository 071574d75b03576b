"""Batched evaluation of one model on the forget / retain / world sets."""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .hardware import model_device, resolve_eval
from .logprobs import answer_logprobs
from .settings import Eval
from .metrics import (
    TRUTH_RATIOS,
    answer_probability,
    auc,
    bertscore_f1,
    bleu,
    exact_memorization,
    extraction_strength,
    forget_quality,
    loss_score,
    mink_score,
    minkpp_score,
    model_utility,
    perplexity,
    privleak,
    rouge_l_f1,
    rouge_l_recall,
    truth_ratio_forget_score,
    truth_ratio_retain_score,
    zlib_score,
)
from .modeling import collate, encode_qa, prompt_text

UTILITY_SETS = ("retain", "world")
UTILITY_KEYS = ("prob", "rouge_l_recall", "truth_ratio")


@torch.no_grad()
def answer_nlls(model, tok, pairs, batch_size: int = 32, max_length: int = 128, desc: str = "log-probs"):
    """Length-normalised answer NLL of each (question, answer) pair, one forward per pair."""
    encoded = [encode_qa(tok, q, a, max_length) for q, a in pairs]
    # Sorting by length keeps padding (wasted compute) small within each batch.
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    out = np.zeros(len(encoded))
    dev = model_device(model)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        idx = order[start : start + batch_size]
        batch = {k: v.to(dev) for k, v in collate([encoded[i] for i in idx], tok.pad_token_id).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logp, count = answer_logprobs(logits, batch["labels"])
        out[idx] = (-logp / count.clamp(min=1)).cpu().numpy()
    return out


def prompt_cached_forwards(model, tok, questions, answers, batch_size: int, desc: str, **forward_kwargs):
    """Yield, batch by batch, the forward pass of every candidate answer after its question's
    prompt, with each prompt's key/value cache computed once and repeated for its candidates.

    Yields (question indices, prompt-forward output, answer ids, answer mask, answer-forward
    output); answer rows are question-major (k candidates per question). Prompts are padded on
    the left so every one ends where its answers begin; answers end with eos.
    """
    k = len(answers[0])
    eos = tok.eos_token_id
    prompts = [tok(prompt_text(tok, q), add_special_tokens=False)["input_ids"] for q in questions]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    dev = model_device(model)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        idx = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in idx)
        p_ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
        p_mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            p_ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
            p_mask[row, width - len(prompts[i]):] = 1
        p_pos = (p_mask.cumsum(-1) - 1).clamp(min=0)
        # Built on the CPU, run where the model is.
        p_ids, p_mask, p_pos = p_ids.to(dev), p_mask.to(dev), p_pos.to(dev)
        first = model(input_ids=p_ids, attention_mask=p_mask, position_ids=p_pos, use_cache=True, logits_to_keep=1,
                      **forward_kwargs)
        cache = first.past_key_values
        cache.batch_repeat_interleave(k)
        a_tok = [tok(a, add_special_tokens=False)["input_ids"] + [eos] for i in idx for a in answers[i]]
        a_width = max(len(a) for a in a_tok)
        a_ids = torch.full((len(a_tok), a_width), tok.pad_token_id, dtype=torch.long)
        a_mask = torch.zeros((len(a_tok), a_width), dtype=torch.long)
        for row, a in enumerate(a_tok):
            a_ids[row, : len(a)] = torch.tensor(a)
            a_mask[row, : len(a)] = 1
        a_ids, a_mask = a_ids.to(dev), a_mask.to(dev)
        lengths = p_mask.sum(-1).repeat_interleave(k)
        a_pos = lengths.unsqueeze(1) + torch.arange(a_width, device=dev).unsqueeze(0)
        mask = torch.cat([p_mask.repeat_interleave(k, 0), a_mask], dim=1)
        second = model(input_ids=a_ids, attention_mask=mask, position_ids=a_pos, past_key_values=cache,
                       **forward_kwargs)
        yield idx, first, a_ids, a_mask, second


@torch.no_grad()
def shared_prompt_nlls(model, tok, questions, answers, batch_size: int = 8, desc: str = "log-probs",
                       token_stats: bool = False):
    """Length-normalised NLL of several answers per question, encoding each prompt once.

    `answers[i]` lists the candidate answers of `questions[i]` (the same count for every
    question). The prompt's key/value cache is computed once and repeated for its candidates:
    the prompt is most of the tokens, so this is several times cheaper than one forward per pair.
    Token for token it is the sequence `encode_qa` builds; `answer_nlls` is the plain reference.

    With `token_stats`, also returns per question the first answer's per-token statistics:
    `logp` (log p(y_t)), `mu` and `sigma` (mean and standard deviation of log p(v) under
    v ~ p(.|context), for Min-k%++) and `correct` (greedy prediction == y_t).
    """
    k = len(answers[0])
    out = np.zeros((len(questions), k))
    stats: list[dict] = [{} for _ in questions]
    dev = model_device(model)
    for idx, first, a_ids, a_mask, second in prompt_cached_forwards(model, tok, questions, answers, batch_size, desc):
        # The first answer token is predicted by the prompt's last position.
        logits = torch.cat([first.logits[:, -1:].repeat_interleave(k, 0), second.logits[:, :-1]], dim=1).float()
        token_logp = torch.gather(torch.log_softmax(logits, -1), 2, a_ids.unsqueeze(-1)).squeeze(-1)
        nll = -(token_logp * a_mask).sum(-1) / a_mask.sum(-1)
        out[idx] = nll.view(len(idx), k).cpu().numpy()
        if token_stats:
            first_rows = torch.arange(len(idx), device=dev) * k
            lsm = torch.log_softmax(logits[first_rows], -1)
            mu = (lsm.exp() * lsm).sum(-1)
            sigma = ((lsm.exp() * lsm.square()).sum(-1) - mu.square()).clamp(min=0).sqrt().cpu()
            mu = mu.cpu()
            correct = (lsm.argmax(-1) == a_ids[first_rows]).cpu()
            first_logp, first_len = token_logp[first_rows].cpu(), a_mask[first_rows].sum(-1).cpu()
            for row, i in enumerate(idx):
                n = int(first_len[row])
                stats[i] = {"logp": first_logp[row, :n].numpy(), "mu": mu[row, :n].numpy(),
                            "sigma": sigma[row, :n].numpy(), "correct": correct[row, :n].numpy()}
    return (out, stats) if token_stats else out


@torch.no_grad()
def generate_answers(model, tok, questions, batch_size: int = 16, max_new_tokens: int = 24, desc="generate"):
    """Greedy answers, batched with left padding so every prompt ends where generation starts."""
    prompts = [prompt_text(tok, q) for q in questions]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = [""] * len(prompts)
    side = tok.padding_side
    tok.padding_side = "left"
    dev = model_device(model)
    try:
        for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
            idx = order[start : start + batch_size]
            enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
            gen = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
            texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1] :].cpu(), skip_special_tokens=True)
            for i, text in zip(idx, texts):
                out[i] = text.strip()
    finally:
        tok.padding_side = side
    return out


def truth_ratio_function(eval_cfg: Eval):
    return TRUTH_RATIOS[eval_cfg.truth_ratio]


def evaluate_set(model, tok, records: list[dict], eval_cfg: Eval, name: str,
                 bertscore: bool = True) -> tuple[list[dict], dict]:
    """Per-record rows and the set's aggregate metrics.

    ROUGE-L recall scores the generation against the bare fact (`answer`), so a memorised sentence
    frame earns nothing by itself; ROUGE-L F1, BLEU and BERTScore compare it with the full
    reference sentence (`answer_text`), and `prob`, perplexity, memorisation and the membership
    scores are those of that sentence, the text the models were trained on. `bertscore=False`
    leaves BERTScore out (the robustness stages re-evaluate many model variants).
    """
    if not records:
        return [], {}
    eval_cfg = resolve_eval(eval_cfg)
    ratio_of = truth_ratio_function(eval_cfg)
    k = eval_cfg.mink_k
    bs = eval_cfg.batch_size
    generated = generate_answers(
        model, tok, [r["question"] for r in records], eval_cfg.gen_batch_size,
        eval_cfg.max_new_tokens, desc=f"{name}: generate",
    )
    references = [r.get("answer_text") or r["answer"] for r in records]
    nll, stats = shared_prompt_nlls(
        model, tok, [r["question"] for r in records],
        [[ref, r["paraphrased_answer"], *r["perturbed_answers"]] for r, ref in zip(records, references)],
        bs, desc=f"{name}: log-probs", token_stats=True,
    )
    bert = bertscore_f1(references, generated) if bertscore else [None] * len(records)
    rows = []
    for r, ref, gen, row_nll, st, bs_f1 in zip(records, references, generated, nll, stats, bert):
        rows.append({
            "id": r["id"],
            "set": name,
            "question": r["question"],
            "answer": r["answer"],
            "reference": ref,
            "generated": gen,
            "correlated": bool(r.get("correlated", False)),
            "rouge_l_recall": rouge_l_recall(r["answer"], gen),
            "rouge_l_f1": rouge_l_f1(ref, gen),
            "bleu": bleu(ref, gen),
            **({"bertscore_f1": bs_f1} if bertscore else {}),
            "nll": float(row_nll[0]),
            "n_tokens": int(len(st["logp"])),
            "prob": float(answer_probability(row_nll[0])),
            "truth_ratio": ratio_of(row_nll[1], row_nll[2:]),
            "exact_memorization": exact_memorization(st["correct"]),
            "extraction_strength": extraction_strength(st["correct"]),
            "mia_loss": loss_score(st["logp"]),
            "mia_zlib": zlib_score(st["logp"], ref),
            "mia_mink": mink_score(st["logp"], k),
            "mia_minkpp": minkpp_score(st["logp"], st["mu"], st["sigma"], k),
        })
    return rows, summarize_set(rows, name)


SET_MEANS = ("rouge_l_recall", "rouge_l_f1", "bleu", "bertscore_f1", "prob", "exact_memorization",
             "extraction_strength")


def summarize_set(rows: list[dict], name: str) -> dict:
    """Means over the set's rows, corpus perplexity, and the truth-ratio aggregate (the forget
    form on forget facts, the retain form elsewhere)."""
    score = truth_ratio_forget_score if name == "forget" else truth_ratio_retain_score
    summary = {"n": len(rows)}
    summary.update({key: float(np.mean([row[key] for row in rows])) for key in SET_MEANS if key in rows[0]})
    # exp(mean token NLL over the set): weight each row's mean NLL by its token count
    summary["perplexity"] = perplexity(np.repeat([row["nll"] for row in rows], [row["n_tokens"] for row in rows]))
    summary["truth_ratio"] = score([row["truth_ratio"] for row in rows])
    return summary


MIA_ATTACKS = ("loss", "zlib", "mink", "minkpp")
# MUSE reports privacy leakage from the Min-k% attack.
PRIVLEAK_ATTACK = "mink"


def evaluate_model(model, tok, sets: dict[str, list[dict]], eval_cfg: Eval, oracle_rows=None,
                   oracle_metrics: dict | None = None):
    """Evaluate every non-empty set; add forget quality, model utility, the retain split,
    membership inference (forget vs holdout) and privacy leakage where defined.

    `oracle_rows` are the oracle's forget rows and `oracle_metrics` its metrics; None means there
    is no oracle, and the reason must be given by the caller in `forget_quality_reason`.
    """
    metrics: dict = {"truth_ratio_convention": eval_cfg.truth_ratio}
    all_rows: list[dict] = []
    for name, records in sets.items():
        rows, summary = evaluate_set(model, tok, records, eval_cfg, name)
        if rows:
            metrics[name] = summary
            all_rows.extend(rows)
            if name == "retain":
                for part, flag in (("retain_correlated", True), ("retain_other", False)):
                    chosen = [row for row in rows if row["correlated"] == flag]
                    if chosen:
                        metrics[part] = summarize_set(chosen, part)
    if "forget" in metrics and oracle_rows:
        ours = [r["truth_ratio"] for r in all_rows if r["set"] == "forget"]
        metrics["forget_quality"] = forget_quality(ours, [r["truth_ratio"] for r in oracle_rows])
    if all(s in metrics for s in UTILITY_SETS):
        metrics["model_utility"] = model_utility(metrics[s][k] for s in UTILITY_SETS for k in UTILITY_KEYS)
    if "forget" in metrics and "holdout" in metrics:
        for attack in MIA_ATTACKS:
            metrics[f"mia_{attack}_auc"] = auc([r[f"mia_{attack}"] for r in all_rows if r["set"] == "forget"],
                                               [r[f"mia_{attack}"] for r in all_rows if r["set"] == "holdout"])
        oracle_auc = (oracle_metrics or {}).get(f"mia_{PRIVLEAK_ATTACK}_auc")
        if oracle_auc is not None and oracle_auc < 1.0:
            metrics["privleak"] = privleak(metrics[f"mia_{PRIVLEAK_ATTACK}_auc"], oracle_auc)
        elif oracle_metrics is not None:
            metrics["privleak_reason"] = ("the oracle has no membership-inference AUC" if oracle_auc is None
                                          else "the oracle's AUC is 1: privacy leakage is undefined")
    elif "forget" in metrics:
        metrics["mia_reason"] = "no holdout set: membership inference compares forget with holdout answers"
    return metrics, all_rows
