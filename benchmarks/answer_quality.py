"""Answer quality of the default local model with each level of answer checking.

    python benchmarks/answer_quality.py [--questions benchmarks/qa/python_reference.jsonl]
        [--modes off,light,strict] [--model smollm2-135m] [--json out.json]

The questions ask about Python's language reference (``pydoc_data``, which every Python
ships, and which no test uses): 28 with a gold answer and the topics that hold it, 6 the
reference cannot answer. Each mode answers every question through ``citewise eval
answers``' scorer: token F1, citation precision, answers citing a source that does not
exist, answers repeating themselves, refusals, seconds per answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from citewise import Workspace
from citewise.answer_eval import evaluate_answers
from citewise.demo import DEMO_COLLECTION, demo_items

QUESTIONS = Path(__file__).parent / "qa" / "python_reference.jsonl"
COLUMNS = {
    "token F1": "token_f1",
    "citation precision": "citation_precision",
    "citation recall": "citation_recall",
    "invalid [n]": "invalid_marker",
    "repeats itself": "repetitive",
    "quoted (extractive)": "extractive",
    "refuses unanswerable": "refusal_rate_unanswerable",
    "refuses answerable": "false_refusal_rate",
    "s / answer": "seconds",
}


def run(workspace: Path, questions: Path, modes: list[str], model: str) -> dict[str, dict]:
    with Workspace.open(workspace) as ws:
        if not ws.collections():
            ws.add_items(demo_items(), DEMO_COLLECTION)
    results = {}
    for mode in modes:
        with Workspace.open(workspace, answer_check=mode, model=model) as ws:
            ws.chat_model()  # load outside the timings
            report = evaluate_answers(ws, questions)
            results[mode] = {
                "means": report.means,
                "cases": [vars(case) for case in report.cases],
            }
        print(mode, {k: round(v, 3) for k, v in report.means.items()}, file=sys.stderr)
    return results


def table(results: dict[str, dict]) -> str:
    rows = ["| answer_check | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for mode, result in results.items():
        means = result["means"]
        cells = [f"{means.get(key, 0.0):.2f}" for key in COLUMNS.values()]
        rows.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--modes", default="off,light,strict")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--workspace", type=Path, help="reuse (or create) this workspace")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    modes = args.modes.split(",")
    if args.workspace:
        results = run(args.workspace, args.questions, modes, args.model)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results = run(Path(tmp) / "ws", args.questions, modes, args.model)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "results": results}, indent=1))


if __name__ == "__main__":
    main()
