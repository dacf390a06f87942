"""`citewise transcript clean | chapters | classify` on real transcripts and a real recording:
the packaged embedder finds the topics, the local model titles them through a grammar,
and every result keeps the seconds it came from."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import srt

from citewise import Workspace
from citewise.transcripts import clean_text, load_transcript, topic_boundaries
from conftest import CITEWISE

TOPICS = ("space", "gardening", "money")
# Twelve 20-second turns, four on each topic, with fillers, a false start and repeats.
TURNS = [
    (
        "Alice",
        "Um, so the rocket launch is, uh, our first topic. The second stage engine test slipped by two weeks.",
    ),
    (
        "Bob",
        "The the launch moves to March because the engine needs another firing on the test stand.",
    ),
    ("Alice", "Fuel tanks for the rocket arrive next week, and the launch pad crew is ready."),
    ("Bob", "We we went- we were told the weather window for the launch opens in mid March."),
    (
        "Alice",
        "Now the garden. The tomatoes need more water in this heat, you know, every evening.",
    ),
    ("Bob", "The roses should be pruned in autumn, and the herbs near the kitchen need new soil."),
    ("Alice", "I think, I think we should plant more basil and mint beside the vegetable beds."),
    ("Bob", "The compost heap is full, so the garden gets fresh compost for the flower beds."),
    ("Alice", "Last, the budget. The quarterly budget is over by ten percent, mostly cloud costs."),
    ("Bob", "Finance wants a plan to cut spending on servers by the end of the year."),
    (
        "Alice",
        "Uh, we could move the test machines to cheaper instances and save money every month.",
    ),
    ("Bob", "The budget review with finance is on Friday, and the invoices are due then."),
]
TURN_SECONDS = 20


def vtt(turns: list[tuple[str, str]]) -> str:
    lines = ["WEBVTT", ""]
    for n, (speaker, said) in enumerate(turns):
        start, end = n * TURN_SECONDS, (n + 1) * TURN_SECONDS
        lines += [
            f"00:{start // 60:02d}:{start % 60:02d}.000 --> 00:{end // 60:02d}:{end % 60:02d}.000",
            f"<v {speaker}>{said}",
            "",
        ]
    return "\n".join(lines)


def citewise(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CITEWISE, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture
def meeting(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace with the meeting's WebVTT transcript ingested: (workspace, file)."""
    path = tmp_path / "meeting.vtt"
    path.write_text(vtt(TURNS), encoding="utf-8")
    ws = tmp_path / "ws"
    with Workspace.open(ws) as workspace:
        assert workspace.ingest([path]).added == 1
    return ws, path


@pytest.mark.parametrize(
    ("said", "cleaned", "kinds"),
    [
        ("So, um, we decided to, uh, ship it.", "So we decided to ship it.", ["filler", "filler"]),
        (
            "Um, so we we went- we were going to the the store.",
            "So we were going to the store.",
            ["filler", "repeat", "false start", "repeat"],
        ),
        (
            "It was, you know, really hard. I mean, the tests failed.",
            "It was really hard. The tests failed.",
            ["filler", "filler"],
        ),
        ("I think, I think we should go.", "I think we should go.", ["repeat"]),
        (
            "We had had enough. I mean it. You know the answer.",  # not fillers here
            "We had had enough. I mean it. You know the answer.",
            [],
        ),
        ("Uh.", "", ["filler"]),
    ],
)
def test_clean_removes_fillers_false_starts_and_repeats(said, cleaned, kinds) -> None:
    text, cuts = clean_text(said)
    assert text == cleaned
    assert [c.kind for c in cuts] == kinds
    for cut in cuts:  # each cut points at the words it removed
        assert said[cut.start : cut.end] == cut.text


