"""Quantization, representation measures, probes and relearning: each against a hand-computed
value, a closed form or a second, plain implementation."""
import numpy as np
import pytest
import torch

from unlearn_lab.evaluation.questions import answer_nlls, shared_prompt_nlls
from unlearn_lab.errors import UserError
from unlearn_lab.models.loading import encode_qa
from unlearn_lab.models.hardware import resolve
from unlearn_lab.settings import Hardware, Model, Relearn, Represent, parse_settings
from unlearn_lab.data.sets import sample
from unlearn_lab.robustness.common import add_recovery, baseline_scores
from unlearn_lab.robustness.quantization import headline as quantize_headline
from unlearn_lab.robustness.quantization import quantize_linear_weights, rtn_quantize
from unlearn_lab.robustness.relearning import headline as relearn_headline
from unlearn_lab.robustness.relearning import relearn, relearn_split, resolve_data
from unlearn_lab.io import write_json, write_jsonl
from unlearn_lab.robustness.readouts import load_states, read_part, save_states
from unlearn_lab.robustness.representation import headline as represent_headline
from unlearn_lab.robustness.representation import (
    analyse, answer_layer_readouts, candidate_choice_accuracy, layer_drift, layer_table, lens_accuracy, lens_layers,
    model_probes, probe_all_layers, probe_layer, read_model, represent_facts, sentence_candidates,
)
from unlearn_lab.robustness.scores import knowledge_recovered, mean_cosine, mean_drift_norm, mean_logit_drift_norm

from .conftest import qa_record

# ---------------------------------------------------------------- quantization


def test_symmetric_rtn_matches_a_hand_computed_example():
    w = torch.tensor([[0.1, -0.4, 0.25, 0.3]])
    deq, scale = rtn_quantize(w, bits=4, group_size=4, symmetric=True)
    s = 0.4 / 7  # max|w| / (2^3 - 1)
    # w / s = 1.75, -7, 4.375, 5.25 -> 2, -7, 4, 5
    assert scale.item() == pytest.approx(s)
    assert deq.tolist()[0] == pytest.approx([2 * s, -7 * s, 4 * s, 5 * s], abs=1e-7)


def test_asymmetric_rtn_matches_a_hand_computed_example():
    w = torch.tensor([[0.0, 1.0, 0.4, 0.2], [-1.0, -0.5, 0.0, 0.5]])
    deq, scale = rtn_quantize(w, bits=2, group_size=4, symmetric=False)
    # row 1: s = 1/3, z = 0, q = round(0, 3, 1.2, 0.6) = 0, 3, 1, 1
    # row 2: s = 0.5, z = 2, q = round(-2, -1, 0, 1) + 2 = 0, 1, 2, 3 -> exact
    assert scale.flatten().tolist() == pytest.approx([1 / 3, 0.5])
    assert deq[0].tolist() == pytest.approx([0.0, 1.0, 1 / 3, 1 / 3], abs=1e-6)
    assert deq[1].tolist() == pytest.approx([-1.0, -0.5, 0.0, 0.5], abs=1e-6)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_rtn_error_stays_within_its_bound(bits, symmetric):
    torch.manual_seed(bits)
    w = torch.randn(16, 64) * torch.rand(16, 1) * 3
    deq, scale = rtn_quantize(w, bits, group_size=16, symmetric=symmetric)
    err = (w - deq).abs().reshape(16, 4, 16)
    # symmetric: half a step; asymmetric: the rounded zero point can cost another half step
    bound = scale.unsqueeze(-1) * (0.5 if symmetric else 1.0)
    assert (err <= bound + 1e-6).all()
    levels = 2 ** bits - (1 if symmetric else 0)
    assert all(len(torch.unique(g)) <= levels for g in deq.reshape(-1, 16))


def test_rtn_group_size_must_divide_the_width():
    with pytest.raises(UserError, match="does not divide"):
        rtn_quantize(torch.zeros(2, 10), 4, group_size=4)


