"""Transcripts: SRT, WebVTT, whisper(.cpp) timestamped lines and speaker-labelled text.

Cues are grouped into passages that follow speech: a new passage where the speaker
changes, and inside one speaker's run at pauses and sentence ends, about
``transcript_passage_seconds`` (20 s) long and never longer than one and a half times that
(30 s) unless a single cue is. Each passage keeps its cues' own times, and its heading
names its speaker and time range, so every citation carries them:
``Standup > Alice 00:01:02-00:01:25``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import srt
import webvtt

from ..config import setting_from_env
from ..documents import ParsedDocument
from ..errors import ConfigError, ParseError
from ._common import TextBuilder, read_text

SUFFIXES = (".srt", ".vtt", ".sbv")
# A passage lasts about transcript_passage_seconds, at most this many times as long.
MAX_PASSAGE_FACTOR = 1.5
# A pause this long (seconds) is as good a place to end a passage as any: a cut there
# costs nothing more. A silence of half a passage always ends one.
PAUSE_SECONDS = 1.5
# What cutting a passage costs where a sentence ends / where one goes on, before the pause
# takes its share off; a passage's length costs ((length - target) / target) ** 2.
SENTENCE_END_COST, MID_SENTENCE_COST, PAUSE_BONUS = 0.25, 1.0, 0.25
MAX_PASSAGE_CUES = 400  # cues one passage may gather (subtitles of a second each: plenty)
_SENTENCE_END = re.compile(r"(?<!\.\.)[.!?][\"')\]’”]*$")  # "..." goes on
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "vs", "e.g", "i.e"})

# [00:01:02.000 --> 00:01:05.500] text   (whisper.cpp; whisper prints the same without hours)
_WHISPER = re.compile(
    r"^\[(\d+:)?(\d+):(\d+(?:[.,]\d+)?)\s*-->\s*(\d+:)?(\d+):(\d+(?:[.,]\d+)?)\]\s*(.*)$"
)
# Alice Smith (12:34):   or   Alice (01:02:03):
_SPEAKER = re.compile(r"^([^\s(][^(\n]{0,60}?)\s*\((\d{1,2}(?::\d{2}){1,2})\):\s*(.*)$")
_SPEAKER_PREFIX = re.compile(r"^([A-Z][\w .'-]{0,40}):\s+(.+)$", re.S)


@dataclass
class Cue:
    start: float
    end: float | None
    speaker: str | None
    text: str
    turn: int = 0  # whisper.cpp's diarization ([SPEAKER_TURN]) numbers anonymous turns


# whisper.cpp with tinydiarize ends a segment with this where the speaker changes.
SPEAKER_TURN = "[SPEAKER_TURN]"


def parse(path: Path) -> ParsedDocument:
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".srt":
        cues, kind = _srt_cues(text, path), "srt"
    elif suffix == ".vtt":
        cues, kind = _vtt_cues(text, path), "webvtt"
    elif suffix == ".sbv":
        cues, kind = _sbv_cues(text), "sbv"
    else:
        cues, kind = timed_cues(text)
    if not cues:
        raise ParseError(f"no cues found in {kind} transcript")
    document = build(cues, path.stem, kind)
    if suffix == ".vtt":
        document.problems = _dropped_vtt_cues(text, len(cues))
    return document


def timed_cues(text: str) -> tuple[list[Cue], str]:
    """Cues from whisper lines or speaker-labelled paragraphs; ([], "") when neither."""
    lines = text.splitlines()
    whisper = [m for line in lines if (m := _WHISPER.match(line.strip()))]
    if whisper and len(whisper) >= 0.6 * sum(1 for line in lines if line.strip()):
        cues, turn = [], 0
        for m in whisper:
            start = _seconds(m.group(1), m.group(2), m.group(3))
            end = _seconds(m.group(4), m.group(5), m.group(6))
            said = m.group(7).strip()
            turn_ends = said.endswith(SPEAKER_TURN)
            speaker, said = _split_speaker(said.removesuffix(SPEAKER_TURN).strip())
            if said:
                cues.append(Cue(start, end, speaker, said, turn))
            turn += turn_ends  # the next segment is someone else speaking
        return cues, "whisper"
    cues = []
    for line in lines:
        match = _SPEAKER.match(line.strip())
        if match:
            parts = [int(p) for p in match.group(2).split(":")]
            seconds = sum(p * 60**i for i, p in enumerate(reversed(parts)))
            cues.append(Cue(float(seconds), None, match.group(1).strip(), match.group(3).strip()))
        elif cues and line.strip():
            cues[-1].text = f"{cues[-1].text} {line.strip()}".strip()
    if len(cues) >= 2:
        for cue, after in itertools.pairwise(cues):
            cue.end = after.start
        return [c for c in cues if c.text], "speaker-labelled"
    return [], ""


def looks_like_transcript(text: str) -> bool:
    return bool(timed_cues(text[:20000])[0])


def build(
    cues: list[Cue], title: str, kind: str, passage_seconds: float | None = None
) -> ParsedDocument:
    """The transcript's document: a block per passage (``passage_seconds``: the passages'
    target length, else the ``transcript_passage_seconds`` setting)."""
    target = passage_seconds if passage_seconds is not None else passage_target()
    builder = TextBuilder()
    speakers: list[str] = []
    for group in passages(cues, target):
        first, last = group[0], group[-1]
        end = last.end if last.end is not None else last.start
        speaker = first.speaker
        label = f"{speaker + ' ' if speaker else ''}{clock(first.start)}-{clock(end)}"
        said = " ".join(c.text for c in group)
        builder.add(
            f"[{clock(first.start)}] {speaker + ': ' if speaker else ''}{said}",
            heading_path=(title, label),
            kind="transcript",
        )
        if speaker and speaker not in speakers:
            speakers.append(speaker)
    last_end = max((c.end or c.start) for c in cues)
    metadata = {"transcript_format": kind, "speakers": speakers, "duration_seconds": last_end}
    return ParsedDocument(builder.text, builder.blocks, title, metadata)


def passage_target() -> float:
    """The ``transcript_passage_seconds`` setting (``CITEWISE_TRANSCRIPT_PASSAGE_SECONDS``)."""
    try:
        seconds = setting_from_env("transcript_passage_seconds", int)
    except ConfigError as exc:
        raise ParseError(f"{exc}; it must be a whole number of seconds, at least 5") from exc
    if seconds < 5:
        raise ParseError(
            f"CITEWISE_TRANSCRIPT_PASSAGE_SECONDS must be at least 5 seconds, not {seconds}"
        )
    return float(seconds)


def passages(cues: list[Cue], target: float) -> list[list[Cue]]:
    """The cues grouped into passages: a new one where the speaker (or whisper.cpp's turn)
    changes or a silence of half a passage falls; within a run, the cuts that cost least
    over the whole run — at sentence ends and pauses, each passage near ``target`` seconds
    and none longer than ``MAX_PASSAGE_FACTOR`` times it unless one cue alone is."""
    runs: list[list[Cue]] = []
    for cue in cues:
        current = runs[-1] if runs else None
        if (
            current is None
            or cue.speaker != current[0].speaker
            or cue.turn != current[0].turn
            or _gap(current[-1], cue) >= target / 2
        ):
            runs.append([cue])
        else:
            current.append(cue)
    return [group for run in runs for group in _split_run(run, target)]


def _split_run(run: list[Cue], target: float) -> list[list[Cue]]:
    """Dynamic programming over the cuts between cues: ``best[j]`` is the least cost of
    passages covering ``run[:j]``, the last one ``run[i:j]``."""
    longest = target * MAX_PASSAGE_FACTOR
    n = len(run)
    best = [0.0] + [float("inf")] * n
    back = [0] * (n + 1)
    for j in range(1, n + 1):
        last = run[j - 1]
        end = last.end if last.end is not None else last.start
        for i in range(j - 1, max(-1, j - 1 - MAX_PASSAGE_CUES), -1):
            span = end - run[i].start
            if span > longest and i < j - 1:
                break  # longer than a passage may last, and more than one cue
            cost = best[i] + ((span - target) / target) ** 2
            if i > 0:
                cost += _cut_cost(run[i - 1], run[i])
            if cost < best[j]:
                best[j], back[j] = cost, i
    groups: list[list[Cue]] = []
    j = n
    while j > 0:
        groups.append(run[back[j] : j])
        j = back[j]
    return groups[::-1]


def _cut_cost(before: Cue, after: Cue) -> float:
    """What ending a passage between two cues costs: little after a sentence and less
    again after a pause."""
    base = SENTENCE_END_COST if ends_sentence(before.text) else MID_SENTENCE_COST
    return base - PAUSE_BONUS * min(_gap(before, after), PAUSE_SECONDS) / PAUSE_SECONDS


def ends_sentence(text: str) -> bool:
    """Whether ``text`` ends a sentence: a full stop, question or exclamation mark, not an
    ellipsis ("and then...") nor a title's abbreviation ("Dr.")."""
    if not _SENTENCE_END.search(text):
        return False
    last = text.split()[-1].lower().rstrip(".!?\"')]’”") if text.split() else ""
    return last not in _ABBREVIATIONS


def _gap(before: Cue, after: Cue) -> float:
    return max(0.0, after.start - (before.end if before.end is not None else before.start))


def clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _seconds(hours: str | None, minutes: str, seconds: str) -> float:
    return (
        int((hours or "0").rstrip(":")) * 3600
        + int(minutes) * 60
        + float(seconds.replace(",", "."))
    )


def _split_speaker(text: str) -> tuple[str | None, str]:
    text = re.sub(r"<[^>]+>", "", text).strip()
    match = _SPEAKER_PREFIX.match(text)
    if match and len(match.group(1).split()) <= 3:
        return match.group(1).strip(), match.group(2).strip()
    bracket = re.match(r"^\[([^\]]{1,40})\]:?\s*(.+)$", text, re.S)  # [SPEAKER_01] text
    if bracket:
        return bracket.group(1).strip(), bracket.group(2).strip()
    return None, text


def _srt_cues(text: str, path: Path) -> list[Cue]:
    try:
        subtitles = list(srt.parse(text))
    except srt.SRTParseError as exc:
        raise ParseError(_srt_error(text, exc.expected_start)) from exc
    except ValueError as exc:  # srt's TimestampParseError: "Unparseable timestamp: …"
        raise ParseError(f"malformed SRT: {exc}") from exc
    cues = []
    for sub in subtitles:
        # A cue with its number but no timing line is read as the text of the cue before:
        # its text stays there (said just after), its number does not.
        content = _UNTIMED_CUE_NUMBER.sub("\n\n", sub.content)
        speaker, said = _split_speaker(" ".join(content.split()))
        if said:
            cues.append(Cue(sub.start.total_seconds(), sub.end.total_seconds(), speaker, said))
    return cues


def _vtt_cues(text: str, path: Path) -> list[Cue]:
    try:
        captions = webvtt.from_string(text)
    except Exception as exc:  # webvtt raises its own MalformedFileError and others
        raise ParseError(f"malformed WebVTT: {exc}") from exc
    cues = []
    for caption in captions.captions:
        voice = getattr(caption, "voice", None)
        speaker, said = (
            (voice, " ".join(caption.text.split()))
            if voice
            else _split_speaker(" ".join(caption.text.split()))
        )
        if said:
            cues.append(Cue(_timestamp(caption.start), _timestamp(caption.end), speaker, said))
    return cues


def _dropped_vtt_cues(text: str, parsed: int) -> list[tuple[str, str]]:
    """Cues webvtt-py left out silently because their timing line does not parse (a
    comma for the decimal point, a garbled time), each named by its line."""
    timings = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if "-->" in line]
    if len(timings) <= parsed:
        return []
    return [
        (f"line {number}", f"WebVTT cue left out: unreadable timing {line.strip()!r}")
        for number, line in timings
        if not _vtt_timing_parses(line)
    ]


