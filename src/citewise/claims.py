"""The facts a sentence states that a reader would act on: numbers (in digits or in
words, with their units, money and percentages), identifiers (codes, versions, ids),
e-mail addresses and proper names.

The answer check (``grounding.py``) keeps a sentence only when a passage it may cite
states the same facts. Word overlap alone cannot tell "the pump costs 80 euros" from
"the pump costs eight hundred and fifty euros", or "Nate Martins" from "Sohrab Amin" on
another row: a wrong fact usually shares every other word with the passage.

Both sides are normalised the same way: numbers written out become digits (text2num),
"20,000" is 20000, "1.5 million" is 1500000, a month name is its number (so "March 3,
2024" matches "2024-03-03"); identifiers, addresses and names compare case-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from text_to_num import alpha2digit

from .keywords import STOPWORDS

MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_DAYS = {
    f"{day}{plural}"
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    for plural in ("", "s")
}
# Capitalised words that name the answer's own frame, not a fact about the world.
_FRAME = {"source", "sources", "passage", "passages", "document", "documents", "answer", "note"}
_MULTIPLIERS = {
    "thousand": 1e3,
    "k": 1e3,
    "million": 1e6,
    "1000000": 1e6,
    "mn": 1e6,
    "billion": 1e9,
    "1000000000": 1e9,
    "bn": 1e9,
    "trillion": 1e12,
}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A code, version or id: a token mixing letters and digits ("E1042", "v2.3.1",
# "JIRA-4821", "0x80070005"), or digits with two or more dots ("3.11.4").
_IDENTIFIER = re.compile(
    r"(?<![\w.-])(?:(?=[\w.-]*\d)(?=[\w.-]*[^\W\d_])\w(?:[\w.-]*\w)?|\d+(?:\.\d+){2,})(?![\w-])"
)
# A number with its unit or ordinal suffix written on ("5km", "3rd", "20GB", "2k").
_SUFFIXED = re.compile(r"(\d+(?:\.\d+)?)([^\W\d_]{1,3})")
_NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?!\w|\.\d)(?:\s*(thousand|million|billion"
    r"|trillion|1000000000|1000000|bn|mn|k)\b)?",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W\d_]+)?")
_POSSESSIVE = re.compile(r"['’]s?$")
_ORDINAL = {"st", "nd", "rd", "th"}
_VERSION = re.compile(r"\d+(?:\.\d+)+")
_MARKER = re.compile(r"\[\d+\]")
_LIST_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+")


@dataclass(frozen=True)
class Claims:
    """What a sentence states: each part must be found in the passage it cites."""

    numbers: frozenset[float] = frozenset()
    identifiers: frozenset[str] = frozenset()  # lowercased codes, versions, e-mail addresses
    names: frozenset[str] = frozenset()  # lowercased words of proper names

    def __bool__(self) -> bool:
        return bool(self.numbers or self.identifiers or self.names)

    def describe(self) -> str:
        """The facts as a reader would write them: "850, e1042, Amin"."""
        parts = [_show(n) for n in sorted(self.numbers)]
        return ", ".join([*parts, *sorted(self.identifiers), *sorted(self.names)])


@dataclass(frozen=True)
class Stated:
    """Everything a passage (or a question) states, to look a sentence's claims up in."""

    numbers: frozenset[float]
    words: frozenset[str]  # lowercased words, identifiers and e-mail addresses

    def lacks(self, claims: Claims) -> Claims:
        """The part of ``claims`` this text does not state."""
        return Claims(
            frozenset(n for n in claims.numbers if n not in self.numbers),
            frozenset(i for i in claims.identifiers if i not in self.words),
            frozenset(w for w in claims.names if w not in self.words),
        )

    def __or__(self, other: Stated) -> Stated:
        return Stated(self.numbers | other.numbers, self.words | other.words)


