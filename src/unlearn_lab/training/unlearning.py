"""Unlearning with Hugging Face `Trainer`: forget/retain pairing, the extra views some methods
read (refusals, wrong answers), the frozen reference, trainable-layer choice and the
divergence guard. The objectives themselves live in `methods/`."""
from __future__ import annotations

import copy
import math
import re
import time

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from ..models import hardware
from ..data.records import wrong_answer_text
from ..errors import UserError
from ..models.global_mean import over_global_batch
from .methods.base import Reference, Step, UnlearningMethod, frozen_reference, token_mean_nll
from ..models.logprobs import batch_logits
from ..models.loading import collate, encode_qa
from ..settings import Hardware, Model, Unlearn
from .finetune import EncodedDataset, LiveCallback, prepare_trainable, training_args, use_training_bar


class PairedDataset(torch.utils.data.Dataset):
    """Each forget example paired with a retain example; the pairing is re-drawn every epoch
    from its own generator seeded by (seed, epoch), so it is deterministic and independent of
    the Trainer's shuffling.

    Optional views: `forget_idk` / `retain_idk` (aligned with forget / retain) and
    `forget_wrong` (per forget example a list of wrong-answer encodings; epoch e uses e mod k).
    """

    def __init__(self, forget: EncodedDataset, retain: EncodedDataset, seed: int, views: dict | None = None):
        if len(forget) == 0:
            raise UserError("the forget set is empty: nothing to unlearn")
        if len(retain) == 0:
            raise UserError("the retain set is empty: unlearning needs retain data to pair with and to watch")
        self.forget, self.retain, self.seed = forget, retain, seed
        self.views = views or {}
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.pairing = np.random.default_rng([self.seed, epoch]).permutation(len(self.retain))

    def __len__(self):
        return len(self.forget)

    def lengths(self) -> list[int]:
        """Per example the forget encoding's length, for length-grouped batches (the retain
        partner changes every epoch, so only the forget side can be grouped)."""
        return [len(self.forget[i]["input_ids"]) for i in range(len(self.forget))]

    def __getitem__(self, i):
        j = int(self.pairing[i % len(self.pairing)])
        item = {"forget": self.forget[i], "retain": self.retain[j]}
        if "forget_idk" in self.views:
            item["forget_idk"] = self.views["forget_idk"][i]
        if "retain_idk" in self.views:
            item["retain_idk"] = self.views["retain_idk"][j]
        if "forget_wrong" in self.views:
            options = self.views["forget_wrong"][i]
            item["forget_wrong"] = options[self.epoch % len(options)]
        return item


def collate_views(features: list[dict], pad_id: int) -> dict:
    """{view: {input_ids, attention_mask, labels}}; the Trainer moves nested dicts to the device."""
    return {view: collate([f[view] for f in features], pad_id) for view in features[0]}


def build_views(tok, method, forget: list[dict], retain: list[dict], max_length: int, seed: int,
                idk_pool: list[str] | None, random_labels: list[dict] | None) -> dict:
    views = {}
    if {"forget_idk", "retain_idk"} & set(method.views):
        if not idk_pool:
            raise UserError(f"method {method.name} needs refusal answers: data/raw/idk.txt is empty or missing")
        rng = np.random.default_rng([seed, 7])
        for view, records in (("forget_idk", forget), ("retain_idk", retain)):
            if view in method.views:
                picks = rng.integers(len(idk_pool), size=len(records))
                views[view] = [encode_qa(tok, r["question"], idk_pool[k], max_length) for r, k in zip(records, picks)]
    if "forget_wrong" in method.views:
        by_source: dict[str, list[str]] = {}
        for rec in random_labels or []:
            by_source.setdefault(rec["source_id"], []).append(rec["answer"])
        views["forget_wrong"] = []
        for r in forget:
            if r["id"] not in by_source:
                raise UserError(f"data/processed/random_labels.jsonl: no wrong answer for forget record id={r['id']!r}"
                                " (re-run the random_labels stage)")
            views["forget_wrong"].append([encode_qa(tok, r["question"], wrong_answer_text(r, w), max_length)
                                          for w in by_source[r["id"]]])
    return views