def test_clean_keeps_each_passage_s_time_in_every_format(meeting, tmp_path) -> None:
    ws, path = meeting
    result = citewise("-w", str(ws), "transcript", "clean", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    passages = json.loads(result.stdout)["passages"]
    assert len(passages) == len(TURNS)
    first = passages[0]
    assert (first["start_seconds"], first["end_seconds"], first["speaker"]) == (0, 20, "Alice")
    assert first["text"].startswith("So the rocket launch is our first topic.")
    assert [c["text"] for c in first["cuts"]] == ["Um,", "uh,"]
    assert first["original"][first["cuts"][1]["start"] :].startswith("uh,")
    assert (
        passages[3]["text"] == "We were told the weather window for the launch opens in mid March."
    )

    result = citewise("-w", str(ws), "transcript", "clean", str(path), "--format", "srt")
    subtitles = list(srt.parse(result.stdout))
    assert [(s.start.seconds, s.end.seconds) for s in subtitles][:2] == [(0, 20), (20, 40)]
    assert subtitles[1].content.startswith("Bob: The launch moves")

    # The cleaned WebVTT is a transcript like any other: ingested, it cites the same seconds.
    cleaned = tmp_path / "clean" / "meeting-clean.vtt"
    cleaned.parent.mkdir()
    result = citewise(
        "-w", str(ws), "transcript", "clean", str(path), "--format", "vtt", "-o", str(cleaned)
    )
    assert result.returncode == 0 and "12 passages, 8 cuts" in result.stderr, result.stderr
    with Workspace.open(tmp_path / "ws2") as other:
        other.ingest([cleaned])
        hit = other.search("when does the weather window for the launch open", 1)[0]
    assert hit.seconds == (60, 80) and " we we " not in hit.text.lower()


@pytest.mark.slow
def test_chapters_split_where_the_topic_changes_and_cite_their_times(meeting) -> None:
    ws, path = meeting
    result = citewise("-w", str(ws), "transcript", "chapters", str(path), "--json")
    assert result.returncode == 0, result.stderr
    chapters = json.loads(result.stdout)["chapters"]
    assert [c["passages"] for c in chapters] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
    assert [(c["start_seconds"], c["end_seconds"]) for c in chapters] == [
        (0, 80),
        (80, 160),
        (160, 240),
    ]
    for chapter, n in zip(chapters, range(0, 12, 4), strict=True):
        # Titled by the local model within the schema, from the chapter's own words.
        title = chapter["title"]
        assert 3 <= len(title) <= 60 and "\n" not in title
        said = " ".join(text for _, text in TURNS[n : n + 4]).lower()
        assert set(re.findall(r"[a-z]{4,}", title.lower())) & set(re.findall(r"[a-z]+", said))
    with Workspace.open(ws) as workspace:
        rows = workspace.ledger.rows()
    assert [r.purpose for r in rows] == ["title"] * 3 and {r.status for r in rows} == {"ok"}

    two = json.loads(
        citewise(
            "-w", str(ws), "transcript", "chapters", str(path), "--json", "--count", "2"
        ).stdout
    )["chapters"]
    assert len(two) == 2 and two[1]["passages"][0] in (5, 9)  # cut at a real topic change

    text = citewise("-w", str(ws), "transcript", "chapters", str(path)).stdout
    assert re.search(r"^00:01:20-00:02:40  \S", text, re.M), text


def test_topic_boundaries_respect_the_shortest_chapter() -> None:
    vectors = [[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4  # one topic change, before passage 5
    starts = [n * 10 for n in range(8)]
    import numpy as np

    assert topic_boundaries(np.array(vectors), starts, 80, min_seconds=30) == [4]
    assert topic_boundaries(np.array(vectors), starts, 80, min_seconds=50) == []  # 40 s each
    assert topic_boundaries(np.array(vectors), starts, 80, count=1) == []


@pytest.mark.slow
def test_classify_by_embeddings_and_by_the_model_within_the_labels(meeting) -> None:
    ws, path = meeting
    result = citewise(
        "-w", str(ws), "transcript", "classify", str(path), "--json", "--labels", ",".join(TOPICS)
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["method"] == "embeddings"  # the default with the local model
    expected = [topic for topic in TOPICS for _ in range(4)]
    assert [p["label"] for p in report["passages"]] == expected
    assert [p["start_seconds"] for p in report["passages"]] == [n * 20 for n in range(12)]

    result = citewise(
        "-w",
        str(ws),
        "transcript",
        "classify",
        str(path),
        "--json",
        "--labels",
        "space",
        "--labels",
        "gardening,money",
        "--method",
        "model",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["method"] == "model"
    assert {p["label"] for p in report["passages"]} <= set(TOPICS)
    with Workspace.open(ws) as workspace:
        rows = workspace.ledger.rows()
    assert [r.purpose for r in rows] == ["classify"] * 12 and {r.status for r in rows} == {"ok"}


def test_bad_sources_and_labels_are_named(meeting, tmp_path) -> None:
    ws, path = meeting
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nNothing was recorded.\n", encoding="utf-8")
    with Workspace.open(ws) as workspace:
        workspace.ingest([notes])
    result = citewise("-w", str(ws), "transcript", "clean", str(tmp_path / "missing.vtt"))
    assert result.returncode != 0
    assert (
        "missing.vtt: no such document in collection 'default', and no such file" in result.stderr
    )
    result = citewise("-w", str(ws), "transcript", "clean", str(notes))
    assert result.returncode != 0 and "notes.md: not a transcript or a recording" in result.stderr
    result = citewise("-w", str(ws), "transcript", "classify", str(path), "--labels", "a,a")
    assert result.returncode != 0 and "at least two different labels" in result.stderr
    # A file that was never ingested is read directly; the workspace stays as it was.
    with Workspace.open(ws) as workspace:
        outside = tmp_path / "elsewhere.vtt"
        outside.write_text(vtt(TURNS[:2]), encoding="utf-8")
        transcript = load_transcript(workspace, str(outside))
        assert [p.speaker for p in transcript.passages] == ["Alice", "Bob"]
        assert len(workspace.store.list_documents(workspace.collection().id)) == 2


# -- a recording -----------------------------------------------------------------------

SPOKEN = [  # (topic, sentence), a silence between each: every sentence is its own passage
    ("space", "The rocket launch moves to March after the engine test."),
    ("space", "Fuel tanks for the rocket arrive at the launch pad next week."),
    ("gardening", "The tomatoes in the garden need more water in this heat."),
    ("gardening", "We will plant basil and mint beside the vegetable beds."),
]
SILENCE_SECONDS = 62  # longer than a passage may last (60 s)


@pytest.mark.slow
def test_a_recording_is_chaptered_at_the_second_its_topic_changes(tmp_path) -> None:
    for tool in ("espeak-ng", "ffmpeg"):
        assert shutil.which(tool), f"{tool} is needed (make test installs it)"
    parts, starts, at = [], [], 0.0
    for n, (_, sentence) in enumerate(SPOKEN):
        wav = tmp_path / f"s{n}.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(wav), sentence],
            check=True,
            capture_output=True,
        )
        silence = tmp_path / f"gap{n}.wav"
        subprocess.run(
            [
                "ffmpeg",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "anullsrc=r=22050:cl=mono",
                "-t",
                str(SILENCE_SECONDS),
                str(silence),
            ],
            check=True,
            capture_output=True,
        )
        parts += [wav, silence]
        starts.append(at)
        at += _seconds(wav) + SILENCE_SECONDS
    recording = tmp_path / "standup.mp3"
    inputs = [arg for p in parts for arg in ("-i", str(p))]
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            *inputs,
            "-filter_complex",
            "".join(f"[{i}]" for i in range(len(parts))) + f"concat=n={len(parts)}:v=0:a=1",
            str(recording),
        ],
        check=True,
        capture_output=True,
    )
    ws = tmp_path / "ws"
    assert citewise("-w", str(ws), "ingest", str(recording)).returncode == 0
    result = citewise(
        "-w", str(ws), "transcript", "chapters", str(recording), "--json", "--min-seconds", "30"
    )
    assert result.returncode == 0, result.stderr
    chapters = json.loads(result.stdout)["chapters"]
    assert [c["passages"] for c in chapters] == [[1, 2], [3, 4]]
    # The second chapter starts where the garden was first mentioned (whole seconds, and
    # Whisper's times are within 2 s of the script: tests/test_audio.py).
    assert abs(chapters[1]["start_seconds"] - starts[2]) <= 3, (chapters, starts)
    assert chapters[-1]["end_seconds"] <= at


def _seconds(wav: Path) -> float:
    import wave

    with wave.open(str(wav)) as handle:
        return handle.getnframes() / handle.getframerate()
