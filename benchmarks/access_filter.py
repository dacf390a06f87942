"""Permission-aware search at scale: a user's access filter, side by side with the
unfiltered search and with the row-by-row access check it replaces, in one run.

    python benchmarks/access_filter.py [--sizes 100000 1000000]
        [--backends sqlite postgresql] [--keep DIR] [--json FILE]

A collection of ``size`` one-chunk documents (synthetic: Zipf-distributed words from a
5,000-word vocabulary, random unit vectors), every document restricted to one of 200
groups. Three users read 50%, 5% and 0.5% of it (members of 100, 10 and 1 groups). For
each, over the same 200 queries:

* hybrid search through ``Workspace.search(caller=…)`` — p50 / p95. The vector side of a
  filtered search is exact among the allowed chunks on both backends (an HNSW graph is
  never asked for neighbours it must then throw away); recall@10 of the filtered vector
  search is measured against NumPy's exact top ten over the allowed vectors. Up to 100k
  chunks the collection has an HNSW index (``ann_threshold`` below its size), which the
  unfiltered baseline uses; at a million it keeps the default (exact up to
  ``ann_threshold`` = 1,000,000), as a workspace of that size would;
* the allowed-chunk lookup alone: the access index (``readable_chunk_ids``) against the
  row-by-row SQL condition it replaced (the same ``ReadableBy`` translated inside an OR,
  which the fast path does not recognise).

Unfiltered hybrid search is measured in the same run as the baseline; compare ratios.
``--keep DIR`` keeps the grown workspaces (and PostgreSQL's data) and reuses them, so a
million-chunk collection is written once and measured again on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _stats import latency_ms, measured_on
from citewise import Workspace
from citewise.access import Caller
from citewise.documents import Chunk, Document
from citewise.filters import Or, ReadableBy
from citewise.workspace import init_workspace
from storage import new_database, postgres_server

GROUPS = 200
READERS = {"50%": 100, "5%": 10, "0.5%": 1}  # groups each user belongs to
VOCABULARY = 5000
QUERIES = 200


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument("--backends", nargs="*", default=["sqlite", "postgresql"])
    parser.add_argument("--keep", type=Path, help="grow workspaces here, reuse them")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict = {"measured_on": measured_on(), "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        with postgres_server(root) as admin:
            run_sizes(args, root, admin, results)
    print(json.dumps(results, indent=2))


def run_sizes(args: argparse.Namespace, root: Path, admin: str, results: dict) -> None:
    for size in args.sizes:
        results["sizes"][str(size)] = {}
        for backend in args.backends:
            directory = root / f"{backend}-{size}"
            if not (directory / "grown.npz").exists():
                shutil.rmtree(directory, ignore_errors=True)
                store = new_database(admin, f"access{size}") if backend == "postgresql" else ""
                init_workspace(directory, store=store)
            run = measure_backend(directory, size)
            results["sizes"][str(size)][backend] = run
            print(backend, size, json.dumps(run, indent=1), file=sys.stderr)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2) + "\n")


def measure_backend(directory: Path, size: int) -> dict:
    rng = np.random.default_rng(0)
    words = [f"w{n}" for n in range(VOCABULARY)]
    tuned = {"ann_threshold": size // 2} if size <= 100_000 else {}
    grown = directory / "grown.npz"
    with Workspace.open(directory, **tuned) as ws:
        collection = ws.collection("access")
        if grown.exists():
            saved = np.load(grown)
            vectors, write_rate = saved["vectors"], int(saved["write_chunks_per_s"])
            rng = np.random.default_rng(1)
        else:
            started = time.perf_counter()
            vectors = grow(ws, collection.id, size, words, rng)
            write_rate = round(size / (time.perf_counter() - started))
            ws.refresh_indexes("access")
            np.savez(grown, vectors=vectors, write_chunks_per_s=write_rate)
        callers = make_readers(ws)
        queries = [" ".join(rng.choice(words[:500], size=4)) for _ in range(QUERIES)]
        out: dict = {
            "chunks": size,
            "write_chunks_per_s": write_rate,
            "vector index": ws.indexes.backend(collection),
            "hybrid, unfiltered": timed(ws, queries, None),
        }
        for share, caller in callers.items():
            out[f"hybrid, {share} readable"] = {
                "search": timed(ws, queries, caller),
                "vector recall@10": recall(ws, vectors, queries[:50], caller),
                "allowed lookup": lookups(ws, collection.id, caller, 20 if size <= 100_000 else 3),
            }
        return out


def grow(ws: Workspace, collection_id: int, size: int, words: list[str], rng) -> np.ndarray:
    """``size`` one-chunk documents, document n restricted to group n % GROUPS, 1,000 a
    transaction; returns their vectors, row n document n's."""
    weights = 1 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    vectors = np.empty((size, ws.embedder().dim), dtype=np.float32)
    made = 0
    while made < size:
        with ws.store.transaction():
            for _ in range(min(1000, size - made)):
                body = " ".join(rng.choice(words, size=40, p=weights))
                vector = rng.normal(size=(1, ws.embedder().dim)).astype(np.float32)
                vector /= np.linalg.norm(vector)
                document = Document(f"doc:{made}", f"Document {made}", body, [], f"h{made}")
                document.access = (f"group:g{made % GROUPS}",)
                ws.store.replace_document(
                    collection_id, document, [Chunk(0, 0, len(body), body, 40)], vector
                )
                vectors[made] = vector[0]
                made += 1
    return vectors


