import json
import math

import numpy as np
import pytest
import torch

from unlearn_lab.evaluation.questions import answer_nlls, evaluate_set, generate_answers
from unlearn_lab.training.methods.base import METHODS, UnlearningMethod, register, token_mean_nll
from unlearn_lab.models.hardware import resolve
from unlearn_lab.training.methods import get_method
from unlearn_lab.evaluation.metrics import truth_ratio
from unlearn_lab.settings import Eval, Finetune, Hardware, Knobs, Lora, Model, Unlearn
from unlearn_lab.training.finetune import EncodedDataset, finetune
from unlearn_lab.training.unlearning import PairedDataset, unlearn

from .conftest import qa_record

LORA = Model(lora=Lora(r=4, alpha=8, target_modules="all-linear"), max_length=64)
HW = resolve(Hardware())


def test_pairing_is_deterministic_and_redrawn_each_epoch(tok):
    forget = EncodedDataset(tok, [qa_record(i) for i in range(4)], 64)
    retain = EncodedDataset(tok, [qa_record(i) for i in range(10, 22)], 64)
    a, b = PairedDataset(forget, retain, seed=3), PairedDataset(forget, retain, seed=3)
    assert [a[i]["retain"] for i in range(4)] == [b[i]["retain"] for i in range(4)]
    first = [a[i]["retain"]["input_ids"] for i in range(4)]
    a.set_epoch(1)
    assert [a[i]["retain"]["input_ids"] for i in range(4)] != first


def test_finetune_learns_the_answers(tiny_model, tok, tmp_path):
    records = [qa_record(i) for i in range(4)]
    pairs = [(r["question"], r["answer"]) for r in records]
    before = answer_nlls(tiny_model, tok, pairs).mean()
    full = Model(lora=None, max_length=64)
    model, report = finetune(tiny_model, tok, records, full, Finetune(epochs=8, lr=0.01, batch_size=4), HW,
                             tmp_path / "ft", seed=0)
    model.eval()
    assert answer_nlls(model, tok, pairs).mean() < before - 2.0
    assert report["steps"] == 8


@register
class PlantedNaN(UnlearningMethod):
    """Gradient ascent that turns NaN on its third call, recording the weights it saw."""

    name = "_planted_nan"
    shared_retain = False

    def __init__(self, knobs):
        super().__init__(knobs)
        self.seen = []

    def forget_loss(self, step):
        self.seen.append({n: p.detach().clone() for n, p in step.model.named_parameters() if p.requires_grad})
        loss = -token_mean_nll(step.logits("forget"), step.labels("forget"))
        if len(self.seen) == 3:
            loss = loss * float("nan")
        return loss, {}


def test_divergence_guard_stops_and_keeps_last_good_weights(tiny_model, tok, monkeypatch, tmp_path):
    made = []
    original = METHODS["_planted_nan"]
    monkeypatch.setitem(METHODS, "_planted_nan", lambda k: made.append(original(k)) or made[-1])
    forget = [qa_record(i) for i in range(6)]
    retain = [qa_record(i) for i in range(10, 16)]
    model, report = unlearn(tiny_model, tok, forget, retain, get_method("_planted_nan", Knobs()), 1e-2, LORA,
                            Unlearn(epochs=1, batch_size=1, retain_loss_bound=100), HW, tmp_path / "ul", seed=0)
    assert report["stopped_early"] and "non-finite loss at step 2" in report["stop_reason"]
    assert report["steps"] == 3
    good = made[0].seen[1]  # the weights of the last step whose loss was finite
    now = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert all(torch.equal(now[n], good[n]) for n in good)
    assert not torch.equal(made[0].seen[2][next(iter(good))], good[next(iter(good))])


def test_npo_with_lora_reference_is_the_frozen_target(tiny_model, tok, tmp_path):
    # One NPO step on LoRA: the adapter starts at zero, so p_theta == p_ref and the log-ratio is 0.
    forget = [qa_record(i) for i in range(2)]
    retain = [qa_record(i) for i in range(10, 12)]
    base_w = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    model, report = unlearn(tiny_model, tok, forget, retain, get_method("npo"), 1e-2, LORA,
                            Unlearn(epochs=2, batch_size=2, retain_loss_bound=100), HW, tmp_path / "npo", seed=0)
    assert not report["stopped_early"] and report["steps"] == 2
    frozen = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
              for n, p in model.named_parameters() if "lora_" not in n}
    assert all(torch.equal(frozen[n], w) for n, w in base_w.items())


