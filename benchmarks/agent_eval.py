"""Multi-hop questions, answered single-shot and in agent mode, with the model you configure.

    python benchmarks/agent_eval.py --provider openai --model gpt-4o-mini
        [--base-url URL] [--api-key-env NAME] [--context-window N]
        [--modes single,agent] [--questions FILE] [--json out.json]

The set (``benchmarks/data/multihop``) is a fictional company's teams, people and systems in
12 short Markdown documents, and 22 questions each needing facts from two of them: bridges
("Who manages the team that owns the system Tollgate authenticates through?"), comparisons
and lists. The documents are ingested into a temporary workspace with the default
embedder; each mode then answers every question through ``Workspace.ask``, and is scored
with ``citewise eval answers``' metrics: token F1 against the gold answer, citation recall
of the two supporting documents, and how often both were cited.

Keys are read as the CLI reads them: the provider's usual variable (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``) or the one ``--api-key-env`` names. Agent mode needs a model that
calls tools: with the tiny local default it answers single-shot (every answer says so in
its warnings, and this script reports it), so its two rows then measure the same thing.
Not part of ``make bench``: the figures are for a capable model, run by its user.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _stats import measured_on
from citewise import Answer, Workspace
from citewise.answer_eval import load_answer_cases, score_case

DATA = Path(__file__).parent / "data" / "multihop"
COLUMNS = {
    "token F1": "token_f1",
    "citation recall": "citation_recall",
    "both documents cited": "both_cited",
    "model turns / answer": "turns",
    "tokens / answer": "tokens",
    "s / answer": "seconds",
}


def answer_all(ws: Workspace, questions: Path) -> dict[str, Any]:
    """Every question answered and scored; the means and each case."""
    cases = []
    fallbacks: dict[str, int] = {}
    for case in load_answer_cases(questions):
        started = time.perf_counter()
        answer = ws.ask(case.question)
        seconds = time.perf_counter() - started
        scored = score_case(case, answer)
        cases.append(
            {
                "id": case.id,
                "question": case.question,
                "answer": answer.text,
                "token_f1": scored.token_f1 or 0.0,
                "citation_recall": scored.citation_recall or 0.0,
                "both_cited": float(scored.citation_recall == 1.0),
                "turns": model_turns(answer),
                "tokens": answer.usage.prompt_tokens + answer.usage.completion_tokens,
                "seconds": seconds,
                "steps": [vars(step) for step in answer.steps],
                "warnings": answer.warnings,
            }
        )
        for warning in answer.warnings:
            if "single-shot" in warning:
                fallbacks[warning] = fallbacks.get(warning, 0) + 1
    means = {key: sum(c[key] for c in cases) / len(cases) for key in COLUMNS.values()}
    return {"means": means, "fallbacks": fallbacks, "cases": cases}


def model_turns(answer: Answer) -> int:
    """Model calls made for the answer: each turn's first step carries its tokens."""
    if not answer.steps:
        return 1 if answer.usage.prompt_tokens else 0
    return sum(1 for s in answer.steps if s.prompt_tokens or s.completion_tokens)


def run(args: argparse.Namespace, workspace: Path) -> dict[str, Any]:
    with Workspace.open(workspace) as ws:
        report = ws.ingest([args.docs])
        print(f"ingested {report.added} documents", file=sys.stderr)
    model_settings = {
        "provider": args.provider,
        "model": args.model,
        "base_url": args.base_url,
        "api_key_env": args.api_key_env,
        "context_window": args.context_window,
    }
    chosen = {k: v for k, v in model_settings.items() if v}
    results = {}
    for mode in args.modes.split(","):
        with Workspace.open(workspace, mode=mode, **chosen) as ws:
            results[mode] = answer_all(ws, args.questions)
            results[mode]["model"] = ws.chat_model().model_id
        means = {k: round(v, 3) for k, v in results[mode]["means"].items()}
        print(mode, means, file=sys.stderr)
    return results


def table(results: dict[str, Any]) -> str:
    rows = ["| mode | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for mode, result in results.items():
        cells = [f"{result['means'][key]:.2f}" for key in COLUMNS.values()]
        rows.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def fallback_notes(results: dict[str, Any]) -> list[str]:
    """Say so when agent mode could not run: its row is then single-shot answers."""
    notes = []
    for mode, result in results.items():
        total = len(result["cases"])
        for warning, count in result["fallbacks"].items():
            notes.append(f"{mode}: {count} of {total} answers fell back to single-shot: {warning}")
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", help="local, openai or anthropic (default: the setting)")
    parser.add_argument("--model", help="the chat model (default: the provider's)")
    parser.add_argument("--base-url", help="an OpenAI-compatible server")
    parser.add_argument("--api-key-env", help="the environment variable holding the API key")
    parser.add_argument("--context-window", type=int, help="tokens the model sees")
    parser.add_argument("--modes", default="single,agent")
    parser.add_argument("--docs", type=Path, default=DATA / "docs")
    parser.add_argument("--questions", type=Path, default=DATA / "questions.jsonl")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args, Path(tmp) / "ws")
    print(table(results))
    for note in fallback_notes(results):
        print(note)
    if args.json:
        meta = {"measured_on": measured_on(), "provider": args.provider or "(the setting)"}
        args.json.write_text(json.dumps({**meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
