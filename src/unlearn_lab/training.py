"""Fine-tuning and unlearning with Hugging Face `Trainer`."""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

from .io import UserError
from .methods import get_method, token_mean_nll
from .methods.base import forward_logits
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


class PairedDataset(torch.utils.data.Dataset):
    """Each forget example paired with a retain example; the pairing is re-drawn every epoch
    from its own generator seeded by (seed, epoch), so it is deterministic and independent of
    the Trainer's shuffling."""

    def __init__(self, forget: EncodedDataset, retain: EncodedDataset, seed: int):
        if len(forget) == 0:
            raise UserError("the forget set is empty: nothing to unlearn")
        self.forget, self.retain, self.seed = forget, retain, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        n = len(self.retain)
        self.pairing = np.random.default_rng([self.seed, epoch]).permutation(n) if n else None

    def __len__(self):
        return len(self.forget)

    def __getitem__(self, i):
        item = {"forget": self.forget[i]}
        if self.pairing is not None:
            item["retain"] = self.retain[int(self.pairing[i % len(self.pairing)])]
        return item


def collate_pairs(features: list[dict], pad_id: int) -> dict:
    out = collate([f["forget"] for f in features], pad_id, "forget_")
    if "retain" in features[0]:
        out.update(collate([f["retain"] for f in features], pad_id, "retain_"))
    return out


def split_batch(inputs: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in inputs.items() if k.startswith(prefix)}


class EpochCallback(TrainerCallback):
    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(int(round(state.epoch or 0)))


class LiveCallback(TrainerCallback):
    """Per-step curves into DVCLive: the Trainer's loss / lr / grad norm plus the method's parts."""

    def __init__(self, live):
        self.live = live
        self.parts: dict[str, float] = {}

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


