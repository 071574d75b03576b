"""Sequential deletion requests: the split of the forget set, the one-request run unchanged, the
reference each request uses, and per-request measurements against a re-evaluation of the
models each request left."""
import copy

import numpy as np
import pytest
import torch

from unlearn_lab.errors import UserError
from unlearn_lab.evaluation.questions import generate_answers
from unlearn_lab.models.hardware import resolve
from unlearn_lab.training.methods import get_method
from unlearn_lab.evaluation.metrics import rouge_l_recall
from unlearn_lab.models.loading import encode_qa, load_model, save_trained
from unlearn_lab.evaluation.plots import requests_plot
from unlearn_lab.data.records import person
from unlearn_lab.training.deletion import RequestEvaluation, combined_report, counted, split_requests, unlearn_requests
from unlearn_lab.settings import Eval, Hardware, Lora, Model, Unlearn
from unlearn_lab.training.unlearning import unlearn

from .conftest import qa_record

LORA = Model(lora=Lora(r=4, alpha=8, target_modules="all-linear"), max_length=64)
HW = resolve(Hardware())
CFG = Unlearn(epochs=2, batch_size=2, retain_loss_bound=100.0)
EVAL = Eval(max_new_tokens=4, bootstrap=50)


def people_records(people: int, per_person: int, start: int = 0) -> list[dict]:
    out = []
    for p in range(people):
        for j in range(per_person):
            rec = qa_record(start + p * per_person + j)
            rec["subject"] = f"Person{start + p}"
            rec["answer_text"] = f"Person {start + p} lives in {rec['answer']}."
            out.append(rec)
    # interleaved, as a real forget set need not list a person's facts together
    return out[::2] + out[1::2]


def test_split_is_deterministic_disjoint_and_keeps_people_whole():
    forget = people_records(5, 3)
    requests = split_requests(forget, 3, seed=42)
    assert requests == split_requests(forget, 3, seed=42)
    ids = [r["id"] for request in requests for r in request]
    assert sorted(ids) == sorted(r["id"] for r in forget) and len(set(ids)) == len(ids)
    owners = [{person(r) for r in request} for request in requests]
    assert all(a.isdisjoint(b) for i, a in enumerate(owners) for b in owners[i + 1:])
    assert sorted(len(o) for o in owners) == [1, 2, 2]
    # inside a request the records keep the forget set's order
    for request in requests:
        assert [r["id"] for r in request] == [r["id"] for r in forget if r in request]
    assigned = {seed: [sorted(o) for o in (({person(r) for r in q} for q in split_requests(forget, 3, seed)))]
                for seed in range(6)}
    assert len({str(v) for v in assigned.values()}) > 1, "the seed must change which people go together"
    assert split_requests(forget, 1, seed=3) == [forget]
    with pytest.raises(UserError, match="unlearn.requests is 6, but the forget set has only 5 people"):
        split_requests(forget, 6, seed=0)


def test_combined_report_sums_the_requests():
    one = {"method": "npo", "steps": 3, "seconds": 1.0, "stopped_early": False, "stop_reason": ""}
    assert combined_report([{"request": 1, "people": ["a"], "questions": 2, **one}], "previous") == one
    two = combined_report([{"request": 1, "people": ["a"], "questions": 2, **one},
                           {"request": 2, "people": ["b"], "questions": 2, **one, "steps": 1, "stopped_early": True,
                            "stop_reason": "retain NLL 9 exceeded the bound"}], "target")
    assert two["steps"] == 4 and two["seconds"] == 2.0 and two["stopped_early"]
    assert two["stop_reason"] == "request 2: retain NLL 9 exceeded the bound" and two["request_reference"] == "target"


def test_a_request_counts_what_it_forgets():
    """Questions on the question benchmarks; on the documents benchmark, whose one request is its
    forget documents (text, no question), documents."""
    assert counted([qa_record(0), qa_record(1)]) == "questions"
    assert counted([{"id": "d1", "subject": "a", "text": "..."}]) == "documents"
    one = {"method": "npo", "steps": 3, "seconds": 1.0, "stopped_early": False, "stop_reason": ""}
    assert combined_report([{"request": 1, "people": ["a"], "documents": 5, **one}], "previous") == one


def _run(model, tok, forget, retain, method, seed):
    return unlearn(model, tok, forget, retain, method, 1e-2, LORA, CFG, HW, None, seed)


def test_one_request_is_the_usual_run(tiny_dir, tok, tmp_path):
    forget, retain = people_records(2, 2), people_records(3, 2, start=10)
    method = get_method("npo")
    usual, _ = _run(load_model(tiny_dir), tok, forget, retain, method, 0)
    requests = split_requests(forget, 1, seed=42)
    got, reports, points = unlearn_requests(
        load_model(tiny_dir), requests, lambda m, r, f, ref: _run(m, tok, f, retain, method, r), measure=None)
    assert points == [] and reports[0]["questions"] == 4
    a, b = usual.state_dict(), got.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("choice", ["previous", "target"])
def test_later_requests_use_the_reference_asked_for(tiny_model, choice):
    original = copy.deepcopy(tiny_model.state_dict())
    seen = []

    def run_request(model, r, forget, reference_model):
        seen.append(reference_model)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01)
        return model, {"steps": 1}

    unlearn_requests(tiny_model, [[qa_record(i)] for i in range(3)], run_request, choice, needs_reference=True)
    assert seen[0] is None
    if choice == "previous":
        assert seen[1:] == [None, None]
    else:
        assert seen[1] is seen[2] and not any(p.requires_grad for p in seen[1].parameters())
        assert all(torch.equal(original[k], v) for k, v in seen[1].state_dict().items())


