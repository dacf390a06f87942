"""Transcripts: SRT, WebVTT, whisper(.cpp) timestamped lines and speaker-labelled text.

Cues are grouped into passages that follow speaker turns and time (a new passage when
the speaker changes or a passage would span more than ``MAX_PASSAGE_SECONDS``). Each
passage's heading names its speaker and time range, so every citation carries them:
``Standup > Alice 00:01:02-00:01:35``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import srt
import webvtt

from ..documents import ParsedDocument
from ..errors import ParseError
from ._common import TextBuilder, read_text

SUFFIXES = (".srt", ".vtt")
MAX_PASSAGE_SECONDS = 60.0

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


def build(cues: list[Cue], title: str, kind: str) -> ParsedDocument:
    builder = TextBuilder()
    speakers: list[str] = []
    for group in _passages(cues):
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


def _passages(cues: list[Cue]) -> list[list[Cue]]:
    groups: list[list[Cue]] = []
    for cue in cues:
        current = groups[-1] if groups else None
        if (
            current is None
            or cue.speaker != current[0].speaker
            or cue.turn != current[0].turn
            or (cue.end or cue.start) - current[0].start > MAX_PASSAGE_SECONDS
        ):
            groups.append([cue])
        else:
            current.append(cue)
    return groups


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
        raise ParseError(f"malformed SRT: {exc}") from exc
    cues = []
    for sub in subtitles:
        speaker, said = _split_speaker(" ".join(sub.content.split()))
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
