"""Working on transcripts and recordings: clean them, split them into chapters, label them.

A transcript is read back as timed passages — from a stored document (a recording or a
transcript file already ingested: no second transcription) or from a file, parsed as
ingest would. Every result keeps each passage's original start and end, so whatever is
derived from it still cites the second of the recording it came from.

- :func:`clean` removes filler words, cut-off words and repeated words (rules: the text
  is never rewritten by a model), recording each cut and where it was.
- :func:`chapters` finds topic changes from the passages' embeddings (TextTiling's depth
  scores over embedding similarity) and asks the chat model for each chapter's title as
  schema-validated JSON.
- :func:`classify` labels each passage with one of the user's labels: schema-constrained
  to the labels by the chat model, or by embedding similarity to the labels — the default
  with the local model, which picked the first label for every passage when asked.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .documents import Block, time_range
from .embedders.base import Embedder, embed_texts
from .errors import ConfigError, InvalidInput, ModelError, WorkspaceError
from .parsers.transcript import clock, ends_sentence
from .providers.base import ChatModel, Message
from .structured import generate_json, schema_of
from .workspace import DEFAULT_COLLECTION, Workspace

# -- transcripts as timed passages ------------------------------------------------------


@dataclass(frozen=True)
class Passage:
    number: int  # 1-based, in order
    start: int  # seconds from the start of the recording
    end: int
    speaker: str | None
    text: str  # what was said, without the "[hh:mm:ss] Speaker:" prefix


@dataclass(frozen=True)
class Transcript:
    source: str
    title: str
    passages: tuple[Passage, ...]
    media: bool  # a recording (its passages can be played), not a transcript file


def load_transcript(
    workspace: Workspace, source: str, collection: str = DEFAULT_COLLECTION
) -> Transcript:
    """The transcript of ``source``: a document of ``collection`` (by source, path or
    id), else a file parsed as ingest would parse it (a recording is transcribed)."""
    stored = _stored_document(workspace, source, collection)
    if stored is not None:
        return _stored_transcript(workspace, *stored)
    path = Path(source).expanduser()
    if not path.is_file():
        raise WorkspaceError(
            f"{source}: no such document in collection {collection!r}, and no such file"
        )
    from .parsers import parse_file

    parsed = parse_file(path)
    spans = [(b.start, b.end, b.heading_path[-1]) for b in parsed.blocks if _timed(b)]
    return _transcript(
        str(path.resolve()), parsed.title or path.stem, parsed.text, spans, parsed.metadata
    )


def _stored_document(
    workspace: Workspace, source: str, collection: str
) -> tuple[int, str, str] | None:
    target = workspace.store.collection(collection)
    if target is None:
        return None
    candidates = [source]
    if not source.startswith(("http://", "https://")):
        candidates.append(str(Path(source).expanduser().resolve()))
    for candidate in candidates:
        state = workspace.store.document_state(target.id, candidate)
        if state is not None:
            return state.id, candidate, collection
    if source.isdigit():
        record = workspace.store.document(target.id, int(source))
        if record is not None:
            return record.id, record.source, collection
    return None


def _stored_transcript(
    workspace: Workspace, document_id: int, source: str, collection: str
) -> Transcript:
    store = workspace.store
    hits = store.hits(store.document_chunk_ids(document_id))
    ordered = sorted(hits.values(), key=lambda h: h.start)
    if not ordered:
        raise WorkspaceError(f"{source}: the document has no passages")
    spans = [(h.start, h.end, h.heading_path[-1]) for h in ordered if h.heading_path]
    return _transcript(
        source, ordered[0].title, store.document_text(document_id), spans, ordered[0].metadata
    )


def _timed(block: Block) -> bool:
    return bool(block.heading_path) and time_range(block.heading_path[-1]) is not None


def _transcript(
    source: str,
    title: str,
    text: str,
    spans: list[tuple[int, int, str]],
    metadata: dict[str, Any],
) -> Transcript:
    """Passages from (start, end, label) spans of the text: consecutive spans with one
    label (a passage cut into several chunks) are one passage."""
    if "transcript_format" not in metadata:
        raise WorkspaceError(f"{source}: not a transcript or a recording")
    merged: list[tuple[int, int, str]] = []
    for start, end, label in spans:
        if merged and merged[-1][2] == label:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end), label)
        else:
            merged.append((start, end, label))
    passages: list[Passage] = []
    for start, end, label in merged:
        times = time_range(label)
        if times is None:
            continue
        speaker = label[: label.rindex(" ")].strip() if " " in label else None
        said = _PREFIX.sub("", text[start:end].strip(), count=1)
        if speaker:
            said = said.removeprefix(f"{speaker}:").strip()
        passages.append(Passage(len(passages) + 1, times[0], times[1], speaker or None, said))
    if not passages:
        raise WorkspaceError(f"{source}: no timed passages")
    return Transcript(source, title, tuple(passages), bool(metadata.get("media")))


_PREFIX = re.compile(r"^\[\d+:\d\d:\d\d\]\s*")

# -- clean -------------------------------------------------------------------------------

# Sounds that carry no words. "mhm" and "uh-huh" are answers, and stay.
FILLERS = frozenset({"um", "umm", "uhm", "uh", "uhh", "er", "erm", "ah", "hmm", "hm"})
# Phrases that are fillers only when set off by commas ("it was, you know, hard"); "I mean
# it" and "like a rocket" stay.
FILLER_PHRASES = (("you", "know"), ("i", "mean"), ("like",))
# Words people repeat on purpose ("had had", "very very").
REPEATABLE = frozenset({"had", "that", "very", "really", "no", "yes", "bye", "so", "ha", "go"})
_CUT_OFF = re.compile(r"\w(-|--|—|–)$")  # "I- I think": a word broken off


@dataclass(frozen=True)
class Cut:
    kind: str  # filler | false start | repeat
    text: str  # the words removed, as they were
    start: int  # character offsets in the passage's original text
    end: int


@dataclass(frozen=True)
class CleanPassage:
    passage: Passage  # the original, with its times
    text: str  # the cleaned text ("" when nothing but fillers was said)
    cuts: tuple[Cut, ...] = field(default=())


def clean(transcript: Transcript) -> list[CleanPassage]:
    """Each passage without filler words, cut-off words and repeated words; its times are
    the original passage's, so the cleaned text still cites the same seconds."""
    return [CleanPassage(p, *clean_text(p.text)) for p in transcript.passages]


