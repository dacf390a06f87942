"""Checks an answer sentence by sentence as the model writes it.

Tiny local models (the default SmolLM2-135M) loop, talk about the prompt instead of
answering, and cite sources that were never given. Each finished sentence passes
through :class:`AnswerGuard` before anyone sees it:

* markers naming no source (``[4]`` with three passages) are removed from the text;
* a sentence that repeats an earlier one, or repeats a run of words, stops the
  generation (the model has started looping; nothing after it is new);
* in ``strict`` mode a sentence whose content words are mostly absent from every
  passage is dropped, and a sentence whose citation points at a passage that does
  not support it is re-pointed at the passage that does;
* a sentence's facts — numbers, identifiers, addresses, names (``claims.py``) — must be
  stated by the passage it cites: in ``strict`` mode it is re-pointed at a passage that
  states them or dropped, and one that answers the question from a passage about
  something else (another row of a table) is dropped; otherwise it is flagged.

When strict checking leaves nothing of the model's answer, :func:`extractive_answer`
quotes the passage sentence that best matches the question instead, cited.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import Stemmer

from .claims import MONTHS, Claims, Stated, claims, stated
from .documents import Hit
from .keywords import STOPWORDS

MARKER = re.compile(r"\[(\d+)\]")
_WORD = re.compile(r"\w+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_STEMMER = Stemmer.Stemmer("porter")
# A sentence ends at . ! or ? followed by whitespace (not inside "3.10" or a URL), with
# any markers that follow it ("It rotates nightly. [1] [2]"); at a blank line; or at a
# line break before a list item or heading. Other line breaks are wrapping.
_SENTENCE_END = re.compile(
    r"[.!?]+(?:[ \t]*\[\d+\])*(?=\s)|\n[ \t]*\n|\n(?=[ \t]*(?:\d{1,2}[.)]|[-*•#]+)\s)"
)
_LIST_NUMBER = re.compile(r"\s*(?:\d{1,2}[.)]|[-*•])\s*")
# A run of words with no sentence end is cut here, so a loop without punctuation is
# still checked (and the reader still sees text arrive).
MAX_SEGMENT_CHARS = 300
# Repetition: the same sentence again (as a set of content words), or a run of this many
# words that already appeared. Measured on the answer set in benchmarks/answer_quality.py:
# no answer that did not loop repeated 8 words verbatim.
REPEAT_NGRAM = 8
NEAR_DUPLICATE = 0.8  # Jaccard similarity of two sentences' content words
# Support: the share of a sentence's content words found in a passage.
ATTRIBUTION_MIN_OVERLAP = 0.5  # to add a missing [n] or re-point a wrong one
SUPPORT_MIN = 0.5  # below this for every passage, strict mode drops the sentence (see README)
MIN_CONTENT_WORDS = 4  # shorter sentences ("Yes.", "I don't know.") are not judged
# A sentence stating a fact from a passage that matches the question less than half as
# well as the best passage answers about something else: another row, page or task.
OFF_TOPIC = 0.5
# A quote must hold this share of the question's words, weighted by rarity (best_unit);
# below it the passages are about something else and the answer is a refusal.
# Measured on benchmarks/qa/facts: unanswerable questions' best units held 0.09-0.16,
# answerable ones' 0.21 and more.
QUOTE_MIN_COVERAGE = 0.2
# The headings shown before a quote are cut to this many characters: a long heading path
# would take a small max_tokens from the quote itself.
QUOTE_MAX_SECTION = 80
# A sentence giving another answer of the kind asked than every unit scoring at least
# this share of the best unit's score is dropped (AnswerGuard._contradicts).
ANSWERING_SCORE = 0.9
# Whether sentences' facts are checked (claims.py); benchmarks/answer_quality.py turns it
# off to measure what the check adds.
CHECK_FACTS = True


def content_words(text: str) -> set[str]:
    """Stems of the words that carry meaning: no stop words, no markers; numbers count
    ("65", "P2") however short, since they are often the answer. Stemmed, so "raises"
    in an answer is the "raise" of the question."""
    text = _THOUSANDS.sub("", MARKER.sub(" ", text))  # "$1,200" is the answer's "1200"
    return {
        _STEMMER.stemWord(w)
        for w in (m.lower() for m in _WORD.findall(text))
        if (len(w) > 2 and w not in STOPWORDS) or any(c.isdigit() for c in w)
    }


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(MARKER.sub(" ", text))]


def segments(deltas: Iterable[str]) -> Iterator[str]:
    """Complete sentences (or lines) from a stream of text deltas, each with the
    whitespace before it. A sentence is complete once the next one has begun, so
    markers written after its full stop stay with it."""
    buffer = ""
    for delta in deltas:
        buffer += delta
        while True:
            cut = _complete_sentence(buffer)
            if cut is None:
                break
            sentence = buffer[:cut].rstrip()  # whitespace goes before the next sentence
            if not sentence:
                break  # cannot happen (a sentence starts with a visible character); never spin
            yield sentence
            buffer = buffer[len(sentence) :]
    if buffer:
        yield buffer


def _complete_sentence(buffer: str) -> int | None:
    """Where the first complete sentence of ``buffer`` ends, or None if none has yet."""
    start = len(buffer) - len(buffer.lstrip())
    for match in _SENTENCE_END.finditer(buffer, start):
        end = match.end()
        if _LIST_NUMBER.fullmatch(buffer[start:end]):
            continue  # "1." opens a list item; it is not a sentence of its own
        rest = buffer[end:]
        if match.group().startswith("\n"):
            return end
        following = rest.lstrip()
        if following and not following.startswith("["):
            return end
        if following.startswith("[") and not re.match(r"\[\d*\]?$|\[\d+\]", following):
            return end  # a bracket that is no marker ("[note]") starts the next sentence
    if len(buffer) - start > MAX_SEGMENT_CHARS:
        space = buffer.rfind(" ", start, len(buffer) - 1)
        return space if space > start else len(buffer)
    return None


@dataclass
class Verdict:
    text: str  # what to show ("" when the sentence is dropped)
    stop: bool = False  # the model is repeating itself: stop generating
    judged: bool = False  # it says something the passages were checked for


@dataclass
class AnswerGuard:
    hits: Sequence[Hit]
    question: str
    strict: bool
    removed_markers: set[int] = field(default_factory=set)
    dropped: list[str] = field(default_factory=list)
    repointed: int = 0
    repeated: str = ""
    unfounded: list[str] = field(default_factory=list)  # facts no cited passage states
    off_topic: list[str] = field(default_factory=list)  # facts from another row or page
    contradicted: list[str] = field(default_factory=list)  # another answer than the passage's
    _seen_ngrams: set[tuple[str, ...]] = field(default_factory=set)
    _seen_sentences: list[set[str]] = field(default_factory=list)
    _passage_words: list[set[str]] = field(default_factory=list)
    _passage_facts: list[Stated] = field(default_factory=list)
    _passage_topics: list[set[str]] = field(default_factory=list)  # with titles, headings
    _passage_units: list[tuple[Unit, ...]] = field(default_factory=list)
    _question_claims: Claims = field(default_factory=Claims)
    _question_words: set[str] = field(default_factory=set)
    _question_facts: Stated = field(default_factory=lambda: stated(""))

    def __post_init__(self) -> None:
        self._passage_words = [content_words(h.text) for h in self.hits]
        self._passage_facts = [stated(_stated_text(h)) for h in self.hits]
        self._passage_topics = [content_words(_stated_text(h)) for h in self.hits]
        self._question_words = content_words(self.question)
        self._question_facts = stated(self.question)
        self._question_claims = asked_claims(self.question)
        self._passage_units = [passage_units(h) for h in self.hits]
        self._kind = asked_kind(self.question)
        self._answering = self._answering_units() if self._kind else []

    def check(self, segment: str) -> Verdict:
        body = segment.strip()
        if not body:
            return Verdict(segment)
        if self._repeats(body):
            self.repeated = body
            return Verdict("", stop=True)
        if self.strict and not re.search(r"[^\W\d_]", MARKER.sub("", segment)):
            return Verdict("")  # only symbols: a code fence or a rule
        if self.strict and segment.lstrip().startswith("#"):
            return Verdict("")  # a Markdown heading echoed from a passage: not a claim
        cleaned, removed = self._without_invalid_markers(segment)
        verdict = self._judge(cleaned)
        if verdict.text.strip():  # markers count as removed only from text a reader sees
            self.removed_markers |= removed
        return verdict

    def _judge(self, segment: str) -> Verdict:
        words = content_words(segment)
        # The facts the sentence adds: a number the question gave is the reader's own.
        said = claims(segment)
        facts = self._question_facts.lacks(said) if CHECK_FACTS else Claims()
        # The question's facts the sentence repeats: the passage it cites must state them
        # too ("the HEK293 cells at passage 21 are in box 4 [2]" needs [2] to say so).
        anchor = self._anchor(segment) if CHECK_FACTS else Claims()
        short = len(words) < MIN_CONTENT_WORDS
        if short and not facts and not (self.strict and words - self._question_words):
            return Verdict(segment)  # "Yes.", a restated question or a header: nothing to check
        # Judged on what the sentence adds to the question: restating the question
        # ("...can be found in multiple sources") supports nothing.
        new = words - self._question_words
        support = [len(new & passage) / len(new) if new else 0.0 for passage in self._passage_words]
        cited = [int(n) for n in MARKER.findall(segment)]
        best = max(range(len(support)), key=support.__getitem__) if support else -1
        if self.strict and (best < 0 or support[best] < SUPPORT_MIN):
            self.dropped.append(segment.strip())
            return Verdict("")
        if (facts or anchor) and CHECK_FACTS:
            checked = Claims(
                facts.numbers | anchor.numbers,
                facts.identifiers | anchor.identifiers,
                facts.names | anchor.names,
            )
            return self._judge_facts(segment, checked, anchor, support, cited)
        if short and not self.strict:
            return Verdict(segment)
        # Attribution counts every content word, as a reader would: the sentence names
        # the question's subject and the passage does too.
        overlap = [len(words & passage) / len(words) for passage in self._passage_words]
        attributed = max(range(len(overlap)), key=overlap.__getitem__) if overlap else -1
        if not cited and len(words) >= MIN_CONTENT_WORDS:
            if self.strict and support[best] >= SUPPORT_MIN:
                return Verdict(_append_marker(segment, best + 1), judged=True)  # kept: cited
            if overlap and overlap[attributed] >= ATTRIBUTION_MIN_OVERLAP:
                return Verdict(_append_marker(segment, attributed + 1), judged=True)
            return Verdict(segment, judged=True)
        if best < 0 or support[best] < ATTRIBUTION_MIN_OVERLAP:
            return Verdict(segment, judged=True)
        if self.strict and all(support[n - 1] < SUPPORT_MIN for n in cited):
            self.repointed += 1
            marked = _append_marker(MARKER.sub("", segment).rstrip(), best + 1)
            return Verdict(marked, judged=True)
        return Verdict(segment, judged=True)

    def _anchor(self, segment: str) -> Claims:
        """The facts of the question the sentence repeats ("14 April", the "Team" plan):
        its new facts must be stated where these are, not on another row or task."""
        asked, said = self._question_claims, stated(segment)
        return Claims(
            asked.numbers & said.numbers,
            frozenset(i for i in asked.identifiers if i in said.words),
            frozenset(w for w in asked.names if w in said.words),
        )

    def _founding(self, passage: int, anchor: Claims) -> Stated:
        """What ``passage`` states about the question's ``anchor``: the facts of its units
        that also state the anchor (the whole passage when there is none)."""
        if not anchor:
            return self._passage_facts[passage]
        together = Stated(frozenset(), frozenset())
        for unit in self._passage_units[passage]:
            if not unit.facts.lacks(anchor):
                together = together | unit.facts
        return together

    def _judge_facts(
        self, segment: str, facts: Claims, anchor: Claims, support: list[float], cited: list[int]
    ) -> Verdict:
        """A sentence stating numbers, identifiers or names: its citations must point at
        passages that state them, next to the question's facts it repeats (``anchor``).
        Strict: re-pointed at the best-supporting passage that does, else dropped;
        elsewhere flagged, and a missing marker added only to a passage that states them."""
        founding = [self._founding(i, anchor) for i in range(len(self._passage_facts))]
        founded = [not passage.lacks(facts) for passage in founding]
        fits = [i for i in range(len(support)) if founded[i] and support[i] >= SUPPORT_MIN]
        if self.strict:
            if not fits:
                return self._unfounded(segment, facts)
            best = max(fits, key=support.__getitem__)
            if self._answers_elsewhere(best):
                self.off_topic.append(segment.strip())
                self.dropped.append(segment.strip())
                return Verdict("")
            if self._contradicts(facts):
                self.contradicted.append(segment.strip())
                self.dropped.append(segment.strip())
                return Verdict("")
            if not cited:
                return Verdict(_append_marker(segment, best + 1), judged=True)
            if self._cited_state(cited, facts, founding) and any(
                support[n - 1] >= SUPPORT_MIN for n in cited
            ):
                return Verdict(segment, judged=True)
            self.repointed += 1
            return Verdict(_append_marker(MARKER.sub("", segment).rstrip(), best + 1), judged=True)
        if cited:
            if not self._cited_state(cited, facts, founding):
                lacking = self._cited_facts(cited, founding).lacks(facts).describe()
                self.unfounded.append(
                    f"{segment.strip()} ({lacking or 'stated there about something else'})"
                )
            return Verdict(segment, judged=True)
        if not fits:
            self.unfounded.append(f"{segment.strip()} ({facts.describe()})")
            return Verdict(segment, judged=True)
        return Verdict(_append_marker(segment, max(fits, key=support.__getitem__) + 1), judged=True)

    def _unfounded(self, segment: str, facts: Claims) -> Verdict:
        lacking = min(
            (passage.lacks(facts) for passage in self._passage_facts),
            key=lambda missing: len(missing.describe()),
            default=facts,
        )
        self.unfounded.append(f"{segment.strip()} ({lacking.describe()})")
        self.dropped.append(segment.strip())
        return Verdict("")

    def _cited_state(self, cited: list[int], facts: Claims, founding: list[Stated]) -> bool:
        """Whether the passages ``cited`` state ``facts`` between them."""
        return not self._cited_facts(cited, founding).lacks(facts)

    def _cited_facts(self, cited: list[int], founding: list[Stated]) -> Stated:
        together = Stated(frozenset(), frozenset())
        for n in cited:
            if 1 <= n <= len(founding):
                together = together | founding[n - 1]
        return together

    def _answering_units(self) -> list[Choice]:
        """The units that answer the question: they state its facts and a new fact of the
        kind asked, and rank (nearly) as high as the best (:data:`ANSWERING_SCORE`) — two
        passages alike enough that either may be right both count."""
        ranked = ranked_units(self.question, self.hits)
        if not ranked or not ranked[0].anchored or ranked[0].fits < 1:
            return []
        floor = ranked[0].score * ANSWERING_SCORE
        return [c for c in ranked if c.anchored and c.fits >= 1 and c.score >= floor]

    def _contradicts(self, facts: Claims) -> bool:
        """Whether the sentence gives another answer of the kind asked (a name for "who",
        a number for "how much") than the unit that states the question's facts and
        answers it (:func:`best_unit`) — a tiny model's usual mistake is the right
        passage's wrong row or the figure next to the one asked for."""
        answering = self._answering
        if not answering:
            return False
        if self._kind in ("number", "date"):
            answer = Claims(numbers=facts.numbers)
        elif self._kind == "person":
            answer = Claims(names=facts.names)
        else:  # an identifier or address
            answer = Claims(identifiers=facts.identifiers)
        return bool(answer) and all(choice.unit.facts.lacks(answer) for choice in answering)

    def _answers_elsewhere(self, passage: int) -> bool:
        """Whether ``passage`` matches the question far worse than another one does: its
        facts then belong to another row, page or task than the one asked about."""
        asked = self._question_words
        if not asked or len(self._passage_topics) < 2:
            return False
        matched = [len(asked & words) / len(asked) for words in self._passage_topics]
        return matched[passage] < OFF_TOPIC * max(matched)

    def _repeats(self, body: str) -> bool:
        words = _words(body)
        ngrams = [tuple(words[i : i + REPEAT_NGRAM]) for i in range(len(words) - REPEAT_NGRAM + 1)]
        repeated = len(set(ngrams)) < len(ngrams) or any(g in self._seen_ngrams for g in ngrams)
        content = content_words(body)
        if len(content) >= 3:
            repeated = repeated or any(
                len(content & earlier) / len(content | earlier) >= NEAR_DUPLICATE
                for earlier in self._seen_sentences
            )
            self._seen_sentences.append(content)
        self._seen_ngrams.update(ngrams)
        return repeated

    def _without_invalid_markers(self, segment: str) -> tuple[str, set[int]]:
        removed: set[int] = set()

        def keep_or_drop(match: re.Match[str]) -> str:
            number = int(match.group(1))
            if 1 <= number <= len(self.hits):
                return match.group()
            removed.add(number)
            return ""

        cleaned = re.sub(r"[ \t]*\[(\d+)\]", keep_or_drop, segment)
        # "like [1] or [2]." without [2] reads "like [1] or ." - tidy the leftovers.
        cleaned = re.sub(r"\s+(?:or|and|,)\s*(?=[.!?,;)]|$)", "", cleaned)
        cleaned = re.sub(r"\(\s*(?:e\.g\.,?)?\s*\)", "", cleaned)
        return re.sub(r"[ \t]+([.!?,;])", r"\1", cleaned), removed

    def warnings(self) -> list[str]:
        notes = []
        if self.removed_markers:
            numbers = sorted(self.removed_markers)
            notes.append(
                f"removed citation markers {numbers}: the model cited sources that do not exist"
            )
        if self.repeated:
            notes.append("stopped the answer where the model began repeating itself")
        if self.dropped:
            notes.append(f"left out {len(self.dropped)} sentence(s) the sources do not support")
        if self.unfounded and not self.strict:
            notes.append(
                f"{len(self.unfounded)} sentence(s) state a number, identifier or name that "
                f"the passage they cite does not: {'; '.join(self.unfounded)}"
            )
        elif self.unfounded:
            notes.append(
                f"{len(self.unfounded)} of them stated a number, identifier or name no passage "
                f"does: {'; '.join(self.unfounded)}"
            )
        if self.contradicted:
            notes.append(
                f"{len(self.contradicted)} of them gave another answer than the passage that "
                "answers the question"
            )
        if self.off_topic:
            notes.append(
                f"{len(self.off_topic)} of them answered from a passage about something other "
                "than the question"
            )
        if self.repointed:
            notes.append(
                f"re-pointed {self.repointed} citation(s) at the passage that supports them"
            )
        return notes


