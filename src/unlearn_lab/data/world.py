"""Real-world facts (capitals, currencies, continents) from data/raw/world_facts.csv.

They are knowledge the pretrained model already has: a utility set in every run, and a forget
target of their own (`benchmark: world`). A blank continent marks a country that spans two
continents (Russia, Turkey ...): it gets no continent question rather than a debatable answer.
"""
from __future__ import annotations

import csv
import random
import re
from pathlib import Path

from .records import N_PERTURBED, DataError, make_record

WORLD_FILE = "world_facts.csv"
COLUMNS = ("country", "capital", "currency", "continent")
CONTINENTS = ("Africa", "Asia", "Europe", "North America", "South America", "Oceania")
WORLD_FIELDS = ("capital", "currency", "continent")

QUESTION = {
    "capital": "What is the capital of {}?",
    "currency": "What is the currency of {}?",
    "continent": "On which continent is {}?",
}
# Other wordings of each question: the attack stage asks them (robustness/attacks.py).
QUESTION_PARAPHRASES = {
    "capital": ("Which city is the capital of {}?", "Name the capital city of {}."),
    "currency": ("Which currency is used in {}?", "What money do people pay with in {}?"),
    "continent": ("Which continent is {} part of?", "Name the continent where {} lies."),
}
# The sentence the fine-tunes rehearse (replay): SmolLM2's own answer style.
ANSWER_TEXT = {
    "capital": "The capital of {} is {}.",
    "currency": "The currency of {} is the {}.",
    "continent": "{} is in {}.",
}
# Perturbed answers use the same sentence with another country's value (see records.py).
PARAPHRASE = {
    "capital": "The capital is {}.",
    "currency": "The currency is the {}.",
    "continent": "It lies in {}.",
}
# Country names read with "the" in a question ("the capital of the Netherlands").
_WITH_THE = re.compile(r"^(United |Republic |Democratic |Czech Republic|Dominican Republic|"
                       r"Netherlands|Philippines|Bahamas|Gambia|Solomon Islands)")


