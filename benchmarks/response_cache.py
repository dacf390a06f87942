"""How much faster a repeated question is answered from the exact response cache.

    python benchmarks/response_cache.py [--rounds 5] [--json FILE]

A workspace with ``response_cache = "exact"`` and the local default model, over a few
topics of Python's language reference (``citewise demo``'s corpus, ``pydoc_data``, which
every Python ships: the topics in :data:`TOPICS`, not all 79, so the ingest stays short),
with ``answer_check = "off"``: only a response that finished by itself is kept, and the
checks the tiny local model gets by default stop its response early (they quote the
sources instead), so with them no repeat is ever a hit. The questions are ones it answers
within ``answer_tokens`` (finish reason ``stop``; one cut by the limit is not kept either).
Each question is asked once afresh (the model loads; not timed) and once more to fill
the cache (the miss), then ``--rounds`` times each way, side by side in alternating
order (uncached first in even rounds, cached first in odd ones, so drift in the machine's
load falls on both):

* **uncached**: ``Workspace.ask(..., no_cache=True)``, retrieval and a model call;
* **cached**: ``Workspace.ask(...)``, the same retrieval and the model's response replayed
  from the cache (the answer checks and citations run again over it).

Reported: p50/p95/p99 ms of each, the ratio of the medians (cached / uncached), whether
every cached answer was a hit with the same text as the miss that filled it, and from
the usage ledger the rows with ``cache_hit`` and their ``saved_usd`` (zero for the local
model, which is priced free: a sanity check that each hit was recorded, not a saving).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from _stats import latency_ms, measured_on
from citewise import Workspace
from citewise.answering import AnswerOptions
from citewise.demo import DEMO_COLLECTION, demo_items

DEFAULT_JSON = Path(__file__).parent / "results" / "response_cache.json"
TOPICS = ("with", "context-managers", "pass", "for", "while", "if", "try", "assert")
QUESTIONS = (
    "What does the pass statement do?",
    "What does the while statement do?",
    "What does the if statement do?",
)


def ask(ws: Workspace, question: str, cached: bool) -> tuple[float, str, str]:
    """Seconds to the whole answer, its text, and the cache status (hit, miss or "")."""
    options = None if cached else AnswerOptions(no_cache=True)
    started = time.perf_counter()
    stream = ws.ask_stream(question, [DEMO_COLLECTION], options=options)
    for _ in stream:
        pass
    elapsed = time.perf_counter() - started
    assert stream.answer is not None
    return elapsed, stream.answer.text, stream.cache_status


def run(rounds: int) -> dict:
    with (
        tempfile.TemporaryDirectory(prefix="citewise-bench-cache-") as tmp,
        Workspace.open(Path(tmp) / "ws", response_cache="exact", answer_check="off") as ws,
    ):
        items = [item for item in demo_items() if item.source.removeprefix("pydoc:") in TOPICS]
        report = ws.add_items(items, DEMO_COLLECTION)
        model = ws.chat_model().model_id
        filled: dict[str, str] = {}
        statuses: dict[str, list[str]] = {"uncached": [], "cached": []}
        same_text = True
        for question in QUESTIONS:
            ask(ws, question, cached=False)  # loads the model and warms it: not timed
            _, filled[question], status = ask(ws, question, cached=True)
            assert status == "miss", f"the cache should have missed first, not {status!r}"
            kept = ws.response_cache.stats().entries
            assert kept == len(filled), f"{question!r}: the response was not kept (cut short?)"
        times: dict[str, list[float]] = {"uncached": [], "cached": []}
        for n in range(rounds):
            order = ("uncached", "cached") if n % 2 == 0 else ("cached", "uncached")
            for question in QUESTIONS:
                for way in order:
                    seconds, text, status = ask(ws, question, cached=way == "cached")
                    times[way].append(seconds * 1000)
                    statuses[way].append(status)
                    if way == "cached":
                        same_text = same_text and text == filled[question]
        rows = ws.ledger.store.rows()
        hits = [row for row in rows if row.cache_hit]
        saved = [row.saved_usd for row in hits]
    uncached, cached = latency_ms(times["uncached"]), latency_ms(times["cached"])
    return {
        "model": model,
        "corpus": {
            "collection": DEMO_COLLECTION,
            "topics": list(TOPICS),
            "documents": report.added,
            "chunks": report.chunks,
        },
        "questions": list(QUESTIONS),
        "rounds": rounds,
        "answers_each_way": len(times["cached"]),
        "uncached_ms": uncached,
        "cached_ms": cached,
        "ratio_p50": round(
            statistics.median(times["cached"]) / statistics.median(times["uncached"]), 4
        ),
        "cached_hits": sum(s == "hit" for s in statuses["cached"]),
        "cached_all_hits": all(s == "hit" for s in statuses["cached"]),
        "uncached_never_asked_cache": all(s == "" for s in statuses["uncached"]),
        "cached_text_same_as_miss": same_text,
        "ledger": {
            "cache_hit_rows": len(hits),
            "saved_usd": None if any(s is None for s in saved) else round(sum(saved), 6),
            "rows": len(rows),
        },
        "measured": measured_on(),
        # Other work on the machine shows in the latencies.
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    report = run(args.rounds)
    c = report["corpus"]
    print(
        f"{report['model']}; {c['documents']} topics, {c['chunks']} chunks; "
        f"{len(report['questions'])} questions x {report['rounds']} rounds each way"
    )
    for way in ("uncached", "cached"):
        t = report[f"{way}_ms"]
        print(f"{way:9} p50 {t['p50']:>9} ms   p95 {t['p95']:>9} ms")
    print(
        f"cached / uncached (p50): {report['ratio_p50']:.4f}; all hits: "
        f"{report['cached_all_hits']}; same text as the miss: {report['cached_text_same_as_miss']}"
    )
    ledger = report["ledger"]
    print(
        f"ledger: {ledger['cache_hit_rows']} cache_hit rows of {ledger['rows']}, "
        f"saved_usd {ledger['saved_usd']}"
    )
    print(f"measured: {report['measured']}, load average {report['load_average_1min']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
