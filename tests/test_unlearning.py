"""The mechanics every method shares: pairing, views, the frozen reference, trainable layers,
learning-rate resolution and the divergence guard's retain bound."""
import copy

import pytest
import torch

from unlearn_lab.data.records import wrong_answer_text
from unlearn_lab.models.hardware import resolve
from unlearn_lab.errors import UserError
from unlearn_lab.training.methods import UnlearningMethod, check_knobs, effective_lr, get_method, parse_knobs, register
from unlearn_lab.training.methods.base import METHODS, Knobs, token_mean_nll
from unlearn_lab.settings import Eval, Hardware, Lora, Model, Unlearn, parse_settings
from unlearn_lab.training.finetune import EncodedDataset
from unlearn_lab.training.unlearning import (
    PairedDataset, build_unlearn_trainer, build_views, collate_views, make_reference, restrict_trainable, unlearn,
)

from .conftest import qa_record

FULL = Model(lora=None, max_length=64)
LORA = Model(lora=Lora(r=4, alpha=8, target_modules="all-linear"), max_length=64)
HW = resolve(Hardware())


def records(start, n):
    out = []
    for i in range(start, start + n):
        rec = qa_record(i)
        rec["answer_text"] = f"Person {i} lives in {rec['answer']}."
        out.append(rec)
    return out


def test_pairing_with_views_is_deterministic(tok):
    forget, retain = records(0, 4), records(10, 9)
    labels = [{"id": f"{r['id']}.rl{j}", "source_id": r["id"], "question": r["question"], "answer": f"Wrong{j}"}
              for r in forget for j in range(2)]
    method = get_method("random_label")

    def dataset():
        v = build_views(tok, method, forget, retain, 64, 5, None, labels)
        return PairedDataset(EncodedDataset(tok, forget, 64), EncodedDataset(tok, retain, 64), 5, v)

    a, b = dataset(), dataset()
    assert [a[i] for i in range(4)] == [b[i] for i in range(4)]
    wrong_epoch0 = a[0]["forget_wrong"]["input_ids"]
    assert tok.decode(wrong_epoch0).endswith("Person 0 lives in Wrong0.<|im_end|>")
    a.set_epoch(1)
    assert tok.decode(a[0]["forget_wrong"]["input_ids"]).endswith("Person 0 lives in Wrong1.<|im_end|>")
    batch = collate_views([a[i] for i in range(4)], tok.pad_token_id)
    assert set(batch) == {"forget", "retain", "forget_wrong"} and batch["retain"]["input_ids"].shape[0] == 4


def test_views_report_missing_inputs(tok):
    forget, retain = records(0, 2), records(10, 2)
    with pytest.raises(UserError, match="no wrong answer for forget record id='r1'"):
        build_views(tok, get_method("random_label"), forget, retain, 64, 0, None,
                    [{"id": "x", "source_id": "r0", "question": "q", "answer": "a"}])
    with pytest.raises(UserError, match="idk.txt"):
        build_views(tok, get_method("idk_dpo"), forget, retain, 64, 0, [], None)
    v = build_views(tok, get_method("idk_ap"), forget, retain, 64, 0, ["No idea.", "Not sure."], None)
    assert set(v) == {"forget_idk", "retain_idk"} and len(v["retain_idk"]) == 2
    with pytest.raises(UserError, match="retain set is empty"):
        PairedDataset(EncodedDataset(tok, forget, 64), EncodedDataset(tok, [], 64), 0)


def test_wrong_answer_keeps_the_sentence():
    rec = {"answer": "Bergen", "answer_text": "She was born in Bergen, Norway."}
    assert wrong_answer_text(rec, "Kumasi") == "She was born in Kumasi, Norway."
    assert wrong_answer_text({"answer": "1950", "answer_text": ""}, "1961") == "1961"