def clean_text(text: str) -> tuple[str, tuple[Cut, ...]]:
    words = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]
    cores = [re.sub(r"^\W+|\W+$", "", w).lower() for _, w in words]
    removed: dict[int, str] = {}
    for i, (_, word) in enumerate(words):
        if cores[i] in FILLERS:
            removed[i] = "filler"
        elif _CUT_OFF.search(word):
            removed[i] = "false start"
    _mark_filler_phrases(words, cores, removed)
    _mark_repeats(cores, removed)
    return _rebuild(words, removed), _cuts(text, words, removed)


def _mark_filler_phrases(
    words: list[tuple[int, str]], cores: list[str], removed: dict[int, str]
) -> None:
    for phrase in FILLER_PHRASES:
        n = len(phrase)
        for i in range(len(words) - n + 1):
            if tuple(cores[i : i + n]) != phrase or not words[i + n - 1][1].endswith(","):
                continue
            opened = i == 0 or words[i - 1][1].endswith((",", ".", "?", "!"))
            if opened and i + n < len(words):  # a trailing "you know," ends nothing
                removed.update(dict.fromkeys(range(i, i + n), "filler"))


def _mark_repeats(cores: list[str], removed: dict[int, str]) -> None:
    """The first of two identical runs of up to four words ("I think, I think we")."""
    changed = True
    while changed:
        changed = False
        kept = [i for i in range(len(cores)) if i not in removed and cores[i]]
        for n in (4, 3, 2, 1):
            for j in range(len(kept) - 2 * n + 1):
                first = [cores[i] for i in kept[j : j + n]]
                if first != [cores[i] for i in kept[j + n : j + 2 * n]]:
                    continue
                if n == 1 and first[0] in REPEATABLE:
                    continue
                removed.update(dict.fromkeys(kept[j : j + n], "repeat"))
                changed = True
                break
            if changed:
                break


