"""Supervised fine-tuning with Hugging Face `Trainer`, and the training settings unlearning shares."""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

from . import hardware
from .io import UserError
from .modeling import add_lora, collate, encode_qa


class EncodedDataset(torch.utils.data.Dataset):
    def __init__(self, tok, records: list[dict], max_length: int):
        # Models learn the full-sentence answer; records without one learn the bare answer.
        self.items = [encode_qa(tok, r["question"], r.get("answer_text") or r["answer"], max_length)
                      for r in records]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class LiveCallback(TrainerCallback):
    """Per-step curves into DVCLive: the Trainer's loss / lr / grad norm plus the method's parts."""

    def __init__(self, live):
        self.live = live
        self.parts: dict[str, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        # A resumed fine-tune continues the step count, so its curve lines up with the lost one's.
        if state.global_step:
            self.live.step = state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        for key in ("loss", "grad_norm", "learning_rate"):
            if key in logs and logs[key] is not None and math.isfinite(float(logs[key])):
                self.live.log_metric(f"train/{key}", float(logs[key]))
        for key, value in self.parts.items():
            if math.isfinite(value):
                self.live.log_metric(f"train/{key}", value)
        self.live.log_metric("epoch", float(state.epoch or 0), plot=False)
        self.live.next_step()


def training_args(cfg: dict, scratch: str | Path, seed: int, lr: float,
                  checkpoint: bool = False) -> TrainingArguments:
    """Trainer settings from a stage's params block; its `hardware` entry (params.yaml's
    `hardware:` block, put there by the stage) picks precision, optimizer and the like."""
    epochs, batch = int(cfg.get("epochs", 1)), int(cfg.get("batch_size", 8))
    if lr <= 0 or not math.isfinite(lr):
        raise UserError(f"params.yaml: learning rate must be a positive number, got {lr}")
    if epochs <= 0 or batch <= 0:
        raise UserError(f"params.yaml: epochs ({epochs}) and batch_size ({batch}) must be positive")
    return TrainingArguments(
        output_dir=str(scratch),
        num_train_epochs=epochs,
        # A fixed step budget (the relearning attack) overrides epochs.
        max_steps=int(cfg.get("max_steps", -1)),
        per_device_train_batch_size=batch,
        learning_rate=lr,
        lr_scheduler_type=str(cfg.get("scheduler", "constant")),
        warmup_steps=int(cfg.get("warmup_steps", 0)),
        weight_decay=float(cfg.get("weight_decay", 0.0)),
        max_grad_norm=float(cfg.get("max_grad_norm", 1.0)),
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
        **hardware.trainer_kwargs(cfg.get("hardware")),
    )


def prepare_trainable(model, model_cfg: dict, seed: int):
    lora = model_cfg.get("lora")
    set_seed(seed)
    if lora:
        return add_lora(model, lora)
    model.train()
    return model


FINGERPRINT = "fingerprint.txt"
# What a complete Trainer checkpoint holds last: trainer_state.json is written after the weights,
# optimizer and RNG state, so a checkpoint killed while saving lacks it.
CHECKPOINT_DONE = ("trainer_state.json", "optimizer.pt", "rng_state.pth")


def run_fingerprint(model, records: list[dict], model_cfg: dict, cfg: dict, seed: int) -> str:
    """A hash of everything a fine-tune depends on: settings, data and the starting weights
    (a changed base model with the same params must not resume an old run)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"model": model_cfg, "finetune": cfg, "seed": seed, "records": records},
                        sort_keys=True, ensure_ascii=False).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
    return h.hexdigest()


def resumable_checkpoint(scratch: Path, fingerprint: str) -> str | None:
    """The newest complete checkpoint of the same run in `scratch`, else None; checkpoints of
    another run (other params, data or weights) are deleted so they cannot be mixed in."""
    stamp = scratch / FINGERPRINT
    if scratch.exists() and (not stamp.is_file() or stamp.read_text().strip() != fingerprint):
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint + "\n")
    done = [c for c in scratch.glob("checkpoint-*")
            if c.name.split("-")[-1].isdigit() and all((c / f).exists() for f in CHECKPOINT_DONE)]
    if not done:
        return None
    return str(max(done, key=lambda c: int(c.name.split("-")[-1])))


def finetune(model, tok, records, model_cfg: dict, cfg: dict, scratch, seed: int, live=None,
             callbacks: tuple = ()) -> dict:
    """Supervised fine-tuning on (question, answer) records, loss on answer tokens only.

    With `cfg["checkpoint"]` (default true) the Trainer saves a checkpoint each epoch in
    `scratch`; a rerun with the same settings, data and starting weights resumes from the newest
    one, and the folder is deleted once training finished.
    """
    scratch = Path(scratch)
    checkpoint = bool(cfg.get("checkpoint", True))
    resume = None
    if checkpoint:
        resume = resumable_checkpoint(scratch, run_fingerprint(model, records, model_cfg, cfg, seed))
    model = prepare_trainable(model, model_cfg, seed)
    data = EncodedDataset(tok, records, int(model_cfg.get("max_length", 128)))
    callbacks = ([LiveCallback(live)] if live is not None else []) + list(callbacks)
    trainer = Trainer(
        model=model,
        args=training_args(cfg, scratch, seed, float(cfg.get("lr", 1e-3)), checkpoint),
        train_dataset=data,
        data_collator=lambda f: collate(f, tok.pad_token_id),
        callbacks=callbacks,
    )
    start = time.time()
    if resume:
        print(f"resuming the fine-tune from {resume}")
    result = trainer.train(resume_from_checkpoint=resume)
    report = {"steps": result.global_step, "train_loss": float(result.training_loss),
              "seconds": round(time.time() - start, 1), "examples": len(data)}
    if resume:
        report["resumed_from"] = Path(resume).name
    if checkpoint:
        shutil.rmtree(scratch, ignore_errors=True)
    return model, report
