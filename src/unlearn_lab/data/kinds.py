"""The kind of an imported answer, for records whose data has no `field`: wrong answers (perturbed
answers and random labels) are drawn from answers of the same kind, so a year is never offered as
a wrong nationality and the truth ratio compares like with like.

Rules, deterministic and in this order (the first that matches wins); the answer is looked at
without surrounding spaces and a final full stop, the question in lower case:
- date:   a whole date: 1969-07-20, 20/07/1969, 20.7.1969, 20 July 1969, 20th of July, July 20,
          July 20, 1969, July 1969 (month names in English, full or abbreviated);
- year:   a year 1000-2099 (optionally "c." / "circa" / "in" before it), a number with AD, BC,
          BCE or CE after it, a decade (1960s), or any whole number when the question asks
          "what year", "which year" or "in what year";
- number: a number (signs, decimals, thousands separators, a leading currency sign) with at most
          two unit words or a % after it (42, -3.5, 1,200 km, $5, 25%), or one to three number
          words (three, twenty-one, one hundred, a dozen);
- place:  a proper name (see below) of at most five words, commas allowed ("Paris, France"),
          when the question asks for a place ("where", or a word such as city, town, village,
          country, nation, capital, continent, state, province, region, island, river, lake,
          sea, ocean, mountain, located, birthplace, hometown, "born in", "live in", "moved to",
          headquarters), or whose words include a place word (City, Island, River, Lake, Mount,
          Mountains, Valley, Bay, Republic, Kingdom, Province, County, Sea, Ocean, Gulf, Desert,
          Peninsula, Coast, Islands, Falls, Street, Avenue), and no organisation word (below);
- person: a proper name of two or three words (initials such as "J." count as words), not
          starting with The / A / An, with no place word and no organisation word (Inc, Ltd,
          LLC, Corp, Company, University, College, Institute, Bank, Press, Labs, Group,
          Foundation, Society, Museum, Hospital, School, Award, Prize, Medal, Church, Party,
          Club, Team, Records, Studios, Systems, Technologies, Industries, Motors, Media,
          Energy, Airlines ...: the list _ORG_WORDS below); or a proper name of one to four
          words when the question starts with "who", "whom" or "whose";
- anything else is of no recognised kind, and keeps the field name `imported` (the name every
  imported record had before kinds were inferred).
A proper name is words that each start with an upper-case letter, with lower-case joining words
between them (of, de, del, della, da, do, dos, das, van, von, der, den, la, le, les, du, al, el,
bin, ibn, upon, on, the, and, y).

A kind is used only where it has enough answers to draw from: fewer than MIN_DISTINCT (6: five
wrong ones and the true one) distinct answers of a kind in the forget and retain sets, and its
records keep `imported`; if `imported` itself then holds only 1 to 5 distinct answers there, the
smallest remaining kinds join it until it holds 6 or no kind is left. So every kind in use, and
`imported` when present, gives each of its forget and retain records at least 5 wrong answers of
its own (what the perturbed answers, the random labels and the representation probe's candidates
need); small data keeps the single field `imported` it had before kinds. Where a kind still
has too few answers for a record (a record of the holdout or world set, or answers the record's
own wrong answers already took), its draws fall back to answers of any kind (derive.py,
random_labels.py). All of this depends on the answers in the data, never on the order of rows.
"""
from __future__ import annotations

import re

OTHER = "imported"
KINDS = ("date", "year", "number", "place", "person")
MIN_DISTINCT = 6

_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE = re.compile("|".join((
    r"\d{4}-\d{1,2}-\d{1,2}",
    r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}",
    rf"(?:the\s+)?{_DAY}(?:\s+of)?\s+{_MONTH},?(?:\s+\d{{3,4}})?",
    rf"{_MONTH}\s+{_DAY}(?:,?\s+\d{{3,4}})?",
    rf"{_MONTH},?\s+\d{{4}}",
)), re.IGNORECASE)
_YEAR = re.compile(r"(?:in\s+|c\.\s*|circa\s+)?(?:1\d{3}|20\d{2})s?|\d{1,4}\s*(?:AD|BC|BCE|CE)"
                   r"|(?:AD|CE)\s*\d{1,4}", re.IGNORECASE)
_YEAR_QUESTION = re.compile(r"\b(?:what|which|in what)\s+year\b")
_WHOLE = re.compile(r"\d{1,4}")
_NUMBER = re.compile(r"[-+\u2212]?[$\u20ac\u00a3\u00a5]?\s?"
                     r"(?:\d{1,3}(?:[,\u202f\u00a0 ]\d{3})+|\d+)(?:[.,]\d+)?"
                     # then a % or at most two unit words / symbols (km, m\u00b2, million)
                     r"(?:\s*%|(?:\s+[^\W\d_]{1,12}|\s*[^\W\d_]{1,3}[\u00b2\u00b3]?){0,2})")
_NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty "
    "ninety hundred thousand million billion dozen a and".split())
_PLACE_QUESTION = re.compile(
    r"^where\b|\bwhere\b|\b(?:city|cities|town|village|country|countries|nation|capital|continent|"
    r"state|province|region|island|river|lake|sea|ocean|mountain|located|birthplace|hometown|"
    r"headquarters|headquartered)\b|\bborn in\b|\blives? in\b|\bmoved to\b")
_WHO_QUESTION = re.compile(r"^\W*(?:who|whom|whose)\b")
_PLACE_WORDS = frozenset(
    "city island river lake mount mountains valley bay republic kingdom province county sea "
    "ocean gulf desert peninsula coast islands falls street avenue".split())
_ORG_WORDS = frozenset(
    "inc ltd llc corp corporation company co university college institute bank press labs lab "
    "group foundation society museum hospital school award prize medal church party club team "
    "records studios systems technologies industries motors media energy airlines airways "
    "pharma analytics games insurance shipping foods dynamics robotics biotech optics "
    "instruments mining textiles foundry".split())
_JOINERS = frozenset("of de del della da do dos das van von der den la le les du al el bin ibn "
                     "upon on the and y".split())
_ARTICLES = frozenset(("the", "a", "an"))


def _name_words(answer: str, allow_commas: bool) -> list[str] | None:
    """The words of a proper name, or None when the answer is not one."""
    text = answer.replace(",", " ") if allow_commas else answer
    if not allow_commas and "," in answer:
        return None
    words = text.split()
    if not words:
        return None
    for i, word in enumerate(words):
        core = word.strip("'\u2019\"()")
        if not core:
            return None
        if core[0].isupper():
            if not all(ch.isalpha() or ch in "'\u2019.-" for ch in core):
                return None
        elif not (core in _JOINERS and 0 < i < len(words) - 1):
            return None
    return words


def infer_kind(question: str, answer: str) -> str:
    """One of KINDS, or OTHER; a pure function of the two texts (rules in the module docstring)."""
    a = answer.strip()
    if a.endswith(".") and not a.endswith(".."):
        a = a[:-1].rstrip()
    if not a:
        return OTHER
    q = question.casefold()
    if _DATE.fullmatch(a):
        return "date"
    if _YEAR.fullmatch(a) or (_WHOLE.fullmatch(a) and _YEAR_QUESTION.search(q)):
        return "year"
    if _NUMBER.fullmatch(a) and a.lstrip("-+\u2212$\u20ac\u00a3\u00a5 ")[:1].isdigit():
        return "number"
    words = a.casefold().replace("-", " ").split()
    if 1 <= len(words) <= 3 and all(w in _NUMBER_WORDS for w in words) and (
            words[0] not in ("a", "and") or words[:2] == ["a", "dozen"]):
        return "number"
    place_words = {w.strip(",").casefold() for w in a.split()}
    place_name = _name_words(a, allow_commas=True)
    if place_name and len(place_name) <= 5 and not place_words & _ORG_WORDS and (
            _PLACE_QUESTION.search(q) or place_words & _PLACE_WORDS):
        return "place"
    name = _name_words(a, allow_commas=False)
    if name and not (place_words & (_PLACE_WORDS | _ORG_WORDS)):
        capitalised = [w for w in name if w[0].isupper()]
        if _WHO_QUESTION.search(q) and 1 <= len(name) <= 4:
            return "person"
        if 2 <= len(capitalised) <= 3 and len(name) <= 4 and name[0].casefold() not in _ARTICLES:
            return "person"
    return OTHER


def settle_kinds(counts: dict[str, set[str]]) -> dict[str, str]:
    """kind -> the field its records get: the kind itself, or OTHER when too few distinct answers
    of it are in the forget and retain sets (`counts`: kind -> the distinct normalised answers of
    that kind there, OTHER included). Depends on the answers only, never on their order."""
    used = {k for k in KINDS if len(counts.get(k, ())) >= MIN_DISTINCT}
    other = set(counts.get(OTHER, ()))
    for k in KINDS:
        if k not in used:
            other |= counts.get(k, set())
    # `imported` must not be left with 1-5 answers: fold in the smallest kinds until it has 6.
    while other and len(other) < MIN_DISTINCT and used:
        smallest = min(used, key=lambda k: (len(counts[k]), KINDS.index(k)))
        used.discard(smallest)
        other |= counts[smallest]
    return {k: (k if k in used else OTHER) for k in (*KINDS, OTHER)}
