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
from citewise.evaluation import MEASURES, BeirDataset, document_run, evaluate_run, load_beir

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
    results.update(feedback_and_fusion_experiments(ws, data))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def feedback_and_fusion_experiments(
    ws: Workspace, data: BeirDataset
) -> dict[str, dict[str, float]]:
    """Tried toward 0.75 and not adopted: dense pseudo-relevance feedback, z-score fusion.

    PRF (Rocchio on vectors): q' = q + beta * mean(vectors of the first search's top k
    chunks), searched again and fused with the original BM25 list.
    """
    import numpy as np

    from citewise.embedders.base import normalize
    from citewise.retrieval import Ranked, fuse

    collections = ws.collections(["scifact"])
    collection, retriever, embedder = collections[0], ws.retriever(), ws.embedder()

    def dense(vector: np.ndarray) -> list[tuple[int, float]]:
        ids, scores = ws.indexes.search(collection, vector, 100, None)
        return list(zip(ids.tolist(), scores.tolist(), strict=True))

    def vectors(ids: list[int]) -> np.ndarray:
        marks = ",".join("?" * len(ids))
        rows = dict(
            ws.store.db.execute(f"SELECT id, embedding FROM chunks WHERE id IN ({marks})", ids)
        )
        return np.stack([np.frombuffer(rows[i], dtype=np.float32) for i in ids])

    def zscore(pairs: list[tuple[int, float]]) -> dict[int, float]:
        values = np.array([v for _, v in pairs])
        return {c: (v - values.mean()) / (values.std() or 1.0) for c, v in pairs}

    first = {}
    for qid, text in data.queries.items():
        query = embedder.embed_batch([text])[0]
        first[qid] = (query, retriever._bm25(text, collections, 100, None), dense(query))
    experiments = {}
    for k, beta in ((3, 0.5), (3, 1.0), (5, 0.5)):

        def prf(query, bm25, hits, k=k, beta=beta):
            top = [r.chunk_id for r in fuse(bm25, hits, "convex", 0.5)[:k]]
            expanded = normalize((query + beta * vectors(top).mean(axis=0))[None])[0]
            return fuse(bm25, dense(expanded), "convex", 0.5)

        experiments[f"dense PRF k={k} beta={beta}"] = prf

    def zscore_fusion(query, bm25, hits):
        b, d = zscore(bm25), zscore(hits)
        low_b, low_d = min(b.values(), default=0.0), min(d.values(), default=0.0)
        score = {c: 0.5 * b.get(c, low_b) + 0.5 * d.get(c, low_d) for c in set(b) | set(d)}
        return [Ranked(c, v) for c, v in sorted(score.items(), key=lambda kv: -kv[1])]

    experiments["z-score fusion 0.5"] = zscore_fusion
    results = {}
    for label, rank in experiments.items():
        run = {qid: document_run(retriever._hits(rank(*first[qid])[:100], {}))
               for qid in data.queries}  # fmt: skip
        means = evaluate_run(data.qrels, run)["mean"]
        results[label] = means
        cells = "  ".join(f"{name} {means[name]:.3f}" for name in MEASURES.values())
        print(f"{label:30s} {cells}")
    return results


if __name__ == "__main__":
    main()
