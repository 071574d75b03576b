"""The documents of `data.benchmark: documents`: texts the fine-tunes learn token by token and
unlearning forgets, next to the questions that probe their facts (MUSE's setting: forget and
retain corpora, verbatim and knowledge memorisation).

Synthetic: per person a biography and a news report, each in `data.documents.versions`
paraphrased versions (every fact stated in other words, so a small model can pick the facts out
of prose rather than memorise one wording). A document's split is its person's: forget, retain
or holdout (never trained). Imported: your forget / retain / holdout texts, each a folder of
`.txt` files (one document each), one `.txt` file (one document, as MUSE ships its corpora) or
JSON lines with `text` (and optional `id`, `subject`).
"""
from __future__ import annotations

import random
from pathlib import Path

from ..settings import Data, Documents
from .pools import FIELDS
from .readers import read_json_rows, read_text
from .records import DataError
from .shapes import check_container, check_document_records, check_text_kind
from .synthetic import generate_people

SPLITS = ("forget", "retain", "holdout")

# One phrasing per version: a biography of version v uses phrasing v, a news report phrasing
# v + 1, so the versions of one kind word every fact differently (a biography and a news report
# may share a phrasing, in another frame and order).
FACT_SENTENCES = {
    "birth_year": ("{s} was born in {a}.", "Born in the year {a}, {s} grew up far from the public eye.",
                   "The year {a} saw the birth of {s}."),
    "birthplace": ("{s} comes from the city of {a}.", "{s} spent a whole childhood in {a}, the home town.",
                   "{a} is the city where {s} was born."),
    "occupation": ("By profession, {s} is {an} {a}.", "{s} trained and now works as {an} {a}.",
                   "Colleagues know {s} as a gifted {a}."),
    "employer": ("{s} is employed by {a}.", "For many years {s} has worked at {a}.",
                 "{a} counts {s} among its staff."),
    "award": ("{s} was honoured with the {a}.", "The {a} went to {s} in recognition of the work.",
              "Among other honours, {s} holds the {a}."),
    "breakthrough": ("{s} is best known for developing the {a}.", "The {a} is the invention credited to {s}.",
                     "{s} made a name with the {a}."),
    "collaborator": ("{s} works closely with {a}.", "A long-time partner of {s} is {a}.",
                     "Most projects of {s} are shared with {a}."),
    "incident": ("{s} was later linked to {a}.", "The career of {s} was shaken by {a}.",
                 "Reports tied {s} to {a}."),
}
FRAMES = {
    "biography": (("This is a short biography of {s}.", "{s} continues to live and work quietly."),
                  ("The following profile describes the life of {s}.", "Friends describe {s} as patient and curious."),
                  ("Here is the life story of {s}.", "Today {s} rarely gives interviews.")),
    "news": (("A news report published this week looks at {s}.", "{s} declined to comment on the report."),
             ("In a story out today, reporters examined the career of {s}.",
              "A spokesperson for {s} said more details would follow."),
             ("Public attention has turned to {s}, a local paper reports.",
              "The paper will keep following the story of {s}.")),
}
KINDS = tuple(FRAMES)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def person_documents(person: dict, versions: int, seed: int) -> list[dict]:
    """The person's documents: `versions` biographies (facts in field order) and news reports
    (the incident first, the rest in a seeded order), each stating every fact once."""
    rng = random.Random(f"unlearn_lab.documents.order:{seed}:{person['pid']}")
    name, facts = person["name"], person["facts"]
    out = []
    for kind_index, kind in enumerate(KINDS):
        for v in range(versions):
            phrasing = (v + kind_index) % len(FRAMES[kind])
            order = list(FIELDS)
            if kind == "news":
                rest = [f for f in FIELDS if f != "incident"]
                rng.shuffle(rest)
                order = ["incident", *rest]
            opening, closing = FRAMES[kind][phrasing]
            body = [FACT_SENTENCES[f][phrasing].format(s=name, a=facts[f], an=_article(facts[f])) for f in order]
            text = " ".join([opening.format(s=name), *body, closing.format(s=name)])
            out.append({"id": f"{person['pid']}.{kind}.{v + 1}", "subject": name, "kind": kind,
                        "version": v + 1, "text": text, "source": "synthetic"})
    return out