@lru_cache(maxsize=4096)  # a unit is read at every ranking of an answer: parse it once
def claims(sentence: str) -> Claims:
    """The numbers, identifiers, addresses and names ``sentence`` states. Not counted:
    citation markers, a list item's number, the number one (written "one" it is mostly a
    pronoun: "one of the options"), ordinals ("3rd", "a fifth": a rank, not a quantity),
    and a capitalised word that only starts the sentence."""
    text = _LIST_ITEM.sub("", _MARKER.sub(" ", sentence))
    addresses = {m.lower() for m in _EMAIL.findall(text)}
    text = _EMAIL.sub(" ", text)
    identifiers = {m.lower() for m in _IDENTIFIER.findall(text) if not _SUFFIXED.fullmatch(m)}
    numbers = {n for n in _numbers(_IDENTIFIER.sub(_keep_suffixed, text)) if n != 1}
    numbers |= {float(MONTHS[w.lower()]) for w in _capitalised(text) if w.lower() in MONTHS}
    return Claims(frozenset(numbers), frozenset(identifiers | addresses), _names(text))


@lru_cache(maxsize=4096)
def stated(text: str) -> Stated:
    """What ``text`` states, for looking claims up: every number (also those inside
    codes and dates, and a multiplied one's parts), every word and identifier."""
    numbers = set(_numbers(text, parts=True))
    words = {w.lower() for w in _WORD.findall(text)}
    numbers |= {float(MONTHS[w]) for w in words if w in MONTHS}
    found = {m.lower() for m in _IDENTIFIER.findall(text)} | {
        m.lower() for m in _EMAIL.findall(text)
    }
    # A version is the same written with or without its "v": "4.2.1" states "v4.2.1".
    found |= {f"v{m}" for m in found if _VERSION.fullmatch(m)}
    found |= {m[1:] for m in found if m[:1] == "v" and _VERSION.fullmatch(m[1:])}
    return Stated(frozenset(numbers), frozenset(words | found))


def _numbers(text: str, parts: bool = False) -> list[float]:
    """The numbers in ``text``, words turned to digits first; ``parts``: also every run
    of digits on its own, as a passage's "2024-03-03" or "E1042" may be quoted in part."""
    digits = _digits(text)
    found: list[float] = []
    for match in _NUMBER.finditer(digits):
        value = float(match.group(1).replace(",", ""))
        multiplier = match.group(2)
        if multiplier:
            found.append(value * _MULTIPLIERS[multiplier.lower()])
            if parts:
                found.append(value)
        else:
            found.append(value)
    for match in _SUFFIXED.finditer(digits):
        value, suffix = float(match.group(1)), match.group(2).lower()
        if suffix in _ORDINAL and not parts:
            continue  # "a fifth" reads as "5th": an ordinal claims no quantity
        found.append(value * 1e3 if suffix == "k" else value)
    if parts:
        found += [float(run) for run in re.findall(r"\d+", digits)]
    return found


def _digits(text: str) -> str:
    """``text`` with numbers written in words as digits ("eight hundred and fifty" → 850)."""
    try:
        return str(alpha2digit(text, "en"))
    except Exception:  # text2num is native code: keep the words rather than fail the answer
        return text


def _keep_suffixed(match: re.Match[str]) -> str:
    """An identifier is taken out before numbers are read, unless it is one ("5km")."""
    return match.group() if _SUFFIXED.fullmatch(match.group()) else " "


def _capitalised(text: str) -> list[str]:
    return [w for w in _WORD.findall(text) if w[0].isupper()]


def _names(text: str) -> frozenset[str]:
    """Lowercased words of proper names: capitalised words that are not stop words, months,
    days or the answer's frame, and not merely the first word of a sentence or quote."""
    names: set[str] = set()
    for clause in re.split(r"(?:[.!?:;]\s+|[“\"(]|^)", text):
        words = _WORD.findall(clause)
        for i, word in enumerate(words):
            lower = _POSSESSIVE.sub("", word.lower())  # "Duarte's budget": Duarte
            if not word[0].isupper() or lower in STOPWORDS or lower in _FRAME:
                continue
            if lower in MONTHS or lower in _DAYS or any(c.isdigit() for c in word):
                continue
            following = _POSSESSIVE.sub("", words[i + 1]) if i + 1 < len(words) else ""
            precedes_name = following[:1].isupper() and following.isalpha()
            if i == 0 and not (precedes_name or word.isupper()):
                continue  # "Rotate keys nightly." starts a sentence; "Sohrab Amin" is a name
            names.add(lower)
    return frozenset(names)


def _show(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)
