"""Precision and memory paths of training: fp16 with a gradient scaler, and activation
checkpointing with LoRA (open-unlearning #178: the B matrices stayed zero)."""
import copy
import math

import pytest
import torch

from unlearn_lab.models import hardware
from unlearn_lab.models.architecture import unwrap
from unlearn_lab.errors import UserError
from unlearn_lab.training.methods import Step
from unlearn_lab.training.methods.base import frozen_reference
from unlearn_lab.models.loading import load_model
from unlearn_lab.settings import Finetune, Hardware, Lora, Model, Unlearn
from unlearn_lab.training.finetune import finetune
from unlearn_lab.training.unlearning import unlearn

from .conftest import qa_record
from .test_methods import ALL, KNOBS, make, views

LORA = Model(max_length=64, lora=Lora(r=4, alpha=8, dropout=0.0))


def test_fp16_is_refused_on_a_cpu_where_accelerate_would_train_fp32():
    """Why fp16 is not run on the CPU through the Trainer: accelerate makes the GradScaler and
    the fp16 autocast only off the CPU (Accelerator.__init__ checks `device.type != "cpu"`), so
    `fp16` there would train in fp32 under fp16's name. The project refuses it in one line; the
    fp16 numerics of every objective are checked below with torch's own scaler instead."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    with pytest.raises(UserError, match="fp16 needs a CUDA GPU"):
        hardware.resolve(Hardware(precision="fp16"))
    # A Trainer run earlier in the same process (another test file) leaves accelerate's
    # process-wide state set, and an Accelerator with other settings is then refused.
    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        accelerator = Accelerator(cpu=True, mixed_precision="fp16")
        assert accelerator.scaler is None and not accelerator.native_amp
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize("name", ALL)
def test_every_method_takes_a_finite_fp16_step_with_a_gradient_scaler(name, tiny_model, tok):
    """What fp16 training on a GPU does to a method, on the CPU: the loss under fp16 autocast,
    the backward of the scaled loss, the method's gradient shaping (on scaled gradients, as in
    the Trainer's step), unscale, step. The loss must be finite, and the scaler must take a step
    once it has halved its scale past the overflow of large gradients (the usual first skipped
    steps); a gradient that is inf/NaN at any scale (a -1e9 mask fill or an exp() that overflows
    fp16) would never be taken."""
    v = views(tok)
    ref = frozen_reference(copy.deepcopy(tiny_model).requires_grad_(False))
    method = make(name, KNOBS[name])  # the test knobs: valid on the 2-layer model (RMU's layer)
    before = [p.detach().clone() for p in tiny_model.parameters()]
    opt = torch.optim.AdamW(tiny_model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    for _ in range(12):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.float16):
            step = Step(tiny_model, v, ref)
            loss, parts = method.loss(step)
        assert math.isfinite(loss.item()) and all(math.isfinite(x) for x in parts.values()), (loss, parts)
        scale = scaler.get_scale()
        scaler.scale(loss).backward()
        method.shape_gradients(step, tiny_model)
        scaler.step(opt)
        scaler.update()
        if scaler.get_scale() == scale:  # no inf/NaN found: the step was taken
            break
    assert scaler.get_scale() >= 2.0 ** 5, "no scale made the gradients finite: the step was never taken"
    assert any(not torch.equal(b, p) for b, p in zip(before, tiny_model.parameters()))


def lora_b(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}


def checkpointing_on(model) -> bool:
    base = unwrap(model)
    on = getattr(type(base), "is_activation_checkpointing", None) or type(base).is_gradient_checkpointing
    return bool(on.fget(base))


def test_activation_checkpointing_reaches_the_trainer_under_its_current_name():
    from transformers import TrainingArguments

    kwargs = hardware.trainer_kwargs(hardware.resolve(Hardware(activation_checkpointing=True)))
    args = TrainingArguments(output_dir="unused", report_to=[], **kwargs)
    name = "activation_checkpointing" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__ \
        else "gradient_checkpointing"
    assert getattr(args, name) is True and getattr(args, f"{name}_kwargs") == {"use_reentrant": False}
    assert "checkpointing" not in " ".join(hardware.trainer_kwargs(hardware.resolve(Hardware())))


@pytest.mark.parametrize("stage", ["finetune", "unlearn"])
def test_lora_b_moves_with_activation_checkpointing(stage, tiny_dir, tok, tmp_path):
    """open-unlearning #178: with checkpointing on, LoRA's B matrices stayed at zero. After one
    epoch of each stage every B has moved, and checkpointing was really on."""
    hw = hardware.resolve(Hardware(activation_checkpointing=True))
    records = [qa_record(i) for i in range(8)]
    for r in records:
        r["answer_text"] = f"Person {r['id']} lives in {r['answer']}."
    model = load_model(tiny_dir)
    if stage == "finetune":
        trained, _ = finetune(model, tok, records, LORA, Finetune(epochs=1, batch_size=4, lr=1e-3, checkpoint=False),
                              hw, tmp_path, seed=0)
    else:
        trained, report = unlearn(model, tok, records[:4], records[4:], make("npo", {}), 1e-3, LORA,
                                  Unlearn(epochs=1, batch_size=2, epoch_eval=False, retain_loss_bound=100.0), hw, tmp_path, seed=0)
        assert not report["stopped_early"]
    assert checkpointing_on(trained)
    b = lora_b(trained)
    assert b and all(p.abs().sum() > 0 for p in b.values()), [n for n, p in b.items() if not p.abs().sum() > 0]