def _stated_text(hit: Hit) -> str:
    """What a passage states, for checking facts: its text, and the title and headings a
    reader sees above it (a name or date is often only there)."""
    return "\n".join([hit.title, *hit.heading_path, hit.text])


def _append_marker(segment: str, number: int) -> str:
    stripped = segment.rstrip()
    return stripped + f" [{number}]" + segment[len(stripped) :]


@dataclass(frozen=True)
class Choice:
    """The unit that best answers a question, and how well it does."""

    number: int  # its passage's marker
    unit: Unit
    anchored: bool  # it states every fact the question names
    fits: float  # 1: it states a new fact of the kind asked for; 0.5 or 0: less
    coverage: float  # the share of the question's words (weighted by rarity) it holds
    score: float = 0.0  # its ranking score: the question's words it holds, and its fit


def best_unit(question: str, hits: Sequence[Hit]) -> Choice | None:
    """The passage unit that best answers ``question`` (:func:`ranked_units`); None when
    no unit shares a content word with it."""
    ranked = ranked_units(question, hits)
    return ranked[0] if ranked else None


def ranked_units(question: str, hits: Sequence[Hit]) -> list[Choice]:
    """The passage units sharing a content word with ``question``, best first. Best: it
    states every fact the question names (the row of "14 April", the "Team" plan), then
    the most question words weighted by how rare they are among the units (its headings'
    words count half), with a bonus for stating a new fact of the kind asked for (a name
    for "who", a date for "when"); ties go to the better-ranked passage."""
    wanted = content_words(question)
    asked = asked_claims(question)
    kind = asked_kind(question)
    candidates = [(n, u) for n, hit in enumerate(hits, start=1) for u in passage_units(hit)]
    unit_words = [content_words(u.text) for _, u in candidates]
    section_words = [
        content_words(u.about) - words for (_, u), words in zip(candidates, unit_words, strict=True)
    ]
    frequency = Counter(w for words in unit_words for w in words & wanted)
    frequency.update(w for words in section_words for w in words & wanted)
    # A question word no unit holds weighs most: the passages are about something else.
    weight = {w: math.log(1 + len(candidates) / frequency.get(w, 0.5)) for w in wanted}
    total = sum(weight.values())
    bonus = total / len(weight) if weight else 0.0
    scored: list[tuple[tuple[bool, float, int], Choice]] = []
    for (number, unit), words, around in zip(candidates, unit_words, section_words, strict=True):
        overlap = (
            sum(weight[w] for w in words & wanted) + sum(weight[w] for w in around & wanted) / 2
        )
        if not overlap or (unit.heading and not _states_a_value(unit, asked)):
            continue  # a heading is an answer only when it gives a number, date or code
        fits = _answers_kind(unit, kind, asked)
        anchored = not unit.facts.lacks(asked)
        score = overlap + bonus * fits
        choice = Choice(number, unit, anchored, fits, overlap / total, score)
        scored.append(((anchored, score, -number), choice))
    scored.sort(key=lambda pair: pair[0], reverse=True)
    return [choice for _, choice in scored]