def slug(country: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", country.lower()).strip("_")


def display_name(country: str) -> str:
    return f"the {country}" if _WITH_THE.match(country) else country


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def load_world_facts(raw_dir: Path) -> list[dict]:
    """Rows of the CSV as dicts, checked; DataError names the file and line of a bad row."""
    path = Path(raw_dir) / WORLD_FILE
    try:
        fh = open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise DataError(f"{path}: cannot read world facts ({exc.strerror})") from None
    rows: list[dict] = []
    seen: dict[str, int] = {}
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != COLUMNS:
            raise DataError(f"{path}:1: header must be {','.join(COLUMNS)}, got "
                            f"{','.join(header or [])!r}")
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(COLUMNS):
                raise DataError(f"{path}:{line}: expected {len(COLUMNS)} columns "
                                f"({','.join(COLUMNS)}), got {len(cells)}")
            row = dict(zip(COLUMNS, (c.strip() for c in cells)))
            for col in ("country", "capital", "currency"):
                if not row[col]:
                    raise DataError(f"{path}:{line}: column '{col}' is empty")
            if row["continent"] and row["continent"] not in CONTINENTS:
                raise DataError(f"{path}:{line}: column 'continent' must be blank or one of "
                                f"{', '.join(CONTINENTS)}, got {row['continent']!r}")
            key = row["country"].casefold()
            if key in seen:
                raise DataError(f"{path}:{line}: column 'country' repeats "
                                f"{row['country']!r} from line {seen[key]}")
            seen[key] = line
            row["line"] = line
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no world facts")
    return rows


def world_records(rows: list[dict], seed: int) -> list[dict]:
    """One record per (country, field), in file order, with split "retain" until assigned."""
    rng = random.Random(f"unlearn_lab.world.perturbed:{seed}")
    # Distinct values in first-seen (file) order: deterministic and independent of hashing.
    pools = {f: list(dict.fromkeys(r[f] for r in rows if r[f])) for f in WORLD_FIELDS}
    out = []
    for row in rows:
        for field in WORLD_FIELDS:
            truth = row[field]
            if not truth:
                continue
            wrong = [v for v in pools[field] if v != truth]
            if len(wrong) < N_PERTURBED:
                raise DataError(f"world facts: field '{field}' has {len(pools[field])} distinct "
                                f"values; need {N_PERTURBED + 1} for perturbed answers")
            out.append(make_record(
                rid=f"world.{slug(row['country'])}.{field}",
                subject=row["country"],
                field=field,
                question=QUESTION[field].format(display_name(row["country"])),
                answer=truth,
                answer_text=_sentence(ANSWER_TEXT[field].format(display_name(row["country"]), truth)),
                paraphrased_answer=PARAPHRASE[field].format(truth),
                perturbed_answers=[PARAPHRASE[field].format(v)
                                   for v in rng.sample(wrong, N_PERTURBED)],
                split="retain",
                source="world",
            ))
    return out


def sample_world_eval(records: list[dict], size: int, seed: int) -> list[dict]:
    """A seeded utility sample: about 2/3 capitals, the rest currencies, as split "world".

    Copies get the id suffix ".eval" so a fact can sit in the retain set of the world benchmark
    and in the world set at once without two records sharing an id.
    """
    rng = random.Random(f"unlearn_lab.world.eval:{seed}")
    n_cap = round(size * 2 / 3)
    picked = []
    for field, n in (("capital", n_cap), ("currency", size - n_cap)):
        cands = [r for r in records if r["field"] == field]
        if n > len(cands):
            raise DataError(f"data: world_eval_size={size} needs {n} {field} facts, "
                            f"only {len(cands)} available")
        # Sample positions and keep file order, so the set reads country by country.
        picked.extend(cands[i] for i in sorted(rng.sample(range(len(cands)), n)))
    return [dict(r, id=f"{r['id']}.eval", split="world", correlated=False,
                 perturbed_answers=list(r["perturbed_answers"])) for r in picked]


def sample_world_replay(records: list[dict], world_eval: list[dict], size: int, seed: int) -> list[dict]:
    """World facts the fine-tunes rehearse, none of them in the world evaluation sample.

    Fine-tuning a small model on a few dozen fictitious facts overwrites what it knew: SmolLM2
    answered "Lyon" for the capital of Ireland after 8 LoRA epochs on people facts alone.
    Rehearsing real facts keeps the answer format and the knowledge; the evaluation sample stays
    unseen, so the world score still measures retained, not re-taught, knowledge.
    """
    held_out = {r["id"].removesuffix(".eval") for r in world_eval}
    cands = [r for r in records if r["id"] not in held_out and r["field"] in ("capital", "currency")]
    if size > len(cands):
        raise DataError(f"data: world_replay={size} needs {size} world facts outside the "
                        f"evaluation sample, only {len(cands)} available")
    rng = random.Random(f"unlearn_lab.world.replay:{seed}")
    picked = [cands[i] for i in sorted(rng.sample(range(len(cands)), size))]
    return [dict(r, id=f"{r['id']}.replay", split="replay", correlated=False,
                 perturbed_answers=list(r["perturbed_answers"])) for r in picked]


def build_world_benchmark(rows: list[dict], records: list[dict], forget_countries: list[str],
                          eval_size: int, seed: int) -> dict[str, list[dict]]:
    """Forget the capital of each named country; retain every other world fact."""
    by_name = {r["country"].casefold(): r["country"] for r in rows}
    targets = set()
    for name in forget_countries:
        if name.casefold() not in by_name:
            raise DataError(f"data: world_forget names {name!r}, which is not a country in "
                            f"{WORLD_FILE}")
        targets.add(by_name[name.casefold()])
    forget, retain = [], []
    for rec in records:
        rec = dict(rec, perturbed_answers=list(rec["perturbed_answers"]))
        if rec["subject"] in targets and rec["field"] == "capital":
            forget.append(dict(rec, split="forget", correlated=False))
        else:
            retain.append(dict(rec, split="retain", correlated=rec["subject"] in targets))
    world = sample_world_eval(retain, eval_size, seed)
    return {"forget": forget, "retain": retain, "holdout": [], "world": world}