# What a method's extra views replace a forget answer with: a document has no answer to replace.
VIEW_NEEDS = {"forget_idk": "a refusal in place of the forget answer", "retain_idk": "a refusal to a retain question",
              "forget_wrong": "a wrong answer in place of the forget answer"}


def check_documents_method(method, benchmark: str, requests: int) -> None:
    """On the documents benchmark, refuse what has no document form: a method that trains on a
    replaced answer (idk_dpo, idk_ap, altpo, random_label), and requests split by person."""
    if benchmark != "documents":
        return
    needs = [VIEW_NEEDS[v] for v in method.views if v in VIEW_NEEDS]
    if needs:
        raise UserError(f"params.yaml: method {method.name} trains on {needs[0]}, and benchmark documents has "
                        "no answers to replace, only text: choose a method without one (npo, simnpo, gd, ga, ...)")
    if requests > 1:
        raise UserError("params.yaml: unlearn.requests > 1 is not available with benchmark documents "
                        "(its documents are forgotten in one request)")


def restrict_trainable(model, pattern: str | None) -> int:
    """Freeze every trainable weight whose name does not match `pattern`; return how many
    parameters still train."""
    if pattern:
        try:
            regex = re.compile(pattern)
        except re.error as err:
            raise UserError(f"params.yaml: trainable pattern {pattern!r} is not a regular expression: {err}") from None
        for name, p in model.named_parameters():
            if p.requires_grad and not regex.search(name):
                p.requires_grad_(False)
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if count == 0:
        names = [name for name, _ in model.named_parameters()]
        raise UserError(f"params.yaml: trainable pattern {pattern!r} matches no trainable weight "
                        f"(this model's names look like {names[len(names) // 2]!r})")
    return count


def make_reference(model, lora: bool) -> Reference:
    if lora:
        # With LoRA the reference is the same network with its adapter switched off: no copy.
        trainable = [p for p in model.parameters() if p.requires_grad]

        def run(batch, **kwargs):
            with model.disable_adapter():
                out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
            # Leaving disable_adapter() marks every adapter weight trainable again (peft), which
            # would undo a trainable-layer pattern.
            for p in model.parameters():
                p.requires_grad_(False)
            for p in trainable:
                p.requires_grad_(True)
            return out
        return Reference(run, model)
    return frozen_reference(copy.deepcopy(model).eval().requires_grad_(False))


