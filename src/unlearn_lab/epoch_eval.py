"""Evaluation between unlearning epochs: how forgetting and keeping unfold, epoch by epoch."""
from __future__ import annotations

import math

import numpy as np
from transformers import TrainerCallback

from .data.sets import sample
from .hardware import resolve_eval
from .settings import Eval
from .evaluation import generate_answers, shared_prompt_nlls, truth_ratio_function
from .metrics import rouge_l_recall, truth_ratio_forget_score


class EpochEvaluation(TrainerCallback):
    """Before the first epoch and after each one: forget and retain ROUGE-L recall of greedy
    answers, the forget truth-ratio score and the epoch's mean training loss, logged to a
    DVCLive run whose step is the epoch. `retain_size` caps the retain questions (a fixed
    sample spread over the set, `data.sets.sample`) to keep the cost to a few seconds per epoch."""

    def __init__(self, model, tok, forget: list[dict], retain: list[dict], eval_cfg: Eval, live,
                 retain_size: int = 16):
        self.model, self.tok, self.live, self.cfg = model, tok, live, resolve_eval(eval_cfg)
        self.forget, self.retain = forget, sample(retain, retain_size) if retain_size else []
        self.losses: list[float] = []
        self.history: list[dict] = []

    def _rouge(self, records) -> float:
        gens = generate_answers(self.model, self.tok, [r["question"] for r in records],
                                self.cfg.gen_batch_size, self.cfg.max_new_tokens,
                                desc="epoch eval")
        return float(np.mean([rouge_l_recall(r["answer"], g) for r, g in zip(records, gens)]))

    def evaluate(self, epoch: int) -> dict:
        was_training = self.model.training
        self.model.eval()
        ratio_of = truth_ratio_function(self.cfg)
        nll = shared_prompt_nlls(self.model, self.tok, [r["question"] for r in self.forget],
                                 [[r["paraphrased_answer"], *r["perturbed_answers"]] for r in self.forget],
                                 self.cfg.batch_size, desc="epoch eval")
        row = {
            "epoch": epoch,
            "forget_rouge_l_recall": self._rouge(self.forget),
            "retain_rouge_l_recall": self._rouge(self.retain) if self.retain else float("nan"),
            "forget_truth_ratio": truth_ratio_forget_score([ratio_of(n[0], n[1:]) for n in nll]),
        }
        if self.losses:
            row["train_loss"] = float(np.mean(self.losses))
        self.losses = []
        if was_training:
            self.model.train()
        self.history.append(row)
        if self.live is not None:
            self.live.step = epoch
            for key, value in row.items():
                if key != "epoch" and math.isfinite(value):
                    self.live.log_metric(f"epoch/{key}", value)
            self.live.next_step()
        return row

    def on_train_begin(self, args, state, control, **kwargs):
        self.evaluate(0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and math.isfinite(float(logs["loss"])):
            self.losses.append(float(logs["loss"]))

    def on_epoch_end(self, args, state, control, **kwargs):
        self.evaluate(int(round(state.epoch or 0)))
