"""Logits only where a loss reads them: the answer window of a batch, the unlearning step and the
fine-tune computed on it, against the same losses over every position."""
import copy

import pytest
import torch

from unlearn_lab.models import architecture
from unlearn_lab.models.logprobs import answer_window, token_mean_nll
from unlearn_lab.training.methods import get_method, parse_knobs
from unlearn_lab.training.methods.base import Step, frozen_reference
from unlearn_lab.models.loading import collate, encode_qa
from unlearn_lab.settings import Finetune, Model
from unlearn_lab.training.finetune import AnswerTrainer, training_args
from unlearn_lab.models import hardware
from unlearn_lab.settings import Hardware

X = -100


def test_answer_window_by_hand():
    # earliest answer token at column 2 (row 0): logits from column 1 on, 4 of 5 columns
    labels = torch.tensor([[X, X, 5, 6, X], [X, X, X, 7, 8]])
    assert answer_window(labels) == 4
    assert answer_window(torch.tensor([[X, X, X, X, 9]])) == 2
    assert answer_window(torch.full((2, 4), X)) == 0, "no answer: every position"
    assert answer_window(torch.tensor([[3, 4, X]])) == 0, "an answer from the first token: every position"


def encode(tok, pairs):
    return collate([encode_qa(tok, q, a, 64) for q, a in pairs], tok.pad_token_id)


def batch(tok):
    fq = [f"Where did the chemist number {i} grow up, and when?" for i in range(3)]
    return {"forget": encode(tok, [(q, f"In Town{i}, in 19{50 + i}.") for i, q in enumerate(fq)]),
            "retain": encode(tok, [(f"What is the job of worker {i}?", f"Baker {i}") for i in range(3)])}


@pytest.mark.parametrize("name", ["npo", "gd", "simnpo", "undial", "me_gd", "rmu"])
def test_a_step_on_the_window_gives_the_full_steps_loss_and_gradient(name, tiny_model, tok, monkeypatch):
    v = batch(tok)
    knobs = {"layer": 1} if name == "rmu" else {}
    method = get_method(name, parse_knobs(name, knobs))
    ref = frozen_reference(copy.deepcopy(tiny_model).requires_grad_(False))

    def loss_and_grads():
        tiny_model.zero_grad(set_to_none=True)
        step = Step(tiny_model, v, ref)
        loss, _ = method.loss(step)
        loss.backward()
        return step, loss.item(), [p.grad.clone() for p in tiny_model.parameters() if p.grad is not None]

    step, windowed, grads = loss_and_grads()
    assert step.labels("forget").shape[1] < v["forget"]["input_ids"].shape[1], "the window is in use"
    monkeypatch.setattr(architecture, "takes_logits_to_keep", lambda model: False)
    full_step, full, full_grads = loss_and_grads()
    assert full_step.labels("forget").shape == v["forget"]["labels"].shape
    assert windowed == pytest.approx(full, rel=1e-5, abs=1e-6)
    for a, b in zip(grads, full_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_the_window_holds_every_answer_token(tiny_model, tok):
    v = batch(tok)
    step = Step(tiny_model, v)
    for view, b in v.items():
        kept = step.labels(view)
        assert (kept != X).sum() == (b["labels"] != X).sum()
        with torch.no_grad():
            nll = token_mean_nll(step.logits(view), kept)
            full = token_mean_nll(tiny_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits,
                                  b["labels"])
        assert nll.item() == pytest.approx(full.item(), rel=1e-5)


@pytest.fixture()
def fresh_accelerator_state():
    """A Trainer initialises accelerate's process-wide state; later tests build their own."""
    from accelerate.state import AcceleratorState

    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_the_fine_tune_loss_on_the_window_is_the_stock_trainers(tiny_model, tok, tmp_path, fresh_accelerator_state):
    b = batch(tok)["forget"]
    trainer = AnswerTrainer(model=tiny_model, args=training_args(
        Finetune(epochs=1, batch_size=3), tmp_path, 0, 1e-3, hardware.resolve(Hardware(precision="fp32"))))
    seen = {}
    hook = tiny_model.register_forward_hook(lambda m, args, out: seen.__setitem__("width", out.logits.shape[1]))
    try:
        for items in (None, torch.tensor(7)):
            seen.clear()
            windowed = trainer.compute_loss(tiny_model, dict(b), num_items_in_batch=items)
            assert seen["width"] == answer_window(b["labels"]) < b["input_ids"].shape[1]
            stock = super(AnswerTrainer, trainer).compute_loss(tiny_model, dict(b), num_items_in_batch=items)
            assert seen["width"] == b["input_ids"].shape[1]
            assert windowed.item() == pytest.approx(stock.item(), rel=1e-5)
    finally:
        hook.remove()
    # and by hand: the mean answer-token NLL
    with torch.no_grad():
        by_hand = token_mean_nll(tiny_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits,
                                 b["labels"])
    assert trainer.compute_loss(tiny_model, dict(b)).item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_cpu_precision_auto_is_fp32_with_or_without_native_bf16(tmp_path, monkeypatch):
    native = tmp_path / "native"
    native.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n")
    emulated = tmp_path / "emulated"
    emulated.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert hardware.cpu_bf16(str(native)) and not hardware.cpu_bf16(str(emulated))
    assert not hardware.cpu_bf16(str(tmp_path / "missing"))
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    for has in (True, False):
        monkeypatch.setattr(hardware, "cpu_bf16", lambda has=has: has)
        assert hardware._resolve(Hardware()).precision == "fp32"
        assert hardware._resolve(Hardware(precision="bf16")).precision == "bf16"