def _rebuild(words: list[tuple[int, str]], removed: dict[int, str]) -> str:
    """The kept words, punctuation mended where words went: "So, um, we" -> "So we";
    "Um, so we" -> "So we"; a sentence's last word removed passes on its full stop."""
    out: list[str] = []
    pending_capital = False
    i = 0
    while i < len(words):
        if i not in removed:
            word = words[i][1]
            if pending_capital and word[:1].islower():
                word = word[:1].upper() + word[1:]
            pending_capital = False
            out.append(word)
            i += 1
            continue
        j = i
        while j + 1 < len(words) and j + 1 in removed:
            j += 1
        last, kind = words[j][1], removed[j]
        sentence_start = not out or out[-1].endswith((".", "?", "!"))
        if last.endswith((".", "?", "!")) and out and not out[-1].endswith((".", "?", "!", ",")):
            out[-1] += last[-1]
        elif out and out[-1].endswith(",") and last.endswith(",") and kind == "filler":
            out[-1] = out[-1][:-1]
        pending_capital = sentence_start and (words[i][1][:1].isupper())
        i = j + 1
    return " ".join(out)


def _cuts(text: str, words: list[tuple[int, str]], removed: dict[int, str]) -> tuple[Cut, ...]:
    cuts: list[Cut] = []
    for i in sorted(removed):
        start, word = words[i]
        end = start + len(word)
        if cuts and cuts[-1].kind == removed[i] and i - 1 in removed:
            previous = cuts.pop()
            start = previous.start
        cuts.append(Cut(removed[i], text[start:end], start, end))
    return tuple(cuts)


# -- chapters -----------------------------------------------------------------------------

MIN_CHAPTER_SECONDS = 60
TITLE_MAX = 60  # characters
TITLE_SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string", "minLength": 3, "maxLength": TITLE_MAX}},
    "required": ["title"],
    "additionalProperties": False,
}
TITLE_PROMPT = (
    "You name the chapters of recorded meetings and talks. Given what was said in one "
    "chapter, reply with a short title of two to six words that names its topic."
)
TITLE_INPUT_TOKENS = 600  # of a chapter's text shown to the model
# Room for the longest title even at a token per character, and the JSON around it: a
# title is never stopped by max_tokens.
TITLE_TOKENS = TITLE_MAX + 40
FIRST_SENTENCE_MAX = 120  # characters of a chapter's first sentence used as its title
# Words a whole title does not end with: a title ending so was stopped mid-sentence.
_DANGLING = (
    "a an the and or but nor of to in on at by for with from into onto as than that which "
    "who whose is are was were be been has have had will would can could should our their "
    "its my your his her this these those we"
)
DANGLING = frozenset(_DANGLING.split())
# A title that is this many or more of the first words of a sentence the chapter said,
# and stops before its end, is a copy the schema's length cut short.
ECHO_WORDS = 4
MODEL, FIRST_SENTENCE = "model", "first sentence"  # where a chapter's title came from
EMBED_BATCH = 64  # passages embedded between progress reports

# (stage, done, total): "Embedding passages" then "Titling chapters".
ChapterProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Chapter:
    number: int
    title: str
    start: int  # seconds: the first passage's start
    end: int  # the last passage's end
    passages: tuple[int, ...]  # passage numbers
    titled_by: str = MODEL  # or FIRST_SENTENCE: the model's title was cut off


@dataclass(frozen=True)
class Chapters:
    chapters: list[Chapter]
    min_seconds: int  # the shortest a chapter could be
    notes: tuple[str, ...] = ()  # what the caller should know: a shorter minimum, titles


