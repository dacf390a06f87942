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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .documents import Block, time_range
from .embedders.base import Embedder, embed_texts
from .errors import ConfigError, WorkspaceError
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


@dataclass(frozen=True)
class Chapter:
    number: int
    title: str
    start: int  # seconds: the first passage's start
    end: int  # the last passage's end
    passages: tuple[int, ...]  # passage numbers


def chapters(
    transcript: Transcript,
    embedder: Embedder,
    model: ChatModel,
    count: int | None = None,
    min_seconds: int = MIN_CHAPTER_SECONDS,
) -> list[Chapter]:
    """The transcript split where its topic changes (``count`` chapters, or as many as
    the topic changes found, each at least ``min_seconds`` long), each titled by ``model``."""
    passages = transcript.passages
    vectors = embed_texts(embedder, [p.text for p in passages]) if len(passages) > 1 else None
    cuts = (
        topic_boundaries(vectors, [p.start for p in passages], passages[-1].end, count, min_seconds)
        if vectors is not None
        else []
    )
    groups = [passages[a:b] for a, b in zip([0, *cuts], [*cuts, len(passages)], strict=True)]
    found = []
    for n, group in enumerate(groups, start=1):
        title = chapter_title(model, group)
        found.append(
            Chapter(n, title, group[0].start, group[-1].end, tuple(p.number for p in group))
        )
    return found


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
    gap, a gap's depth how far it dips below the peaks around it; the deepest gaps win —
    ``count - 1`` of them, or every gap deeper than the mean depth plus half a standard
    deviation — as long as every chapter lasts ``min_seconds``."""
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
    cutoff = depth.mean() + depth.std() / 2
    chosen: list[int] = []
    for i in np.argsort(-depth, kind="stable"):
        if count is not None and len(chosen) == count - 1:
            break
        if count is None and (depth[i] <= cutoff or depth[i] < MIN_DEPTH):
            break
        edges = sorted([*chosen, int(i) + 1])
        bounds = [starts[0], *(starts[e] for e in edges), end]
        if all(b - a >= min_seconds for a, b in itertools.pairwise(bounds)):
            chosen = edges
    return chosen


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


def chapter_title(model: ChatModel, passages: Sequence[Passage]) -> str:
    # The cleaned words: "um, so the rocket" makes a worse title than "So the rocket".
    said = " ".join(clean_text(p.text)[0] for p in passages)
    said = model.truncate(said, TITLE_INPUT_TOKENS)
    # No worked example: SmolLM2-135M answered a chapter with the example's title.
    messages = [Message("system", TITLE_PROMPT), Message("user", said)]
    output = schema_of("chapter_title", TITLE_SCHEMA)
    value = generate_json(model, messages, output, max_tokens=40, purpose="title").value
    title = " ".join(str(value["title"]).split())
    if len(title) >= TITLE_MAX and " " in title:
        title = title.rsplit(" ", 1)[0]  # the grammar stopped it mid-word
    return title.rstrip(" ,;:-")


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
