"""Transcripts: every format yields passages whose citations carry speaker and time."""

from __future__ import annotations

from pathlib import Path

import pytest

from citewise.errors import ParseError
from citewise.parsers import parse_file

SRT = """\
1
00:00:01,000 --> 00:00:04,200
Alice: Welcome to the quarterly planning call.

2
00:00:04,500 --> 00:00:09,000
Alice: The warehouse in Lyon opens on the 3rd of March.

3
00:01:10,000 --> 00:01:15,500
Bob: Our budget for the Lyon opening is 420 thousand euros.

4
00:01:16,000 --> 00:01:20,000
Bob: Hiring starts in January.
"""

VTT = """\
WEBVTT

00:00:02.000 --> 00:00:05.000
<v Chloé>Bonjour, the café reopens après the renovation.

00:02:03.250 --> 00:02:07.900
<v Dev>The new espresso machine arrives on Friday.
"""

WHISPER = """\
[00:00:00.000 --> 00:00:03.500]  Today we review the incident from last night.
[00:00:03.500 --> 00:00:09.000]  The database failover took eleven minutes.
[00:12:30.000 --> 00:12:36.000]  Next time we page the on-call engineer within two minutes.
"""

SPEAKERS = """\
Maria Lopez (00:05):
Thanks for joining. The pilot covers twelve schools.

Tom (01:42):
Each school gets forty tablets
in the first shipment.

Maria Lopez (03:10):
Great, the pilot ends in June.
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def locations(parsed) -> list[tuple[str, str]]:
    return [(b.heading_path[-1], parsed.text[b.start : b.end]) for b in parsed.blocks]


def test_srt_groups_cues_by_speaker_and_time(tmp_path: Path) -> None:
    parsed = parse_file(write(tmp_path, "planning.srt", SRT))
    assert [label for label, _ in locations(parsed)] == [
        "Alice 00:00:01-00:00:09",
        "Bob 00:01:10-00:01:20",
    ]
    assert "3rd of March" in locations(parsed)[0][1]
    assert parsed.metadata["speakers"] == ["Alice", "Bob"]
    assert parsed.metadata["transcript_format"] == "srt"


def test_webvtt_voices_and_unicode(tmp_path: Path) -> None:
    parsed = parse_file(write(tmp_path, "cafe.vtt", VTT))
    assert locations(parsed)[0] == (
        "Chloé 00:00:02-00:00:05",
        "[00:00:02] Chloé: Bonjour, the café reopens après the renovation.",
    )
    assert locations(parsed)[1][0] == "Dev 00:02:03-00:02:07"


def test_whisper_lines_split_when_time_jumps(tmp_path: Path) -> None:
    parsed = parse_file(write(tmp_path, "incident.txt", WHISPER))
    labels = [label for label, _ in locations(parsed)]
    assert labels == ["00:00:00-00:00:09", "00:12:30-00:12:36"]
    assert parsed.metadata["transcript_format"] == "whisper"


def test_speaker_labelled_paragraphs(tmp_path: Path) -> None:
    parsed = parse_file(write(tmp_path, "pilot.txt", SPEAKERS))
    found = locations(parsed)
    assert [label for label, _ in found] == [
        "Maria Lopez 00:00:05-00:01:42",
        "Tom 00:01:42-00:03:10",
        "Maria Lopez 00:03:10-00:03:10",
    ]
    assert "forty tablets in the first shipment" in found[1][1]


def test_plain_text_stays_plain(tmp_path: Path) -> None:
    parsed = parse_file(
        write(tmp_path, "notes.txt", "Just a note.\n\nAnother paragraph (10:30) here.\n")
    )
    assert "transcript_format" not in parsed.metadata


def test_malformed_srt_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="SRT"):
        parse_file(
            write(tmp_path, "broken.srt", "1\n00:00:01,000 --> nonsense\nHello\n\nmore junk")
        )


@pytest.mark.slow
def test_ask_cites_the_speaker_and_timestamp(workspace, tmp_path: Path) -> None:
    folder = tmp_path / "calls"
    folder.mkdir()
    write(folder, "planning.srt", SRT)
    write(folder, "incident.txt", WHISPER)
    report = workspace.ingest([folder])
    assert report.added == 2
    answer = workspace.ask("What is the budget for the Lyon opening?")
    assert "420" in answer.text
    cited = answer.citations[0].hit
    assert cited.title == "planning"
    assert cited.location.startswith("planning > Bob 00:01:10-00:01:20")
    assert cited.seconds == (70, 80)  # what the API shows as start_seconds / end_seconds
    hits = workspace.search("database failover duration", k=1)
    assert hits[0].heading_path[-1] == "00:00:00-00:00:09"
    assert hits[0].seconds == (0, 9)


def test_webvtt_cues_with_unreadable_timings_are_named(workspace, tmp_path: Path) -> None:
    vtt = tmp_path / "call.vtt"
    vtt.write_text(
        VTT.replace("00:02:03.250 --> 00:02:07.900", "00:02:03,250 --> 00:02:07.900")
        + "\n0:5 --> 0:7\n<v Dev>Garbled.\n",
        encoding="utf-8",
    )
    report = workspace.ingest([vtt])
    # The readable cues are kept: the file is added, with warnings, and not also failed.
    assert (report.added, report.failed, report.warned) == (1, [], 1)
    reasons = {s.source: s.reason for s in report.warnings}
    assert reasons == {
        f"{vtt}: line 6": "WebVTT cue left out: unreadable timing '00:02:03,250 --> 00:02:07.900'",
        f"{vtt}: line 9": "WebVTT cue left out: unreadable timing '0:5 --> 0:7'",
    }
    assert "café" in workspace.search("café renovation", 1)[0].text


def test_whisper_cpp_speaker_turns_start_new_passages(tmp_path: Path) -> None:
    """whisper.cpp with tinydiarize (-tdrz) marks where the speaker changes."""
    path = tmp_path / "meeting.txt"
    path.write_text(
        "[00:00:00.000 --> 00:00:04.000]  The Lyon warehouse opens in March. [SPEAKER_TURN]\n"
        "[00:00:04.000 --> 00:00:07.000]  Is the budget approved?\n"
        "[00:00:07.000 --> 00:00:09.000]  Not yet. [SPEAKER_TURN]\n"
        "[00:00:09.000 --> 00:00:12.000]  It will be on Friday.\n",
        encoding="utf-8",
    )
    document = parse_file(path)
    passages = [b for b in document.blocks if b.kind == "transcript"]
    texts = [document.text[b.start : b.end] for b in passages]
    assert texts == [
        "[00:00:00] The Lyon warehouse opens in March.",
        "[00:00:04] Is the budget approved? Not yet.",
        "[00:00:09] It will be on Friday.",
    ]
    assert "SPEAKER_TURN" not in document.text
    assert [b.heading_path[-1] for b in passages] == [
        "00:00:00-00:00:04",
        "00:00:04-00:00:09",
        "00:00:09-00:00:12",
    ]
