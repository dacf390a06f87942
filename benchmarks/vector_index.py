"""Exact vs HNSW vector search latency, recall and build time as a collection grows.

    python benchmarks/vector_index.py [--sizes 10000 100000 300000]

Vectors: all-MiniLM-L6-v2 embeddings of SciFact abstracts, replicated with Gaussian
noise (sigma 0.02 per dimension, then re-normalised) to reach each size; queries:
the SciFact train claims. Recall@10 is the share of the documents behind exact search's
top 10 that HNSW's top 10 also reaches (every noisy copy of a document counts as that
document: among near-identical copies, which ones make the top 10 is arbitrary).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from _stats import percentile
from citewise.embedders import load_embedder
from citewise.embedders.base import normalize
from citewise.index import ExactIndex, HnswIndex

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"


def load_vectors(limit_queries: int, seed: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """SciFact's vectors: from a workspace that has it ingested (its chunks), else embedded here."""
    embedder = load_embedder("all-MiniLM-L6-v2")
    queries = [json.loads(line)["text"] for line in (DATASET / "queries.jsonl").open()][
        :limit_queries
    ]
    if seed is not None:
        from citewise import Workspace

        with Workspace.open(seed, create=False) as ws:
            collection = ws.collection("scifact", create=False)
            _, docs = ws.store.vectors(collection.id, collection.dim)
            docs = np.array(docs)
    else:
        corpus = [json.loads(line) for line in (DATASET / "corpus.jsonl").open()]
        docs = embedder.embed([f"{r['title']}\n{r['text']}" for r in corpus])
    return docs, embedder.embed(queries)


def grow(base: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    copies = [base]
    while sum(len(c) for c in copies) < size:
        copies.append(normalize(base + rng.normal(0, 0.02, base.shape).astype(np.float32)))
    return np.concatenate(copies)[:size]


def base_documents(ids: np.ndarray, n_docs: int) -> set[int]:
    return {int(i - 1) % n_docs for i in ids}


def timed(search, queries: np.ndarray) -> tuple[list[float], list[np.ndarray]]:
    latencies, results = [], []
    for query in queries:
        started = time.perf_counter()
        ids, _ = search(query, 10)
        latencies.append((time.perf_counter() - started) * 1000)
        results.append(ids)
    return latencies, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000, 1_000_000]
    )
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--seed", type=Path, help="A workspace with SciFact ingested as 'scifact'.")
    args = parser.parse_args()
    docs, queries = load_vectors(args.queries, args.seed)
    rng = np.random.default_rng(0)
    rows = []
    for size in args.sizes:
        vectors = grow(docs, size, rng)
        ids = np.arange(1, size + 1, dtype=np.int64)
        exact = ExactIndex(ids, vectors)
        exact_ms, exact_ids = timed(exact.search, queries)
        started = time.perf_counter()
        hnsw = HnswIndex.build(ids, vectors)
        build_s = time.perf_counter() - started
        hnsw_ms, hnsw_ids = timed(hnsw.search, queries)
        # As the docstring says: a copy stands for its original, so recall is over originals.
        recall = statistics.mean(
            len(base_documents(a, len(docs)) & base_documents(b, len(docs)))
            / len(base_documents(a, len(docs)))
            for a, b in zip(exact_ids, hnsw_ids, strict=True)
        )
        row = {
            "chunks": size,
            "exact_p50_ms": round(percentile(exact_ms, 50), 2),
            "exact_p95_ms": round(percentile(exact_ms, 95), 2),
            "exact_mb": round(vectors.nbytes / 1e6),
            "hnsw_p50_ms": round(percentile(hnsw_ms, 50), 2),
            "hnsw_p95_ms": round(percentile(hnsw_ms, 95), 2),
            "hnsw_recall_at_10": round(recall, 3),
            "hnsw_build_s": round(build_s, 1),
            "hnsw_mb": round(hnsw.index.memory_usage / 1e6),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