def test_quantize_linear_weights_leaves_embeddings_and_head(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    n = quantize_linear_weights(tiny_model, bits=4, group_size=16)
    linears = [m for name, m in tiny_model.named_modules()
               if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head")]
    assert n == len(linears) == 14  # 2 layers x (4 attention + 3 MLP projections)
    after = tiny_model.state_dict()
    assert torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])
    changed = [k for k in before if k.endswith("proj.weight") and not torch.equal(before[k], after[k])]
    assert len(changed) == 14


def test_quantize_bits_must_be_a_list():
    # bitsandbytes' schemes and their reasons: tests/test_bnb.py
    with pytest.raises(UserError, match="quantize.bits: must be a list, got '4'"):
        parse_settings({"quantize": {"bits": "4"}})


# ---------------------------------------------------------------- recovery


def test_knowledge_recovered_by_hand():
    assert knowledge_recovered(0.6, unlearned=0.2, target=1.0) == pytest.approx(0.5)
    assert knowledge_recovered(0.2, 0.2, 1.0) == 0.0
    assert knowledge_recovered(0.1, 0.2, 1.0) == pytest.approx(-0.125)
    # a score that falls with knowledge (forget truth-ratio score): the same fraction
    assert knowledge_recovered(0.5, unlearned=0.8, target=0.2) == pytest.approx(0.5)
    assert knowledge_recovered(0.5, 0.7, 0.7) is None


def test_add_recovery_gives_a_reason_when_nothing_was_forgotten():
    scores = {"forget_rouge_l_recall": 0.5, "forget_prob": 0.4, "forget_truth_ratio": 0.3}
    same = dict(scores)
    out = add_recovery(scores, unlearned=same, target={**same, "forget_prob": 0.9})
    assert "recovered" not in out and "nothing was forgotten" in out["recovered_reason"]
    assert out["recovered_prob"] == 0.0


def test_baseline_scores_use_exactly_the_subset():
    rows = [{"id": f"r{i}", "set": "retain", "rouge_l_recall": float(i), "prob": 0.5, "truth_ratio": 0.5,
             "correlated": False} for i in range(4)]
    for extra in ("rouge_l_f1", "bleu", "exact_memorization", "extraction_strength", "nll"):
        for r in rows:
            r[extra] = 0.0
    for r in rows:
        r["n_tokens"] = 1
    got = baseline_scores(rows, {"retain": [{"id": "r1"}, {"id": "r3"}]}, "eval/x.jsonl")
    assert got["retain_rouge_l_recall"] == pytest.approx(2.0)
    with pytest.raises(UserError, match="eval/x.jsonl: no retain row for record id 'r9'"):
        baseline_scores(rows, {"retain": [{"id": "r9"}]}, "eval/x.jsonl")


def test_sample_puts_correlated_facts_first_then_spreads_over_the_set():
    records = [dict(qa_record(i), correlated=i in (3, 5)) for i in range(10)]
    # the 8 others are r0 r1 r2 r4 r6 r7 r8 r9; three of them, every 8/3-th: positions 0, 2, 5
    assert [r["id"] for r in sample(records, 5)] == ["r3", "r5", "r0", "r2", "r7"]
    assert [r["id"] for r in sample(records, 1)] == ["r3"]
    assert len(sample(records, 0)) == len(sample(records, 10)) == len(sample(records, 99)) == 10


def test_robustness_headline_keys_and_reasons():
    out = {**quantize_headline({"int4": {"recovered": 0.25}}), **relearn_headline({"relearned": {"recovered_reason": "equal"}}),
           **represent_headline({"probe_forget_accuracy_max": 0.5, "lens_forget_accuracy_max": 0.75,
                                 "probe_chance": 0.2, "probe_target_forget_accuracy_max": 0.9})}
    assert out["quant_int4_recovered"] == 0.25 and out["relearn_recovered_reason"] == "equal"
    assert out["probe_forget_accuracy_max"] == 0.5 and out["lens_forget_accuracy_max"] == 0.75
    assert "probe_target_forget_accuracy_max" not in out
    assert quantize_headline({})["quant_int4_recovered_reason"] == "quantize int4 was not run"
    both = quantize_headline({"int4": {"recovered": 0.25}, "bnb_nf4": {"recovered": 0.5}})
    assert both == {"quant_int4_recovered": 0.25, "quant_nf4_recovered": 0.5}
    skipped = quantize_headline({"int4": {"recovered": 0.25}, "bnb_reason": "quantize.bnb is false"})
    assert skipped["quant_nf4_recovered_reason"] == "bitsandbytes was not run: quantize.bnb is false"
    assert relearn_headline({"relearned": {"recovered": 0.5, "recovered_over_oracle_reason": "no oracle: world"}}) == {
        "relearn_recovered": 0.5, "relearn_recovered_over_oracle_reason": "no oracle: world"}