class EpochCallback(TrainerCallback):
    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(int(round(state.epoch or 0)))


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
        if hardware.any_process(self.reason is not None) and not self.reason:
            self.reason = f"another process of the distributed run diverged at step {step}"
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
    """A Trainer whose loss is `method.loss(Step)`, watched by the divergence guard; the method's
    parts join the Trainer's logs (as train_<part>), and `method.shape_gradients` runs between
    the backward and the gradient clipping."""

    def __init__(self, *args, method, reference, guard, fuse_views=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.method, self.reference, self.guard = method, reference, guard
        self.fuse_views = fuse_views
        self.parts: dict[str, float] = {}
        self._step: Step | None = None

    def _get_train_sampler(self, train_dataset=None):
        # The Trainer's length-grouped sampler reads `input_ids` of flat examples; ours are
        # nested per view, so hand it the lengths.
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy == "group_by_length" and isinstance(dataset, PairedDataset):
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=dataset.lengths())
        return super()._get_train_sampler(train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        step = Step(model, inputs, self.reference, self.method.forward_views if self.fuse_views else ())
        # Means over the tokens / examples of every rank's share (global_mean), as one process would.
        with over_global_batch():
            loss, parts = self.method.loss(step)
        if "retain_nll" not in parts:
            # Watch the retain loss even for methods that never look at it.
            r = step.batch["retain"]
            with torch.no_grad():
                parts["retain_nll"] = token_mean_nll(batch_logits(model, r), r["labels"]).item()
        self.parts = parts
        self._step = step
        if not self.guard.inspect(loss, parts, self.state.global_step):
            loss, self._step = self.guard.zero_loss(), None
        return (loss, None) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        step, self._step = self._step, None
        if step is not None:
            # after the backward, before clipping and the optimizer step (the Trainer's loop)
            self.method.shape_gradients(step, model)
        return loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:
            logs = {**logs, **{f"train_{key}": value for key, value in self.parts.items()}}
        super().log(logs, *args, **kwargs)


def build_unlearn_trainer(model, pad_id: int, forget, retain, method: UnlearningMethod, lr: float, model_cfg: Model,
                          cfg: Unlearn, hw: Hardware, scratch, seed: int, live=None, views: dict | None = None,
                          epoch_eval=None, trainable: str | None = None, callbacks: tuple = (),
                          reference_model=None) -> UnlearnTrainer:
    """The UnlearnTrainer of one run, wired as the unlearn stage runs it: the model made trainable
    (LoRA or full, `trainable` or the method's own pattern), the frozen reference when the method
    needs one, forget examples paired with retain ones (datasets of encodings; `views` the extra
    ones, see build_views), the divergence guard, per-step curves into `live`, the epoch
    evaluation (`epoch_eval(model)` returns its callback) and any other `callbacks`.
    `reference_model` (frozen) replaces the method's usual reference, the model as it starts.

    The trainer's `model` is the prepared one; `guard`, `trainable_pattern` and
    `trainable_parameters` say how the run is set up.
    """
    pattern = trainable or method.trainable_pattern(model)
    model = prepare_trainable(model, model_cfg, seed)
    n_trainable = restrict_trainable(model, pattern)
    reference = None
    if method.needs_reference:
        reference = (frozen_reference(reference_model) if reference_model is not None
                     else make_reference(model, model_cfg.lora is not None))
    data = PairedDataset(forget, retain, seed, views)
    guard = DivergenceGuard(model, cfg.retain_loss_bound)
    extra = [LiveCallback(live) if live is not None else None, epoch_eval(model) if epoch_eval else None, *callbacks]
    trainer = UnlearnTrainer(
        model=model,
        args=training_args(cfg, scratch, seed, lr, hw),
        train_dataset=data,
        data_collator=lambda f: collate_views(f, pad_id),
        callbacks=[EpochCallback(data), guard] + [cb for cb in extra if cb is not None],
        method=method,
        reference=reference,
        guard=guard,
        fuse_views=hw.fuse_views,
    )
    trainer.trainable_pattern, trainer.trainable_parameters = pattern or "", n_trainable
    return use_training_bar(trainer)


def unlearn(model, tok, forget, retain, method: UnlearningMethod, lr: float, model_cfg: Model, cfg: Unlearn,
            hw: Hardware, scratch, seed: int, live=None, idk_pool: list[str] | None = None,
            random_labels: list[dict] | None = None, epoch_eval=None, trainable: str | None = None,
            reference_model=None) -> tuple[object, dict]:
    """Run one unlearning method; return the model and a record of how the run went.

    `method` is built from `methods.<name>` (methods.build_method), `lr` is the effective learning
    rate and `hw` the resolved hardware settings. `trainable` (a regex over parameter names)
    overrides the method's own choice. `epoch_eval`, when given, is called with the model and
    returns a callback that evaluates between epochs. `reference_model` (frozen), when given,
    is the reference instead of the model as it starts (requests.py).
    """
    max_length = model_cfg.max_length
    trainer = build_unlearn_trainer(
        model, tok.pad_token_id, EncodedDataset(tok, forget, max_length), EncodedDataset(tok, retain, max_length),
        method, lr, model_cfg, cfg, hw, scratch, seed, live,
        views=build_views(tok, method, forget, retain, max_length, seed, idk_pool, random_labels),
        epoch_eval=epoch_eval, trainable=trainable, reference_model=reference_model)
    start = time.time()
    result = trainer.train()
    guard = trainer.guard
    report = {
        "method": method.name,
        "knobs": method.knobs,
        "lr": lr,
        "epochs": cfg.epochs,
        "trainable_pattern": trainer.trainable_pattern,
        "trainable_parameters": trainer.trainable_parameters,
        "steps": result.global_step,
        "seconds": round(time.time() - start, 1),
        "stopped_early": guard.reason is not None,
        "stop_reason": guard.reason or "",
        **hardware.launch_report(),
    }
    return trainer.model, report
