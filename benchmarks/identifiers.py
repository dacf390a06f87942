"""Exact identifiers first: hybrid search before and after the exact-match pass.

    python benchmarks/identifiers.py [--datasets DIR] [--workspaces DIR] [--json FILE]

In one run on one machine, each query's candidates are found once and ranked both ways —
``RetrievalSettings(exact_match=False)`` (before: the fusion alone) and the default (after:
passages containing the query's identifiers and quoted phrases first):

* **identifiers**: the 30 queries of ``benchmarks/data/identifiers/`` (notes written for
  this benchmark, most in near-identical pairs told apart only by a code or a phrase): how
  often the right note is first, out of 30, and its mean reciprocal rank, for bm25, dense
  and hybrid; hybrid again with the keyword side served by the bm25s index (the path of
  collections above ``sparse_threshold``);
* **scifact** (train) and **cisi** (test): nDCG@10 of bm25, dense and hybrid before and
  after, and how many queries the pass fires on (identifiers in SciFact's claims are gene
  and protein names; CISI's quotes are scare quotes in pasted abstracts);
* **tried**, on the same candidates, not adopted: a bonus of half the top score per match
  (exact matches no longer always first), the fusion's weight moved to the keyword side
  instead of a bonus, and the pass on queries of any length (no ``EXACT_MAX_TERMS``).

Workspaces are ``<DIR>/citewise-bench-<name>``, reused (SciFact takes minutes to embed).
Documents are judged by their best passage, as ``citewise eval retrieval`` judges them.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from _stats import measured_on
from citewise import Workspace
from citewise.evaluation import BeirDataset, document_run, evaluate_run, load_beir
from citewise.index.sparse import SparseIndexes
from citewise.retrieval import (
    EXACT_MAX_TERMS,
    Candidates,
    Ranked,
    RetrievalSettings,
    Retriever,
    exact_first,
    exact_terms,
)
from citewise.storage import Collection
from retrieval_quality import DATASETS, dataset_parser

HERE = Path(__file__).resolve().parent
IDENTIFIERS = HERE / "data" / "identifiers"
DEPTH = 100
TARGET_FIRST = 29  # of 30: hybrid puts the right note first
TOLERANCE = 0.005  # nDCG@10 on SciFact and CISI: hybrid after within this of before
BEFORE, AFTER = RetrievalSettings(exact_match=False), RetrievalSettings()
LEANING_DENSE_WEIGHT = 0.25  # a tried variant: the vector side's weight for such queries
UNLIMITED = "tried: no query-length limit"  # the pass on queries of any length
Rank = Callable[[Candidates], list[Ranked]]


def main() -> None:
    args = dataset_parser("Workspaces are <DIR>/citewise-bench-<name> (reused).").parse_args()
    results: dict[str, dict] = {
        "identifiers": identifier_rows(args.workspaces / "citewise-bench-identifiers")
    }
    for name, split in DATASETS.items():
        root = args.datasets / name
        if not (root / "corpus.jsonl").exists():
            sys.exit(f"dataset not found at {root}")
        results[name] = dataset_rows(name, root, split, args.workspaces / f"citewise-bench-{name}")
    results["targets"] = targets(results)
    print(f"\ntargets: {results['targets']}")
    if args.json:
        args.json.write_text(json.dumps(results | {"measured": measured_on()}, indent=2) + "\n")


def rankings(retriever: Retriever) -> dict[str, Rank]:
    """Each row's ranking of one query's candidates: the single modes (their own lists,
    no exact-match pass: it is hybrid's), hybrid before and after, and two variants
    tried and not adopted."""

    def variant(weight: float, max_terms: int | None = EXACT_MAX_TERMS) -> Rank:
        def rank(found: Candidates) -> list[Ranked]:
            ranked, terms = retriever.rank(found, BEFORE), exact_terms(found.query, max_terms)
            if not (terms and ranked):
                return ranked
            return exact_first(ranked, retriever.passage_texts(ranked), terms, weight)

        return rank

    def keyword_leaning(found: Candidates) -> list[Ranked]:
        """The issue's other suggestion: the fusion's weight moved to the keyword side."""
        weight = LEANING_DENSE_WEIGHT if exact_terms(found.query) else AFTER.dense_weight
        return retriever.rank(found, replace(BEFORE, dense_weight=weight))

    return {
        "bm25": lambda f: retriever.rank(Candidates(f.bm25, []), AFTER),
        "dense": lambda f: retriever.rank(Candidates([], f.dense), AFTER),
        "hybrid before": lambda f: retriever.rank(f, BEFORE),
        "hybrid after": lambda f: retriever.rank(f, AFTER),
        "tried: bonus 0.5 x the top score": variant(0.5),
        f"tried: dense weight {LEANING_DENSE_WEIGHT}, no bonus": keyword_leaning,
        UNLIMITED: variant(1.0, None),
    }


# -- the identifier set ------------------------------------------------------------------


def identifier_rows(workspace: Path) -> dict[str, dict]:
    queries = [json.loads(line) for line in (IDENTIFIERS / "queries.jsonl").open() if line.strip()]
    print(f"## identifiers ({len(queries)} queries)")
    with Workspace.open(workspace) as ws:
        report = ws.ingest([IDENTIFIERS / "notes"], collection="identifiers")
        print(f"ingest: +{report.added} ={report.unchanged} in {report.seconds:.1f}s")
        collections = ws.collections(["identifiers"])
        retriever = ws.retriever()
        rows = {
            label: first_places(ws, retriever, collections, queries, rank)
            for label, rank in rankings(retriever).items()
        }
        with tempfile.TemporaryDirectory() as directory:
            # The same collection with its keyword side served by a bm25s index.
            retriever.sparse = SparseIndexes(ws.store, Path(directory), threshold=0)
            assert retriever.sparse.refresh(collections[0])
            for label in ("hybrid before", "hybrid after"):
                rank = rankings(retriever)[label]
                rows[f"{label}, bm25s keyword index"] = first_places(
                    ws, retriever, collections, queries, rank
                )
    for label, row in rows.items():
        print(f"{label:36s} first {row['first']}/{len(queries)}  MRR {row['MRR']:.3f}")
        for miss in row["missed"]:
            print(f"    missed: {miss}")
    return rows


def first_places(
    ws: Workspace,
    retriever: Retriever,
    collections: list[Collection],
    queries: list[dict[str, str]],
    rank: Rank,
) -> dict:
    """How often the right note is first, the mean reciprocal rank of its best passage,
    and the queries that missed (with the note ranked first instead)."""
    first, reciprocal, missed = 0, 0.0, []
    for query in queries:
        ranked = rank(retriever.find(query["query"], collections, DEPTH))
        sources = ws.store.chunk_sources([r.chunk_id for r in ranked])
        notes = list(dict.fromkeys(Path(sources[r.chunk_id]).name for r in ranked))
        position = notes.index(query["source"]) + 1 if query["source"] in notes else None
        first += position == 1
        reciprocal += 1 / position if position else 0.0
        if position != 1:
            missed.append(f"{query['query']!r}: {notes[0] if notes else '-'} first")
    return {"first": first, "MRR": round(reciprocal / len(queries), 4), "missed": missed}


# -- SciFact and CISI --------------------------------------------------------------------


def dataset_rows(name: str, root: Path, split: str, workspace: Path) -> dict[str, dict]:
    print(f"\n## {name} ({split} split)")
    data = load_beir(root, split)
    with Workspace.open(workspace) as ws:
        report = ws.add_items(data.corpus_items(), name)
        print(f"ingest: +{report.added} ={report.unchanged} in {report.seconds:.1f}s")
        collection = ws.collection(name, create=False)
        ws.store.set_collection_settings(collection.id, None, {})  # the defaults, never tuned
        retriever, collections = ws.retriever(), ws.collections([name])
        found = {q: retriever.find(t, collections, DEPTH) for q, t in data.queries.items()}
        fired = sorted(q for q, t in data.queries.items() if exact_terms(t))
        fired_unlimited = sorted(q for q, t in data.queries.items() if exact_terms(t, None))
        rows = {}
        for label, rank in rankings(retriever).items():
            run, seconds = document_runs(ws, found, rank)
            rows[label] = scored(data, run, fired, fired_unlimited, seconds)
    print(
        f"the exact-match pass fires on {len(fired)} of {len(data.queries)} queries, "
        f"on {len(fired_unlimited)} without the query-length limit"
    )
    rows["hybrid after"]["fired on"] = f"{len(fired)} of {len(data.queries)} queries"
    rows[UNLIMITED]["fired on"] = f"{len(fired_unlimited)} of {len(data.queries)} queries"
    for label, row in rows.items():
        print(
            f"{label:40s} nDCG@10 {row['nDCG@10']:.4f}  on those queries "
            f"{row['nDCG@10, fired queries']} / without the limit "
            f"{row['nDCG@10, fired without the limit']}  rank p50 {row['rank p50 ms, fired']} ms"
        )
    return rows


def document_runs(
    ws: Workspace, found: dict[str, Candidates], rank: Rank
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Each query's documents scored by their best passage, and each ranking's seconds."""
    run, seconds = {}, {}
    for qid, candidates in found.items():
        started = time.perf_counter()
        ranked = rank(candidates)[:DEPTH]
        seconds[qid] = time.perf_counter() - started
        hits = ws.store.hits([r.chunk_id for r in ranked])
        run[qid] = document_run(
            [replace(hits[r.chunk_id], score=r.score) for r in ranked if r.chunk_id in hits]
        )
    return run, seconds


def scored(
    data: BeirDataset,
    run: dict[str, dict[str, float]],
    fired: list[str],
    fired_unlimited: list[str],
    seconds: dict[str, float],
) -> dict:
    """nDCG@10 on every query, on those the pass fires on, and on those it would fire on
    without the query-length limit; the median time to rank one of the latter (the
    fusion, and for the exact-match rows the texts read and matched)."""
    result = evaluate_run(data.qrels, run)
    per_query = result["per_query"]

    def mean_on(ids: list[str]) -> float | None:
        return round(statistics.mean(per_query[q]["ndcg_cut_10"] for q in ids), 4) if ids else None

    return {
        "nDCG@10": round(result["mean"]["nDCG@10"], 4),
        "nDCG@10, fired queries": mean_on(fired),
        "nDCG@10, fired without the limit": mean_on(fired_unlimited),
        "rank p50 ms, fired": (
            round(statistics.median(seconds[q] for q in fired_unlimited) * 1000, 2)
            if fired_unlimited
            else None
        ),
    }


def targets(results: dict[str, dict]) -> dict[str, bool]:
    found: dict[str, bool] = {
        f"identifiers: hybrid first >= {TARGET_FIRST}/30": (
            results["identifiers"]["hybrid after"]["first"] >= TARGET_FIRST
        )
    }
    for name in DATASETS:
        ndcg = {label: row["nDCG@10"] for label, row in results[name].items()}
        found[f"{name}: hybrid after within {TOLERANCE} of before"] = (
            abs(ndcg["hybrid after"] - ndcg["hybrid before"]) <= TOLERANCE
        )
        found[f"{name}: hybrid after >= max(bm25, dense)"] = ndcg["hybrid after"] >= max(
            ndcg["bm25"], ndcg["dense"]
        )
    return found


if __name__ == "__main__":
    main()
