"""Supervised fine-tuning with Hugging Face `Trainer`, and the training settings unlearning shares."""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path

import torch
from transformers import ProgressCallback, Trainer, TrainingArguments, set_seed
from transformers.integrations import DVCLiveCallback
from transformers.utils import logging as hf_logging

from ..models import hardware
from ..errors import UserError
from ..models.logprobs import answer_batch
from ..models.loading import add_lora, collate, encode_record
from ..settings import Finetune, Hardware, Model, Schedule


class EncodedDataset(torch.utils.data.Dataset):
    def __init__(self, tok, records: list[dict], max_length: int):
        # Models learn the full-sentence answer (the bare one where a record has none), and a
        # document every token of each of its chunks.
        self.items = [item for r in records for item in encode_record(tok, r, max_length)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class LiveCallback(DVCLiveCallback):
    """Per-step curves into the stage's DVCLive run, through transformers' DVCLive integration:
    `train/loss`, `train/grad_norm`, `train/learning_rate`, each `train_<part>` the Trainer's logs
    carry (UnlearnTrainer adds the method's parts) as `train/<part>`, and `epoch` (no plot).

    Unlike the stock callback it leaves the Live object to the stage: no Trainer arguments logged
    as params, no model logged, and the run is not ended when training ends. A resumed fine-tune
    continues the step count, so its curve lines up with the lost one's.
    """

    CURVES = ("loss", "grad_norm", "learning_rate")

    def __init__(self, live):
        super().__init__(live=live, log_model=False)

    def setup(self, args, state, model):
        self._initialized = True
        if state.global_step:
            self.live.step = state.global_step

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        curves = {f"train_{key}": logs[key] for key in self.CURVES if logs.get(key) is not None}
        curves.update({key: value for key, value in logs.items() if key.startswith("train_")})
        curves = {key: float(value) for key, value in curves.items() if math.isfinite(float(value))}
        live = self.live
        # `epoch` (summary only, no plot) goes in after the curves, just before the step ends.
        self.live = _EpochLast(live, float(state.epoch or 0))
        try:
            super().on_log(args, state, control, model=model, logs=curves, **kwargs)
        finally:
            self.live = live

    def on_train_end(self, args, state, control, **kwargs):
        pass


class TrainingBar(ProgressCallback):
    """transformers' progress bar without the dict it prints for every logged step: the running
    loss, and the method's parts (`train_<part>`) while the postfix stays short, sit in the bar's
    postfix; the end-of-training summary only adds the mean loss to it. While it runs,
    transformers' own bars are off: a checkpoint's "Writing model shards" bar would break into it."""

    WIDTH = 60

    def __init__(self):
        super().__init__()
        self.postfix: dict[str, str] = {}
        self._other_bars = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.postfix = {}
        self._other_bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        super().on_train_begin(args, state, control, **kwargs)

    def on_train_end(self, args, state, control, **kwargs):
        super().on_train_end(args, state, control, **kwargs)
        if self._other_bars:
            hf_logging.enable_progress_bar()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or self.training_bar is None:
            return
        if "loss" in logs:
            postfix = {"loss": _short(logs["loss"])}
            for key, value in logs.items():
                if key.startswith("train_"):
                    wider = {**postfix, key.removeprefix("train_"): _short(value)}
                    if len(_postfix_text(wider)) <= self.WIDTH:
                        postfix = wider
            self.postfix = postfix
        elif "train_loss" in logs:
            self.postfix = {**self.postfix, "mean_loss": _short(logs["train_loss"])}
        else:
            return
        self.training_bar.set_postfix(self.postfix)


def _short(value) -> str:
    return f"{float(value):.4g}"


def _postfix_text(postfix: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in postfix.items())


def use_training_bar(trainer: Trainer) -> Trainer:
    """Swap the Trainer's stock progress bar for a TrainingBar; returns the trainer."""
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(TrainingBar())
    return trainer


class _EpochLast:
    """The Live object, logging `epoch` without a plot when the step is closed."""

    def __init__(self, live, epoch: float):
        self._live, self._epoch = live, epoch

    def __getattr__(self, name):
        return getattr(self._live, name)

    def next_step(self):
        self._live.log_metric("epoch", self._epoch, plot=False)
        self._live.next_step()


def training_args(cfg: Schedule, scratch: str | Path, seed: int, lr: float, hw: Hardware,
                  checkpoint: bool = False, max_steps: int = -1) -> TrainingArguments:
    """Trainer settings from a stage's schedule (`finetune:` or `unlearn:`) and the resolved
    `hardware:` settings (precision, optimizer and the like). `max_steps` > 0 (the relearning
    attack's fixed step budget) overrides epochs."""
    return TrainingArguments(
        output_dir=str(scratch),
        num_train_epochs=cfg.epochs,
        max_steps=max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=lr,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=1,
        # Checkpoints let a killed fine-tune resume: one per epoch, only the newest kept, with
        # optimizer, scheduler and RNG state (save_only_model=False) so resuming continues the
        # same run rather than restarting the optimizer.
        save_strategy="epoch" if checkpoint else "no",
        save_total_limit=1 if checkpoint else None,
        save_only_model=False,
        report_to=[],
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=False,
        **hardware.trainer_kwargs(hw),
    )


def prepare_trainable(model, model_cfg: Model, seed: int):
    set_seed(seed)
    if model_cfg.lora is not None:
        return add_lora(model, model_cfg.lora)
    model.train()
    return model


FINGERPRINT = "fingerprint.txt"
# What a complete Trainer checkpoint holds last: trainer_state.json is written after the weights,
# optimizer and RNG state, so a checkpoint killed while saving lacks it.
CHECKPOINT_DONE = ("trainer_state.json", "optimizer.pt", "rng_state.pth")


def run_fingerprint(model, records: list[dict], model_cfg: Model, cfg: Finetune, seed: int) -> str:
    """A hash of everything a fine-tune depends on: settings, data and the starting weights
    (a changed base model with the same params must not resume an old run)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"model": model_cfg.model_dump(), "finetune": cfg.model_dump(), "seed": seed,
                         "records": records},
                        sort_keys=True, ensure_ascii=False).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
    return h.hexdigest()


MACHINE = "machine.json"


def resumable_checkpoint(scratch: Path, fingerprint: str, machine: dict | None = None) -> str | None:
    """The newest complete checkpoint of the same run in `scratch`, else None; checkpoints of
    another run (other params, data or weights) are deleted so they cannot be mixed in.

    `machine`: the resolved machine choices (precision, optimizer, device...) of this run. A
    checkpoint made with other ones is refused (UserError): resuming it would mix two precisions
    in one model, and deleting hours of training behind the user's back is no better."""
    stamp, made_with = scratch / FINGERPRINT, scratch / MACHINE
    machine = json.loads(json.dumps(machine or {}, sort_keys=True))
    done = [c for c in scratch.glob("checkpoint-*")
            if c.name.split("-")[-1].isdigit() and all((c / f).exists() for f in CHECKPOINT_DONE)]
    if done and stamp.is_file() and stamp.read_text().strip() == fingerprint:
        before = json.loads(made_with.read_text()) if made_with.is_file() else {}
        if before != machine:
            differ = ", ".join(f"{k} {before.get(k)} -> {machine.get(k)}" for k in sorted(set(before) | set(machine))
                               if before.get(k) != machine.get(k))
            raise UserError(f"{scratch}: its checkpoint was made with other machine choices ({differ}): "
                            f"delete {scratch} to train from the start with these, or resume where it was made")
    if scratch.exists() and (not stamp.is_file() or stamp.read_text().strip() != fingerprint):
        shutil.rmtree(scratch)
        done = []
    scratch.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint + "\n")
    made_with.write_text(json.dumps(machine, sort_keys=True) + "\n")
    if not done:
        return None
    return str(max(done, key=lambda c: int(c.name.split("-")[-1])))


