"""Which person each forget document and forget question is about, for the relearning attack on
the documents benchmark.

`relearn.data: forget` (and `auto`, which picks it with the documents of 2 people or more)
trains on the documents of half the forgotten people and scores the other half's questions and
documents. That split is only held out if every forget document names its person (`subject`)
and every forget question has the subject of its documents: without the link, each document
would be its own "person" and the scored questions' facts would sit in the documents trained
on. The synthetic documents are always linked; imported ones must say so (JSON lines with
`text` and `subject`), so an unlinked set is refused, naming the record, not attacked wrongly.
Checked by process_data (before anything is written) and again by the relearn stage.
"""
from __future__ import annotations

from ..errors import UserError
from .records import person


def people(docs: list[dict]) -> list[str]:
    """The forget documents' people in order of appearance (a document without a subject
    counts as one of its own: the most `auto` can assume when choosing the attack data)."""
    return list(dict.fromkeys(person(d) for d in docs))


def check_relearn_links(setting: str, docs: list[dict], questions: list[dict]) -> None:
    """UserError naming the first forget document without a subject, or forget question whose
    subject is no forget document's, when `relearn.data` (`setting`) splits the documents by
    person: `forget`, or `auto` with 2 people or more. Nothing to check otherwise."""
    if not docs or setting not in ("forget", "auto") or (setting == "auto" and len(people(docs)) < 2):
        return
    label = "'forget'" if setting == "forget" else "auto (which picks forget with the documents of 2 people or more)"
    fix = "or set relearn.data: retain"
    for d in docs:
        if not d.get("subject"):
            raise UserError(f"{d.get('source') or d['id']}: field 'subject' is missing; relearn.data {label} trains "
                            "on some forgotten people's documents and scores the others' questions, so each forget "
                            f"document must name its person (JSON lines with `text` and `subject`), {fix}")
    subjects = {d["subject"] for d in docs}
    for q in questions:
        if q.get("subject") not in subjects or "subject" in q.get("derived", ()):
            given = "is missing" if "subject" in q.get("derived", ()) else f"{q.get('subject')!r} is no forget document's subject"
            raise UserError(f"{q.get('origin') or q['id']}: field 'subject' {given}; relearn.data {label} scores a "
                            "forget question as held out only if it names the person of its documents (their "
                            f"`subject`), {fix}")
