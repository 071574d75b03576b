"""Training shows one progress bar with the running loss in its postfix, not a dict per step."""
import re

import pytest

from transformers import ProgressCallback
from transformers.utils import logging as hf_logging

from unlearn_lab.models.hardware import resolve
from unlearn_lab.training.methods import get_method
from unlearn_lab.settings import Finetune, Hardware, Model, Unlearn
from unlearn_lab.training.finetune import EncodedDataset, TrainingBar, finetune
from unlearn_lab.training.unlearning import build_unlearn_trainer

from .conftest import qa_record

FULL = Model(lora=None, max_length=64)
HW = resolve(Hardware())
# What transformers' ProgressCallback / PrinterCallback print for each logged step.
LOGS_DICT = re.compile(r"\{'(loss|grad_norm|learning_rate|train_runtime)'")


def bars(trainer):
    return [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, ProgressCallback)]


def test_finetune_prints_a_bar_with_the_loss_and_no_logs_dicts(tiny_model, tok, tmp_path, capfd):
    records = [qa_record(i) for i in range(4)]
    # transformers' bars on, as in a fresh process (a training stopped by an exception earlier in
    # this test process may have left them off)
    hf_logging.enable_progress_bar()
    _, report = finetune(tiny_model, tok, records, FULL, Finetune(epochs=3, lr=1e-3, batch_size=2), HW,
                         tmp_path / "ft", seed=0)
    out, err = capfd.readouterr()
    assert report["steps"] == 6
    assert not LOGS_DICT.search(out + err), out + err
    # checkpoints were saved each epoch, without a bar of their own, and transformers' bars are back
    assert "Writing model shards" not in err and hf_logging.is_progress_bar_enabled()
    # The bar's last refresh (on close) carries the last step's loss and the run's mean loss.
    assert re.search(r"6/6 .*loss=\d[\d.e+-]*, mean_loss=\d", err), err


def test_unlearning_bar_carries_the_method_parts(tiny_model, tok, tmp_path, capfd):
    cfg = Unlearn(epochs=1, batch_size=2, retain_loss_bound=100)
    trainer = build_unlearn_trainer(tiny_model, tok.pad_token_id, EncodedDataset(tok, [qa_record(i) for i in range(4)], 64),
                                    EncodedDataset(tok, [qa_record(i) for i in range(10, 14)], 64), get_method("ga"),
                                    1e-3, FULL, cfg, HW, tmp_path, 0)
    [bar] = bars(trainer)
    assert type(bar) is TrainingBar
    trainer.train()
    out, err = capfd.readouterr()
    assert not LOGS_DICT.search(out + err), out + err
    # ga's parts: its forget NLL and the retain NLL the divergence guard watches
    assert set(bar.postfix) == {"loss", "forget_nll", "retain_nll", "mean_loss"}
    assert float(bar.postfix["loss"]) == pytest.approx(-float(bar.postfix["forget_nll"]), rel=1e-2)
    assert "forget_nll=" in err


def test_long_parts_are_left_out_of_the_postfix():
    """The postfix keeps the loss and only as many parts as fit its width."""

    class Bar:
        def set_postfix(self, postfix):
            self.shown = postfix

    class State:
        is_world_process_zero = True

    bar = TrainingBar()
    bar.training_bar = Bar()
    logs = {"loss": 1.0, "grad_norm": 2.0, **{f"train_part_with_a_long_name_{i}": 0.5 for i in range(4)}}
    bar.on_log(None, State(), None, logs=logs)
    assert list(bar.training_bar.shown)[0] == "loss" and 1 < len(bar.training_bar.shown) < 5
    assert "grad_norm" not in bar.training_bar.shown