def _states_a_value(unit: Unit, asked: Claims) -> bool:
    """Whether ``unit`` states a number or code the question does not ("4.3.0, released 24
    March 2025"), not only words or a name ("Rotating API keys")."""
    said = claims(unit.text)
    return bool(said.numbers - asked.numbers or said.identifiers - asked.identifiers)


def extractive_answer(question: str, hits: Sequence[Hit]) -> str | None:
    """The unit that best answers ``question`` (:func:`best_unit`), quoted with its
    headings and cited; None when none shares enough of the question's words."""
    choice = best_unit(question, hits)
    if choice is None or choice.coverage < QUOTE_MIN_COVERAGE:
        return None
    unit = choice.unit
    section = unit.section
    if len(section) > QUOTE_MAX_SECTION:
        section = section[:QUOTE_MAX_SECTION].rsplit(" ", 1)[0].rstrip(" ›,;:") + "…"
    where = f" ({section})" if section and unit.section not in unit.text else ""
    return f"From the sources{where}: “{unit.text}” [{choice.number}]"


def relevant(
    question: str, hits: Sequence[Hit], min_relevance: float, limit: int | None = None
) -> list[Hit]:
    """The passages that may answer ``question``: those at least ``min_relevance`` alike
    to it (cosine), and those naming every code and name the question gives ("AP-300",
    "Elif Demirci": a name of two words or more) however unlike the embedding finds them — a table row or a one-line
    spec is far in vector space from a question about it. At most ``limit`` of them."""
    asked = claims(question)
    # A one-word name ("Example", the company every page names) says too little.
    named = Claims(
        identifiers=asked.identifiers, names=asked.names if len(asked.names) > 1 else frozenset()
    )

    def names_all(hit: Hit) -> bool:
        return bool(named) and not stated(_stated_text(hit)).lacks(named)

    alike = {id(h) for h in hits if (h.cosine or 0.0) >= min_relevance}
    # With ``limit`` (top_k), passages only naming them take the places the alike ones
    # leave: a name on every page ("Acme Corp") must not push the answer out.
    named_only = [id(h) for h in hits if id(h) not in alike and names_all(h)]
    if limit is not None:
        named_only = named_only[: max(0, limit - len(alike))]
    kept = alike | set(named_only)
    return [h for h in hits if id(h) in kept][:limit]


