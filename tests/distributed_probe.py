"""Launched by tests/test_distributed.py under `accelerate launch` (two CPU processes) in a
repository where `dvc repro unlearn` ran: each rank records which forget/retain pairs it trained
on, then a second run makes rank 1 alone see a non-finite loss at step 1. Writes
`<out>/rank<r>.json` per rank. Not a test module itself (pytest does not collect it).
"""
import hashlib
import json
import sys
from pathlib import Path

import torch

from unlearn_lab.models import hardware
from unlearn_lab.data.sets import load_sets
from unlearn_lab.training.methods import build_method, effective_lr
from unlearn_lab.models.loading import load_model, load_tokenizer
from unlearn_lab.settings import load_settings
from unlearn_lab.training.finetune import EncodedDataset
from unlearn_lab.training.unlearning import build_unlearn_trainer


def digest(model) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().numpy().tobytes())
    return h.hexdigest()


def trainer_for(settings, tok, sets, scratch, epochs):
    hw = hardware.resolve(settings.hardware)
    length = settings.model.max_length
    cfg = settings.unlearn.model_copy(update={"epochs": epochs})
    return build_unlearn_trainer(
        load_model("models/target"), tok.pad_token_id, EncodedDataset(tok, sets["forget"], length),
        EncodedDataset(tok, sets["retain"], length), build_method(settings), effective_lr(settings),
        settings.model, cfg, hw, scratch, settings.unlearn.seed)


def main(out: Path):
    settings = load_settings()
    state = hardware.process_state()
    tok = load_tokenizer("models/target")
    sets = load_sets("data/processed", ("forget", "retain"))
    ids = {name: {tuple(encoding["input_ids"]): record["id"] for encoding, record in
                  zip(EncodedDataset(tok, sets[name], settings.model.max_length).items, sets[name])}
           for name in ("forget", "retain")}

    trainer = trainer_for(settings, tok, sets, out / f"scratch{state.process_index}", epochs=2)
    drawn = []
    collate = trainer.data_collator

    def recording(features):
        drawn.append([[ids[view][tuple(f[view]["input_ids"])] for view in ("forget", "retain")] for f in features])
        return collate(features)
    trainer.data_collator = recording
    trainer.train()
    report = {"rank": state.process_index, "processes": state.num_processes, "batches": drawn,
              "weights": digest(trainer.model)}

    # The divergence guard: only rank 1 sees the bad loss; every rank must stop at the same step.
    trainer = trainer_for(settings, tok, sets, out / f"scratch_guard{state.process_index}", epochs=2)
    guard, start = trainer.guard, digest(trainer.model)
    if state.process_index == 1:
        inspect = guard.inspect
        guard.inspect = lambda loss, parts, step: inspect(loss * float("nan") if step == 1 else loss, parts, step)
    trainer.train()
    report["guard"] = {"global_step": trainer.state.global_step, "reason": guard.reason, "step": guard.step,
                       "restored_to_start": digest(trainer.model) == start}
    (out / f"rank{state.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]))
    hardware.end_processes()
