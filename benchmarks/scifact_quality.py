"""Retrieval quality on a BEIR dataset for each mode and fusion setting.

python benchmarks/scifact_quality.py [DATASET_DIR] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
import time
from collections import Counter
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
        results[label] = scored(label, run, data, f"  ({elapsed / len(run) * 1000:.1f} ms/query)")
    results.update(feedback_and_fusion_experiments(ws, data))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def scored(
    label: str, run: dict[str, dict[str, float]], data: BeirDataset, note: str = ""
) -> dict[str, float]:
    """The run's mean measures, printed as one table row."""
    means = evaluate_run(data.qrels, run)["mean"]
    cells = "  ".join(f"{name} {means[name]:.3f}" for name in MEASURES.values())
    print(f"{label:30s} {cells}{note}")
    return means


def feedback_and_fusion_experiments(
    ws: Workspace, data: BeirDataset
) -> dict[str, dict[str, float]]:
    """Tried toward 0.75 and not adopted: dense and keyword pseudo-relevance feedback, z-score fusion.

    PRF (Rocchio on vectors): q' = q + beta * mean(vectors of the first search's top k
    chunks), searched again and fused with the original BM25 list.
    """
    import numpy as np

    from citewise.embedders.base import normalize
    from citewise.retrieval import STOPWORDS, Ranked, _minmax, fuse

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

    def feedback_chunks(
        bm25: list[tuple[int, float]], hits: list[tuple[int, float]], k: int
    ) -> list[int]:
        """The first (default hybrid) search's top k chunks."""
        return [r.chunk_id for r in fuse(bm25, hits, "convex", 0.5)[:k]]

    def zscore(pairs: list[tuple[int, float]]) -> dict[int, float]:
        values = np.array([v for _, v in pairs])
        return {c: (v - values.mean()) / (values.std() or 1.0) for c, v in pairs}

    first = {}
    for qid, text in data.queries.items():
        query = embedder.embed_batch([text])[0]
        first[qid] = (query, retriever._bm25(text, collections, 100, None), dense(query))
    experiments = {}
    for k, beta in ((3, 0.5), (3, 1.0), (5, 0.5)):

        def prf(query, bm25, hits, text, k=k, beta=beta):
            top = feedback_chunks(bm25, hits, k)
            expanded = normalize((query + beta * vectors(top).mean(axis=0))[None])[0]
            return fuse(bm25, dense(expanded), "convex", 0.5)

        experiments[f"dense PRF k={k} beta={beta}"] = prf

    def zscore_fusion(query, bm25, hits, text):
        b, d = zscore(bm25), zscore(hits)
        low_b, low_d = min(b.values(), default=0.0), min(d.values(), default=0.0)
        score = {c: 0.5 * b.get(c, low_b) + 0.5 * d.get(c, low_d) for c in set(b) | set(d)}
        return [Ranked(c, v) for c, v in sorted(score.items(), key=lambda kv: -kv[1])]

    experiments["z-score fusion 0.5"] = zscore_fusion

    # Keyword feedback (RM3-like): the top-m words of the first search's top-k chunks by
    # tf-idf, searched with the query; that BM25 list merged with the original before fusion.
    words = re.compile(r"[a-z][a-z0-9-]{2,}")
    chunk_count = ws.store.db.execute("SELECT count(*) FROM chunks").fetchone()[0]

    @functools.cache
    def document_frequency(term: str) -> int:
        sql = "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?"
        return ws.store.db.execute(sql, (f'"{term}"',)).fetchone()[0]

    def feedback_terms(query: str, ids: list[int], m: int) -> list[str]:
        marks = ",".join("?" * len(ids))
        sql = ("SELECT substr(d.text, c.start + 1, c.end - c.start) FROM chunks c "
               f"JOIN documents d ON d.id = c.document_id WHERE c.id IN ({marks})")  # fmt: skip
        seen = set(words.findall(query.lower()))
        weight: Counter[str] = Counter()
        for (text,) in ws.store.db.execute(sql, ids):
            counts = Counter(w for w in words.findall(text.lower()) if w not in STOPWORDS)
            total = sum(counts.values()) or 1
            for word, count in counts.items():
                if word not in seen:
                    idf = math.log(chunk_count / (1 + document_frequency(word)))
                    weight[word] += count / total * idf
        return [word for word, _ in weight.most_common(m)]

    for k, m, share in ((3, 10, 0.3), (3, 10, 0.5), (5, 20, 0.3)):

        def keyword_prf(query, bm25, hits, text, k=k, m=m, share=share):
            top = feedback_chunks(bm25, hits, k)
            expanded = f"{text} {' '.join(feedback_terms(text, top, m))}"
            first, second = (
                _minmax(bm25),
                _minmax(retriever._bm25(expanded, collections, 100, None)),
            )
            merged = {c: (1 - share) * first.get(c, 0.0) + share * second.get(c, 0.0)
                      for c in set(first) | set(second)}  # fmt: skip
            ranked = sorted(merged.items(), key=lambda kv: -kv[1])[:100]
            return fuse(ranked, hits, "convex", 0.5)

        experiments[f"keyword PRF k={k} m={m} share={share}"] = keyword_prf
    results = {}
    for label, rank in experiments.items():
        run = {}
        for qid, text in data.queries.items():
            ranked = rank(*first[qid], text)
            run[qid] = document_run(retriever._hits(ranked[:100], {}))
        results[label] = scored(label, run, data)
    return results


if __name__ == "__main__":
    main()