def unanswerable(question: str, hits: Sequence[Hit]) -> str:
    """Why ``hits`` cannot answer ``question``, or "" when they may: a fact the question
    names that no unit states (:func:`unanswered`), or no unit holding enough of its
    words (:data:`QUOTE_MIN_COVERAGE`)."""
    missing = unanswered(question, hits)
    if missing:
        return f"no passage mentions {missing.describe()} as the question does"
    choice = best_unit(question, hits)
    coverage = choice.coverage if choice else 0.0
    if coverage < QUOTE_MIN_COVERAGE:
        return (
            f"the passages found hold too little of the question ({coverage:.0%} of its "
            f"words by weight, {QUOTE_MIN_COVERAGE:.0%} needed)"
        )
    return ""


def unanswered(question: str, hits: Sequence[Hit]) -> Claims:
    """The facts ``question`` names (a plan, a date, a code) that no unit of ``hits``
    states together; empty when one does. A question about the "Starter" plan or the
    week of "2 June" that the passages never mention has no answer in them, however
    alike the passages are. Facts the question joins by "and", "or" or a comma may each
    be stated by a unit of its own."""
    asked = asked_claims(question)
    if not asked:
        return asked
    units = [u.facts for hit in hits for u in passage_units(hit)]
    if not units:
        return asked
    # A question about several things at once ("the Free and Team plans", "the weeks
    # starting 7 April and 14 April") may find each on a unit of its own.
    missing = Claims()
    for part in _COORDINATED.split(question):
        said = stated(part)
        words = said.words | {re.sub(r"['’]s?$", "", w) for w in said.words}  # "Duarte's"
        group = Claims(
            asked.numbers & said.numbers,
            frozenset(i for i in asked.identifiers if i in words),
            frozenset(w for w in asked.names if w in words),
        )
        lacking = [facts.lacks(group) for facts in units]
        if group and all(lacking):
            least = min(lacking, key=lambda lack: len(lack.describe()))
            missing = Claims(
                missing.numbers | least.numbers,
                missing.identifiers | least.identifiers,
                missing.names | least.names,
            )
    return missing


