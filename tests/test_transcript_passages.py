"""Recordings cited to the moment: passages follow speech (pauses, sentence ends, about
20 s and never over 30 s), `transcript chapters --count N` gives N chapters or says why
not, and an hour-long transcript is chaptered with a progress bar and whole titles."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from citewise import Workspace
from citewise.errors import InvalidInput, ParseError
from citewise.parsers import parse_file
from citewise.transcripts import (
    DANGLING,
    TITLE_MAX,
    first_sentence,
    load_transcript,
    most_chapters,
    topic_boundaries,
    whole_title,
)
from conftest import CITEWISE, run, silence, wav_seconds

LONGEST = 30  # seconds: 1.5 times the default transcript_passage_seconds (20)


def stamp(seconds: float) -> str:
    whole = int(seconds)
    millis = round((seconds - whole) * 1000)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}.{millis:03d}"


def spans(parsed) -> list[tuple[str, tuple[int, int]]]:
    from citewise.documents import time_range

    found = []
    for block in parsed.blocks:
        times = time_range(block.heading_path[-1])
        assert times is not None, block.heading_path
        found.append((parsed.text[block.start : block.end], times))
    return found


# -- passages of a timed transcript --------------------------------------------------------


def whisper_lines(sentences: list[tuple[float, float, str]]) -> str:
    return "".join(f"[{stamp(a)} --> {stamp(b)}]  {said}\n" for a, b, said in sentences)


def test_passages_end_at_pauses_and_sentence_ends_and_never_exceed_the_longest(
    tmp_path: Path,
) -> None:
    # Three topics of five 3.5 s sentences, 0.3 s apart; 1.5 s pauses between the topics.
    # Each topic is 18.7 s: the passages should be the topics exactly.
    sentences, at, topic_starts = [], 0.0, []
    for topic in ("rocket", "garden", "budget"):
        topic_starts.append(at)
        for n in range(5):
            sentences.append((at, at + 3.5, f"Sentence {n + 1} about the {topic}."))
            at += 3.5 + 0.3
        at += 1.2
    path = tmp_path / "talk.txt"
    path.write_text(whisper_lines(sentences), encoding="utf-8")
    found = spans(parse_file(path))
    assert [times[0] for _, times in found] == [int(s) for s in topic_starts]
    for text, (start, end) in found:
        assert end - start <= LONGEST
        assert len(set(re.findall(r"rocket|garden|budget", text))) == 1, text
        assert text.endswith("."), text


def test_a_long_run_of_speech_is_cut_at_sentence_ends_not_mid_sentence(tmp_path: Path) -> None:
    # Two minutes of subtitles, each a half sentence of 2 s with no pause at all: only the
    # sentence ends tell where a passage may end.
    cues, at, n = [], 0.0, 0
    while at < 120:
        n += 1
        cues.append((at, at + 2, f"In part {n} the speaker goes on"))
        cues.append((at + 2, at + 4, f"and finishes thought {n}."))
        at += 4
    srt = "".join(
        f"{i}\n{stamp(a).replace('.', ',')} --> {stamp(b).replace('.', ',')}\n{said}\n\n"
        for i, (a, b, said) in enumerate(cues, start=1)
    )
    path = tmp_path / "lecture.srt"
    path.write_text(srt, encoding="utf-8")
    found = spans(parse_file(path))
    assert len(found) >= 4  # 120 s in passages of at most 30 s
    for text, (start, end) in found:
        assert end - start <= LONGEST, (start, end)
        assert end - start >= 12, (start, end)  # about 20 s, not a sentence each
        assert text.endswith("."), text  # never between the halves of a sentence


def test_a_single_cue_longer_than_a_passage_stays_whole_and_a_long_silence_cuts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "call.txt"
    path.write_text(
        whisper_lines(
            [
                (0.0, 4.0, "A short opening."),
                (4.2, 49.0, "One segment of forty-five seconds that nobody punctuated"),
                (49.3, 52.0, "Then a short remark."),
                (64.0, 67.0, "After twelve seconds of silence, something else."),
            ]
        ),
        encoding="utf-8",
    )
    found = [times for _, times in spans(parse_file(path))]
    assert (4, 49) in found  # longer than 30 s, but one segment: kept whole
    assert found[-1] == (64, 67)  # a silence of half a passage or more ends one
    assert all(end - start <= LONGEST for start, end in found if (start, end) != (4, 49))


def test_the_passage_length_is_a_setting(tmp_path: Path, monkeypatch) -> None:
    sentences = [(n * 4.0, n * 4.0 + 3.7, f"Sentence number {n}.") for n in range(30)]
    path = tmp_path / "talk.txt"
    path.write_text(whisper_lines(sentences), encoding="utf-8")
    default = spans(parse_file(path))
    monkeypatch.setenv("CITEWISE_TRANSCRIPT_PASSAGE_SECONDS", "8")
    short = spans(parse_file(path))
    assert all(end - start <= 12 for _, (start, end) in short), short
    assert len(short) > len(default) >= 4
    monkeypatch.setenv("CITEWISE_TRANSCRIPT_PASSAGE_SECONDS", "2")
    with pytest.raises(ParseError, match="at least 5"):
        parse_file(path)


# -- a real recording: espeak-ng speech transcribed by faster-whisper tiny.en ---------------

TOPICS = [
    [
        "The rocket launch is our first topic today.",
        "The second stage engine test slipped by two weeks.",
        "So the launch now moves to the middle of March.",
        "Fuel tanks for the rocket arrive at the launch pad next week.",
        "The launch pad crew has finished its safety drills.",
        "Weather over the coast looks clear for the test firing.",
    ],
    [
        "Now let us talk about the garden.",
        "The tomatoes need more water in this summer heat.",
        "We will plant basil and mint beside the vegetable beds.",
        "The compost heap is full, so the flower beds get fresh compost.",
        "The roses should be pruned in the autumn.",
        "The herbs near the kitchen need new soil.",
    ],
    [
        "Last, the office budget.",
        "The quarterly budget is over by ten percent, mostly cloud costs.",
        "The budget review with finance is on Friday afternoon.",
        "Finance wants a plan to cut server spending by December.",
        "We could move test machines to cheaper instances.",
    ],
]
FACT = "The quarterly budget is over by ten percent, mostly cloud costs."
SENTENCE_PAUSE, TOPIC_PAUSE = 0.3, 1.5  # seconds of silence after a sentence, a topic
# Whisper's times come from 20 ms frames and VAD padding: within 2 s of the script
# (tests/test_audio.py), and labels are whole seconds.
TOLERANCE = 2


def three_topic_recording(folder: Path) -> tuple[Path, dict[str, tuple[float, float]], list]:
    """About 70 s of speech on three topics: (the mp3, each sentence's (start, end), the
    topics' starts)."""
    for tool in ("espeak-ng", "ffmpeg"):
        assert shutil.which(tool), f"{tool} is needed (make test installs it)"
    parts, timing, topic_starts, at = [], {}, [], 0.0
    for t, sentences in enumerate(TOPICS):
        topic_starts.append(at)
        for i, sentence in enumerate(sentences):
            wav = folder / f"t{t}s{i}.wav"
            run("espeak-ng", "-v", "en-us", "-s", "140", "-w", str(wav), sentence)
            timing[sentence] = (at, at + wav_seconds(wav))
            at += wav_seconds(wav)
            parts.append(wav)
            last = i == len(sentences) - 1
            if last and t == len(TOPICS) - 1:
                break
            pause = folder / f"p{t}s{i}.wav"
            seconds = TOPIC_PAUSE if last else SENTENCE_PAUSE
            silence(pause, seconds)
            parts.append(pause)
            at += seconds
    recording = folder / "standup.mp3"
    inputs = [arg for p in parts for arg in ("-i", str(p))]
    joined = "".join(f"[{i}]" for i in range(len(parts))) + f"concat=n={len(parts)}:v=0:a=1"
    run("ffmpeg", "-y", *inputs, "-filter_complex", joined, "-b:a", "64k", str(recording))
    return recording, timing, topic_starts


@pytest.mark.slow
def test_a_70_second_recording_is_cited_to_the_passage_that_holds_the_fact(tmp_path) -> None:
    recording, timing, topic_starts = three_topic_recording(tmp_path)
    assert 65 <= timing[TOPICS[-1][-1]][1] <= 75  # seconds of the recording
    with Workspace.open(tmp_path / "ws") as ws:
        report = ws.ingest([recording])
        assert report.added == 1 and not report.failed, report
        passages = [(p.start, p.end) for p in load_transcript(ws, str(recording)).passages]
        # Every passage is under the longest span; they begin where each topic begins
        # (the longer pauses), where one passage of 60 s used to hold two topics.
        assert all(end - start <= LONGEST for start, end in passages), passages
        assert len(passages) == 3, passages
        for (start, _), spoken in zip(passages, topic_starts, strict=True):
            assert abs(start - spoken) <= TOLERANCE, (passages, topic_starts)

        said_from, said_to = timing[FACT]  # about 50 s into the recording
        hit = ws.search("how much is the quarterly budget over", 1)[0]
        assert hit.seconds is not None
        assert hit.seconds[0] <= said_from + TOLERANCE and said_to - TOLERANCE <= hit.seconds[1]
        assert hit.seconds[1] - hit.seconds[0] <= LONGEST
        assert re.search(r"quarterly budget", hit.text, re.I), hit.text

        answer = ws.ask("By how much is the quarterly budget over?")
        assert answer.citations, answer.text
        cited = answer.citations[0].hit.seconds
        assert cited is not None
        assert cited[0] <= said_from + TOLERANCE and said_to - TOLERANCE <= cited[1], cited


# -- chapters: exactly N, or why not ---------------------------------------------------------


def chapters_cli(
    workspace: Path, source: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    command = [CITEWISE, "-w", str(workspace), "transcript", "chapters", str(source), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=1200, env=env)


def test_count_gives_exactly_n_chapters_where_the_topics_change() -> None:
    # Twelve 20 s passages on four topics of three; the deepest dips are the topic changes.
    vectors = np.array([np.eye(4)[n // 3] + 0.05 * np.eye(4)[(n + 1) % 4] for n in range(12)])
    starts = [n * 20 for n in range(12)]
    assert topic_boundaries(vectors, starts, 240, count=4, min_seconds=60) == [3, 6, 9]
    for count in range(1, 13):  # every count up to the number of passages
        cuts = topic_boundaries(vectors, starts, 240, count=count, min_seconds=20)
        assert len(cuts) == count - 1 and cuts == sorted(set(cuts)), (count, cuts)
    # Four chapters of at least 70 s do not fit in 240 s: the error says how many do.
    assert most_chapters(starts, 240, 70) == 3
    with pytest.raises(InvalidInput, match="4 chapters of at least 70 s do not fit, at most 3"):
        topic_boundaries(vectors, starts, 240, count=4, min_seconds=70)


def write_turns(path: Path, turns: list[str]) -> None:
    """A WebVTT file of 20-second turns, speakers A and B in turn."""
    path.write_text(
        "WEBVTT\n\n"
        + "".join(
            f"{stamp(n * 20)} --> {stamp(n * 20 + 20)}\n<v {'AB'[n % 2]}>{said}\n\n"
            for n, said in enumerate(turns)
        ),
        encoding="utf-8",
    )


def test_count_the_cli_cannot_meet_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "three.vtt"
    turns = ["The rocket launch moves to March.", "The tomatoes need water.", "Budget cuts."]
    write_turns(path, turns)
    ws = tmp_path / "ws"
    result = chapters_cli(ws, path, "--count", "5")
    assert result.returncode != 0
    assert "three: 3 passages, so at most 3 chapters; asked for 5" in result.stderr
    result = chapters_cli(ws, path, "-n", "3", "--min-seconds", "30")
    assert result.returncode != 0
    assert (
        "3 chapters of at least 30 s do not fit in 00:01:00, at most 1 does; ask for fewer "
        "or lower --min-seconds" in " ".join(result.stderr.split())
    ), result.stderr


@pytest.mark.slow
def test_count_shortens_the_default_minimum_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "three.vtt"
    turns = [
        "The rocket launch moves to March after the engine test.",
        "The tomatoes in the garden need more water in this heat.",
        "The quarterly budget is over by ten percent this year.",
    ]
    write_turns(path, turns)
    result = chapters_cli(tmp_path / "ws", path, "--count", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [c["passages"] for c in report["chapters"]] == [[1], [2], [3]]
    assert report["min_seconds"] == 20
    note = "3 chapters of at least 60 s do not fit in 00:01:00; chapters may be as short as 20 s"
    assert note in report["notes"] and f"note: {note}" in result.stderr


# -- an hour-long transcript: a progress bar, and titles never cut --------------------------

HOUR_TOPICS = {  # subjects and what is said of them: sentences longer than a title may be
    "rocket": (
        (
            "The second stage engine of the rocket",
            "The launch pad crew at the coast",
            "Our mission control team for the rocket launch",
            "The fuel tanks for the orbital rocket",
        ),
        (
            "needs another long firing on the test stand before the launch",
            "moves the launch window to the middle of March this year",
            "checks the booster valves again after the last engine test",
        ),
    ),
    "garden": (
        (
            "The tomatoes and peppers in the vegetable garden",
            "The roses along the garden fence",
            "The basil and mint beside the kitchen herb beds",
            "The compost heap behind the garden shed",
        ),
        (
            "need more water every evening in this summer heat",
            "should be pruned and mulched before the autumn frost arrives",
            "get fresh compost and new soil from the garden centre",
        ),
    ),
    "budget": (
        (
            "The quarterly budget for the cloud servers",
            "The finance team reviewing the invoices",
            "Our spending on software licences this quarter",
            "The budget review with the finance director",
        ),
        (
            "is over by ten percent because of the cloud costs",
            "wants a plan to cut spending on servers by December",
            "will approve the invoices only after the Friday budget review",
        ),
    ),
    "hiring": (
        (
            "The interview panel for the new engineers",
            "The recruiter handling the job offers",
            "Our onboarding plan for the new hires",
            "The hiring manager for the support team",
        ),
        (
            "schedules two more interviews with candidates next week",
            "sends the job offers to the candidates after the reference checks",
            "pairs every new hire with a mentor for the first month",
        ),
    ),
    "office": (
        (
            "The office move to the new building downtown",
            "The movers packing the desks and chairs",
            "Our new office lease on the third floor",
            "The facilities team planning the office move",
        ),
        (
            "starts on the first weekend of the month with the desks",
            "needs the meeting rooms and kitchen ready before anyone moves in",
            "brings new parking spaces and a bicycle room for the staff",
        ),
    ),
    "security": (
        (
            "The security audit of the login service",
            "The password reset flow on the website",
            "Our two factor authentication rollout",
            "The penetration testers hired for the audit",
        ),
        (
            "found two weak spots in how sessions expire after logout",
            "must lock an account after five failed login attempts",
            "covers every administrator account before the end of the quarter",
        ),
    ),
}
TOPIC_MINUTES = 10
CUE_SECONDS = 5.0


def hour_long_vtt() -> tuple[str, list[str]]:
    """An hour of WebVTT cues, a sentence every 5 s, six ten-minute topics: (the file's
    text, every sentence said)."""
    rng = random.Random(27)
    lines, said, at = ["WEBVTT", ""], [], 0.0
    for subjects, predicates in HOUR_TOPICS.values():
        for _ in range(int(TOPIC_MINUTES * 60 / CUE_SECONDS)):
            sentence = f"{rng.choice(subjects)} {rng.choice(predicates)}."
            said.append(sentence)
            lines += [f"{stamp(at)} --> {stamp(at + CUE_SECONDS - 0.4)}", sentence, ""]
            at += CUE_SECONDS
    return "\n".join(lines), said


@pytest.mark.slow
def test_an_hour_long_transcript_gets_chapters_with_a_progress_bar_and_whole_titles(
    tmp_path: Path,
) -> None:
    text, said = hour_long_vtt()
    path = tmp_path / "all-hands.vtt"
    path.write_text(text, encoding="utf-8")
    # A terminal as rich sees one: the progress bar is drawn on standard error.
    env = os.environ | {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "120"}
    result = chapters_cli(tmp_path / "ws", path, "--count", "6", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    chapters = report["chapters"]
    assert len(chapters) == 6
    # The chapters begin where the topics do (within a passage: at most 30 s).
    topic_starts = [n * TOPIC_MINUTES * 60 for n in range(6)]
    for chapter, start in zip(chapters, topic_starts, strict=True):
        assert abs(chapter["start_seconds"] - start) <= LONGEST, (chapter, start)
    assert chapters[-1]["end_seconds"] >= 3590
    # Every passage of the hour is under the longest span (the transcript's own cues).
    with Workspace.open(tmp_path / "ws") as workspace:
        passages = load_transcript(workspace, str(path)).passages
    assert all(p.end - p.start <= LONGEST for p in passages)
    assert {len(c["passages"]) for c in chapters} != {1}

    # The progress bar: embedding the passages, then titling the six chapters.
    assert "Embedding passages" in result.stderr and "Titling chapters" in result.stderr
    assert re.search(r"6/6", result.stderr), result.stderr[-2000:]

    # No title is cut mid-word or mid-sentence: the model's own, finished, or the
    # chapter's first sentence, whole — and a note says which chapters got one.
    sentences = set(said)
    fallen = []
    for chapter in chapters:
        title = chapter["title"]
        assert chapter["titled_by"] in ("model", "first sentence"), chapter
        words = re.findall(r"[\w']+", title.lower())
        assert words and words[-1] not in DANGLING, title
        if chapter["titled_by"] == "first sentence":
            fallen.append(chapter["number"])
            assert title + "." in sentences, title  # a whole sentence that was said
        else:
            assert len(title) < TITLE_MAX, title
            # not the first words of a sentence that was said, copied and stopped short
            copied = any(s.lower().startswith(title.lower() + " ") for s in sentences)
            assert not copied or len(words) < 4, title
    if fallen:
        numbers = ", ".join(str(n) for n in fallen)
        assert any(
            f"{numbers} (marked *): the model's title was cut off" in note
            for note in report["notes"]
        ), report["notes"]
        assert "the chapter's first sentence" in result.stderr
    else:
        assert not report["notes"]


def test_whole_titles_and_first_sentences() -> None:
    said = "The basil and mint beside the kitchen herb beds get fresh compost. The roses wilt."
    assert whole_title("The Quarterly Budget", said)
    assert not whole_title("The rocket launch moves to March after the engine test. The")
    assert not whole_title("The budget review with finance is on Friday, and the")
    assert not whole_title("x" * TITLE_MAX)  # stopped by the schema's maxLength
    assert whole_title("Launch delays. Engine tests.")
    # SmolLM2-135M copies the chapter's first words until the schema's length stops it.
    assert not whole_title("The basil and mint beside the kitchen herb beds get fresh", said)
    assert whole_title("The basil and mint beside the kitchen herb beds get fresh")
    assert whole_title("The Roses", said)  # a short title may begin a sentence
    assert whole_title("The roses wilt in the heat", said)  # not what was said
    assert whole_title("The roses wilt", said)  # a whole sentence that was
    said = "So the rocket launch is our first topic. The second stage slipped."
    assert first_sentence(said) == "So the rocket launch is our first topic"
    assert first_sentence("Dr. Smith reviewed the budget. Then we left.") == (
        "Dr. Smith reviewed the budget"
    )
    long = " ".join(["word"] * 30) + ", and then " + " ".join(["more"] * 20)
    cut = first_sentence(long)
    assert cut.endswith("…") and len(cut) <= 121 and not cut.endswith(" …")
    assert long.startswith(cut.removesuffix("…"))