def _independent_prob(model, tok, records) -> float:
    """Mean over records of exp(-mean token NLL) of the reference sentence, from one plain forward
    per record."""
    probs = []
    for r in records:
        enc = encode_qa(tok, r["question"], r["answer_text"], 64)
        ids, labels = torch.tensor([enc["input_ids"]]), torch.tensor([enc["labels"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), -1)
        target = labels[0, 1:]
        keep = target != -100
        nll = -logp[keep].gather(-1, target[keep].unsqueeze(-1)).mean()
        probs.append(float(torch.exp(-nll)))
    return float(np.mean(probs))


def test_three_requests_measure_what_each_saved_model_scores(tiny_dir, tok, tmp_path):
    forget, retain, world = people_records(3, 2), people_records(3, 2, start=10), people_records(2, 2, start=20)
    model = load_model(tiny_dir)
    # (A random model answers nothing, so ROUGE-L is 0 here; the probabilities carry the check.)
    requests = split_requests(forget, 3, seed=1)
    method = get_method("ga")
    saved = []

    def run_request(m, r, part, reference_model):
        m, report = unlearn(m, tok, part, retain, method, 5e-2, LORA, CFG, HW, None, r,
                            reference_model=reference_model)
        folder = tmp_path / f"after_{r + 1}"
        save_trained(copy.deepcopy(m).merge_and_unload(), folder, parent=str(tiny_dir))
        saved.append(folder)
        return m, report

    measure = RequestEvaluation(tok, requests, retain, world, EVAL, size=4)
    _, reports, points = unlearn_requests(model, requests, run_request, "previous", measure)
    assert [p["applied"] for p in points] == [0, 1, 2, 3] and [r["request"] for r in reports] == [1, 2, 3]
    for point, folder in zip(points, [tiny_dir, *saved]):
        again = load_model(folder)
        for i, request in enumerate(requests):
            got = point[f"request_{i + 1}"]
            gens = generate_answers(again, tok, [r["question"] for r in request], 8, 4)
            assert got["rouge_l_recall"] == pytest.approx(np.mean([rouge_l_recall(r["answer"], g)
                                                                   for r, g in zip(request, gens)]))
            assert got["prob"] == pytest.approx(_independent_prob(again, tok, request), rel=1e-4)
            low, high = got["prob_ci95"]
            assert low <= got["prob"] <= high
        assert 0 <= point["model_utility"] <= 1 and "world_rouge_l_recall" in point
    # each request moved the model (a random model's answers carry no fact to forget)
    probs = [p["request_1"]["prob"] for p in points]
    assert len(set(probs)) == len(probs)


def test_the_first_point_from_the_evaluate_stages_rows_is_the_measured_one(tiny_dir, tok):
    """The evaluate stage's rows of the starting model (every set whole, in its own batches) give the
    point `measure` computes on the model, up to float rounding; a question they lack means measuring."""
    from unlearn_lab.evaluation.questions import evaluate_set

    forget, retain, world = people_records(3, 2), people_records(3, 2, start=10), people_records(2, 2, start=20)
    model = load_model(tiny_dir)
    requests = split_requests(forget, 3, seed=1)
    measured = RequestEvaluation(tok, requests, retain, world, EVAL, size=4, resamples=50).measure(model, 0)
    evaluated = [row for name, records in (("forget", forget), ("retain", retain), ("world", world))
                 for row in evaluate_set(model, tok, records, EVAL, name, bertscore=False)[0]]
    again = RequestEvaluation(tok, requests, retain, world, EVAL, size=4, resamples=50)
    rows = again.rows_from(evaluated)
    assert rows is not None and len(rows) == len(forget) + 4 + 4
    taken = again.measure(None, 0, rows)  # no model: nothing is evaluated

    def numbers(point, prefix=""):
        for key, value in point.items():
            if isinstance(value, dict):
                yield from numbers(value, f"{prefix}{key}.")
            elif isinstance(value, list):
                yield from ((f"{prefix}{key}[{i}]", v) for i, v in enumerate(value))
            else:
                yield f"{prefix}{key}", value

    want, got = dict(numbers(measured)), dict(numbers(taken))
    assert want.keys() == got.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key
    # a retain question the evaluation left out: measured on the model instead
    sampled = {r["id"] for r in again.retain}
    assert again.rows_from([r for r in evaluated if not (r["set"] == "retain" and r["id"] in sampled)]) is None


def test_requests_plot_draws_every_request(tmp_path):
    point = lambda j: {"applied": j, "request_1": {"rouge_l_recall": 1 - j / 3, "rouge_l_recall_ci95": [0.1, 0.9]},
                       "request_2": {"rouge_l_recall": 0.9}, "model_utility": 0.5, "model_utility_ci95": [0.4, 0.6],
                       "retain_rouge_l_recall": 0.8}
    report = {"method": "npo", "requests": [{"request": 1, "questions": 4}, {"request": 2, "questions": 2}],
              "after_requests": [point(j) for j in range(3)]}
    requests_plot(report, tmp_path / "requests.png")
    assert (tmp_path / "requests.png").stat().st_size > 10_000
    requests_plot({"method": "npo"}, tmp_path / "empty.png")
    assert (tmp_path / "empty.png").is_file()
