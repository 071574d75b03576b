"""Each loss against a plain-PyTorch re-computation of its formula on the same logits."""
import copy
import math

import pytest
import torch

from unlearn_lab.io import UserError
from unlearn_lab.methods import METHODS, answer_logprobs, get_method
from unlearn_lab.modeling import collate, encode_qa

from .conftest import qa_record


def batch(tok, start, n=3):
    recs = [qa_record(i) for i in range(start, start + n)]
    return collate([encode_qa(tok, r["question"], r["answer"], 64) for r in recs], tok.pad_token_id)


def seq_logprob_loop(logits, labels):
    """Summed answer log-prob per row, token by token (independent of answer_logprobs)."""
    out = []
    for row in range(labels.shape[0]):
        total = 0.0
        for t in range(1, labels.shape[1]):
            if labels[row, t] != -100:
                total = total + torch.log_softmax(logits[row, t - 1].double(), -1)[labels[row, t]]
        out.append(total)
    return torch.stack(out)


def hf_nll(logits, labels):
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).double(), labels[:, 1:].reshape(-1), ignore_index=-100
    )


def logits_of(model, b):
    return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits


def test_answer_logprobs_matches_loop(tiny_model, tok):
    b = batch(tok, 0)
    with torch.no_grad():
        logits = logits_of(tiny_model, b)
    logp, count = answer_logprobs(logits, b["labels"])
    assert torch.allclose(logp.double(), seq_logprob_loop(logits, b["labels"]), atol=1e-4)
    # answer tokens plus the closing eos, padding excluded
    assert count.tolist() == [(row[1:] != -100).sum().item() for row in b["labels"]]


def test_padding_is_masked_by_position_not_id(tok):
    # pad id == eos id for SmolLM2: the answer's closing eos must stay in the labels
    enc = encode_qa(tok, "Q?", "A", 64)
    assert enc["labels"][-1] == tok.eos_token_id
    b = collate([enc, encode_qa(tok, "A longer question here?", "A longer answer", 64)], tok.pad_token_id)
    n = len(enc["input_ids"])
    assert b["labels"][0, n - 1] == tok.eos_token_id and (b["labels"][0, n:] == -100).all()
    assert b["attention_mask"][0, :n].all() and not b["attention_mask"][0, n:].any()


def expected_loss(name, knobs, model, ref, f, r):
    lf, lr_ = logits_of(model, f), logits_of(model, r)
    if name == "ga":
        return -hf_nll(lf, f["labels"])
    if name == "gd":
        return -knobs["gamma"] * hf_nll(lf, f["labels"]) + knobs["alpha"] * hf_nll(lr_, r["labels"])
    if name == "npo":
        beta = knobs["beta"]
        ratio = seq_logprob_loop(lf, f["labels"]) - seq_logprob_loop(logits_of(ref, f), f["labels"])
        npo = -(2 / beta) * torch.log(torch.sigmoid(-beta * ratio)).mean()
        return npo + knobs["alpha"] * hf_nll(lr_, r["labels"])
    raise AssertionError(name)


@pytest.mark.parametrize("name,knobs", [("ga", {}), ("gd", {"gamma": 0.7, "alpha": 1.3}), ("npo", {"beta": 0.5, "alpha": 0.8})])
def test_loss_equals_independent_computation(name, knobs, tiny_model, tok):
    f, r = batch(tok, 0), batch(tok, 10)
    ref = copy.deepcopy(tiny_model)
    # move the trained model away from the reference so NPO's log-ratio is not zero
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    method = get_method(name, knobs)
    reference = lambda b: logits_of(ref, b)  # noqa: E731
    loss, parts = method.loss(tiny_model, f, r, reference)
    with torch.no_grad():
        want = expected_loss(name, method.knobs, tiny_model, ref, f, r)
    assert loss.item() == pytest.approx(want.item(), rel=1e-4, abs=1e-5)
    assert all(math.isfinite(v) for v in parts.values())


@pytest.mark.parametrize("name", ["ga", "gd", "npo"])
def test_one_step_lowers_forget_probability(name, tiny_model, tok):
    f, r = batch(tok, 0), batch(tok, 10)
    ref = copy.deepcopy(tiny_model).requires_grad_(False)
    method = get_method(name, {})
    with torch.no_grad():
        before = answer_logprobs(logits_of(tiny_model, f), f["labels"])[0].sum()
    opt = torch.optim.SGD(tiny_model.parameters(), lr=0.05)
    loss, _ = method.loss(tiny_model, f, r, lambda b: logits_of(ref, b))
    loss.backward()
    opt.step()
    with torch.no_grad():
        after = answer_logprobs(logits_of(tiny_model, f), f["labels"])[0].sum()
    assert after < before


def test_registry_and_knob_errors():
    assert {"ga", "gd", "npo"} <= set(METHODS)
    with pytest.raises(UserError, match="unknown method 'nope'"):
        get_method("nope")
    with pytest.raises(UserError, match="methods.npo: unknown knob"):
        get_method("npo", {"betta": 1})
    assert get_method("npo", {"beta": "0.2"}).beta == 0.2
