"""Answer evaluation: correctness, citations and refusals on labelled questions.

The dataset is a JSONL file, one question a line::

    {"question": "...", "answers": ["gold answer", ...], "sources": ["path or id", ...]}
    {"question": "...", "answerable": false}

Deterministic metrics (token F1 and exact match in SQuAD's normalisation, citation
precision and recall, marker validity, how many answers cite a source that does not
exist or repeat themselves, refusal rates) run offline with any model. A judge model,
when given, also rates faithfulness: is every claim backed by a source.
"""

from __future__ import annotations

import re
import string
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .answering import NOTHING_FOUND, format_passage
from .documents import Answer
from .errors import CitewiseError
from .evaluation import _jsonl
from .grounding import AnswerGuard, segments
from .providers.base import ChatModel, Message, complete

_MARKER = re.compile(r"\[(\d+)\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_DONT_KNOW = re.compile(
    r"\b(don't know|do not know|couldn't find|could not find|cannot answer|can't answer)\b", re.I
)
JUDGE_PROMPT = (
    "You check answers against sources. Reply with one digit from 1 to 5: 5 if every claim in "
    "the answer is supported by the sources, 1 if none is."
)


@dataclass(frozen=True)
class AnswerCase:
    id: str
    question: str
    answers: list[str]
    sources: list[str]
    answerable: bool


@dataclass
class CaseResult:
    id: str
    question: str
    answer: str
    refused: bool
    answerable: bool
    exact_match: float | None = None
    token_f1: float | None = None
    citation_precision: float | None = None
    citation_recall: float | None = None
    marker_validity: float | None = None
    invalid_marker: float = 0.0  # 1.0 when the answer shows a [n] naming no source
    repetitive: float = 0.0  # 1.0 when the answer repeats a sentence or a run of words
    extractive: float = 0.0  # 1.0 when the answer quotes a passage instead of the model
    seconds: float = 0.0
    faithfulness: float | None = None
    cited_sources: list[str] = field(default_factory=list)


@dataclass
class AnswerReport:
    dataset: str
    model: str
    means: dict[str, float]
    cases: list[CaseResult]
    run_id: int | None = None  # the stored run (citewise eval runs); None: not stored


def load_answer_cases(path: Path) -> list[AnswerCase]:
    cases = []
    for line_no, record in _jsonl(path):
        question = record.get("question")
        answers, sources = record.get("answers", []), record.get("sources", [])
        if (
            not isinstance(question, str)
            or not isinstance(answers, list)
            or not isinstance(sources, list)
        ):
            raise CitewiseError(
                f'{path}:{line_no}: expected {{"question": "...", "answers": [...], "sources": [...]}}'
            )
        answerable = bool(record.get("answerable", bool(answers or sources)))
        cases.append(
            AnswerCase(str(record.get("id", line_no)), question, answers, sources, answerable)
        )
    if not cases:
        raise CitewiseError(f"{path}: no questions")
    return cases


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no citation markers, punctuation or articles.
    Punctuation includes Unicode's (SQuAD's ASCII set would leave a quote's “ on its
    first word)."""
    text = _MARKER.sub(" ", text.lower())
    text = "".join(ch for ch in text if not _punctuation(ch))
    return " ".join(_ARTICLES.sub(" ", text).split())


def _punctuation(ch: str) -> bool:
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


def token_f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def is_refusal(answer: Answer) -> bool:
    return answer.refused or answer.text == NOTHING_FOUND or bool(_DONT_KNOW.search(answer.text))


def repeats_itself(text: str) -> bool:
    """A sentence that repeats an earlier one, or a run of words seen before."""
    guard = AnswerGuard([], "", strict=False)
    return any(guard.check(segment).stop for segment in segments([text]))


def source_matches(source: str, gold: str) -> bool:
    return source == gold or source.endswith("/" + gold.lstrip("/"))


def score_case(case: AnswerCase, answer: Answer) -> CaseResult:
    result = CaseResult(case.id, case.question, answer.text, is_refusal(answer), case.answerable)
    markers = [int(m) for m in _MARKER.findall(answer.text)]
    if markers:
        result.marker_validity = sum(1 <= n <= len(answer.hits) for n in markers) / len(markers)
        result.invalid_marker = float(result.marker_validity < 1.0)
    result.repetitive = float(repeats_itself(answer.text))
    result.extractive = float(answer.extractive)
    result.cited_sources = list(dict.fromkeys(c.hit.source for c in answer.citations))
    if case.answers:
        result.exact_match = max(exact_match(answer.text, gold) for gold in case.answers)
        result.token_f1 = max(token_f1(answer.text, gold) for gold in case.answers)
    if case.sources:
        cited_gold = [
            s for s in result.cited_sources if any(source_matches(s, g) for g in case.sources)
        ]
        found = [g for g in case.sources if any(source_matches(s, g) for s in result.cited_sources)]
        result.citation_precision = (
            len(cited_gold) / len(result.cited_sources) if result.cited_sources else 0.0
        )
        result.citation_recall = len(found) / len(case.sources)
    return result


def judge_faithfulness(judge: ChatModel, answer: Answer, caller: str = "") -> float | None:
    """1..5 from the judge, scaled to 0..1; None when the judge's reply has no digit."""
    if not answer.hits or is_refusal(answer):
        return None
    sources = "\n\n".join(format_passage(n, h) for n, h in enumerate(answer.hits, start=1))
    prompt = f"Sources:\n\n{sources}\n\nAnswer:\n{answer.text}\n\nRating (1-5):"
    messages = [Message("system", JUDGE_PROMPT), Message("user", prompt)]
    reply = complete(judge, messages, 4, 0.0, purpose="judge", caller=caller)
    digit = re.search(r"[1-5]", reply)
    return (int(digit.group()) - 1) / 4 if digit else None


def evaluate_answers(
    workspace: Any,
    path: Path,
    collections: list[str] | None = None,
    judge: ChatModel | None = None,
    progress: Any = None,
    caller: str = "",
    save: bool = True,
) -> AnswerReport:
    """Answer and score every question; with ``save`` the run is stored in the
    workspace (``run_id``; ``citewise eval runs``)."""
    cases = load_answer_cases(path)
    results = []
    for done, case in enumerate(cases, start=1):
        started = time.perf_counter()
        answer = workspace.ask(case.question, collections, caller=caller)
        result = score_case(case, answer)
        result.seconds = time.perf_counter() - started
        if judge is not None:
            result.faithfulness = judge_faithfulness(judge, answer, caller)
        results.append(result)
        if progress:
            progress(done, len(cases))
    report = AnswerReport(str(path), workspace.chat_model().model_id, summarize(results), results)
    if save:
        from .eval_runs import save_answer_run

        report.run_id = save_answer_run(workspace, report, collections, judge)
    return report


def summarize(results: list[CaseResult]) -> dict[str, float]:
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    means = {
        name: _mean([getattr(r, name) for r in results])
        for name in (
            "exact_match",
            "token_f1",
            "citation_precision",
            "citation_recall",
            "marker_validity",
            "invalid_marker",
            "repetitive",
            "extractive",
            "seconds",
            "faithfulness",
        )
    }
    means["refusal_rate_unanswerable"] = _mean([float(r.refused) for r in unanswerable])
    means["false_refusal_rate"] = _mean([float(r.refused) for r in answerable])
    return {k: v for k, v in means.items() if v is not None}


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
