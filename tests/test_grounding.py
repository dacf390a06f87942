"""Sentence checks on model output: loops, markers naming no source, unsupported claims.

The inputs are answers SmolLM2-135M really wrote (the demo's numbered-list loop, the
README's Google Drive answer with [2], [3], [4]), streamed in small deltas as the model
streams them.
"""

from __future__ import annotations

import re

from citewise import Hit
from citewise.grounding import AnswerGuard, extractive_answer, segments


def hit(n: int, text: str) -> Hit:
    return Hit(n, n, "default", f"/docs/{n}.md", f"Doc {n}", text, 0, len(text), None, (), 1.0)


TRAVEL = hit(
    1, "Per diem\nThe daily meal allowance abroad is 65 euros. Hotels are booked by the office."
)
PYTHON_WITH = hit(
    2,
    "The with statement is used to wrap the execution of a block with methods defined by a "
    "context manager. This allows common try/except/finally usage patterns to be encapsulated.",
)


def deltas(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def run(guard: AnswerGuard, text: str) -> str:
    shown = []
    for segment in segments(deltas(text)):
        verdict = guard.check(segment)
        if verdict.stop:
            break
        shown.append(verdict.text)
    return "".join(shown).strip()


def test_segments_keep_markers_with_their_sentence_and_list_numbers_with_their_item() -> None:
    text = "It rotates nightly. [1] Keys last a day [2].\n1. First item here.\n2. Second one"
    parts = list(segments(deltas(text)))
    assert "".join(parts) == text
    assert [p.strip() for p in parts if p.strip()] == [
        "It rotates nightly. [1]",
        "Keys last a day [2].",
        "1. First item here.",
        "2. Second one",
    ]
    # A wrapped line is not a sentence end; a blank line is.
    wrapped = "The with statement wraps\nthe block. [1]\n\nNext one."
    assert list(segments(deltas(wrapped))) == [
        "The with statement wraps\nthe block. [1]",
        "\n\nNext one.",
    ]
    # Version numbers and URLs are not sentence ends.
    assert list(segments(deltas("Use Python 3.10 from python.org/downloads now."))) == [
        "Use Python 3.10 from python.org/downloads now."
    ]


def test_invalid_markers_are_removed_from_the_text_itself() -> None:
    guard = AnswerGuard([TRAVEL], "", strict=False)
    shown = run(guard, "The daily meal allowance abroad is 65 euros [1] [3].")
    assert shown == "The daily meal allowance abroad is 65 euros [1]."
    assert guard.removed_markers == {3}
    assert "[3]" in guard.warnings()[0]


def test_the_readme_drive_answer_loses_its_invented_sources() -> None:
    # Real SmolLM2 output from an earlier README example.
    answer = (
        "The daily meal allowance abroad is 65 euros. [1]\n\nIn this example, the answer to the "
        'question "What is the daily meal allowance abroad?" can be found in multiple sources '
        "like [1] or [2]. The correct answer would depend on which source you're referring to "
        "and how it's formatted differently (e.g., [3], [4])."
    )
    question = "What is the daily meal allowance abroad?"
    guard = AnswerGuard([TRAVEL], question, strict=True)
    shown = run(guard, answer)
    assert shown == "The daily meal allowance abroad is 65 euros. [1]"
    assert len(guard.dropped) == 2  # the two sentences about "sources" support nothing
    assert guard.removed_markers == set()  # only text a reader sees counts
    light = AnswerGuard([TRAVEL], question, strict=False)
    kept = run(light, answer)
    assert not re.search(r"\[[234]\]", kept) and "sources like [1]." in kept
    assert light.removed_markers == {2, 3, 4}


def test_a_numbered_list_loop_stops_at_the_first_repeat() -> None:
    loop = (
        "1. The with statement is used to wrap the execution of a block with methods defined "
        "by a context manager [2].\n2. This allows common try/except/finally usage patterns to "
        "be encapsulated [2].\n3. The with statement is used to wrap the execution of a block "
        "with methods defined by a context manager [2].\n4. This allows common"
    )
    guard = AnswerGuard([TRAVEL, PYTHON_WITH], "", strict=True)
    shown = run(guard, loop)
    assert shown.count("wrap the execution") == 1
    assert shown.endswith("be encapsulated [2].")
    assert guard.repeated.startswith("3. The with statement")


def test_a_loop_without_punctuation_is_cut_and_stopped() -> None:
    guard = AnswerGuard([PYTHON_WITH], "", strict=False)
    shown = run(guard, "the with statement wraps a block " * 40)
    assert len(shown) < 400
    assert guard.repeated


def test_uncited_supported_sentence_gets_its_marker_and_wrong_marker_is_repointed() -> None:
    guard = AnswerGuard([TRAVEL, PYTHON_WITH], "", strict=True)
    assert run(guard, "The daily meal allowance abroad is 65 euros.") == (
        "The daily meal allowance abroad is 65 euros. [1]"
    )
    guard = AnswerGuard([TRAVEL, PYTHON_WITH], "", strict=True)
    shown = run(guard, "The with statement wraps a block with context manager methods [1].")
    assert shown.endswith("[2]") and "[1]" not in shown
    assert guard.repointed == 1


def test_light_mode_keeps_unsupported_sentences() -> None:
    text = "Remote models paraphrase freely and that is their business entirely."
    assert run(AnswerGuard([TRAVEL], "", strict=False), text) == text
    assert run(AnswerGuard([TRAVEL], "", strict=True), text) == ""


def test_extractive_answer_quotes_the_sentence_matching_the_question() -> None:
    quoted = extractive_answer("What is the meal allowance abroad?", [PYTHON_WITH, TRAVEL])
    assert (
        quoted == "From the sources (Per diem): “The daily meal allowance abroad is 65 euros.” [2]"
    )
    assert extractive_answer("Who painted the ceiling?", [TRAVEL]) is None


def test_strict_mode_leaves_out_echoed_headings_and_code_fences() -> None:
    # Real SmolLM2 output over the Notion sample export: headings copied from the passages.
    guard = AnswerGuard([TRAVEL, PYTHON_WITH], "What is the allowance?", strict=True)
    shown = run(guard, "The daily meal allowance abroad is 65 euros.\n# Per diem [3]\n```\n")
    assert shown == "The daily meal allowance abroad is 65 euros. [1]"
    light = AnswerGuard([TRAVEL, PYTHON_WITH], "What is the allowance?", strict=False)
    assert "# Per diem" in run(light, "The allowance is 65 euros.\n# Per diem [1]\n")