@pytest.mark.parametrize("lora", [False, True])
def test_reference_stays_frozen_while_the_model_trains(tiny_model, tok, lora):
    from unlearn_lab.models.loading import add_lora, collate, encode_qa

    model = add_lora(tiny_model, LORA.lora) if lora else tiny_model
    reference = make_reference(model, lora)
    b = collate([encode_qa(tok, "Where?", "Here", 64)], tok.pad_token_id)
    ref_before = reference.logits(b).clone()
    assert not reference.logits(b).requires_grad
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):
        out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"])
        opt.zero_grad()
        (-out.loss).backward()
        opt.step()
    with torch.no_grad():
        model_now = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    assert not torch.allclose(model_now, ref_before, atol=1e-4)
    assert torch.equal(reference.logits(b), ref_before)


def test_trainable_pattern_trains_only_what_it_names(tiny_model, tok, tmp_path):
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    model, report = unlearn(tiny_model, tok, records(0, 2), records(10, 2), get_method("gd"), 1e-2, FULL,
                            Unlearn(epochs=1, batch_size=2, retain_loss_bound=100), HW, tmp_path, seed=0,
                            trainable=r"layers\.1\.mlp\.")
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(".layers.1.mlp." in n for n in changed)
    assert {n for n in before if ".layers.1.mlp." in n} == changed
    assert report["trainable_pattern"] == r"layers\.1\.mlp\."


def test_trainable_pattern_errors(tiny_model):
    with pytest.raises(UserError, match="matches no trainable weight"):
        restrict_trainable(copy.deepcopy(tiny_model), r"layers\.99\.")
    with pytest.raises(UserError, match="not a regular expression"):
        restrict_trainable(tiny_model, "layers[")


def test_rmu_with_lora_trains_only_its_layers(tiny_model, tok, tmp_path):
    model, report = unlearn(tiny_model, tok, records(0, 2), records(10, 2),
                            get_method("rmu", parse_knobs("rmu", {"layer": 1, "steering_coeff": 4.0, "alpha": 10.0})), 1e-2, LORA,
                            Unlearn(epochs=1, batch_size=2, retain_loss_bound=100), HW, tmp_path, seed=0)
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n and (".layers.0.mlp." in n or ".layers.1.mlp." in n) for n in trained)
    assert not report["stopped_early"]


def test_retain_bound_stops_training(tiny_model, tok, tmp_path):
    model, report = unlearn(tiny_model, tok, records(0, 4), records(10, 4), get_method("ga"), 1e-2, FULL,
                            Unlearn(epochs=2, batch_size=1, retain_loss_bound=0.5), HW, tmp_path, seed=0)
    assert report["stopped_early"] and "exceeded the bound 0.5 at step 0" in report["stop_reason"]


def test_effective_lr(tmp_path):
    from unlearn_lab.settings import load_settings

    methods = {"npo": {"lr": 2.5e-4}, "ga": {"lr": None}}
    assert effective_lr(parse_settings({"method": "npo", "lr": None, "methods": methods})) == 2.5e-4
    # what `dvc exp run -S lr=1e-5` writes: YAML 1.2 reads 1e-05 as a float
    (tmp_path / "params.yaml").write_text("method: npo\nlr: 1e-05\n")
    assert effective_lr(load_settings(tmp_path / "params.yaml")) == 1e-5
    with pytest.raises(UserError, match="methods.ga.lr"):
        check_knobs(parse_settings({"method": "ga", "lr": None, "methods": methods}))
    with pytest.raises(UserError, match="lr: must be > 0"):
        parse_settings({"method": "npo", "lr": -1, "methods": methods})
    with pytest.raises(UserError, match="lr: must be a number"):
        parse_settings({"method": "npo", "lr": "fast", "methods": methods})


def test_epoch_evaluation_runs_before_and_after_each_epoch(tiny_model, tok, tmp_path):
    from unlearn_lab.training.epoch_eval import EpochEvaluation

    made = []

    def factory(model):
        made.append(EpochEvaluation(model, tok, records(0, 2), records(10, 3), Eval(max_new_tokens=3), None,
                                    retain_size=2))
        return made[-1]

    unlearn(tiny_model, tok, records(0, 2), records(10, 3), get_method("ga"), 1e-3, FULL,
            Unlearn(epochs=2, batch_size=2, retain_loss_bound=100), HW, tmp_path, seed=0, epoch_eval=factory)
    history = made[0].history
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert "train_loss" not in history[0] and "train_loss" in history[1]
    assert all(0 <= h["forget_rouge_l_recall"] <= 1 and 0 < h["forget_truth_ratio"] <= 1 for h in history)
    assert len(made[0].retain) == 2