_COORDINATED = re.compile(r"\b(?:and|or|vs|versus)\b|[,;&]\s|\s/\s", re.IGNORECASE)


def asked_claims(question: str) -> Claims:
    """The facts ``question`` names (:func:`claims.claims`), less the names its capitals
    do not show: none when every word is capitalised ("HOW MANY REQUESTS…", "How Many
    Requests…"), and not its first word ("List Team plan limits": an imperative)."""
    asked = claims(question)
    words = [w for w in _WORD.findall(question) if w[0].isalpha() and w.lower() not in STOPWORDS]
    if len(words) >= 3 and all(w[0].isupper() for w in words):
        return Claims(asked.numbers, asked.identifiers)
    first = next(iter(_WORD.findall(question)), "").lower()
    return Claims(asked.numbers, asked.identifiers, asked.names - {first})


# The kind of fact a question asks for, from its wording: (kind, pattern), first match.
_KINDS = (
    ("address", re.compile(r"\be-?mail\b", re.IGNORECASE)),
    (
        "identifier",
        re.compile(
            r"\b(?:which|what)\b.*\b(?:ticket|cve|code|error|release|version|id|sku|issue"
            r"|change|number)\b",
            re.IGNORECASE,
        ),
    ),
    ("date", re.compile(r"^\W*when\b|\bwhat (?:date|day|time)\b", re.IGNORECASE)),
    ("person", re.compile(r"^\W*who(?:m|se)?\b", re.IGNORECASE)),
    (
        "number",
        re.compile(
            r"\bhow (?:much|many|long|often|far|big|large|old)\b|\bwhat (?:percentage|share"
            r"|rate)\b|\b(?:cost|price|budget|quote[ds]?|fee|limit|cap|total)\b",
            re.IGNORECASE,
        ),
    ),
)