def chapters(
    transcript: Transcript,
    embedder: Embedder,
    model: ChatModel,
    count: int | None = None,
    min_seconds: int | None = None,
    progress: ChapterProgress | None = None,
) -> Chapters:
    """The transcript split where its topic changes — exactly ``count`` chapters, or as
    many as the topic changes found — each at least ``min_seconds`` long and titled by
    ``model`` (a title the model did not finish is the chapter's first sentence).

    ``min_seconds`` None: ``MIN_CHAPTER_SECONDS``, shortened as far as ``count`` chapters
    need (and said so in the notes). Raises :class:`InvalidInput` naming why when
    ``count`` chapters cannot be made: fewer passages, or a given ``min_seconds`` too long.
    """
    passages = transcript.passages
    starts, end = [p.start for p in passages], passages[-1].end
    notes: list[str] = []
    shortest = MIN_CHAPTER_SECONDS if min_seconds is None else min_seconds
    if count is not None and count > 1:
        if count > len(passages):
            raise InvalidInput(
                f"{transcript.title}: {_count(len(passages), 'passage')}, so at most "
                f"{_count(len(passages), 'chapter')}; asked for {count}",
                "count",
            )
        fit = most_chapters(starts, end, shortest)
        if fit < count and min_seconds is not None:
            raise InvalidInput(
                f"{transcript.title}: {count} chapters of at least {shortest} s do not fit "
                f"in {clock(end - starts[0])}, {_most(fit)}; ask for fewer or lower "
                "--min-seconds",
                "count",
            )
        if fit < count:
            shortest = _longest_minimum(starts, end, count, shortest)
            notes.append(
                f"{count} chapters of at least {MIN_CHAPTER_SECONDS} s do not fit in "
                f"{clock(end - starts[0])}; chapters may be as short as {shortest} s"
            )
    vectors = None
    if len(passages) > 1 and count != 1:
        texts = [p.text for p in passages]
        parts = []
        for first in range(0, len(texts), EMBED_BATCH):
            parts.append(embed_texts(embedder, texts[first : first + EMBED_BATCH]))
            if progress:
                progress("Embedding passages", min(first + EMBED_BATCH, len(texts)), len(texts))
        vectors = np.concatenate(parts)
    cuts = topic_boundaries(vectors, starts, end, count, shortest) if vectors is not None else []
    groups = [passages[a:b] for a, b in zip([0, *cuts], [*cuts, len(passages)], strict=True)]
    found = []
    for n, group in enumerate(groups, start=1):
        title, titled_by = chapter_title(model, group)
        title = title or f"Chapter {n}"  # nothing but fillers was said
        found.append(
            Chapter(
                n, title, group[0].start, group[-1].end, tuple(p.number for p in group), titled_by
            )
        )
        if progress:
            progress("Titling chapters", n, len(groups))
    fallen = [c.number for c in found if c.titled_by == FIRST_SENTENCE]
    if fallen:
        which = ", ".join(str(n) for n in fallen)
        notes.append(
            f"chapter{'s' if len(fallen) > 1 else ''} {which} (marked *): the model's title "
            "was cut off or invalid, so the title is the chapter's first sentence"
        )
    return Chapters(found, shortest, tuple(notes))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _most(fit: int) -> str:
    return f"at most {fit} {'does' if fit == 1 else 'do'}"


def most_chapters(starts: Sequence[int], end: int, min_seconds: int) -> int:
    """How many chapters of at least ``min_seconds`` the passages starting at ``starts``
    (sorted) can make: cutting at the first passage each time leaves the most room."""
    found, since = 1, starts[0]
    for start in starts[1:]:
        if start > since and start - since >= min_seconds and end - start >= min_seconds:
            found, since = found + 1, start
    return found


def _longest_minimum(starts: Sequence[int], end: int, count: int, ceiling: int) -> int:
    """The longest minimum under ``ceiling`` seconds that lets ``count`` chapters fit."""
    low, high = 0, ceiling  # most_chapters(low) >= count (count <= passages); high fails
    while high - low > 1:
        middle = (low + high) // 2
        if most_chapters(starts, end, middle) >= count:
            low = middle
        else:
            high = middle
    return low


def topic_boundaries(
    vectors: np.ndarray,
    starts: Sequence[int],
    end: int,
    count: int | None = None,
    min_seconds: int = MIN_CHAPTER_SECONDS,
    window: int = 2,
) -> list[int]:
    """Indexes of the passages that begin a new chapter (sorted). TextTiling (Hearst,
    1997) over embeddings: the similarity of the ``window`` passages either side of each
    gap, a gap's depth how far it dips below the peaks around it. Without ``count``, every
    gap deeper than the mean depth plus half a standard deviation, deepest first, as long
    as every chapter lasts ``min_seconds``; with it, the ``count - 1`` gaps of greatest
    total depth that keep every chapter that long (:class:`InvalidInput` when none do)."""
    n = len(vectors)
    if n < 2 or count == 1:
        return []
    similarity = np.array(
        [
            _cosine(
                vectors[max(0, g - window) : g].mean(axis=0), vectors[g : g + window].mean(axis=0)
            )
            for g in range(1, n)
        ]
    )
    depth = np.array([_depth(similarity, i) for i in range(len(similarity))])
    if count is not None:
        return _deepest_cuts(depth, starts, end, count - 1, min_seconds)
    cutoff = depth.mean() + depth.std() / 2
    chosen: list[int] = []
    for i in np.argsort(-depth, kind="stable"):
        if depth[i] <= cutoff or depth[i] < MIN_DEPTH:
            break
        edges = sorted([*chosen, int(i) + 1])
        bounds = [starts[0], *(starts[e] for e in edges), end]
        if all(b - a >= min_seconds for a, b in itertools.pairwise(bounds)):
            chosen = edges
    return chosen


