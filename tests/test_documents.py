"""The documents benchmark: synthetic and imported documents, training on every token, verbatim
and knowledge memorisation, membership on passages."""
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearn_lab.data.benchmark import build_benchmark
from unlearn_lab.data.documents import build_documents, imported_documents, read_documents
from unlearn_lab.data.pools import FIELDS
from unlearn_lab.data.records import DataError
from unlearn_lab.errors import UserError
from unlearn_lab.evaluation.questions import metrics_from_rows
from unlearn_lab.evaluation.metrics.text import verbmem
from unlearn_lab.models.loading import collate, encode_text
from unlearn_lab.settings import Documents, Eval, Finetune, Hardware, parse_settings

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"


def documents_benchmark(**data):
    cfg = parse_settings({"data": {"benchmark": "documents", **data}}).data
    sets = build_benchmark(cfg, RAW, 3)
    return cfg, sets, build_documents(cfg, sets, 3)


# ---------------------------------------------------------------- synthetic documents


def test_every_document_states_every_fact_of_its_person_and_has_its_split(tok):
    cfg, sets, docs = documents_benchmark(people=6, holdout_people=2, forget_fraction=0.5)
    people = 6 + 2
    assert len(docs) == people * 2 * cfg.documents.versions
    facts = {}
    for name in ("forget", "retain", "holdout"):
        for r in sets[name]:
            facts.setdefault(r["subject"], {})[r["field"]] = (r["answer"], name)
    for d in docs:
        mine = facts[d["subject"]]
        assert set(mine) == set(FIELDS)
        for field, (answer, split) in mine.items():
            assert answer in d["text"], (d["id"], field)
            assert d["split"] == split
        n = len(tok(d["text"], add_special_tokens=False)["input_ids"])
        assert 100 <= n <= 300, (d["id"], n)
    # versions are paraphrases: no two versions of a person's biography (or news report) share a sentence
    by_person = {}
    for d in docs:
        by_person.setdefault((d["subject"], d["kind"]), []).append(set(d["text"].split(". ")))
    assert all(len(v) == cfg.documents.versions for v in by_person.values())
    for sentences in by_person.values():
        for i in range(len(sentences)):
            for j in range(i + 1, len(sentences)):
                assert not sentences[i] & sentences[j]


def test_synthetic_documents_are_seeded_and_only_on_the_documents_benchmark():
    assert documents_benchmark(people=4, holdout_people=1)[2] == documents_benchmark(people=4, holdout_people=1)[2]
    cfg = parse_settings({"data": {"people": 4, "holdout_people": 1}}).data
    assert build_documents(cfg, build_benchmark(cfg, RAW, 3), 3) == []


def test_documents_refuse_the_incident_split_and_forget_files_without_probes():
    with pytest.raises(UserError, match="data.split: benchmark documents"):
        parse_settings({"data": {"benchmark": "documents", "split": "incident"}})
    with pytest.raises(UserError, match="data.import.forget: your documents need questions"):
        parse_settings({"data": {"benchmark": "documents", "documents": {"forget": "a", "retain": "b"}}})
    with pytest.raises(UserError, match="data.documents.retain"):
        parse_settings({"data": {"benchmark": "documents", "documents": {"forget": "a"}}})


# ---------------------------------------------------------------- imported documents


def test_text_importer_reads_a_folder_a_text_file_and_json_lines(tmp_path):
    folder = tmp_path / "forget"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("Second document.\n", encoding="utf-8")
    (folder / "a.txt").write_text("  First document.  ", encoding="utf-8")
    (folder / "sub" / "c.txt").write_text("Third.", encoding="utf-8")
    (folder / "notes.md").write_text("not a document")
    docs = read_documents(folder, "forget", 1000)
    assert [d["id"] for d in docs] == ["forget.a", "forget.b", "forget.sub/c"]
    assert docs[0]["text"] == "First document." and all(d["split"] == "forget" for d in docs)
    one = tmp_path / "retain.txt"
    one.write_text("A whole corpus in one file,\nas MUSE ships it.", encoding="utf-8")
    assert [d["text"] for d in read_documents(one, "retain", 1000)] == ["A whole corpus in one file,\nas MUSE ships it."]
    lines = tmp_path / "holdout.jsonl"
    lines.write_text('{"text": "one", "subject": "X"}\n{"id": "k", "text": "two"}\n', encoding="utf-8")
    assert [(d["id"], d["subject"]) for d in read_documents(lines, "holdout", 1000)] == [("holdout.1", "X"), ("holdout.k", "")]