class DivergenceGuard(TrainerCallback):
    """Stops training on a non-finite loss or a retain NLL past `retain_bound`, and puts back
    the last weights whose loss was still fine."""

    def __init__(self, model, retain_bound: float):
        self.model = model
        self.retain_bound = retain_bound
        self.snapshot: dict[str, torch.Tensor] | None = None
        self.reason: str | None = None
        self.step: int | None = None

    def _trainable(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def inspect(self, loss: torch.Tensor, parts: dict[str, float], step: int) -> bool:
        if self.reason:
            return False
        bad = [k for k, v in {"loss": loss.item(), **parts}.items() if not math.isfinite(v)]
        if bad:
            self.reason = f"non-finite {', '.join(bad)} at step {step}"
        elif parts.get("retain_nll", 0.0) > self.retain_bound:
            self.reason = f"retain NLL {parts['retain_nll']:.3f} exceeded the bound {self.retain_bound} at step {step}"
        if self.reason:
            self.step = step
            return False
        self.snapshot = {n: p.detach().clone() for n, p in self._trainable()}
        return True

    def zero_loss(self) -> torch.Tensor:
        # A loss with zero gradient that still reaches every trainable weight, so the
        # Trainer's backward and step go through; the weights are restored right after.
        return sum(p.sum() for _, p in self._trainable()) * 0.0

    def on_step_end(self, args, state, control, **kwargs):
        if self.reason:
            if self.snapshot is not None:
                with torch.no_grad():
                    for n, p in self._trainable():
                        p.copy_(self.snapshot[n])
            control.should_training_stop = True


class UnlearnTrainer(Trainer):
    def __init__(self, *args, method, reference, guard, live_cb=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.method, self.reference, self.guard, self.live_cb = method, reference, guard, live_cb

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget, retain = split_batch(inputs, "forget_"), split_batch(inputs, "retain_")
        loss, parts = self.method.loss(model, forget, retain, self.reference)
        if "retain_nll" not in parts and retain:
            # Watch the retain loss even for methods that never look at it.
            with torch.no_grad():
                parts["retain_nll"] = token_mean_nll(forward_logits(model, retain), retain["labels"]).item()
        if self.live_cb is not None:
            self.live_cb.parts = parts
        if not self.guard.inspect(loss, parts, self.state.global_step):
            loss = self.guard.zero_loss()
        return (loss, None) if return_outputs else loss


def training_args(cfg: dict, scratch: str | Path, seed: int, lr: float) -> TrainingArguments:
    epochs, batch = int(cfg.get("epochs", 1)), int(cfg.get("batch_size", 8))
    if lr <= 0 or not math.isfinite(lr):
        raise UserError(f"params.yaml: learning rate must be a positive number, got {lr}")
    if epochs <= 0 or batch <= 0:
        raise UserError(f"params.yaml: epochs ({epochs}) and batch_size ({batch}) must be positive")
    return TrainingArguments(
        output_dir=str(scratch),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch,
        learning_rate=lr,
        lr_scheduler_type=str(cfg.get("scheduler", "constant")),
        warmup_steps=int(cfg.get("warmup_steps", 0)),
        weight_decay=float(cfg.get("weight_decay", 0.0)),
        max_grad_norm=float(cfg.get("max_grad_norm", 1.0)),
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=False,
    )


def prepare_trainable(model, model_cfg: dict, seed: int):
    lora = model_cfg.get("lora")
    set_seed(seed)
    if lora:
        return add_lora(model, lora)
    model.train()
    return model


def finetune(model, tok, records, model_cfg: dict, cfg: dict, scratch, seed: int, live=None) -> dict:
    """Supervised fine-tuning on (question, answer) records, loss on answer tokens only."""
    model = prepare_trainable(model, model_cfg, seed)
    data = EncodedDataset(tok, records, int(model_cfg.get("max_length", 128)))
    callbacks = [LiveCallback(live)] if live is not None else []
    trainer = Trainer(
        model=model,
        args=training_args(cfg, scratch, seed, float(cfg.get("lr", 1e-3))),
        train_dataset=data,
        data_collator=lambda f: collate(f, tok.pad_token_id),
        callbacks=callbacks,
    )
    start = time.time()
    result = trainer.train()
    return model, {"steps": result.global_step, "train_loss": float(result.training_loss),
                   "seconds": round(time.time() - start, 1), "examples": len(data)}


def unlearn(model, tok, forget, retain, method_name: str, knobs: dict, lr: float, model_cfg: dict,
            cfg: dict, scratch, seed: int, live=None) -> tuple[object, dict]:
    """Run one unlearning method; return the model and a record of how the run went."""
    method = get_method(method_name, knobs)
    max_length = int(model_cfg.get("max_length", 128))
    model = prepare_trainable(model, model_cfg, seed)
    reference = None
    if method.needs_reference:
        if model_cfg.get("lora"):
            # With LoRA the reference is the same network with its adapter switched off.
            def reference(batch):
                with torch.no_grad(), model.disable_adapter():
                    return forward_logits(model, batch)
        else:
            frozen = copy.deepcopy(model).eval().requires_grad_(False)

            def reference(batch):
                with torch.no_grad():
                    return forward_logits(frozen, batch)

    data = PairedDataset(EncodedDataset(tok, forget, max_length), EncodedDataset(tok, retain, max_length), seed)
    guard = DivergenceGuard(model, float(cfg.get("retain_loss_bound", 10.0)))
    live_cb = LiveCallback(live) if live is not None else None
    trainer = UnlearnTrainer(
        model=model,
        args=training_args(cfg, scratch, seed, lr),
        train_dataset=data,
        data_collator=lambda f: collate_pairs(f, tok.pad_token_id),
        callbacks=[EpochCallback(data), guard] + ([live_cb] if live_cb else []),
        method=method,
        reference=reference,
        guard=guard,
        live_cb=live_cb,
    )
    start = time.time()
    result = trainer.train()
    report = {
        "method": method_name,
        "knobs": method.knobs,
        "lr": lr,
        "steps": result.global_step,
        "seconds": round(time.time() - start, 1),
        "stopped_early": guard.reason is not None,
        "stop_reason": guard.reason or "",
    }
    return model, report
