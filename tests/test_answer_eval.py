from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from citewise import Answer, Citation, CitewiseError, Hit, Usage
from citewise.answer_eval import (
    AnswerCase,
    evaluate_answers,
    exact_match,
    load_answer_cases,
    score_case,
    token_f1,
)
from conftest import CITEWISE


def test_token_f1_and_exact_match_by_hand() -> None:
    # "the" is dropped; 2 of 5 predicted tokens match both gold tokens: P=2/5, R=1.
    assert token_f1("The daily allowance is 65 euros [1].", "65 euros") == pytest.approx(
        2 * 0.4 / 1.4
    )
    assert exact_match("65 Euros. [2]", "65 euros") == 1.0
    assert exact_match("about 65 euros", "65 euros") == 0.0
    assert token_f1("nothing in common", "65 euros") == 0.0


def hit(n: int, source: str) -> Hit:
    return Hit(n, n, "default", source, f"T{n}", "text", 0, 4, None, (), 1.0)


def test_citation_precision_recall_and_marker_validity_by_hand() -> None:
    hits = [hit(1, "/docs/a.md"), hit(2, "/docs/b.md"), hit(3, "/docs/c.md")]
    answer = Answer(
        "q",
        "Claim one [1]. Claim two [2]. Bogus [7].",
        [Citation(1, hits[0], "x", 0, 1), Citation(2, hits[1], "y", 0, 1)],
        hits,
        None,
        Usage(),
        "m",
    )
    case = AnswerCase("1", "q", [], ["a.md", "/docs/c.md"], True)
    result = score_case(case, answer)
    assert result.citation_precision == pytest.approx(1 / 2)  # a.md is gold, b.md is not
    assert result.citation_recall == pytest.approx(1 / 2)  # a.md found, c.md not cited
    assert result.marker_validity == pytest.approx(2 / 3)  # [7] names no source
    assert not result.refused


def test_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "ok", "answers": ["x"]}\n{"question": 3}\n')
    with pytest.raises(CitewiseError, match=r"qa.jsonl:2: expected"):
        load_answer_cases(path)


def write_questions(path: Path) -> Path:
    lines = [
        {
            "question": "Where do visitors park?",
            "answers": ["level P2 of the garage"],
            "sources": ["handbook.html"],
        },
        {
            "question": "How do I rotate the API keys?",
            "answers": ["run keyctl rotate --all"],
            "sources": ["guide.md"],
        },
        {"question": "What is the melting point of tungsten in kelvin?", "answerable": False},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.slow
def test_end_to_end_with_the_local_model(ingested, tmp_path: Path) -> None:
    ws, _ = ingested
    report = evaluate_answers(ws, write_questions(tmp_path / "qa.jsonl"))
    assert [c.answerable for c in report.cases] == [True, True, False]
    assert report.means["refusal_rate_unanswerable"] == 1.0
    assert report.means["false_refusal_rate"] == 0.0
    for name in ("token_f1", "exact_match", "citation_precision", "citation_recall"):
        assert 0.0 <= report.means[name] <= 1.0
    assert report.means["citation_recall"] > 0  # the right file is cited at least once
    assert report.model.startswith("SmolLM2")


@pytest.mark.slow
def test_cli_with_a_judge(ingested, tmp_path: Path) -> None:
    ws, _ = ingested
    ws.close()
    out = tmp_path / "answers.json"
    result = subprocess.run(
        [
            CITEWISE,
            "-w",
            str(ws.path),
            "eval",
            "answers",
            str(write_questions(tmp_path / "qa.jsonl")),
            "--judge-provider",
            "local",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "refusal rate unanswerable" in result.stdout and "citation recall" in result.stdout
    saved = json.loads(out.read_text())
    answered = [c for c in saved["cases"] if c["answerable"]]
    assert all(c["faithfulness"] is None or 0 <= c["faithfulness"] <= 1 for c in answered)
    assert saved["cases"][2]["refused"] is True