def test_generation_batched_equals_one_by_one(tiny_model, tok):
    questions = ["Where?", "Where does a much longer question lead us?", "Who is it?"]
    batched = generate_answers(tiny_model, tok, questions, batch_size=3, max_new_tokens=6)
    single = [generate_answers(tiny_model, tok, [q], batch_size=1, max_new_tokens=6)[0] for q in questions]
    assert batched == single


def test_answer_nlls_match_a_single_example_forward(tiny_model, tok):
    pairs = [("Where?", "Here"), ("A longer question, is it?", "a longer answer than that")]
    got = answer_nlls(tiny_model, tok, pairs, batch_size=2)
    for (q, a), value in zip(pairs, got):
        from unlearn_lab.models.loading import encode_qa

        enc = encode_qa(tok, q, a, 64)
        ids = torch.tensor([enc["input_ids"]])
        with torch.no_grad():
            logits = tiny_model(input_ids=ids).logits[0, :-1]
        labels = torch.tensor(enc["labels"][1:])
        want = torch.nn.functional.cross_entropy(logits[labels != -100], labels[labels != -100])
        assert value == pytest.approx(want.item(), rel=1e-4)


def test_evaluate_set_rows_are_consistent(tiny_model, tok):
    records = [qa_record(i) for i in range(3)]
    rows, summary = evaluate_set(tiny_model, tok, records, Eval(max_new_tokens=4), "forget")
    r = records[1]
    nll = answer_nlls(tiny_model, tok, [(r["question"], x) for x in [r["answer"], r["paraphrased_answer"], *r["perturbed_answers"]]])
    assert rows[1]["prob"] == pytest.approx(math.exp(-nll[0]), rel=1e-5)
    assert rows[1]["truth_ratio"] == pytest.approx(truth_ratio(nll[1], nll[2:]), rel=1e-5)
    ratios = np.array([row["truth_ratio"] for row in rows])
    assert summary["truth_ratio"] == pytest.approx(np.mean(np.minimum(ratios, 1 / ratios)))
    assert summary["n"] == 3


def test_shared_prompt_nlls_equal_one_forward_per_pair(tiny_model, tok):
    from unlearn_lab.evaluation.questions import shared_prompt_nlls

    questions = ["Where?", "A much longer question about where it is, is it?", "Who?"]
    answers = [["Here", "over there by the river", "x"], ["a", "b c d e f", "Paris"], ["Me", "you", "them all"]]
    got = shared_prompt_nlls(tiny_model, tok, questions, answers, batch_size=2)
    want = answer_nlls(tiny_model, tok, [(q, a) for q, al in zip(questions, answers) for a in al]).reshape(3, 3)
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_length_groups_cut_where_padding_is_least():
    from unlearn_lab.evaluation.questions import length_groups

    # a long reference sentence per question among short candidates: the two long rows apart
    lengths = [12, 5, 6, 5, 11, 6, 4, 5]
    groups = length_groups(lengths)
    assert groups == [[1, 2, 3, 5, 6, 7], [0, 4]]
    # every cut by hand: padded tokens of the c shortest at their width plus the rest at the longest
    widths = sorted(lengths)
    best = min(c * widths[c - 1] + (len(widths) - c) * widths[-1] for c in range(1, len(widths) + 1))
    assert sum(len(g) * max(lengths[r] for r in g) for g in groups) == best == 6 * 6 + 2 * 12
    # equal lengths: one group, order kept
    assert length_groups([3, 3, 3]) == [[0, 1, 2]]


