"""Ingest throughput, peak memory and search latency for a BEIR dataset or a folder.

    python benchmarks/ingest_search.py [DATASET_OR_FOLDER] [--json OUT]

A BEIR folder (corpus.jsonl, queries.jsonl) is ingested from its corpus and
searched with its queries; any other folder is ingested as files and searched
with the first sentence of every 10th chunk.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _stats import latency_ms
from citewise import Workspace
from citewise.evaluation import load_beir

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def ingest(ws: Workspace, source: Path) -> tuple[object, list[str]]:
    if (source / "corpus.jsonl").exists():
        data = load_beir(source)
        return ws.add_items(data.corpus_items(), "scifact"), list(data.queries.values())
    report = ws.ingest([source], "scifact")
    rows = ws.store.db.execute(
        "SELECT substr(d.text, c.start + 1, 200) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id % 10 = 0"
    )
    return report, [r[0].split(". ")[0] for r in rows]


def time_searches(ws: Workspace, queries: list[str], mode: str) -> list[float]:
    ws.search(queries[0], 10, ["scifact"], mode)  # warm: loads the index
    latencies = []
    for query in queries:
        started = time.perf_counter()
        ws.search(query, 10, ["scifact"], mode)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--keep",
        type=Path,
        help="Leave the workspace here (emptied first) for the next benchmarks.",
    )
    args = parser.parse_args()
    if not args.source.exists():
        sys.exit(f"{args.source} not found (SciFact lives in ../shared/datasets/scifact)")
    tmp = tempfile.mkdtemp(prefix="citewise-ingest-")
    directory = args.keep or Path(tmp) / "ws"
    shutil.rmtree(directory, ignore_errors=True)  # always a fresh ingest: that is what is measured
    with Workspace.open(directory) as ws:
        report, queries = ingest(ws, args.source)
        result = {
            "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
            "documents": report.added,
            "chunks": report.chunks,
            "tokens": report.tokens,
            "ingest_seconds": round(report.seconds, 1),
            "documents_per_second": round(report.added / report.seconds, 1),
            "tokens_per_second": round(report.tokens / report.seconds),
            "peak_rss_mb_after_ingest": round(peak_rss_mb()),
            "queries": len(queries),
            "search_ms": {},
        }
        for mode in ("hybrid", "bm25", "dense"):
            latencies = time_searches(ws, queries, mode)
            result["search_ms"][mode] = latency_ms(latencies)
        result["peak_rss_mb"] = round(peak_rss_mb())
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
