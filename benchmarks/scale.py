"""Hybrid search latency and index memory at 10k, 100k and 1M chunks.

    python benchmarks/scale.py [--sizes 100000 1000000] [--workspace DIR]

The first size is SciFact as ingested (about 11k chunks). Larger sizes are made by
copying SciFact's chunks as new one-chunk documents: each copy drops 15% of its words
at random (so BM25 sees different texts) and adds Gaussian noise (sigma 0.02 a
dimension, re-normalised) to its vector. Copies are written with SQL in batches, not
through the embedder, which would take hours at a million chunks on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np

from _stats import latency_ms
from citewise import Workspace
from citewise.embedders.base import normalize
from citewise.evaluation import load_beir

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"
BATCH = 20_000


def chunk_count(ws: Workspace, collection_id: int) -> int:
    return ws.store.counts(collection_id)[1]


def grow(ws: Workspace, collection_id: int, target: int, rng: np.random.Generator) -> None:
    """Add perturbed one-chunk copies of the original chunks until ``target`` chunks exist."""
    originals = ws.store.db.execute(
        "SELECT d.title, substr(d.text, c.start + 1, c.end - c.start), c.heading_path, c.n_tokens, c.embedding "
        "FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.collection_id = ? AND d.source NOT LIKE 'copy:%' "
        "ORDER BY c.id",
        (collection_id,),
    ).fetchall()
    made = chunk_count(ws, collection_id)
    copy = made
    while made < target:
        n = min(BATCH, target - made)
        rows = [originals[(copy + i) % len(originals)] for i in range(n)]
        vectors = np.frombuffer(b"".join(r[4] for r in rows), dtype=np.float32).reshape(n, -1)
        vectors = normalize(vectors + rng.normal(0, 0.02, vectors.shape).astype(np.float32))
        with ws.store.transaction() as db:
            for i, (title, text, headings, n_tokens, _) in enumerate(rows):
                words = [w for w in text.split() if rng.random() > 0.15] or text.split()[:1]
                body = " ".join(words)
                cursor = db.execute(
                    "INSERT INTO documents (collection_id, source, title, content_hash, text, updated_at) "
                    "VALUES (?, ?, ?, '', ?, '')",
                    (collection_id, f"copy:{copy + i}", title, body),
                )
                chunk = db.execute(
                    "INSERT INTO chunks (document_id, ord, start, end, page, heading_path, n_tokens, embedding) "
                    "VALUES (?, 0, 0, ?, NULL, ?, ?, ?)",
                    (cursor.lastrowid, len(body), headings, n_tokens, vectors[i].tobytes()),
                )
                db.execute(
                    "INSERT INTO chunks_fts (rowid, title, headings, body) VALUES (?, ?, ?, ?)",
                    (chunk.lastrowid, title, headings, body),
                )
            db.execute(
                "UPDATE collections SET generation = generation + 1 WHERE id = ?", (collection_id,)
            )
        copy += n
        made += n
        print(f"  {made:,} chunks", flush=True)


def measure(ws: Workspace, queries: list[str]) -> dict[str, float]:
    ws.search(queries[0], 10, ["scale"])  # builds the vector index
    latencies = []
    for query in queries:
        started = time.perf_counter()
        ws.search(query, 10, ["scale"])
        latencies.append((time.perf_counter() - started) * 1000)
    collection = ws.collection("scale")
    cached = ws.indexes._get(collection)
    summary = latency_ms(latencies)
    return {
        "p50_ms": summary["p50"],
        "p95_ms": summary["p95"],
        "p99_ms": summary["p99"],
        "vector_index": ws.indexes.backend(collection),
        "vector_memory_mb": round(cached.exact.vectors.nbytes / 1e6),
        "database_mb": round(ws.store.path.stat().st_size / 1e6),
    }


def seed_from(seed: Path, workspace: Path) -> None:
    """Copy a workspace's database, its 'scifact' collection renamed 'scale'."""
    with sqlite3.connect(seed / "citewise.db") as source:
        source.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    workspace.mkdir(parents=True)
    shutil.copy(seed / "citewise.db", workspace / "citewise.db")
    with sqlite3.connect(workspace / "citewise.db") as db:
        db.execute("UPDATE collections SET name = 'scale' WHERE name = 'scifact'")


def keyword_index(ws: Workspace, seconds: float) -> dict:
    collection = ws.collection("scale")
    if ws.sparse.current(collection) is None:
        return {"keyword_index": "fts5"}
    files = ws.sparse._path(collection).glob("*")
    return {
        "keyword_index": "bm25s",
        "keyword_build_s": round(seconds, 1),
        "keyword_index_mb": round(sum(f.stat().st_size for f in files) / 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/citewise-scale"))
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--seed",
        type=Path,
        help="A workspace with SciFact ingested as 'scifact' (ingest_search.py --keep) "
        "to start from instead of ingesting it again.",
    )
    args = parser.parse_args()
    shutil.rmtree(args.workspace, ignore_errors=True)  # every run grows from SciFact alone
    if args.seed:
        seed_from(args.seed, args.workspace)
    data = load_beir(DATASET)
    queries = list(data.queries.values())[: args.queries]
    rng = np.random.default_rng(0)
    rows = []
    with Workspace.open(args.workspace) as ws:
        ws.add_items(data.corpus_items(), "scale")
        collection_id = ws.collection("scale").id
        for target in [chunk_count(ws, collection_id), *args.sizes]:
            grow(ws, collection_id, target, rng)
            started = time.perf_counter()
            ws.refresh_indexes("scale")  # what an ingest does after writing
            built = time.perf_counter() - started
            row = {
                "chunks": chunk_count(ws, collection_id),
                **measure(ws, queries),
                **keyword_index(ws, built),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
