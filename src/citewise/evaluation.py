"""Retrieval evaluation: BEIR datasets or a user's own labelled queries.

Datasets come in two shapes:

* a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``), whose
  corpus is ingested into a collection of its own (reused while unchanged);
* a JSONL file of ``{"query": ..., "relevant": [source, ...]}`` lines, judged against
  documents already in the workspace (``relevant`` names their sources: paths or ids).

Chunk hits are aggregated to documents by their best chunk, since judgements name
documents. Metrics come from trec_eval through ``pytrec_eval``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CitewiseError
from .sources import SourceItem, text_item

MEASURES = {
    "ndcg_cut_10": "nDCG@10",
    "recall_10": "Recall@10",
    "recall_100": "Recall@100",
    "recip_rank": "MRR@10",
}


@dataclass
class BeirDataset:
    root: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    unknown_queries: int = 0

    def corpus_items(self) -> Iterator[SourceItem]:
        for line_no, record in _jsonl(self.root / "corpus.jsonl"):
            if "_id" not in record:
                raise CitewiseError(f"{self.root / 'corpus.jsonl'}:{line_no}: record has no _id")
            yield text_item(
                str(record["_id"]),
                record.get("title") or "",
                record.get("text") or "",
                {"beir_id": str(record["_id"])},
            )


def load_beir(root: Path, split: str = "train") -> BeirDataset:
    for needed in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (root / needed).is_file():
            raise CitewiseError(
                f"{root / needed}: missing (a BEIR dataset has corpus, queries and qrels)"
            )
    queries = {str(r["_id"]): r["text"] for _, r in _jsonl(root / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    with (root / f"qrels/{split}.tsv").open(encoding="utf-8") as handle:
        for line_no, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if line_no == 1 and row and not row[-1].lstrip("-").isdigit():
                continue  # header
            if len(row) != 3:
                raise CitewiseError(f"{root}/qrels/{split}.tsv:{line_no}: expected 3 columns")
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    unknown = [q for q in qrels if q not in queries]
    for q in unknown:
        del qrels[q]
    return BeirDataset(root, {q: queries[q] for q in qrels}, qrels, len(unknown))


def load_labelled_queries(path: Path) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Queries and judgements from a JSONL of {"query", "relevant": [...]} lines."""
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for line_no, record in _jsonl(path):
        query, relevant = record.get("query"), record.get("relevant")
        if not isinstance(query, str) or not isinstance(relevant, list) or not relevant:
            raise CitewiseError(
                f'{path}:{line_no}: expected {{"query": "...", "relevant": ["source", ...]}}'
            )
        qid = str(record.get("id", line_no))
        queries[qid] = query
        qrels[qid] = {str(source): 1 for source in relevant}
    if not queries:
        raise CitewiseError(f"{path}: no queries")
    return queries, qrels


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as exc:
                raise CitewiseError(f"{path}:{line_no}: bad JSON ({exc.msg})") from exc


def document_run(hits: list[Any], key: str = "source", top: int = 1) -> dict[str, float]:
    """A document's score is the sum of its ``top`` best chunks' scores (1: its best chunk)."""
    scores: dict[str, list[float]] = {}
    for hit in hits:
        scores.setdefault(getattr(hit, key), []).append(float(hit.score))
    return {doc: sum(sorted(values, reverse=True)[:top]) for doc, values in scores.items()}


def evaluate_run(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
) -> dict[str, Any]:
    import pytrec_eval

    evaluator = pytrec_eval.RelevanceEvaluator(qrels, set(MEASURES))
    # MRR@10: reciprocal rank over the top 10 only.
    top10 = {q: dict(sorted(d.items(), key=lambda kv: -kv[1])[:10]) for q, d in run.items()}
    per_query = evaluator.evaluate(run)
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    for q, values in per_query.items():
        values["recip_rank"] = mrr.get(q, {}).get("recip_rank", 0.0)
    for q in qrels:
        per_query.setdefault(q, {m: 0.0 for m in MEASURES})
    means = {
        label: sum(v[m] for v in per_query.values()) / len(per_query)
        for m, label in MEASURES.items()
    }
    return {"mean": means, "per_query": per_query}