def test_shared_prompt_nlls_with_mixed_lengths_in_one_batch(tiny_model, tok):
    """Short and long candidates of several questions in one batch (two length groups)."""
    from unlearn_lab.evaluation.questions import shared_prompt_nlls

    questions = ["Where?", "Who is it, then?", "When?"]
    answers = [["It is a very long reference sentence about the place", "x", "y z"],
               ["a", "Another rather long sentence about the person here", "b"],
               ["now", "then", "A long sentence about the time it happened"]]
    got = shared_prompt_nlls(tiny_model, tok, questions, answers, batch_size=3)
    want = answer_nlls(tiny_model, tok, [(q, a) for q, al in zip(questions, answers) for a in al]).reshape(3, 3)
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_sampled_continuations_draw_as_num_return_sequences_does(tiny_model, tok):
    """Each prompt prefilled once (its cache repeated per sample) gives the samples `generate`
    draws with `num_return_sequences`, which prefills every sample anew."""
    from unlearn_lab.evaluation.questions import generate_texts
    from unlearn_lab.models.loading import prompt_text

    prompts = [prompt_text(tok, q) for q in ("Where does Ann live?", "What is the name of the town by the river?")]
    torch.manual_seed(3)
    got = generate_texts(tiny_model, tok, prompts, batch_size=2, max_new_tokens=5, samples=4, temperature=1.0)
    torch.manual_seed(3)
    order = sorted(range(2), key=lambda i: len(prompts[i]))
    enc = tok([prompts[i] for i in order], return_tensors="pt", padding=True, padding_side="left",
              add_special_tokens=False)
    with torch.no_grad():
        gen = tiny_model.generate(**enc, max_new_tokens=5, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                  num_return_sequences=4, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    texts = [t.strip() for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]
    want = {i: texts[row * 4:(row + 1) * 4] for row, i in enumerate(order)}
    assert got == [want[0], want[1]]
    assert len(set(got[0] + got[1])) > 1  # real draws, not one repeated answer


def test_token_stats_match_a_plain_forward(tiny_model, tok):
    from unlearn_lab.evaluation.questions import shared_prompt_nlls
    from unlearn_lab.models.loading import encode_qa

    questions, answers = ["Where?", "A longer question, is it?"], [["Here", "x"], ["There it is, by the river", "y"]]
    nll, stats = shared_prompt_nlls(tiny_model, tok, questions, answers, batch_size=2, token_stats=True)
    for q, (a, _), st, row_nll in zip(questions, answers, stats, nll):
        enc = encode_qa(tok, q, a, 64)
        with torch.no_grad():
            logits = tiny_model(input_ids=torch.tensor([enc["input_ids"]])).logits[0, :-1].double()
        labels = torch.tensor(enc["labels"][1:])
        keep = labels != -100
        lsm = torch.log_softmax(logits[keep], -1)
        p = lsm.exp()
        mu = (p * lsm).sum(-1)
        sigma = (p * (lsm - mu[:, None]) ** 2).sum(-1).sqrt()
        np.testing.assert_allclose(st["logp"], lsm.gather(1, labels[keep][:, None])[:, 0].numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(st["mu"], mu.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(st["sigma"], sigma.numpy(), rtol=1e-3, atol=1e-3)
        assert (st["correct"] == (lsm.argmax(-1) == labels[keep]).numpy()).all()
        assert -st["logp"].mean() == pytest.approx(row_nll[0], rel=1e-5)


def test_saved_adapter_config_does_not_depend_on_the_hash_seed(tiny_model, tmp_path):
    """PEFT stores target_modules as a set; the saved file must list them in one fixed order."""
    from unlearn_lab.models.loading import add_lora, save_trained

    save_trained(add_lora(tiny_model, LORA.lora), tmp_path / "a", parent="base")
    text = (tmp_path / "a" / "adapter_config.json").read_text()
    modules = __import__("json").loads(text)["target_modules"]
    assert modules == sorted(modules) and len(modules) > 1


def test_live_curves_of_a_fine_tune_and_an_unlearning_run(tiny_model, tok, tmp_path):
    """transformers' DVCLive callback, kept to the stages' layout: train/<curve>.tsv and the
    method's parts, `epoch` in the summary only, no Trainer params, the Live run left open."""
    from dvclive import Live
    from transformers import TrainerControl, TrainerState

    from unlearn_lab.training.finetune import LiveCallback

    records = [qa_record(i) for i in range(4)]
    with Live(str(tmp_path / "ft"), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        model, _ = finetune(tiny_model, tok, records, Model(lora=None, max_length=64),
                            Finetune(epochs=1, lr=0.01, batch_size=2, checkpoint=False), HW, tmp_path / "s", 0, live)
        assert live.step == 2  # not ended by the callback: the stage's `with` ends it
        unlearn(model, tok, records[:2], [qa_record(i) for i in range(10, 12)], get_method("npo"), 1e-3, LORA,
                Unlearn(epochs=1, batch_size=2, retain_loss_bound=100), HW, tmp_path / "u", seed=0, live=live)
    curves = sorted(p.relative_to(tmp_path / "ft").as_posix() for p in (tmp_path / "ft").rglob("*") if p.is_file())
    assert curves == ["metrics.json"] + [f"plots/metrics/train/{k}.tsv" for k in
                                         ("grad_norm", "learning_rate", "log_ratio", "loss", "npo_loss", "retain_nll")]
    assert (tmp_path / "ft/plots/metrics/train/loss.tsv").read_text().splitlines()[0] == "step\tloss"
    summary = json.loads((tmp_path / "ft/metrics.json").read_text())
    assert list(summary) == ["train", "epoch", "step"] and summary["step"] == 2
    # a resumed run continues the step count
    with Live(str(tmp_path / "resumed"), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        cb = LiveCallback(live)
        cb.on_train_begin(None, TrainerState(global_step=5), TrainerControl())
        assert live.step == 5
