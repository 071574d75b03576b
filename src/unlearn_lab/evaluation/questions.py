"""Batched evaluation of one model on the forget / retain / world sets."""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from tqdm.auto import tqdm

from ..models import architecture
from ..models.hardware import model_device, resolve_eval
from .intervals import bootstrap_intervals
from ..models.logprobs import answer_batch, answer_logprobs, batch_logits
from ..settings import Eval
from ..timing import part
from .metrics import table
from .metrics.likelihood import TRUTH_RATIOS
from .metrics.table import Scored
from ..models.loading import collate, encode_qa, prompt_text

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
        batch = answer_batch(model, {k: v.to(dev) for k, v in collate([encoded[i] for i in idx], tok.pad_token_id).items()})
        logp, count = answer_logprobs(batch_logits(model, batch), batch["labels"])
        out[idx] = (-logp / count.clamp(min=1)).cpu().numpy()
    return out


def length_groups(lengths: list[int]) -> list[list[int]]:
    """The rows cut into at most two groups, each padded to its own longest row, so that the padded
    tokens (rows x width, summed over the groups) are fewest: the rows sorted by length and cut where
    that sum is smallest. A question's reference sentence is about twice as long as its other
    candidates; padded together, about 40% of the candidate tokens were padding. Rows keep their
    order inside a group."""
    order = sorted(range(len(lengths)), key=lambda r: lengths[r])
    widths = [lengths[r] for r in order]
    n = len(order)
    # cut c: the c shortest rows padded to widths[c-1], the rest to the longest; c = n is one group
    # (fewer groups on a tie: one forward fewer)
    cut = min(range(1, n + 1), key=lambda c: (c * widths[c - 1] + (n - c) * widths[-1], -c))
    return [sorted(g) for g in (order[:cut], order[cut:]) if g]


