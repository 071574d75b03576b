"""A killed fine-tune resumes from its last checkpoint and ends with the same weights."""
from __future__ import annotations

import pytest
import torch
from transformers import TrainerCallback

from unlearn_lab.errors import UserError
from unlearn_lab.models.hardware import resolve
from unlearn_lab.models.loading import load_model
from unlearn_lab.settings import Finetune, Hardware, Lora, Model
from unlearn_lab.training.finetune import finetune

from .conftest import qa_record

RECORDS = [qa_record(i) for i in range(8)]
# 8 records, batch 4: 2 steps per epoch, a checkpoint after steps 2, 4 and 6.
CFG = Finetune(epochs=3, lr=0.01, batch_size=4)
MODEL_CFGS = {
    "lora": Model(lora=Lora(r=4, alpha=8, dropout=0.0, target_modules="all-linear"), max_length=64),
    "full": Model(lora=None, max_length=64),
}


class Killed(Exception):
    pass


class KillAfterStep(TrainerCallback):
    """Stands in for a kill: raises once training passed `step` (mid-epoch, after a checkpoint)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Killed(f"killed after step {self.step}")


def weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def train(tiny_dir, tok, model_cfg, scratch, cfg=CFG, callbacks=(), hw=Hardware()):
    return finetune(load_model(tiny_dir), tok, RECORDS, model_cfg, cfg, resolve(hw), scratch, seed=0,
                    callbacks=callbacks)


@pytest.mark.parametrize("kind", sorted(MODEL_CFGS))
def test_killed_finetune_resumes_to_the_same_weights(tiny_dir, tok, tmp_path, kind):
    model_cfg = MODEL_CFGS[kind]
    straight, straight_report = train(tiny_dir, tok, model_cfg, tmp_path / "straight")
    assert straight_report["steps"] == 6 and "resumed_from" not in straight_report
    assert not (tmp_path / "straight").exists()  # scratch deleted after success

    scratch = tmp_path / "killed"
    with pytest.raises(Killed):
        train(tiny_dir, tok, model_cfg, scratch, callbacks=[KillAfterStep(5)])
    # Only the newest complete checkpoint is kept: the one after epoch 2 (step 4).
    assert sorted(p.name for p in scratch.glob("checkpoint-*")) == ["checkpoint-4"]

    resumed, report = train(tiny_dir, tok, model_cfg, scratch)
    assert report["resumed_from"] == "checkpoint-4" and report["steps"] == 6
    assert not scratch.exists()
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys() and len(a) > 0
    # Same seed on CPU, optimizer and RNG state restored: bit-identical, not merely close.
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_checkpoint_of_other_settings_is_discarded(tiny_dir, tok, tmp_path):
    model_cfg = MODEL_CFGS["lora"]
    scratch = tmp_path / "scratch"
    with pytest.raises(Killed):
        train(tiny_dir, tok, model_cfg, scratch, callbacks=[KillAfterStep(3)])
    assert (scratch / "checkpoint-2").is_dir()
    # Another learning rate: the old checkpoint must not be resumed.
    _, report = train(tiny_dir, tok, model_cfg, scratch, cfg=CFG.model_copy(update={"lr": 0.005}))
    assert "resumed_from" not in report and report["steps"] == 6


def test_checkpointing_off_saves_nothing(tiny_dir, tok, tmp_path):
    scratch = tmp_path / "scratch"
    with pytest.raises(Killed):
        train(tiny_dir, tok, MODEL_CFGS["lora"], scratch, cfg=CFG.model_copy(update={"checkpoint": False}),
              callbacks=[KillAfterStep(3)])
    assert not list(scratch.glob("checkpoint-*"))


def test_checkpoint_made_with_other_machine_choices_is_refused(tiny_dir, tok, tmp_path):
    """A checkpoint of the same run made in another precision (say on another machine) is
    neither resumed, which would mix precisions in one model, nor silently thrown away."""
    model_cfg = MODEL_CFGS["lora"]
    scratch = tmp_path / "scratch"
    with pytest.raises(Killed):
        train(tiny_dir, tok, model_cfg, scratch, callbacks=[KillAfterStep(3)], hw=Hardware(precision="fp32"))
    with pytest.raises(UserError, match=r"scratch: its checkpoint was made with other machine choices "
                                        r"\(precision fp32 -> bf16\)"):
        train(tiny_dir, tok, model_cfg, scratch, hw=Hardware(precision="bf16"))
    assert (scratch / "checkpoint-2").is_dir()  # kept: the user decides
    _, report = train(tiny_dir, tok, model_cfg, scratch, hw=Hardware(precision="fp32"))
    assert report["resumed_from"] == "checkpoint-2"