def make_readers(ws: Workspace) -> dict[str, Caller]:
    callers = {}
    for share, groups in READERS.items():
        email = f"reader{groups}@example.com"
        if ws.store.user(email) is None:  # a kept workspace has its readers already
            ws.store.add_user(email)
        for g in range(groups):
            if f"g{g}" not in {x.name for x in ws.store.groups()}:
                ws.store.add_group(f"g{g}")
            ws.store.add_member(f"g{g}", email)
        callers[share] = Caller(email, user=email, principals=ws.store.identities(email))
    return callers


def timed(ws: Workspace, queries: list[str], caller: Caller | None) -> dict:
    for q in queries[:5]:  # warm caches and indexes
        ws.search(q, 10, ["access"], "hybrid", caller=caller)
    times = []
    for q in queries:
        started = time.perf_counter()
        ws.search(q, 10, ["access"], "hybrid", caller=caller)
        times.append((time.perf_counter() - started) * 1000)
    return latency_ms(times)


def recall(ws: Workspace, vectors: np.ndarray, queries: list[str], caller: Caller) -> float:
    """Recall@10 of the filtered vector search against NumPy's exact top ten among the
    documents ``caller`` may read (document n is read by members of group n % GROUPS)."""
    groups = {int(p.removeprefix("group:g")) for p in caller.principals if p.startswith("group:")}
    allowed = np.flatnonzero(np.isin(np.arange(len(vectors)) % GROUPS, sorted(groups)))
    sources = ws.store.sources(ws.collection("access").id)
    found = 0
    for query in queries:
        q = ws.embedder().embed_batch([query])[0]
        exact = allowed[np.argsort(-(vectors[allowed] @ q))[:10]]
        expected = {sources[f"doc:{n}"] for n in exact}
        hits = ws.search(query, 10, ["access"], "dense", caller=caller)
        found += len(expected & {h.document_id for h in hits})
    return round(found / (10 * len(queries)), 4)


def lookups(ws: Workspace, collection_id: int, caller: Caller, repeats: int) -> dict:
    """The allowed chunks through the access index, and through the row-by-row condition."""
    readable = ReadableBy(caller.principals)
    out = {}
    for name, node in (("access index", readable), ("row by row", Or((readable,)))):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            ids = ws.store.filtered_chunk_ids(collection_id, node)
            times.append((time.perf_counter() - started) * 1000)
        out[name] = latency_ms(times) | {"chunks": len(ids)}
    return out


if __name__ == "__main__":
    main()