# ---------------------------------------------------------------- representation


def test_drift_measures_on_constructed_states():
    a = np.array([[1.0, 0.0], [3.0, 4.0]])
    b = np.array([[0.0, 1.0], [6.0, 8.0]])
    assert mean_cosine(a, b) == pytest.approx((0.0 + 1.0) / 2)
    assert mean_drift_norm(a, b) == pytest.approx((np.sqrt(2) + 5.0) / 2)
    head = np.array([[2.0, 0.0], [0.0, 0.0], [0.0, 1.0]])  # vocab 3 x hidden 2
    # W (a - b): row 1 (2, 0, -1) -> sqrt 5; row 2 (-6, 0, -4) -> sqrt 52
    assert mean_logit_drift_norm(a, b, head) == pytest.approx((np.sqrt(5) + np.sqrt(52)) / 2)


def test_candidate_choice_accuracy_by_hand():
    scores = np.array([[3.0, 1.0, 2.0], [1.0, 1.0, 0.0], [0.0, 2.0, 1.0], [5.0, 4.0, 4.5]])
    assert candidate_choice_accuracy(scores) == pytest.approx(2 / 4)  # a tie is not a win


def _planted(n_questions, k, hidden, signal, rng):
    states = rng.normal(size=(n_questions, k, hidden))
    states[:, 0, :3] += signal  # the true answer's states lean along the first three axes
    return states


def test_probe_reads_a_planted_signal_and_not_noise():
    rng = np.random.default_rng(0)
    [strong] = probe_layer(_planted(60, 6, 20, 4.0, rng), _planted(200, 6, 20, 4.0, rng))
    assert strong > 0.95
    [noise] = probe_layer(_planted(60, 6, 20, 0.0, rng), _planted(600, 6, 20, 0.0, rng))
    assert abs(noise - 1 / 6) < 0.06


def test_one_probe_fit_scores_every_test_set_as_separate_fits_do():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(2)
    train, first, second = _planted(40, 4, 8, 1.0, rng), _planted(30, 4, 8, 1.0, rng), _planted(50, 4, 8, 0.5, rng)
    got = probe_layer(train, first, second)
    # the same probe written out: standardise, balanced logistic regression, pick the top-scored candidate
    x = train.reshape(-1, 8)
    scaler = StandardScaler().fit(x)
    fit = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=0).fit(
        scaler.transform(x), np.tile([1, 0, 0, 0], 40))
    for test, acc in zip((first, second), got):
        scores = fit.decision_function(scaler.transform(test.reshape(-1, 8))).reshape(-1, 4)
        assert acc == pytest.approx(np.mean(scores.argmax(1) == 0))


def test_probe_all_layers_finds_the_layer_with_the_signal():
    rng = np.random.default_rng(1)
    retain = np.stack([_planted(80, 4, 10, s, rng) for s in (0.0, 5.0)], axis=2)
    forget = np.stack([_planted(100, 4, 10, s, rng) for s in (0.0, 5.0)], axis=2)
    out = probe_all_layers(retain, forget)
    assert out["forget_accuracy"][1] > 0.95 and out["retain_accuracy"][1] > 0.95
    assert out["forget_accuracy"][0] < 0.45


