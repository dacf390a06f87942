"""Citations where each client looks for them.

An answer cites its passages with ``[n]`` markers, and the response lists them
(``citations``, ``search_results``: citewise's own fields). Clients built for OpenAI's API
read neither: they look for OpenAI's ``url_citation`` annotations, which name a span of
the text and the source it comes from (LangChain's Responses integration, the Agents
SDK), or show only the text (``llm``'s streaming mode), for which an assistant can add the
sources as footnotes (``sources_in_text = "footnotes"``).

Offsets (``start_index``, ``end_index``) count Python code points — characters — in the
text the client received, as OpenAI's own annotations do: an emoji is one character,
not the two UTF-16 units a JavaScript string has for it, nor its four UTF-8 bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..documents import Hit
from .source_paths import SourcePaths

MARKER = re.compile(r"\[(\d+)\]")
# A JSON string: its contents (escapes kept) as group 1, an object key when ":" follows.
# Outside strings JSON has no quotes, so scanning from the left finds every string; one
# left open (an answer cut by max_tokens) runs to the end.
JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)(?:"(\s*:)?|\\?$)', re.DOTALL)


@dataclass(frozen=True)
class Annotation:
    """A ``[n]`` marker in the text, as OpenAI's ``url_citation`` names it: the span of
    the marker (character offsets in the text the client received) and its source."""

    start: int
    end: int
    number: int
    title: str
    url: str


def source_url(hit: Hit, shown: SourcePaths | None) -> str:
    """Where a passage comes from, as a link: the document's URL (or its path as callers
    see it), with the place inside it as a fragment a viewer understands — a PDF page
    (``#page=3``), a recording's second (``#t=12.5``, media fragments)."""
    base = hit.url or (shown.shown(hit.source, hit.collection) if shown else hit.source)
    if "#" in base:
        return base
    if hit.seconds:
        return f"{base}#t={hit.seconds[0]:g}"
    if hit.page:
        return f"{base}#page={hit.page}"
    return base


def marker_annotations(
    text: str, hits: Sequence[Hit], shown: SourcePaths | None = None, json_answer: bool = False
) -> list[Annotation]:
    """Every marker in ``text`` that names one of ``hits`` (numbered from 1); in a JSON
    answer only those inside its string values (``[1]`` elsewhere is an array). Offsets
    index ``text`` itself. Reads the store (a source's shown path): call it from a worker
    thread."""
    urls: dict[int, str] = {}
    found = []
    for match in _markers(text, json_answer):
        number = int(match.group(1))
        if not 1 <= number <= len(hits):
            continue
        hit = hits[number - 1]
        if number not in urls:
            urls[number] = source_url(hit, shown)
        found.append(Annotation(match.start(), match.end(), number, hit.title, urls[number]))
    return found


def _markers(text: str, json_answer: bool) -> Iterator[re.Match[str]]:
    if not json_answer:
        yield from MARKER.finditer(text)
        return
    for string in JSON_STRING.finditer(text):
        if string.group(2) is None:  # a value, not a key
            yield from MARKER.finditer(text, string.start(1), string.end(1))


@dataclass(frozen=True)
class ClientText:
    """The text a client gets for an answer — the answer's own, then the footnotes listing
    its sources when the assistant adds them — and its markers as annotations (in the
    answer's text only, never in the footnotes)."""

    body: str
    notes: str
    annotations: list[Annotation]

    @property
    def text(self) -> str:
        return self.body + self.notes


def client_text(
    body: str,
    hits: Sequence[Hit],
    shown: SourcePaths | None,
    footnoted: bool,
    json_answer: bool,
) -> ClientText:
    """What both chat completions and the Responses API send, streamed or not: ``body``
    (the answer's text, as streamed), with footnotes when ``footnoted`` (the assistant's
    ``sources_in_text``) unless the answer is JSON, which they would break. Reads the
    store: call it from a worker thread."""
    notes = footnotes(body, hits, shown) if footnoted and not json_answer else ""
    return ClientText(body, notes, marker_annotations(body, hits, shown, json_answer))


def chat_annotation(annotation: Annotation) -> dict[str, Any]:
    """In a chat completion's ``message.annotations`` (and a stream's delta)."""
    return {
        "type": "url_citation",
        "url_citation": {
            "start_index": annotation.start,
            "end_index": annotation.end,
            "title": annotation.title,
            "url": annotation.url,
        },
    }


def response_annotation(annotation: Annotation) -> dict[str, Any]:
    """In a Responses API ``output_text`` part."""
    return {
        "type": "url_citation",
        "start_index": annotation.start,
        "end_index": annotation.end,
        "title": annotation.title,
        "url": annotation.url,
    }


def footnotes(text: str, hits: Sequence[Hit], shown: SourcePaths | None = None) -> str:
    """The sources ``text`` cites, as lines to append to it: for clients that show only
    the text. Empty when it cites none."""
    cited = sorted(
        {a.number: a for a in marker_annotations(text, hits, shown)}.values(), key=_number
    )
    if not cited:
        return ""
    lines = []
    for annotation in cited:
        hit = hits[annotation.number - 1]
        where = f", {hit.location}" if hit.location else ""
        lines.append(f"[{annotation.number}] {hit.title}{where} — {annotation.url}")
    return "\n\nSources:\n" + "\n".join(lines)


def _number(annotation: Annotation) -> int:
    return annotation.number