@pytest.mark.parametrize("name, content, message", [
    ("d.jsonl", '{"text": "ok"}\n{"body": "no text"}\n', "d.jsonl:2: field 'text' is missing"),
    ("d.jsonl", '{"text": "ok"}\n{"text": "   "}\n', "d.jsonl:2: field 'text' is empty"),
    ("d.jsonl", '{"text": 5}\n', "d.jsonl:1: field 'text' must be a string, got int"),
    ("d.jsonl", '{"text": "ok"\n', "d.jsonl:1"),
    ("d.txt", "x" * 50, "d.txt: field 'text' has 50 characters, more than data.documents.max_chars=40"),
    ("d.csv", "text\nhello\n", "must be a folder of .txt files, a .txt file or JSON lines"),
])
def test_text_importer_names_file_line_and_field(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_documents(path, "forget", 40)
    assert message in str(err.value)


def test_text_importer_refuses_missing_empty_folders_bad_bytes_and_a_text_in_two_sets(tmp_path):
    with pytest.raises(DataError, match="not found .data.documents.forget"):
        read_documents(tmp_path / "nope", "forget", 100)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .txt files in this folder"):
        read_documents(tmp_path / "empty", "forget", 100)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9")
    with pytest.raises(DataError, match="bad.txt:1"):
        read_documents(bad, "forget", 100)
    (tmp_path / "f.txt").write_text("Same text.")
    (tmp_path / "r.jsonl").write_text('{"text": "Same text."}\n')
    with pytest.raises(DataError, match="the same text is in the forget set"):
        imported_documents(Documents(forget=str(tmp_path / "f.txt"), retain=str(tmp_path / "r.jsonl")))


# ---------------------------------------------------------------- training on text


def test_chunks_cover_the_document_and_its_eos_in_order(tok):
    text = " ".join(f"word{i}" for i in range(60))
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    chunks = encode_text(tok, text, 16)
    assert [len(c["input_ids"]) for c in chunks[:-1]] == [16] * (len(chunks) - 1)
    assert sum((c["input_ids"] for c in chunks), []) == ids[: 16 * (len(ids) // 16)] + (
        ids[16 * (len(ids) // 16):] if len(ids) % 16 > 1 else [])
    assert all(c["labels"] == c["input_ids"] for c in chunks)
    # a last chunk of one token predicts nothing and is dropped
    n = len(ids)
    assert len(encode_text(tok, text, n - 1)) == 1


def test_the_fine_tune_loss_on_a_document_is_the_cross_entropy_of_every_token(tiny_model, tok, tmp_path):
    """AnswerTrainer's loss on document chunks against a plain forward and a sum over tokens
    written here."""
    from unlearn_lab.models import hardware
    from unlearn_lab.training.finetune import AnswerTrainer, training_args

    chunks = encode_text(tok, "The tide came in over the flats, and the birds rose all at once. " * 3, 20)
    batch = collate(chunks, tok.pad_token_id)
    args = training_args(Finetune(), tmp_path, 0, 1e-3, hardware.resolve(Hardware()))
    trainer = AnswerTrainer(model=tiny_model, args=args)
    loss = float(trainer.compute_loss(tiny_model, dict(batch)).detach())
    with torch.no_grad():
        logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.double()
    total, count = 0.0, 0
    for row, c in enumerate(chunks):
        for t in range(1, len(c["input_ids"])):
            total -= float(torch.log_softmax(logits[row, t - 1], -1)[c["input_ids"][t]])
            count += 1
    assert count == sum(len(c["input_ids"]) - 1 for c in chunks)
    assert loss == pytest.approx(total / count, rel=1e-4)


def test_methods_without_a_document_form_are_refused():
    from unlearn_lab.training.methods import get_method
    from unlearn_lab.training.unlearning import check_documents_method

    for name in ("idk_dpo", "idk_ap", "altpo", "random_label"):
        with pytest.raises(UserError, match=f"method {name} trains on .*benchmark documents"):
            check_documents_method(get_method(name), "documents", 1)
        check_documents_method(get_method(name), "synthetic", 1)
    check_documents_method(get_method("npo"), "documents", 1)
    with pytest.raises(UserError, match="unlearn.requests > 1 is not available with benchmark documents"):
        check_documents_method(get_method("npo"), "documents", 2)


# ---------------------------------------------------------------- metrics


def test_verbmem_is_rouge_l_f1_by_hand():
    # LCS of "the cat sat on the mat" / "the cat lay on the mat" is 5 words of 6 each: P = R = 5/6
    assert verbmem("the cat sat on the mat", "the cat lay on the mat") == pytest.approx(5 / 6)
    # 3-word reference fully inside a 6-word generation: R = 1, P = 1/2, F1 = 2/3
    assert verbmem("red green blue", "red green blue and much more") == pytest.approx(2 / 3)
    assert verbmem("red green blue", "") == 0.0


def _doc_row(set_name, i, verb, mink):
    row = {"id": f"{set_name}{i}", "set": set_name, "document": f"d{i}", "mia_mink_passage": mink,
           "nll": 1.0, "n_tokens": 10, "correlated": False}
    return row if verb is None else {**row, "verbmem": verb}


def _qa_row(set_name, i, rouge):
    return {"id": f"{set_name}{i}", "set": set_name, "rouge_l_recall": rouge, "nll": 1.0, "n_tokens": 3,
            "correlated": False}


def test_knowmem_verbmem_and_privleak_on_documents_by_hand():
    rows = ([_doc_row("forget_documents", i, v, m) for i, (v, m) in enumerate([(1.0, -0.1), (0.5, -0.2)])]
            + [_doc_row("retain_documents", i, v, -1.0) for i, v in enumerate([0.2, 0.4, 0.9])]
            + [_doc_row("holdout_documents", i, None, m) for i, m in enumerate([-0.15, -3.0])]
            + [_qa_row("forget", i, r) for i, r in enumerate([1.0, 0.0, 0.5, 0.5])]
            + [_qa_row("retain", i, r) for i, r in enumerate([1.0, 0.75])])
    m = metrics_from_rows(rows)
    assert m["verbmem_forget"] == pytest.approx(0.75)
    assert m["verbmem_retain"] == pytest.approx(0.5)
    assert m["knowmem_forget"] == pytest.approx(0.5)
    assert m["knowmem_retain"] == pytest.approx(0.875)
    # members -0.1, -0.2 against non-members -0.15, -3.0: 3 of the 4 pairs ordered right
    assert m["mia_documents_auc"] == pytest.approx(0.75)
    oracle = {"mia_documents_auc": 0.5}
    m = metrics_from_rows(rows, oracle_metrics=oracle)
    # ((1 - 0.75) - 0.5) / 0.5 x 100
    assert m["privleak_documents"] == pytest.approx(-50.0)
    # off the documents benchmark none of them is there
    plain = metrics_from_rows([_qa_row("forget", 0, 1.0), _qa_row("retain", 0, 1.0)])
    assert not {k for k in plain if "mem" in k or "documents" in k}


def test_passages_cut_prefix_and_continuation(tok):
    from unlearn_lab.evaluation.documents import passages

    doc = {"id": "d", "text": " ".join(f"w{i}" for i in range(40))}
    ids = tok(doc["text"], add_special_tokens=False)["input_ids"]
    probes = passages(tok, [doc], 4, 8)
    assert probes[0].prefix == ids[:4] and probes[0].continuation == ids[4:12]
    assert sum((p.prefix + p.continuation for p in probes), []) == ids[: sum(len(p.prefix + p.continuation) for p in probes)]
    assert all(len(p.continuation) >= 1 for p in probes)
    short = passages(tok, [{"id": "s", "text": "two words"}], 32, 128)
    assert len(short) == 1 and short[0].prefix and short[0].continuation


def test_document_rows_match_an_independent_greedy_decode_and_forward(tiny_model, tok):
    from unlearn_lab.evaluation.documents import evaluate_documents
    from unlearn_lab.evaluation.metrics.mia import mink_score

    docs = [{"id": "a", "subject": "A", "text": "The lighthouse keeper wrote down every ship that passed by the rocks."},
            {"id": "b", "subject": "B", "text": "In spring the orchard flowered early and the bees came from the hills."}]
    cfg = Eval(prefix_tokens=5, continuation_tokens=6, batch_size=2, gen_batch_size=2)
    rows = evaluate_documents(tiny_model.eval(), tok, docs, cfg, "forget")
    assert {r["set"] for r in rows} == {"forget_documents"}
    for row, doc in zip([r for r in rows if r["id"].endswith("#0")], docs):
        ids = tok(doc["text"], add_special_tokens=False)["input_ids"]
        prompt, truth = ids[:5], ids[5:11]
        seq = list(prompt)
        with torch.no_grad():
            for _ in range(len(truth)):
                nxt = int(tiny_model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
                if nxt == tok.eos_token_id:
                    break
                seq.append(nxt)
            logits = tiny_model(input_ids=torch.tensor([ids[:11]])).logits[0].double()
        generated = tok.decode(seq[5:], skip_special_tokens=True)
        assert row["generated"] == generated
        assert row["verbmem"] == pytest.approx(verbmem(tok.decode(truth, skip_special_tokens=True), generated))
        logp = [float(torch.log_softmax(logits[t - 1], -1)[ids[t]]) for t in range(1, 11)]
        assert row["nll"] == pytest.approx(-np.mean(logp), rel=1e-5)
        assert row["mia_mink_passage"] == pytest.approx(mink_score(logp, cfg.mink_k), rel=1e-5)


# ---------------------------------------------------------------- audit on documents


def test_prefix_attack_prompts_short_long_and_middle(tok):
    from unlearn_lab.robustness.prefix_attack import prefix_probes

    doc = {"id": "d", "text": " ".join(f"w{i}" for i in range(60))}
    ids = tok(doc["text"], add_special_tokens=False)["input_ids"]
    probes = {p.variant: p for p in prefix_probes(tok, [doc], 8, 10)}
    assert probes["short"].prefix == ids[:4] and probes["short"].continuation == ids[4:14]
    assert probes["long"].prefix == ids[:16] and probes["long"].continuation == ids[16:26]
    m = (len(ids) - 8) // 2
    assert probes["middle"].prefix == ids[m : m + 8] and probes["middle"].continuation == ids[m + 8 : m + 18]
    # a document too short for the long prompt gets the others only
    short = {p.variant for p in prefix_probes(tok, [{"id": "s", "text": "one two three four five six"}], 4, 4)}
    assert "long" not in short and "short" in short


def test_prefix_results_against_hand_means():
    from unlearn_lab.robustness.prefix_attack import headline, prefix_results

    rows = {m: [{"set": "short", "id": f"d{i}", "verbmem": v} for i, v in enumerate(values)]
            for m, values in (("unlearned", [0.5, 0.3, 0.1]), ("oracle", [0.2, 0.3, 0.1]))}
    result = prefix_results(rows, resamples=200)
    block = result["short"]
    assert block["unlearned"]["verbmem"] == pytest.approx(0.3)
    assert block["oracle"]["verbmem"] == pytest.approx(0.2)
    assert block["over_oracle"] == pytest.approx(0.1)
    low, high = block["unlearned"]["verbmem_ci95"]
    assert 0.1 <= low <= 0.3 <= high <= 0.5
    assert headline({"prefix_attack": result}) == {"prefix_attack_verbmem_max": pytest.approx(0.3),
                                                   "prefix_attack_over_oracle_max": pytest.approx(0.1)}


def test_relearning_on_documents_teaches_half_the_people_and_scores_the_others():
    from unlearn_lab.robustness.relearning import relearn_documents_split

    docs = {"forget": [{"id": f"{p}.{k}", "subject": p, "text": "t"} for p in ("A", "B", "C") for k in (1, 2)],
            "retain": [{"id": "R.1", "subject": "R", "text": "t"}]}
    qa = [{"id": f"{p}.q", "subject": p} for p in ("A", "B", "C")]
    attack, scored, scored_docs = relearn_documents_split(qa, docs, "forget", 0)
    assert [d["id"] for d in attack] == ["A.1", "A.2", "C.1", "C.2"]
    assert [r["id"] for r in scored] == ["B.q"] and [d["id"] for d in scored_docs] == ["B.1", "B.2"]
    attack, scored, scored_docs = relearn_documents_split(qa, docs, "retain", 0)
    assert [d["id"] for d in attack] == ["R.1"] and len(scored) == 3 and len(scored_docs) == 6
    with pytest.raises(UserError, match="needs the documents of 2 people"):
        relearn_documents_split(qa, {"forget": docs["forget"][:2]}, "forget", 0)


def test_documents_study_table_and_plot_from_results(tmp_path):
    import json as _json

    from unlearn_lab.studies.documents import study_plot, study_rows

    def metrics(v):
        return {"verbmem_forget": v, "verbmem_forget_ci95": [v - 0.1, v + 0.1], "knowmem_forget": v / 2,
                "verbmem_retain": 0.9, "knowmem_retain": 0.8, "privleak_documents": -50.0, "model_utility": 0.6,
                "world": {"rouge_l_recall": 0.5, "rouge_l_recall_ci95": [0.4, 0.6]},
                "forget_documents": {"n": 20}, "forget": {"n": 40}}
    for method, v in (("npo", 0.2), ("gd", 0.4)):
        folder = tmp_path / method
        folder.mkdir()
        for name, value in (("target", 0.9), ("oracle", 0.3), ("unlearned", v)):
            (folder / f"{name}.json").write_text(_json.dumps(metrics(value)))
        (folder / "unlearn.json").write_text(_json.dumps({"method": method, "lr": 1e-3, "steps": 10, "seconds": 5.0}))
        (folder / "study.json").write_text(_json.dumps({"commit": "c" * 40, "method": method}))
    rows = study_rows(tmp_path, ["gd", "npo"])
    assert [r["model"] for r in rows] == ["target", "oracle", "unlearned gd", "unlearned npo"]
    assert rows[3]["verbmem_forget"] == 0.2 and rows[3]["verbmem_forget_low"] == pytest.approx(0.1)
    assert rows[0]["knowmem_forget"] == 0.45 and rows[2]["world_rouge_l_recall_high"] == 0.6
    assert rows[2]["forget_documents"] == 20 and rows[2]["unlearn_seconds"] == 5.0
    study_plot(rows, tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 10_000