class AnswerTrainer(Trainer):
    """The stock Trainer with the output layer run on each batch's answer window only
    (logprobs.answer_batch): the model's own loss over labels cut to that window is the same
    token-mean cross-entropy, normalised by the same answer-token count, without the prompt's
    logits (a fifth of SmolLM2's FLOPs per position, and the log-softmax over 49,152 words)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return super().compute_loss(model, answer_batch(model, inputs), return_outputs, num_items_in_batch)


def finetune(model, tok, records, model_cfg: Model, cfg: Finetune, hw: Hardware, scratch, seed: int,
             live=None, callbacks: tuple = (), max_steps: int = -1) -> dict:
    """Supervised fine-tuning on (question, answer) records, loss on answer tokens only.

    With `cfg.checkpoint` (default true) the Trainer saves a checkpoint each epoch in
    `scratch`; a rerun with the same settings, data and starting weights resumes from the newest
    one, and the folder is deleted once training finished.
    """
    scratch = Path(scratch)
    checkpoint = cfg.checkpoint
    resume = None
    if checkpoint:
        resume = resumable_checkpoint(scratch, run_fingerprint(model, records, model_cfg, cfg, seed),
                                      {"device": hardware.device().type, **hw.model_dump()})
    model = prepare_trainable(model, model_cfg, seed)
    data = EncodedDataset(tok, records, model_cfg.max_length)
    callbacks = ([LiveCallback(live)] if live is not None else []) + list(callbacks)
    trainer = use_training_bar(AnswerTrainer(
        model=model,
        args=training_args(cfg, scratch, seed, cfg.lr, hw, checkpoint, max_steps),
        train_dataset=data,
        data_collator=lambda f: collate(f, tok.pad_token_id),
        callbacks=callbacks,
    ))
    start = time.time()
    if resume:
        print(f"resuming the fine-tune from {resume}")
    result = trainer.train(resume_from_checkpoint=resume)
    report = {"steps": result.global_step, "train_loss": float(result.training_loss),
              "seconds": round(time.time() - start, 1), "examples": len(data)}
    if resume:
        report["resumed_from"] = Path(resume).name
    report.update(hardware.launch_report())
    if checkpoint:
        shutil.rmtree(scratch, ignore_errors=True)
    return model, report
