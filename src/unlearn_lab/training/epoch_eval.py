"""Evaluation between unlearning epochs: how forgetting and keeping unfold, epoch by epoch."""
from __future__ import annotations

import math

import numpy as np
from transformers import TrainerCallback

from ..data.sets import sample
from ..models.hardware import resolve_eval
from ..settings import Eval
from ..timing import part
from ..evaluation.questions import generate_answers, shared_prompt_nlls, truth_ratio_function
from ..evaluation.metrics import rouge_l_recall, truth_ratio_forget_score


class EpochEvaluation(TrainerCallback):
    """Before the first epoch and after each one: forget and retain ROUGE-L recall of greedy
    answers, the forget truth-ratio score and the epoch's mean training loss, logged to a
    DVCLive run whose step is the epoch. `retain_size` caps the retain questions (a fixed
    sample spread over the set, `data.sets.sample`) to keep the cost to a few seconds per epoch.

    Within a run of several deletion requests (requests.py), epochs are numbered on from
    `epoch_offset`, and with `boundaries` the evaluations before the request and after its last
    epoch are left to the request evaluation, which hands its numbers to `record`."""

    def __init__(self, model, tok, forget: list[dict], retain: list[dict], eval_cfg: Eval, live,
                 retain_size: int = 16, epoch_offset: int = 0, boundaries: bool = False, epochs: int = 0):
        self.model, self.tok, self.live, self.cfg = model, tok, live, resolve_eval(eval_cfg)
        self.forget, self.retain = forget, sample(retain, retain_size) if retain_size else []
        self.epoch_offset, self.boundaries, self.epochs = epoch_offset, boundaries, epochs
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
        with part("epoch evaluations"):
            nll = shared_prompt_nlls(self.model, self.tok, [r["question"] for r in self.forget],
                                     [[r["paraphrased_answer"], *r["perturbed_answers"]] for r in self.forget],
                                     self.cfg.batch_size, desc="epoch eval")
            row = {
                "forget_rouge_l_recall": self._rouge(self.forget),
                "retain_rouge_l_recall": self._rouge(self.retain) if self.retain else float("nan"),
                "forget_truth_ratio": truth_ratio_forget_score([ratio_of(n[0], n[1:]) for n in nll]),
            }
        if was_training:
            self.model.train()
        return self.record(epoch, row)

    def record(self, epoch: int, scores: dict) -> dict:
        """Log one epoch's scores (with the mean training loss since the last record)."""
        row = {"epoch": epoch, **scores}
        if self.losses:
            row["train_loss"] = float(np.mean(self.losses))
        self.losses = []
        self.history.append(row)
        if self.live is not None:
            self.live.step = epoch
            for key, value in row.items():
                if key != "epoch" and math.isfinite(value):
                    self.live.log_metric(f"epoch/{key}", value)
            self.live.next_step()
        return row

    def on_train_begin(self, args, state, control, **kwargs):
        if not self.boundaries:
            self.evaluate(self.epoch_offset)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and math.isfinite(float(logs["loss"])):
            self.losses.append(float(logs["loss"]))

    def on_epoch_end(self, args, state, control, **kwargs):
        epoch = int(round(state.epoch or 0))
        if not (self.boundaries and epoch >= self.epochs):
            self.evaluate(self.epoch_offset + epoch)