def prompt_cached_forwards(model, tok, questions, answers, batch_size: int, desc: str, answer_logits: bool = True,
                           **forward_kwargs):
    """Yield, group by group, the forward pass of candidate answers after their question's prompt,
    with each prompt's key/value cache computed once and selected for its candidates.

    Yields (question indices of the batch, prompt-forward output, rows, answer ids, answer mask,
    answer-forward output). `rows` (a tensor) numbers the group's answers within the batch
    question-major: row r is candidate r % k of question r // k of the batch (k candidates per
    question); a batch's answers come in up to two groups of similar length (`length_groups`).
    Prompts are padded on the left so every one ends where its answers begin; answers end with
    eos. `answer_logits=False` leaves out the output head on the answers (only the prompt's last
    position gets logits) for readers of hidden states only.
    """
    k = len(answers[0])
    eos = tok.eos_token_id
    prompts = [tok(prompt_text(tok, q), add_special_tokens=False)["input_ids"] for q in questions]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    dev = model_device(model)
    answer_kwargs = dict(forward_kwargs) if answer_logits else {**forward_kwargs, "logits_to_keep": 1}
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        idx = order[start : start + batch_size]
        left = tok.pad({"input_ids": [prompts[i] for i in idx]}, padding_side="left", return_tensors="pt")
        p_ids, p_mask = left["input_ids"], left["attention_mask"]
        p_pos = (p_mask.cumsum(-1) - 1).clamp(min=0)
        # Built on the CPU, run where the model is.
        p_ids, p_mask, p_pos = p_ids.to(dev), p_mask.to(dev), p_pos.to(dev)
        first = model(input_ids=p_ids, attention_mask=p_mask, position_ids=p_pos, use_cache=True, logits_to_keep=1,
                      **forward_kwargs)
        prompt_cache = architecture.output_cache(first)
        a_tok = [tok(a, add_special_tokens=False)["input_ids"] + [eos] for i in idx for a in answers[i]]
        groups = length_groups([len(a) for a in a_tok])
        for g, group in enumerate(groups):
            rows = torch.tensor(group)
            # The answers' forward appends to the cache: every group but the last gets a copy.
            cache = prompt_cache if g == len(groups) - 1 else copy.deepcopy(prompt_cache)
            cache.reorder_cache((rows // k).to(dev))
            right = tok.pad({"input_ids": [a_tok[r] for r in group]}, padding_side="right", return_tensors="pt")
            a_ids, a_mask = right["input_ids"].to(dev), right["attention_mask"].to(dev)
            of_question = (rows // k).to(dev)
            a_pos = p_mask.sum(-1)[of_question].unsqueeze(1) + torch.arange(a_ids.shape[1], device=dev).unsqueeze(0)
            mask = torch.cat([p_mask[of_question], a_mask], dim=1)
            second = model(input_ids=a_ids, attention_mask=mask, position_ids=a_pos,
                           **{architecture.cache_kwarg(model): cache}, **answer_kwargs)
            yield idx, first, rows, a_ids, a_mask, second


@torch.no_grad()
def shared_prompt_nlls(model, tok, questions, answers, batch_size: int = 8, desc: str = "log-probs",
                       token_stats: bool = False):
    """Length-normalised NLL of several answers per question, encoding each prompt once.

    `answers[i]` lists the candidate answers of `questions[i]` (the same count for every
    question). The prompt's key/value cache is computed once and selected for its candidates:
    the prompt is most of the tokens, so this is several times cheaper than one forward per pair.
    Token for token it is the sequence `encode_qa` builds; `answer_nlls` is the plain reference.

    With `token_stats`, also returns per question the first answer's per-token statistics:
    `logp`, `mu`, `sigma` and `correct`, in float64 (`token_statistics`).
    """
    k = len(answers[0])
    out = np.zeros((len(questions), k))
    stats: list[dict] = [{} for _ in questions]
    for idx, first, rows, a_ids, a_mask, second in prompt_cached_forwards(model, tok, questions, answers,
                                                                           batch_size, desc):
        local = (rows // k).tolist()
        # The first answer token is predicted by the prompt's last position.
        logits = torch.cat([first.logits[rows // k, -1:].to(second.logits.device), second.logits[:, :-1]], dim=1).float()
        token_logp = torch.gather(torch.log_softmax(logits, -1), 2, a_ids.unsqueeze(-1)).squeeze(-1)
        nll = (-(token_logp * a_mask).sum(-1) / a_mask.sum(-1)).cpu().numpy()
        lengths = a_mask.sum(-1).tolist()
        for row, (r, q) in enumerate(zip(rows.tolist(), local)):
            out[idx[q], r % k] = nll[row]
            # Question by question, so the float64 copy is one answer's positions x vocabulary,
            # not the whole group's logits.
            if token_stats and r % k == 0:
                n = int(lengths[row])
                stats[idx[q]] = {key: v.cpu().numpy() for key, v in token_statistics(logits[row, :n], a_ids[row, :n]).items()}
    return (out, stats) if token_stats else out


def token_statistics(logits: torch.Tensor, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per answer position t, from its next-token logits (positions x vocabulary) and the answer's
    token ids: `logp` = log p(y_t), `mu` = E_v[log p(v)] and `sigma` = sqrt(E_v[(log p(v) - mu)^2])
    under v ~ p(.|context) (Min-k%++'s statistics, Zhang et al. 2024), and `correct` (greedy
    prediction == y_t).

    In float64 with the variance centred first: near a uniform distribution E[log p^2] and mu^2
    are both about log(vocabulary)^2 (~117) and their difference is lost in float32. sigma is not
    clamped here; `minkpp_score` clamps it.
    """
    lsm = torch.log_softmax(logits.double(), -1)
    p = lsm.exp()
    mu = (p * lsm).sum(-1)
    var = (p * (lsm - mu.unsqueeze(-1)).square()).sum(-1)
    return {"logp": lsm.gather(-1, ids.unsqueeze(-1)).squeeze(-1), "mu": mu, "sigma": var.sqrt(),
            "correct": lsm.argmax(-1) == ids}


@torch.no_grad()
def generate_texts(model, tok, prompts: list[str], batch_size: int = 16, max_new_tokens: int = 24,
                   desc: str = "generate", samples: int = 0, temperature: float = 1.0):
    """Continuations of ready-made prompt strings, batched with left padding so every prompt ends
    where generation starts: the greedy one per prompt (samples=0), or a list of `samples`
    continuations per prompt drawn at `temperature` (seed torch first for repeatable draws)."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list = [""] * len(prompts)
    dev = model_device(model)
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} if samples \
        else {"do_sample": False}
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        idx = order[start : start + batch_size]
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, padding_side="left",
                  add_special_tokens=False).to(dev)
        if samples:
            enc = prefilled_samples(model, enc, samples)
        gen = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id, **sampling)
        texts = [t.strip() for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1] :].cpu(), skip_special_tokens=True)]
        for row, i in enumerate(idx):
            out[i] = texts[row * samples : (row + 1) * samples] if samples else texts[row]
    return out


def prefilled_samples(model, enc, samples: int) -> dict:
    """`generate`'s inputs for `samples` continuations of each prompt, each prompt's key/value cache
    computed once: its rows repeated `samples` times (what `num_return_sequences` does) with the
    cache of all but the last prompt token, so `generate` runs only that token before decoding.
    Left to `num_return_sequences`, every sample prefilled its prompt anew: at 16 samples of a
    ~30-token prompt and 24 new tokens, about half of the work. The sampling draws are the same."""
    ids, mask = enc["input_ids"], enc["attention_mask"]
    if ids.shape[1] < 2:
        return {"input_ids": ids.repeat_interleave(samples, 0), "attention_mask": mask.repeat_interleave(samples, 0)}
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    ahead = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=pos[:, :-1], use_cache=True,
                  logits_to_keep=1)
    cache = architecture.output_cache(ahead)
    cache.batch_repeat_interleave(samples)
    return {"input_ids": ids.repeat_interleave(samples, 0), "attention_mask": mask.repeat_interleave(samples, 0),
            architecture.cache_kwarg(model): cache}


def generate_answers(model, tok, questions, batch_size: int = 16, max_new_tokens: int = 24, desc="generate"):
    """Greedy answers to chat questions (the model's chat template around each)."""
    return generate_texts(model, tok, [prompt_text(tok, q) for q in questions], batch_size, max_new_tokens, desc)


def gradient_norms(model, tok, pairs, max_length: int = 128, desc: str = "gradient norms") -> list[float]:
    """Per (question, answer) pair: ||grad_theta NLL||_2 over every weight of `model`, NLL the
    answer's token-averaged cross-entropy, one example at a time. The weights' `.grad` stay as
    they were (torch.autograd.grad)."""
    params = [p for p in model.parameters() if p.is_floating_point()]
    flags = [p.requires_grad for p in params]
    dev = model_device(model)
    out = []
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            for q, a in tqdm(pairs, desc=desc, leave=False):
                batch = {k: v.to(dev) for k, v in collate([encode_qa(tok, q, a, max_length)], tok.pad_token_id).items()}
                batch = answer_batch(model, batch)
                logp, count = answer_logprobs(batch_logits(model, batch), batch["labels"])
                grads = torch.autograd.grad(-(logp.sum() / count.sum().clamp(min=1)), params, allow_unused=True)
                # Each tensor's norm in float32, combined in float64: a float64 copy of every
                # gradient took a third of the gradient-norm time, for a change below 1e-6 relative.
                out.append(math.sqrt(sum(float(torch.linalg.vector_norm(g)) ** 2 for g in grads if g is not None)))
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
    return out


class Env:
    """The models a batch metric of the table may run: the evaluated `model` and the fluency
    `judge` (the base model; None: fluency is not measured)."""

    def __init__(self, model, tok, judge=None, name: str = ""):
        self.model, self.tok, self.judge, self.name = model, tok, judge, name

    def gradient_norms(self, scored) -> list[float]:
        return gradient_norms(self.model, self.tok, [(s.record["question"], s.reference) for s in scored],
                              desc=f"{self.name}: gradient norms")

    def judge_nlls(self, scored) -> list[float]:
        return list(answer_nlls(self.judge, self.tok, [(s.record["question"], s.generated) for s in scored],
                                desc=f"{self.name}: fluency"))


def truth_ratio_function(eval_cfg: Eval):
    return TRUTH_RATIOS[eval_cfg.truth_ratio]


def evaluate_set(model, tok, records: list[dict], eval_cfg: Eval, name: str,
                 bertscore: bool = True, judge=None) -> tuple[list[dict], dict]:
    """Per-record rows and the set's aggregate metrics: every row-level metric of the table
    (metrics/table.py) for each record, then the set's summary.

    The generation is compared with the bare fact (`answer`) or the full reference sentence
    (`answer_text`) as each metric's row says; `prob`, perplexity, memorisation and the membership
    scores are those of the reference sentence, the text the models were trained on.
    `bertscore=False` leaves out the optional (costly) metrics: the robustness stages re-evaluate
    many model variants. `judge` (the base model) scores the generations' fluency.
    """
    if not records:
        return [], {}
    eval_cfg = resolve_eval(eval_cfg)
    with part("generate"):
        generated = generate_answers(
            model, tok, [r["question"] for r in records], eval_cfg.gen_batch_size,
            eval_cfg.max_new_tokens, desc=f"{name}: generate",
        )
    references = [r.get("answer_text") or r["answer"] for r in records]
    with part("log-probs"):
        nll, stats = shared_prompt_nlls(
            model, tok, [r["question"] for r in records],
            [[ref, r["paraphrased_answer"], *r["perturbed_answers"]] for r, ref in zip(records, references)],
            eval_cfg.batch_size, desc=f"{name}: log-probs", token_stats=True,
        )
    scored = [Scored(r, ref, gen, row_nll, st, eval_cfg)
              for r, ref, gen, row_nll, st in zip(records, references, generated, nll, stats)]
    env = Env(model, tok, judge, name)
    values = {}
    for metric in table.of_level("row"):
        if ((metric.optional and not bertscore) or (metric.sets is not None and name not in metric.sets)
                or (metric.needs_judge and judge is None)):
            continue
        # The batch metrics are the ones that run a model (gradient norms, the judge, BERTScore).
        with part(metric.name if metric.batch else "row metrics"):
            values[metric.name] = metric.compute(scored, env) if metric.batch else [metric.compute(s) for s in scored]
    rows = []
    for i, s in enumerate(scored):
        r = s.record
        rows.append({"id": r["id"], "set": name, "question": r["question"], "answer": r["answer"],
                     "reference": s.reference, "generated": s.generated, "correlated": bool(r.get("correlated", False)),
                     "n_tokens": int(len(s.stats["logp"])), **{key: v[i] for key, v in values.items()}})
    return rows, summarize_set(rows, name)


def summarize_set(rows: list[dict], name: str) -> dict:
    """The set's summary: its size, each row-level metric's aggregate (a mean, or the truth-ratio
    score of the set's kind) and each set-level metric."""
    summary = {"n": len(rows)}
    for metric in table.of_level("row") + table.of_level("document"):
        if metric.aggregate is not None and metric.name in rows[0]:
            summary[metric.name] = metric.aggregate([row[metric.name] for row in rows], name)
    for metric in table.of_level("set"):
        summary[metric.name] = metric.compute(rows, name)
    return summary


def evaluate_model(model, tok, sets: dict[str, list[dict]], eval_cfg: Eval, oracle_rows=None,
                   oracle_metrics: dict | None = None, judge=None, more_rows=None):
    """Evaluate every non-empty set, then summarise the rows (`metrics_from_rows`) and, with
    `eval.bootstrap` resamples, add a 95% interval over questions to every metric the table marks
    (`<name>_ci95: [low, high]`, next to the value).

    `oracle_rows` are the oracle's rows (forget and holdout) and `oracle_metrics` its metrics;
    None means there is no oracle, and the reason must be given by the caller in
    `forget_quality_reason`. `judge` (the base model) scores the fluency of the generations.
    `more_rows` (a callable, run after the sets) adds rows computed elsewhere: the documents'
    passages (document_eval.py), summarised and resampled with the rest.
    """
    all_rows: list[dict] = []
    for name, records in sets.items():
        rows, _ = evaluate_set(model, tok, records, eval_cfg, name, judge=judge)
        all_rows.extend(rows)
    if more_rows is not None:
        with part("documents"):
            all_rows.extend(more_rows())
    with part("summaries"):
        metrics = {"truth_ratio_convention": eval_cfg.truth_ratio, "utility_convention": eval_cfg.utility,
                   **metrics_from_rows(all_rows, oracle_rows, oracle_metrics, eval_cfg)}
    if eval_cfg.bootstrap and all_rows:
        with part("intervals"):
            add_intervals(metrics, all_rows, oracle_rows, oracle_metrics, eval_cfg)
    return metrics, all_rows


def metrics_from_rows(rows: list[dict], oracle_rows=None, oracle_metrics: dict | None = None,
                      eval_cfg: Eval | None = None) -> dict:
    """Each set's summary (the retain set also split into facts correlated with the forget set and
    the others), then each model-level metric of the table where its inputs are there (forget
    quality, model utility, membership inference, privacy leakage) or the reason it is undefined."""
    metrics: dict = {}
    for name in dict.fromkeys(r["set"] for r in rows):
        chosen = [r for r in rows if r["set"] == name]
        metrics[name] = summarize_set(chosen, name)
        if name == "retain":
            for part, flag in (("retain_correlated", True), ("retain_other", False)):
                split = [r for r in chosen if r["correlated"] == flag]
                if split:
                    metrics[part] = summarize_set(split, part)
    context = table.ModelContext(metrics, rows, oracle_rows, oracle_metrics, eval_cfg)
    for metric in table.of_level("model"):
        try:
            value = metric.compute(context)
        except table.Undefined as why:
            metrics[f"{metric.reason_key or metric.name}_reason"] = str(why)
            continue
        if value is not None:
            metrics[metric.name] = value
    return metrics


def add_intervals(metrics: dict, rows: list[dict], oracle_rows, oracle_metrics, eval_cfg: Eval, seed: int = 0):
    """`<name>_ci95` next to every value in `metrics` of a metric the table marks `interval`:
    the questions of each set resampled (intervals.py), the oracle's rows paired by question; the
    oracle's own metrics are recomputed on each resample, so privacy leakage's reference moves
    with it."""
    keys = [(s, m.name) for s in metrics if isinstance(metrics[s], dict)
            for m in table.of_level("row") + table.of_level("document") if m.interval and m.name in metrics[s]]
    keys += [(m.name,) for m in table.of_level("model") if m.interval and m.name in metrics]

    def recompute(sample, oracle_sample):
        reference = metrics_from_rows(oracle_sample, eval_cfg=eval_cfg) if oracle_sample else oracle_metrics
        return metrics_from_rows(sample, oracle_sample, reference, eval_cfg)

    for key, interval in bootstrap_intervals(rows, recompute, keys, oracle_rows, eval_cfg.bootstrap, seed).items():
        place = metrics[key[0]] if len(key) == 2 else metrics
        name = f"{key[-1]}_ci95"
        if interval is None:
            place[f"{name}_reason"] = "undefined in some resamples of the questions"
        else:
            place[name] = interval