def asked_kind(question: str) -> str:
    """ "person", "date", "number", "identifier", "address", or "" when not clear."""
    return next((kind for kind, pattern in _KINDS if pattern.search(question)), "")


def _answers_kind(unit: Unit, kind: str, asked: Claims) -> float:
    """1 when ``unit`` states a fact of ``kind`` the question does not already name
    (0.5 for a number where a code was asked: versions are often plain numbers)."""
    if not kind:
        return 0.0
    said = claims(unit.text)
    new_numbers = said.numbers - asked.numbers
    new_identifiers = said.identifiers - asked.identifiers
    if kind == "address":
        return float(any("@" in i for i in new_identifiers))
    if kind == "identifier":
        return 1.0 if new_identifiers else 0.5 if new_numbers else 0.0
    if kind == "date":
        months = any(w.lower() in MONTHS for w in _WORD.findall(unit.text))
        year = re.search(r"\b(?:1[89]|20)\d\d\b", unit.text)  # "founded in 2019"
        return float(months or bool(year))
    if kind == "person":
        return float(bool(said.names - asked.names))
    if kind == "any":
        return float(bool(new_numbers or new_identifiers or said.names - asked.names))
    return float(bool(new_numbers))


def within_tokens(text: str, limit: int, count: Callable[[str], int]) -> tuple[str, bool]:
    """``text`` cut at a word boundary to at most ``limit`` tokens (as ``count`` counts
    them), and whether it was cut. A quote keeps its closing mark and its citation marker
    while any of its words fit: "From the sources: “The daily…” [1]"."""
    if count(text) <= limit:
        return text, False
    marker = re.search(r"\s*(?:\[\d+\]\s*)+$", text)
    body = text[: marker.start()] if marker else text
    close = "”" if body.endswith("”") else ""
    words = body.removesuffix(close).split(" ")
    for tail in (f"…{close}{marker.group() if marker else ''}", "…"):
        kept = _most_words(words, tail, limit, count)
        if kept:
            return " ".join(words[:kept]).rstrip(",;:") + tail, True
    return "", True