@pytest.mark.parametrize("fuse", [False, True])
def test_fused_views_run_one_forward_per_step_in_the_trainer(tiny_model, tok, monkeypatch, fuse, tmp_path):
    import unlearn_lab.training.unlearning as unlearning

    grouped = []

    class RecordingSampler(unlearning.LengthGroupedSampler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            grouped.append(self.lengths)

    monkeypatch.setattr(unlearning, "LengthGroupedSampler", RecordingSampler)
    calls = []
    tiny_model.register_forward_hook(lambda *args: calls.append(1))
    cfg = Unlearn(epochs=1, batch_size=2, retain_loss_bound=100)
    hw = resolve(Hardware(fuse_views=fuse, group_by_length=True))
    # gd logs its own retain NLL, so the trainer adds no watching forward: one step, one or two forwards.
    _, report = unlearn(tiny_model, tok, records(0, 2), records(10, 2), get_method("gd"), 1e-2, FULL, cfg, hw,
                        tmp_path, seed=0)
    assert report["steps"] == 1
    assert len(calls) == (1 if fuse else 2)
    forget_lengths = [len(e["input_ids"]) for e in EncodedDataset(tok, records(0, 2), 64).items]
    assert grouped == [forget_lengths]


@register
class FrozenByHook(UnlearningMethod):
    """Gradient ascent whose shape_gradients zeroes every gradient: nothing may move."""

    name = "_frozen_by_hook"
    shared_retain = False
    forward_views = ("forget",)

    def __init__(self, knobs):
        super().__init__(knobs)
        self.calls = []

    def forget_loss(self, step):
        return -token_mean_nll(step.logits("forget"), step.labels("forget")), {}

    def shape_gradients(self, step, model):
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None for g in grads), "the hook runs after the backward"
        self.calls.append(sorted(step.batch))
        for g in grads:
            g.zero_()


@pytest.mark.parametrize("scale", [0.0, 1.0])
def test_shape_gradients_runs_between_backward_and_step(tiny_model, tok, tmp_path, monkeypatch, scale):
    """A method's gradient hook rewrites `.grad` before the optimizer sees it (clipping too:
    the logged grad norm is 0 once the hook zeroed them)."""
    method = get_method("_frozen_by_hook", Knobs())
    if scale:
        monkeypatch.setattr(method, "shape_gradients", lambda step, model: method.calls.append(sorted(step.batch)))
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    cfg = Unlearn(epochs=1, batch_size=2, retain_loss_bound=100, weight_decay=0.0)
    norms = []
    trainer = build_unlearn_trainer(tiny_model, tok.pad_token_id, EncodedDataset(tok, records(0, 4), 64),
                                    EncodedDataset(tok, records(10, 4), 64), method, 1e-2, FULL, cfg, HW, tmp_path, 0)
    trainer.add_callback(type("Norms", (unlearning_callback(),), {
        "on_log": lambda self, args, state, control, logs=None, **kw: norms.append(logs.get("grad_norm"))}))
    trainer.train()
    assert method.calls == [["forget", "retain"]] * 2
    moved = any(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters())
    assert moved == bool(scale)
    assert (norms[0] == 0.0) == (not scale)


def unlearning_callback():
    from transformers import TrainerCallback

    return TrainerCallback


def test_build_unlearn_trainer_wires_the_stage(tiny_model, tok, tmp_path):
    cfg = Unlearn(epochs=1, batch_size=2, retain_loss_bound=7.0)
    trainer = build_unlearn_trainer(tiny_model, tok.pad_token_id, EncodedDataset(tok, records(0, 2), 64),
                                    EncodedDataset(tok, records(10, 2), 64), get_method("npo"), 1e-3, LORA, cfg, HW,
                                    tmp_path, 0)
    assert trainer.reference is not None and trainer.guard.retain_bound == 7.0
    assert trainer.trainable_parameters > 0 and trainer.trainable_pattern == ""
    assert trainer.guard in trainer.callback_handler.callbacks
    assert "_frozen_by_hook" in METHODS