def _deepest_cuts(
    depth: np.ndarray, starts: Sequence[int], end: int, wanted: int, min_seconds: int
) -> list[int]:
    """``wanted`` cuts (passage indexes) of greatest total depth with every chapter at
    least ``min_seconds`` long and none empty. Dynamic programming: ``score[e]`` is the
    best total depth of k cuts the last of which begins passage ``e``; the cuts allowed
    before ``e`` are a prefix of the passages, so a running maximum finds the best."""
    n = len(starts)
    minus = float("-inf")
    score = [0.0] + [minus] * (n - 1)  # no cut yet: the transcript "begins" at passage 0
    backs: list[list[int]] = []
    for _ in range(wanted):
        best, best_at, reach = minus, -1, 0
        new, back = [minus] * n, [-1] * n
        for e in range(1, n):
            # the earlier cuts allowed before e: passages starting min_seconds before it
            while reach < e and starts[e] - starts[reach] >= max(min_seconds, 1):
                if score[reach] > best:
                    best, best_at = score[reach], reach
                reach += 1
            if best_at >= 0:
                new[e], back[e] = best + float(depth[e - 1]), best_at
        score = new
        backs.append(back)
    last = max(
        (e for e in range(1, n) if end - starts[e] >= min_seconds and score[e] > minus),
        key=lambda e: score[e],
        default=None,
    )
    if last is None:
        raise InvalidInput(
            f"{wanted + 1} chapters of at least {min_seconds} s do not fit, "
            f"{_most(most_chapters(starts, end, min_seconds))}",
            "count",
        )
    cuts = [last]
    for back in reversed(backs[1:]):
        cuts.append(back[cuts[-1]])
    return cuts[::-1]


MIN_DEPTH = 0.05  # below this a dip is noise between passages on one topic


def _depth(similarity: np.ndarray, i: int) -> float:
    left = right = similarity[i]
    for value in similarity[i::-1]:
        if value < left:
            break
        left = value
    for value in similarity[i:]:
        if value < right:
            break
        right = value
    return float(left - similarity[i] + right - similarity[i])


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def chapter_title(model: ChatModel, passages: Sequence[Passage]) -> tuple[str, str]:
    """The chapter's title and where it came from: ``MODEL``, or ``FIRST_SENTENCE`` when
    the model's title was cut off (it ran into the schema's length, or ends mid-sentence:
    SmolLM2-135M echoes a chapter's first words) or invalid."""
    # The cleaned words: "um, so the rocket" makes a worse title than "So the rocket".
    said = " ".join(clean_text(p.text)[0] for p in passages)
    # No worked example: SmolLM2-135M answered a chapter with the example's title.
    messages = [
        Message("system", TITLE_PROMPT),
        Message("user", model.truncate(said, TITLE_INPUT_TOKENS)),
    ]
    output = schema_of("chapter_title", TITLE_SCHEMA)
    try:
        value = generate_json(
            model, messages, output, max_tokens=TITLE_TOKENS, purpose="title"
        ).value
    except ModelError:  # no valid title in two tries: the chapter's own words serve
        return first_sentence(said), FIRST_SENTENCE
    title = " ".join(str(value["title"]).split()).strip(" ,;:-")
    if whole_title(title, said):
        return title, MODEL
    return first_sentence(said), FIRST_SENTENCE


def whole_title(title: str, said: str = "") -> bool:
    """Whether a model's title was finished, not stopped: shorter than the schema allows
    (the grammar closes the string there), not ending on a word that leads on ("the",
    "and", "of"), not a sentence followed by the start of another, and not the first
    ``ECHO_WORDS`` or more words of a sentence of ``said`` (what the chapter said) without
    its end — SmolLM2-135M copies a chapter's first sentence until the schema stops it."""
    words = _words(title)
    if len(title) >= TITLE_MAX or not words or words[-1] in DANGLING:
        return False
    if re.search(r"[.!?]\s+\S", title) and not ends_sentence(title):
        return False
    return len(words) < ECHO_WORDS or not any(
        len(sentence) > len(words) and sentence[: len(words)] == words
        for sentence in _sentences(said)
    )


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'’]+", text.lower())