def _most_words(words: list[str], tail: str, limit: int, count: Callable[[str], int]) -> int:
    """The most leading ``words`` that fit in ``limit`` tokens with ``tail`` after them."""
    low, high = 0, len(words) - 1  # the whole text did not fit
    while low < high:
        middle = (low + high + 1) // 2
        if count(" ".join(words[:middle]) + tail) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def _heading(line: str) -> bool:
    """A Markdown heading, or a short line without closing punctuation ("Per diem")."""
    stripped = line.strip()
    return stripped.startswith("#") or (
        len(stripped.split()) <= 6 and not re.search(r"[.!?:;,)\]]$", stripped)
    )


@dataclass(frozen=True)
class Unit:
    """The smallest part of a passage that states a fact on its own: a sentence, a list
    item, a heading that holds a number or code, or a table row read with its header."""

    text: str  # as a quote shows it: a table row reads "Plan: Team; Requests per minute: 600"
    section: str  # the headings above it ("" when there is none)
    facts: Stated  # what it states, read with its document's title and headings
    about: str = ""  # the document's title and the headings: what the unit is about
    heading: bool = False  # a heading stating a fact ("4.3.0, released 24 March 2025")


_TABLE_RULE = re.compile(r"\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?")
_LIST_ITEM = re.compile(r"^(?:\d{1,2}[.)]|[-*•]|\[[ xX]\])\s+")
_FIELD = re.compile(r"^[^\W\d_][\w /()'-]{0,40}:\s+\S")  # "Incident commander: Lena Vogt"


