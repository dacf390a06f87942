"""Retrieval quality on a BEIR dataset for each mode and fusion setting.

python benchmarks/scifact_quality.py [DATASET_DIR] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from citewise import Workspace
from citewise.evaluation import MEASURES, document_run, evaluate_run, load_beir

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"
# (label, mode, fusion, dense weight, BM25 weights for title/headings/body, chunks summed per document)
CONFIGS = [
    ("bm25", "bm25", "rrf", 0.5, (1.0, 1.0, 1.0), 1),
    ("dense", "dense", "rrf", 0.5, (1.0, 1.0, 1.0), 1),
    ("hybrid rrf", "hybrid", "rrf", 0.5, (1.0, 1.0, 1.0), 1),
    ("hybrid convex 0.5 (default)", "hybrid", "convex", 0.5, (1.0, 1.0, 1.0), 1),
    ("hybrid convex 0.4", "hybrid", "convex", 0.4, (1.0, 1.0, 1.0), 1),
    ("hybrid convex 0.6", "hybrid", "convex", 0.6, (1.0, 1.0, 1.0), 1),
    ("+ BM25 title weight 2", "hybrid", "convex", 0.5, (2.0, 1.0, 1.0), 1),
    ("+ BM25 title weight 0.5", "hybrid", "convex", 0.5, (0.5, 1.0, 1.0), 1),
    ("+ sum of top-2 chunks", "hybrid", "convex", 0.5, (1.0, 1.0, 1.0), 2),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/citewise-scifact"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.dataset / "corpus.jsonl").exists():
        sys.exit(f"dataset not found at {args.dataset}")
    data = load_beir(args.dataset)
    ws = Workspace.open(args.workspace)
    report = ws.add_items(data.corpus_items(), "scifact")
    print(f"ingest: +{report.added} ={report.unchanged} in {report.seconds:.1f}s", file=sys.stderr)
    results = {}
    for label, mode, fusion, weight, bm25_weights, top in CONFIGS:
        retriever = ws.retriever(fusion, weight)
        retriever.bm25_weights = bm25_weights
        collections = ws.collections(["scifact"])
        started = time.perf_counter()
        run = {qid: document_run(retriever.search(text, collections, 100, mode), top=top)
               for qid, text in data.queries.items()}  # fmt: skip
        elapsed = time.perf_counter() - started
        means = evaluate_run(data.qrels, run)["mean"]
        results[label] = means
        cells = "  ".join(f"{name} {means[name]:.3f}" for name in MEASURES.values())
        print(f"{label:30s} {cells}  ({elapsed / len(run) * 1000:.1f} ms/query)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
