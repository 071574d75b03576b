"""Is the knowledge still inside? Per-layer hidden states of unlearned, target and oracle models,
their drift, and a linear probe that tries to read a forgotten answer back out.

Hidden states are mean-pooled over the answer tokens of the chat-formatted question + answer,
not over the whole sequence: the shared system prompt is most of the tokens and would make every
pooled vector alike, and the answer positions are where a model recalls (and unlearning acts).
"""
from __future__ import annotations

import numpy as np
import torch

from ..models import architecture
from ..data.sets import load_sets, sample
from ..errors import UserError
from ..evaluation.questions import prompt_cached_forwards
from ..settings import Represent
from ..timing import part
from .scores import mean_cosine, mean_drift_norm, mean_logit_drift_norm


@torch.no_grad()
def answer_layer_readouts(model, tok, questions: list[str], answers: list[list[str]], batch_size: int = 8,
                          lens: bool = False, desc: str = "hidden states", lens_every: int = 1):
    """Per layer, from one forward pass of each candidate answer after its question:

    - the hidden state mean-pooled over the answer's tokens (eos included), an array
      (questions, candidates, layers + 1, hidden); layer 0 is the embedding output and the last
      is after the final norm, as Hugging Face returns them;
    - with `lens`, the logit lens (nostalgebraist 2020; used by Patil et al. 2023, arXiv
      2309.17410, to find "deleted" answers in intermediate layers): the mean log-probability
      of the answer's tokens when each layer's state is read through the final norm and the
      output head, an array (questions, candidates, layers + 1) whose last layer is the
      model's own prediction (Hugging Face's last state is already normed: no second norm).
      With `lens_every` n > 1 only every n-th layer (from 0) and the last are read; the others
      are NaN (each read is a pass through the 49,152-word head, most of the stage's time).
    """
    k = len(answers[0])
    pooled_all = lens_all = None
    # The output head runs only where the lens reads it (`architecture.head_logits`), not on
    # every answer token of the forward.
    for idx, first, rows, a_ids, a_mask, second in prompt_cached_forwards(
            model, tok, questions, answers, batch_size, desc, answer_logits=False, output_hidden_states=True):
        n_layers = len(second.hidden_states)
        at = ([idx[q] for q in (rows // k).tolist()], (rows % k).tolist())
        states = torch.stack(second.hidden_states, dim=1).float()  # (rows, layers+1, width, hidden)
        weights = a_mask.float() / a_mask.sum(-1, keepdim=True)
        pooled = torch.einsum("rlth,rt->rlh", states, weights).cpu().numpy()
        if pooled_all is None:
            pooled_all = np.zeros((len(questions), k, *pooled.shape[1:]), dtype=np.float32)
            lens_all = np.full((len(questions), k, n_layers), np.nan) if lens else None
        pooled_all[at] = pooled
        for layer in lens_layers(n_layers, lens_every) if lens else []:
            # The state before each answer token predicts it: the prompt's last, then the answer's.
            before = torch.cat([first.hidden_states[layer][(rows // k).to(a_ids.device), -1:],
                                second.hidden_states[layer][:, :-1]], dim=1)
            logits = architecture.lens_logits(model, before) if layer < n_layers - 1 \
                else architecture.head_logits(model, before)
            logp = torch.log_softmax(logits.float(), -1).gather(2, a_ids.unsqueeze(-1)).squeeze(-1)
            lens_all[(*at, layer)] = ((logp * a_mask).sum(-1) / a_mask.sum(-1)).cpu().numpy()
    return pooled_all, lens_all


def lens_layers(n_layers: int, every: int) -> list[int]:
    """The layers the logit lens reads: every `every`-th from 0, and always the last (the output)."""
    return sorted(set(range(0, n_layers, every)) | {n_layers - 1})


def lens_accuracy(logprobs: np.ndarray) -> list[float]:
    """Per layer, `candidate_choice_accuracy` of the logit-lens log-probabilities
    (questions, candidates, layers): does that layer already rank the true answer first?
    NaN for a layer the lens did not read."""
    return [candidate_choice_accuracy(logprobs[:, :, layer]) if np.isfinite(logprobs[:, :, layer]).all()
            else float("nan") for layer in range(logprobs.shape[2])]


def layer_drift(a: np.ndarray, b: np.ndarray, head: np.ndarray | None = None) -> dict[str, list[float]]:
    """Per layer, between two models' pooled states (prompts, layers, hidden): mean cosine
    similarity, mean |dh| and (given the output matrix) mean |W_head dh|."""
    layers = range(a.shape[1])
    out = {"cosine": [mean_cosine(a[:, i], b[:, i]) for i in layers],
           "drift_norm": [mean_drift_norm(a[:, i], b[:, i]) for i in layers]}
    if head is not None:
        out["logit_drift_norm"] = [mean_logit_drift_norm(a[:, i], b[:, i], head) for i in layers]
    return out


def candidate_choice_accuracy(scores: np.ndarray) -> float:
    """Fraction of questions whose true candidate (column 0) scores strictly highest among its
    candidates; chance is 1 / candidates."""
    return float(np.mean(scores[:, 0] > scores[:, 1:].max(axis=1)))


def probe_layer(train: np.ndarray, *tests: np.ndarray, seed: int = 0, c: float = 1.0) -> list[float]:
    """Train a linear probe on one layer's pooled states and test it on other questions.

    `train` and each of `tests` are (questions, candidates, hidden) with the true answer in column
    0 and wrong answers after it. The probe is an L2 logistic regression on standardised features,
    true vs wrong, with balanced class weights, fitted once; it is scored on each test set by
    `candidate_choice_accuracy`: can it pick each question's true answer from its candidates?
    Returns one accuracy per test set.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    q, k, h = train.shape
    x = train.reshape(q * k, h)
    y = np.tile(np.r_[1, np.zeros(k - 1)], q)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000,
                                                               random_state=seed))
    probe.fit(x, y)
    return [candidate_choice_accuracy(probe.decision_function(t.reshape(-1, h)).reshape(t.shape[:2])) for t in tests]


# The probe's curves, in the order of the table's columns.
PROBE_ACCURACIES = ("retain_accuracy", "forget_accuracy")


def probe_all_layers(retain_states: np.ndarray, forget_states: np.ndarray, seed: int = 0,
                     c: float = 1.0) -> dict[str, list[float]]:
    """Per layer: a probe trained on the even-numbered retain questions, scored on the odd ones
    (`retain_accuracy`: does the probe work where the knowledge is intact?) and on the forget
    questions (`forget_accuracy`: can it still read the forgotten answers?).

    States are (questions, candidates, layers, hidden), true answer first."""
    train, held_out = retain_states[0::2], retain_states[1::2]
    out: dict[str, list[float]] = {key: [] for key in PROBE_ACCURACIES}
    for layer in range(retain_states.shape[2]):
        retain, forget = probe_layer(train[:, :, layer], held_out[:, :, layer], forget_states[:, :, layer],
                                     seed=seed, c=c)
        out["retain_accuracy"].append(retain)
        out["forget_accuracy"].append(forget)
    return out


def sentence_candidates(records: list[dict], pool: list[dict], k: int = 5) -> list[list[str]]:
    """Per record: its answer sentence, then the same sentence with the fact swapped for the
    facts of other records of the same field (in pool order, starting after the record's own
    place so records get different ones). Only the fact differs between candidates, so a probe
    cannot tell them apart by form, and the sentence is the one the models were trained on.

    Every record gets the same number of wrong ones: `k`, or fewer when some field has fewer
    other answers in the pool (at least one is needed)."""
    from ..data.records import wrong_answer_text

    by_field: dict[str, list[str]] = {}
    for r in pool:
        values = by_field.setdefault(r["field"], [])
        if r["answer"] not in values:
            values.append(r["answer"])
    others = [[a for a in by_field.get(r["field"], []) if a != r["answer"]] for r in records]
    k = min([k, *(len(o) for o in others)])
    if k < 1:
        worst = records[min(range(len(records)), key=lambda i: len(others[i]))]
        raise UserError(f"record {worst['id']}: no other answer of field {worst['field']!r} in the data to "
                        "contrast it with; the representation probe needs at least one")
    out = []
    for i, (r, wrong_pool) in enumerate(zip(records, others)):
        start = i % len(wrong_pool)
        wrong = (wrong_pool[start:] + wrong_pool[:start])[:k]
        out.append([r.get("answer_text") or r["answer"], *(wrong_answer_text(r, w) for w in wrong)])
    return out


def represent_facts(folder, retain_size: int) -> tuple[list[dict], list[dict], list[dict]]:
    """(forget, retain, pool): the facts every model of the analysis is read on, from the
    processed sets in `folder`, the same in each stage that reads a model: all forget facts,
    `sample` of `retain_size` retain facts, and the pool the candidates' wrong facts come from
    (every fact of the same field, retain facts not sampled included)."""
    sets = load_sets(folder, ("forget", "retain", "holdout"))
    pool = sets["forget"] + sets["retain"] + sets["holdout"]
    return sets["forget"], sample(sets["retain"], retain_size), pool


def represent_model(model, tok, forget: list[dict], retain: list[dict], pool: list[dict], batch_size: int,
                    name: str, candidates: int = 5, lens_every: int = 1) -> dict:
    """Pooled states of one model on forget and retain facts (the true sentence first, then the
    swapped ones), and the logit-lens log-probabilities of the forget candidates."""
    out = {}
    # One candidate count for both sets: the probe trained on retain is scored on forget.
    every = sentence_candidates(forget + retain, pool, candidates)
    for set_name, records, answers in (("forget", forget, every[:len(forget)]), ("retain", retain, every[len(forget):])):
        states, lens = answer_layer_readouts(model, tok, [r["question"] for r in records], answers, batch_size,
                                             lens=set_name == "forget", desc=f"{name}: {set_name} states",
                                             lens_every=lens_every)
        out[set_name] = {"sentence": states[:, 0], "candidates": states, "lens": lens}
    return out


def model_probes(states: dict, seed: int = 0, c: float = 1.0) -> dict:
    """What one model's `represent_model` states say alone, without another model to compare
    with: per layer the probe (`probe_all_layers`) and the logit lens's choice accuracy on forget
    facts, and the chance level of a choice among its candidates."""
    return {"probe": probe_all_layers(states["retain"]["candidates"], states["forget"]["candidates"], seed, c),
            "lens": {"forget_accuracy": lens_accuracy(states["forget"]["lens"])},
            "chance": 1.0 / states["forget"]["candidates"].shape[1]}


def read_model(model, tok, facts: tuple[list[dict], list[dict], list[dict]], cfg: Represent, seed: int,
               name: str) -> tuple[dict[str, np.ndarray], dict]:
    """One model's part of the analysis, on `represent_facts`: (its pooled states of the true
    sentences per set, what `analyse` compares across models; its `model_probes`)."""
    forget, retain, pool = facts
    with part("hidden states"):
        states = represent_model(model, tok, forget, retain, pool, cfg.batch_size, name, cfg.candidates,
                                 cfg.lens_every)
    with part("probes"):
        probes = model_probes(states, seed, cfg.probe_c)
    return {s: states[s]["sentence"] for s in ("forget", "retain")}, probes


def analyse(sentences: dict[str, dict[str, np.ndarray]], probes: dict[str, dict], head: np.ndarray) -> dict:
    """The represent stage's metrics from each model's `read_model` parts, by model name
    (unlearned first: the order of the table's columns).

    Drift of unlearned against target and against oracle (when there is one), per set; per model
    and layer the probe and the logit-lens choice accuracy on forget facts; and their maxima
    over layers."""
    unlearned = sentences["unlearned"]
    for name, sets in sentences.items():
        for s, states in sets.items():
            if states.shape != unlearned[s].shape:
                raise UserError(f"represent: the {name} model's {s} states have shape {states.shape}, the unlearned "
                                f"model's {unlearned[s].shape}: read on other facts or settings; re-run "
                                f"`dvc repro represent_readouts@{name}`")
    result: dict = {"layers": int(unlearned["forget"].shape[1])}
    for other in ("target", "oracle"):
        if other in sentences:
            result[f"unlearned_vs_{other}"] = {s: layer_drift(unlearned[s], sentences[other][s], head)
                                              for s in ("forget", "retain")}
    # A model's probes read back from JSON come in the file's (sorted) key order: the columns' is set here.
    result["probe"] = {name: {key: p["probe"][key] for key in PROBE_ACCURACIES} for name, p in probes.items()}
    result["lens"] = {name: p["lens"] for name, p in probes.items()}
    for name in probes:
        probe, lens = result["probe"][name]["forget_accuracy"], result["lens"][name]["forget_accuracy"]
        result[f"probe_{name}_forget_accuracy_max"] = max(probe)
        result[f"probe_{name}_forget_accuracy_best_layer"] = int(np.argmax(probe))
        result[f"lens_{name}_forget_accuracy_max"] = float(np.nanmax(lens))
        result[f"lens_{name}_forget_accuracy_best_layer"] = int(np.nanargmax(lens))
        result[f"lens_{name}_forget_accuracy_output"] = lens[-1]
    result["probe_chance"] = probes["unlearned"]["chance"]
    return result


def layer_table(result: dict):
    """One row per layer: drift (unlearned vs target, and vs oracle), and every probe accuracy."""
    import pandas as pd

    table = {"layer": list(range(result["layers"]))}
    for other in ("target", "oracle"):
        prefix = "" if other == "target" else "oracle_"
        for set_name, drift in result.get(f"unlearned_vs_{other}", {}).items():
            for key, values in drift.items():
                table[f"{prefix}{set_name}_{key}"] = values
    for kind in ("probe", "lens"):
        for model, block in result[kind].items():
            for key, values in block.items():
                table[f"{kind}_{model}_{key}"] = values
    table["probe_chance"] = [result["probe_chance"]] * result["layers"]
    return pd.DataFrame(table)


def scalar_metrics(result: dict) -> dict:
    """The per-layer curves summarised for `dvc metrics`: probe maxima, the largest drift and
    the lowest cosine over layers, per set."""
    out = {k: v for k, v in result.items() if not isinstance(v, dict)}
    for other in ("target", "oracle"):
        for set_name, drift in result.get(f"unlearned_vs_{other}", {}).items():
            block = out.setdefault(f"unlearned_vs_{other}", {}).setdefault(set_name, {})
            block["cosine_min"] = min(drift["cosine"])
            block["drift_norm_max"] = max(drift["drift_norm"])
            if "logit_drift_norm" in drift:
                block["logit_drift_norm_max"] = max(drift["logit_drift_norm"])
    for model, probe in result["probe"].items():
        out[f"probe_{model}_retain_accuracy_max"] = max(probe["retain_accuracy"])
    out["probe_forget_accuracy_max"] = out["probe_unlearned_forget_accuracy_max"]
    out["lens_forget_accuracy_max"] = out["lens_unlearned_forget_accuracy_max"]
    return out


def headline(metrics: dict) -> dict:
    """The best layer's accuracy at picking the true forget fact, for the probe and the logit
    lens, and the chance level to read them against (from `scalar_metrics`)."""
    return {k: metrics[k] for k in ("probe_forget_accuracy_max", "lens_forget_accuracy_max", "probe_chance")
            if k in metrics}