def passage_units(hit: Hit) -> tuple[Unit, ...]:
    """``hit``'s units in order. A fact is checked against the unit that states it, so a
    number from another table row, or a name from another task's sentence, is not taken
    as stating what the question asks about. Cached: one answer reads them several times
    (the refusal check, the guard, the quote)."""
    return _units(hit.title, tuple(hit.heading_path), hit.text)


@lru_cache(maxsize=256)
def _units(title: str, heading_path: tuple[str, ...], text: str) -> tuple[Unit, ...]:
    context = "\n".join([title, *heading_path])
    # The headings above a unit, by level (the chunk's own path first, taken as levels
    # 1, 2, …): "4.2.1, released 17 February 2025 › Fixed".
    headings = {level: h for level, h in enumerate(heading_path, start=1) if h != title}
    section = " › ".join(headings.values())
    units: list[Unit] = []
    prose: list[str] = []
    header: list[str] | None = None

    def add(text: str) -> None:
        facts = stated(f"{context}\n{section}\n{text}")
        units.append(Unit(text, section, facts, f"{title}\n{section}"))

    def flush() -> None:
        for sentence in _sentences(" ".join(" ".join(prose).split())):
            add(sentence)
        prose.clear()

    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("|"):
            flush()
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if _TABLE_RULE.fullmatch(stripped):
                continue
            following = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if _TABLE_RULE.fullmatch(following) and following.startswith("|"):
                header = cells
                continue
            add(_table_row(header, cells))
            continue
        header = None
        if not stripped:
            flush()
        elif stripped.startswith("#") or (
            _heading(stripped) and not _LIST_ITEM.match(stripped) and not _FIELD.match(stripped)
        ):
            flush()
            title = stripped.lstrip("#").strip()
            level = len(stripped) - len(stripped.lstrip("#")) or 7  # a bare line: innermost
            headings = {k: v for k, v in headings.items() if k < level} | {level: title}
            section = " › ".join(headings[k] for k in sorted(headings))
            if claims(title):  # "4.3.0, released 24 March 2025": the heading is the answer
                about = f"{title}\n{section}"
                units.append(Unit(title, "", stated(f"{context}\n{title}"), about, heading=True))
        elif _LIST_ITEM.match(stripped) or _FIELD.match(stripped):
            flush()  # a list item or a "Severity: SEV-2" line states a fact of its own
            prose.append(_LIST_ITEM.sub("", stripped))
            flush()
        else:
            prose.append(stripped)
    flush()
    return tuple(units)


def _table_row(header: list[str] | None, cells: list[str]) -> str:
    if header and len(header) == len(cells):
        return "; ".join(f"{h}: {c}" if h else c for h, c in zip(header, cells, strict=True) if c)
    return " | ".join(c for c in cells if c)


def _sentences(text: str) -> Iterator[str]:
    for match in re.finditer(r"(?:[^.!?]|[.!?](?!\s|$))+[.!?]*", text):
        sentence = match.group().strip()
        if len(_words(sentence)) >= 2:  # "Assignee: Sohrab Amin." answers a question
            yield sentence