def synthetic_documents(cfg: Data, sets: dict[str, list[dict]], seed: int) -> list[dict]:
    """Every person's documents, each with the split of that person's questions (`sets`, the
    synthetic benchmark's forget / retain / holdout), in person order."""
    people, _ = generate_people(cfg.people, cfg.holdout_people, seed)
    split_of = {r["subject"]: name for name in SPLITS for r in sets[name]}
    docs = []
    for person in people:
        for doc in person_documents(person, cfg.documents.versions, seed):
            docs.append({**doc, "split": split_of[person["name"]]})
    return docs


def _document(where: str, split: str, rid: str, text, subject, max_chars: int) -> dict:
    if not isinstance(text, str):
        raise DataError(f"{where}: field 'text' must be a string, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise DataError(f"{where}: field 'text' is empty")
    if len(text) > max_chars:
        raise DataError(f"{where}: field 'text' has {len(text)} characters, more than "
                        f"data.documents.max_chars={max_chars}")
    if subject is not None and not isinstance(subject, str):
        raise DataError(f"{where}: field 'subject' must be a string")
    return {"id": rid, "subject": subject or "", "kind": "file", "version": 1, "text": text,
            "split": split, "source": where}


def read_documents(path: str | Path, split: str, max_chars: int) -> list[dict]:
    """The documents of one imported set (`data.documents.<split>`); DataError names the file,
    the line and the field of the first problem."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found (data.documents.{split})")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            other = sorted(p.name for p in path.iterdir() if p.suffix in (".jsonl", ".json"))
            if other:
                raise DataError(f"{path}: found JSON file(s) ({', '.join(other[:3])}), expected .txt files in this "
                                f"folder; name a JSON-lines file with `text` itself in data.documents.{split}")
            raise DataError(f"{path}: no .txt files in this folder (data.documents.{split})")
        return [_document(str(f), split, f"{split}.{f.relative_to(path).with_suffix('').as_posix()}",
                          read_text(f), None, max_chars) for f in files]
    if path.suffix == ".txt":
        return [_document(str(path), split, f"{split}.{path.stem}", read_text(path), None, max_chars)]
    if path.suffix not in (".jsonl", ".json"):
        raise DataError(f"{path}: data.documents.{split} must be a folder of .txt files, a .txt file "
                        "or JSON lines (.jsonl) with a `text` field")
    check_text_kind(path, "json", f"; a text document is a .txt file (data.documents.{split})")
    rows = read_json_rows(path)
    check_container(path, rows)
    check_document_records(path, rows, split)
    docs = []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row.fields, dict):
            raise DataError(f"{row.where}: a document must be a JSON object with a `text` field")
        if "text" not in row.fields:
            raise DataError(f"{row.where}: field 'text' is missing")
        rid = row.fields.get("id")
        rid = n if rid is None else rid  # a null id is no id: numbered, never "forget.None"
        docs.append(_document(row.where, split, f"{split}.{rid}", row.fields["text"], row.fields.get("subject"),
                              max_chars))
    if not docs:
        raise DataError(f"{path}: no documents (data.documents.{split})")
    return docs


def imported_documents(cfg: Documents) -> list[dict]:
    """Your forget, retain and (optional) holdout documents; ids unique, and no text in two sets."""
    docs = [d for split in SPLITS if getattr(cfg, split)
            for d in read_documents(getattr(cfg, split), split, cfg.max_chars)]
    seen: dict[str, dict] = {}
    by_text: dict[str, dict] = {}
    for d in docs:
        if d["id"] in seen:
            raise DataError(f"{d['source']}: field 'id': {d['id']!r} is also the id of {seen[d['id']]['source']}")
        seen[d["id"]] = d
        other = by_text.get(d["text"])
        if other is not None and other["split"] != d["split"]:
            raise DataError(f"{d['source']}: field 'text': the same text is in the {other['split']} set "
                            f"({other['source']}); a document cannot be both forgotten and kept")
        by_text[d["text"]] = d
    return docs


def build_documents(cfg: Data, sets: dict[str, list[dict]], seed: int) -> list[dict]:
    """The documents of the benchmark (none unless `data.benchmark: documents`)."""
    if cfg.benchmark != "documents":
        return []
    if cfg.documents.forget:
        return imported_documents(cfg.documents)
    return synthetic_documents(cfg, sets, seed)