def _vtt_timing_parses(line: str) -> bool:
    try:
        return bool(webvtt.from_string(f"WEBVTT\n\n{line.strip()}\ncue\n").captions)
    except Exception:
        return False


def _timestamp(value: str) -> float:
    parts = value.replace(",", ".").split(":")
    return sum(float(p) * 60.0**i for i, p in enumerate(reversed(parts)))


# In an SRT cue's text: a blank line, then a line holding only a number (the next cue's).
_UNTIMED_CUE_NUMBER = re.compile(r"\n[ \t]*\n[ \t]*\d+[ \t]*(?=\n|$)")


def _srt_error(text: str, start: int) -> str:
    """Where an SRT file stops being one, in words: the first line that is not a cue's
    number, and what a cue looks like."""
    first = text.count("\n", 0, start) + 1
    lines = text[start:].splitlines()
    number, line = next(
        (
            (n, ln.strip())
            for n, ln in enumerate(lines, first)
            if ln.strip() and not ln.strip().isdigit()
        ),
        (first, lines[0].strip() if lines else ""),
    )
    return (
        f"malformed SRT: cannot read the cue at line {number}: {line[:80]!r} (a cue is its "
        "number, a line like '00:01:02,500 --> 00:01:05,000', then its text)"
    )


# YouTube's captions (SubViewer): "0:00:01.000,0:00:04.000", the text lines, a blank line.
_SBV_TIMING = re.compile(
    r"^(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?),(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$"
)


def _sbv_cues(text: str) -> list[Cue]:
    """Cues of an SBV file; text after a blank line without a timing line before it stays
    with the cue before (as for SRT)."""
    cues: list[Cue] = []
    for paragraph in re.split(r"\n[ \t]*\n", text.strip()):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        timing = _SBV_TIMING.match(lines[0]) if lines else None
        if timing:
            start = _seconds(timing.group(1), timing.group(2), timing.group(3))
            end = _seconds(timing.group(4), timing.group(5), timing.group(6))
            speaker, said = _split_speaker(" ".join(" ".join(lines[1:]).split()))
            if said:
                cues.append(Cue(start, end, speaker, said))
        elif cues and lines:
            cues[-1].text = f"{cues[-1].text} {' '.join(lines)}"
    return cues