def _sentences(said: str) -> list[list[str]]:
    """The words of each sentence of ``said``, lower-cased, without punctuation."""
    sentences: list[list[str]] = [[]]
    for word in said.split():
        sentences[-1] += _words(word)
        if ends_sentence(word):
            sentences.append([])
    return [s for s in sentences if s]


def first_sentence(said: str) -> str:
    """The first sentence of ``said``, whole — or, when it runs past
    ``FIRST_SENTENCE_MAX`` characters (speech without full stops), up to its last clause
    or word that fits, marked with an ellipsis."""
    words = said.split()
    sentence: list[str] = []
    for word in words:
        sentence.append(word)
        if ends_sentence(word):
            break
    text = " ".join(sentence)
    if len(text) <= FIRST_SENTENCE_MAX:
        return text.removesuffix(".") if not text.endswith("..") else text
    head = text[: FIRST_SENTENCE_MAX + 1]
    clause = max(head.rfind(", "), head.rfind("; "), head.rfind(" - "), head.rfind(" — "))
    cut = clause if clause > FIRST_SENTENCE_MAX // 2 else head.rfind(" ")
    return text[: cut if cut > 0 else FIRST_SENTENCE_MAX].rstrip(" ,;-—") + "…"


# -- classify -----------------------------------------------------------------------------

METHODS = ("auto", "model", "embeddings")
CLASSIFY_PROMPT = (
    "You label passages of recorded meetings. Reply with the one label that fits the "
    "passage best. The labels: {labels}."
)


# A label embedded as a sentence matches passages better than the bare word: accuracy
# 0.738 -> 0.833 on benchmarks/transcript_tasks.py (as CLIP's "a photo of a {}" does).
LABEL_TEMPLATE = "This part is about {}."


@dataclass(frozen=True)
class Labelled:
    passage: Passage
    label: str
    score: float | None = None  # the cosine with the label (method "embeddings")


def classify(
    transcript: Transcript,
    labels: Sequence[str],
    embedder: Embedder,
    model: ChatModel,
    method: str = "auto",
) -> tuple[list[Labelled], str]:
    """Each passage with one of ``labels``, and the method used. ``auto``: the chat model
    unless it is a local model, whose choices were no better than the first label."""
    labels = check_labels(labels)
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; use one of: {', '.join(METHODS)}")
    if method == "auto":
        method = "embeddings" if model.capabilities.local else "model"
    if method == "embeddings":
        return _by_similarity(transcript, labels, embedder), method
    return _by_model(transcript, labels, model), method


def check_labels(labels: Sequence[str]) -> list[str]:
    cleaned = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
    if len(cleaned) < 2:
        raise ConfigError("give at least two different labels, e.g. --labels pricing,bug,other")
    return cleaned


def _by_similarity(transcript: Transcript, labels: list[str], embedder: Embedder) -> list[Labelled]:
    passages = transcript.passages
    described = [LABEL_TEMPLATE.format(label) for label in labels]
    similarity = (
        embed_texts(embedder, [p.text for p in passages]) @ embed_texts(embedder, described).T
    )
    best = similarity.argmax(axis=1)
    return [
        Labelled(p, labels[int(b)], round(float(similarity[i, b]), 4))
        for i, (p, b) in enumerate(zip(passages, best, strict=True))
    ]


def _by_model(transcript: Transcript, labels: list[str], model: ChatModel) -> list[Labelled]:
    schema = {
        "type": "object",
        "properties": {"label": {"enum": labels}},
        "required": ["label"],
        "additionalProperties": False,
    }
    output = schema_of("passage_label", schema)
    system = Message("system", CLASSIFY_PROMPT.format(labels=", ".join(labels)))
    labelled = []
    for p in transcript.passages:
        said = model.truncate(p.text, TITLE_INPUT_TOKENS)
        value = generate_json(
            model, [system, Message("user", said)], output, max_tokens=30, purpose="classify"
        ).value
        labelled.append(Labelled(p, str(value["label"])))
    return labelled