def test_sentence_candidates_swap_only_the_fact():
    records = [dict(qa_record(i), answer=f"Town{i}", answer_text=f"P{i} lives in Town{i}.") for i in range(4)]
    cands = sentence_candidates(records, records, k=2)
    assert cands[0] == ["P0 lives in Town0.", "P0 lives in Town1.", "P0 lives in Town2."]
    assert cands[1] == ["P1 lives in Town1.", "P1 lives in Town2.", "P1 lives in Town3."]
    # a field with fewer other answers lowers the count for everyone
    assert all(len(c) == 4 for c in sentence_candidates(records, records, k=9))
    with pytest.raises(UserError, match="no other answer of field"):
        sentence_candidates(records[:1], records[:1], k=2)


def _plain_answer_positions(model, tok, question, answer):
    """Hidden states and logits of a plain full forward over the encode_qa sequence."""
    enc = encode_qa(tok, question, answer, 128)
    ids = torch.tensor([enc["input_ids"]])
    answer_pos = [i for i, label in enumerate(enc["labels"]) if label != -100]
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    return out, answer_pos, ids[0]


def test_pooled_states_and_logit_lens_match_a_plain_forward(tiny_model, tok):
    records = [qa_record(i) for i in range(3)]
    questions = [r["question"] for r in records]
    answers = [[r["answer"], r["paraphrased_answer"]] for r in records]
    pooled, lens = answer_layer_readouts(tiny_model, tok, questions, answers, batch_size=2, lens=True)
    assert pooled.shape[:3] == (3, 2, 3) and lens.shape == (3, 2, 3)
    norm, head = tiny_model.model.norm, tiny_model.lm_head
    for qi, r in enumerate(records):
        for ci, answer in enumerate(answers[qi]):
            out, pos, ids = _plain_answer_positions(tiny_model, tok, r["question"], answer)
            for layer, h in enumerate(out.hidden_states):
                expected = h[0, pos].mean(0).numpy()
                np.testing.assert_allclose(pooled[qi, ci, layer], expected, rtol=1e-4, atol=1e-4)
                readout = h[0, [p - 1 for p in pos]]
                readout = readout if layer == len(out.hidden_states) - 1 else norm(readout)
                logp = torch.log_softmax(head(readout), -1)[torch.arange(len(pos)), ids[pos]]
                assert lens[qi, ci, layer] == pytest.approx(logp.mean().item(), abs=1e-4)
    # the last layer of the lens is the model's own answer log-probability
    nll = shared_prompt_nlls(tiny_model, tok, questions, answers, batch_size=2)
    np.testing.assert_allclose(lens[:, :, -1], -nll, atol=1e-4)
    # every second layer and the last: the same values there, NaN (not read) in between
    _, sparse = answer_layer_readouts(tiny_model, tok, questions, answers, batch_size=2, lens=True, lens_every=2)
    np.testing.assert_array_equal(sparse[:, :, [0, 2]], lens[:, :, [0, 2]])
    assert np.isnan(sparse[:, :, 1]).all()


def test_lens_layers_are_every_nth_and_the_last():
    assert lens_layers(31, 3) == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30]
    assert lens_layers(10, 3) == [0, 3, 6, 9] and lens_layers(11, 3) == [0, 3, 6, 9, 10]
    assert lens_layers(4, 1) == [0, 1, 2, 3]


def test_lens_accuracy_per_layer():
    logprobs = np.zeros((2, 3, 2))
    logprobs[:, 0, 1] = 1.0  # layer 1 ranks the true answer first for both questions
    assert lens_accuracy(logprobs) == [0.0, 1.0]
    logprobs[:, :, 0] = np.nan  # a layer the lens skipped has no accuracy, not 0
    assert np.isnan(lens_accuracy(logprobs)[0]) and lens_accuracy(logprobs)[1] == 1.0


def _states(rng, forget=6, retain=10, k=3, layers=3, hidden=8):
    """`represent_model`-shaped states of one model: float32 pooled candidates (true one first),
    the forget logit lens in float64 with layer 1 not read (NaN)."""
    out = {}
    for name, q in (("forget", forget), ("retain", retain)):
        candidates = rng.normal(size=(q, k, layers, hidden)).astype(np.float32)
        lens = rng.normal(size=(q, k, layers)) if name == "forget" else None
        if lens is not None:
            lens[:, :, 1] = np.nan
        out[name] = {"sentence": candidates[:, 0], "candidates": candidates, "lens": lens}
    return out