@dataclass
class RetrievalReport:
    dataset: str
    collection: str
    queries: int
    means: dict[str, dict[str, float]]  # mode -> measure label -> mean
    per_query: dict[str, dict[str, dict[str, float]]]  # mode -> query id -> measure -> value
    unknown_documents: int  # judged documents that are not in the collection
    unknown_queries: int  # judged queries missing from queries.jsonl
    run_id: int | None = None  # the stored run (citewise eval runs); None: not stored


MODES = ("bm25", "dense", "hybrid")


def judged_queries(
    workspace: Any, path: Path, collection: str | None, split: str, progress: Any
) -> tuple[dict[str, str], dict[str, dict[str, int]], str, int]:
    """Queries, judgements, the collection and the judged queries without text; a BEIR
    corpus is ingested first (unchanged documents cost a lookup)."""
    if path.is_dir():
        data = load_beir(path, split)
        collection = collection or f"beir-{path.name}"
        workspace.add_items(data.corpus_items(), collection, progress)
        return data.queries, data.qrels, collection, data.unknown_queries
    queries, qrels = load_labelled_queries(path)
    return queries, qrels, collection or "default", 0


def evaluate_retrieval(
    workspace: Any,
    path: Path,
    collection: str | None = None,
    split: str = "train",
    modes: tuple[str, ...] = MODES,
    depth: int = 100,
    progress: Any = None,
    save: bool = True,
) -> RetrievalReport:
    """Ingest (if BEIR) and evaluate every mode; per-query values are kept. With
    ``save`` the run is stored in the workspace (``run_id``; ``citewise eval runs``)."""
    from .eval_runs import RANKED_KEPT, save_retrieval_run

    queries, qrels, collection, unknown_queries = judged_queries(
        workspace, path, collection, split, progress
    )
    known = set(workspace.store.sources(workspace.collection(collection, create=False).id))
    unknown_documents = sum(1 for docs in qrels.values() for d in docs if d not in known)
    means, per_query = {}, {}
    ranked: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for mode in modes:
        run = {
            qid: document_run(workspace.search(text, depth, [collection], mode))
            for qid, text in queries.items()
        }
        result = evaluate_run(qrels, run)
        means[mode], per_query[mode] = result["mean"], result["per_query"]
        ranked[mode] = {
            qid: sorted(scores.items(), key=lambda kv: -kv[1])[:RANKED_KEPT]
            for qid, scores in run.items()
        }
    report = RetrievalReport(
        str(path), collection, len(queries), means, per_query, unknown_documents, unknown_queries
    )
    if save:
        report.run_id = save_retrieval_run(workspace, report, ranked, queries, qrels, split, depth)
    return report


@dataclass
class RankedDocument:
    document: str
    score: float
    relevance: int  # its judgement (0: not judged relevant)


@dataclass
class ModeExplanation:
    top: list[RankedDocument]  # the first documents this mode ranks
    ranks: dict[str, int | None]  # each relevant document's rank (None: not in the depth)
    ndcg10: float


@dataclass
class QueryExplanation:
    query_id: str
    query: str
    relevant: dict[str, int]
    modes: dict[str, ModeExplanation]


def explain_query(
    workspace: Any,
    path: Path,
    query_id: str,
    collection: str | None = None,
    split: str = "train",
    modes: tuple[str, ...] = MODES,
    top: int = 10,
    depth: int = 100,
) -> QueryExplanation:
    """One query under the microscope: each mode's top documents with their scores, and
    where each relevant document sits in each mode (the missed ones included)."""
    queries, qrels, collection, _ = judged_queries(workspace, path, collection, split, None)
    if query_id not in queries:
        known = ", ".join(list(queries)[:10])
        raise CitewiseError(f"no judged query {query_id!r} in {path} (some ids: {known})")
    relevant = {doc: grade for doc, grade in qrels[query_id].items() if grade > 0}
    explained = {}
    for mode in modes:
        scores = document_run(workspace.search(queries[query_id], depth, [collection], mode))
        ranking = sorted(scores, key=lambda doc: -scores[doc])
        ndcg = evaluate_run({query_id: qrels[query_id]}, {query_id: scores})["mean"]["nDCG@10"]
        explained[mode] = ModeExplanation(
            [RankedDocument(d, scores[d], relevant.get(d, 0)) for d in ranking[:top]],
            {d: ranking.index(d) + 1 if d in scores else None for d in relevant},
            ndcg,
        )
    return QueryExplanation(query_id, queries[query_id], relevant, explained)