def test_saved_states_come_back_exactly_and_in_the_same_bytes(tmp_path):
    rng = np.random.default_rng(2)
    candidates = rng.normal(size=(4, 3, 2, 5)).astype(np.float32)
    arrays = {"forget": candidates[:, 0], "lens": np.array([[np.nan, -1.5], [0.25, -2.0]])}
    save_states(tmp_path / "a.npz", arrays)
    back = load_states(tmp_path / "a.npz")
    assert list(back) == ["forget", "lens"]
    for name, array in arrays.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape
        np.testing.assert_array_equal(back[name], array)  # NaN where NaN, every other bit equal
    save_states(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()  # no wall clock in the file
    with pytest.raises(ValueError, match="allow_pickle"):
        save_states(tmp_path / "c.npz", {"objects": np.array([{}], dtype=object)})


def test_split_analysis_equals_reading_every_model_at_once(tmp_path):
    """Target and oracle through their files (npz states, JSON probes) give what analysing the
    three models' states in memory gives: drift, probes and lens per layer, bit for bit."""
    rng = np.random.default_rng(3)
    states = {name: _states(rng) for name in ("unlearned", "target", "oracle")}
    head = rng.normal(size=(11, 8)).astype(np.float32)
    sentences = {"unlearned": {s: states["unlearned"][s]["sentence"] for s in ("forget", "retain")}}
    probes = {"unlearned": model_probes(states["unlearned"], seed=0, c=0.5)}
    for name in ("target", "oracle"):
        save_states(tmp_path / f"{name}.npz", {s: states[name][s]["sentence"] for s in ("forget", "retain")})
        write_json(tmp_path / f"{name}.json", {"model": name, **model_probes(states[name], seed=0, c=0.5), "seconds": 1.0})
        sentences[name], probes[name], seconds = read_part(tmp_path / f"{name}.npz", tmp_path / f"{name}.json")
        assert seconds == 1.0
    result = analyse(sentences, probes, head)

    unlearned = states["unlearned"]
    for other in ("target", "oracle"):
        for s in ("forget", "retain"):
            assert result[f"unlearned_vs_{other}"][s] == layer_drift(unlearned[s]["sentence"], states[other][s]["sentence"], head)
    for name, st in states.items():
        probe = probe_all_layers(st["retain"]["candidates"], st["forget"]["candidates"], seed=0, c=0.5)
        lens = lens_accuracy(st["forget"]["lens"])
        assert result["probe"][name] == probe
        np.testing.assert_array_equal(result["lens"][name]["forget_accuracy"], lens)
        assert np.isnan(lens[1]) and result[f"lens_{name}_forget_accuracy_max"] == max(lens[0], lens[2])
        assert result[f"probe_{name}_forget_accuracy_max"] == max(probe["forget_accuracy"])
    assert result["probe_chance"] == 1 / 3 and result["layers"] == 3
    # the table's columns as when every model was read at once, whatever order a file kept its keys in
    drift = [f"{prefix}{s}_{key}" for prefix in ("", "oracle_") for s in ("forget", "retain")
             for key in ("cosine", "drift_norm", "logit_drift_norm")]
    models = ("unlearned", "target", "oracle")
    assert list(layer_table(result).columns) == [
        "layer", *drift, *(f"probe_{name}_{key}" for name in models for key in ("retain_accuracy", "forget_accuracy")),
        *(f"lens_{name}_forget_accuracy" for name in models), "probe_chance"]


def test_a_model_without_a_readout_is_left_out_and_a_stale_one_refused(tmp_path):
    rng = np.random.default_rng(4)
    save_states(tmp_path / "oracle.npz", {})
    write_json(tmp_path / "oracle.json", {"model": "oracle", "reason": "world benchmark: no oracle"})
    assert read_part(tmp_path / "oracle.npz", tmp_path / "oracle.json") is None
    write_json(tmp_path / "old.json", {"model": "target", "probe": {}})
    with pytest.raises(UserError, match="old.json: no lens, chance, seconds"):
        read_part(tmp_path / "oracle.npz", tmp_path / "old.json")
    with pytest.raises(UserError, match="missing.npz: not found"):
        load_states(tmp_path / "missing.npz")
    unlearned, target = _states(rng), _states(rng, forget=5)
    sentences = {name: {s: st[s]["sentence"] for s in ("forget", "retain")}
                 for name, st in (("unlearned", unlearned), ("target", target))}
    with pytest.raises(UserError, match="the target model's forget states have shape"):
        analyse(sentences, {"unlearned": model_probes(unlearned), "target": model_probes(target)}, None)


def test_represent_facts_sample_retain_but_draw_wrong_facts_from_every_set(tmp_path):
    sets = {"forget": [qa_record(i) for i in range(2)], "retain": [qa_record(i) for i in range(10, 20)],
            "holdout": [qa_record(30)]}
    for name, records in sets.items():
        write_jsonl(tmp_path / f"{name}.jsonl", records)
    forget, retain, pool = represent_facts(tmp_path, 4)
    assert forget == sets["forget"] and retain == sample(sets["retain"], 4) and len(retain) == 4
    assert pool == sets["forget"] + sets["retain"] + sets["holdout"]
    assert represent_facts(tmp_path, 0)[1] == sets["retain"]


def test_read_model_gives_the_true_sentences_states_and_its_probes(tiny_model, tok):
    records = [dict(qa_record(i), answer_text=f"Person {i} lives in Town{i}.") for i in range(8)]
    facts = (records[:3], records[3:], records)
    cfg = Represent(batch_size=4, candidates=2, lens_every=2)
    sentences, probes = read_model(tiny_model, tok, facts, cfg, seed=0, name="tiny")
    # the true sentence read alone, in another batch, is the first candidate's state
    alone, _ = answer_layer_readouts(tiny_model, tok, [r["question"] for r in records[:3]],
                                     [[r["answer_text"]] for r in records[:3]], batch_size=1)
    np.testing.assert_allclose(sentences["forget"], alone[:, 0], rtol=1e-4, atol=1e-5)
    assert sentences["retain"].shape == (5, *alone.shape[2:])
    assert probes["chance"] == 1 / 3 and len(probes["probe"]["forget_accuracy"]) == alone.shape[2]
    assert np.isnan(probes["lens"]["forget_accuracy"][1]) and not np.isnan(probes["lens"]["forget_accuracy"][2])


# ---------------------------------------------------------------- relearning


def test_relearn_split_and_auto_choice():
    forget = [qa_record(i) for i in range(5)]
    retain = [dict(qa_record(i), correlated=i == 12) for i in range(10, 14)]
    attack, scored = relearn_split(forget, retain, "forget", 0)
    assert [r["id"] for r in attack] == ["r0", "r2", "r4"] and [r["id"] for r in scored] == ["r1", "r3"]
    attack, scored = relearn_split(forget, retain, "retain_correlated", 0)
    assert [r["id"] for r in attack] == ["r12"] and len(scored) == 5
    assert len(relearn_split(forget, retain, "retain", 2)[0]) == 2
    assert resolve_data("auto", forget, retain) == "forget"
    assert resolve_data("auto", forget[:1], retain) == "retain_correlated"
    with pytest.raises(UserError, match="relearn.data: must be one of auto, forget, retain_correlated, retain"):
        parse_settings({"relearn": {"data": "everything"}})


def test_relearning_raises_the_forget_probability(tiny_model, tok, tmp_path):
    records = [qa_record(i) for i in range(4)]
    pairs = [(r["question"], r["answer"]) for r in records]
    before = answer_nlls(tiny_model, tok, pairs).mean()
    # Full fine-tuning: a LoRA cannot move the tiny model's random tied embeddings, which cap
    # how far any answer's probability can rise.
    model, report = relearn(tiny_model, tok, records, Model(lora=None, max_length=64),
                            Relearn(steps=8, lr=0.01, batch_size=4), resolve(Hardware()), tmp_path, seed=0)
    assert report["steps"] == 8 and report["lr"] == 0.01
    assert answer_nlls(model, tok, pairs).mean() < before - 1.0
