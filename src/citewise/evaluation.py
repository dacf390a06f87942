"""Retrieval evaluation on BEIR-format datasets (corpus.jsonl, queries.jsonl, qrels/*.tsv).

Chunk hits are aggregated to documents by their best chunk, since qrels judge
documents. Metrics come from trec_eval through ``pytrec_eval``
(``pip install 'citewise[bench]'``).
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

MEASURES = {"ndcg_cut_10": "nDCG@10", "recall_10": "Recall@10", "recall_100": "Recall@100",
            "recip_rank": "MRR@10"}  # fmt: skip


@dataclass
class BeirDataset:
    root: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def corpus_items(self) -> Iterator[SourceItem]:
        for line_no, record in _jsonl(self.root / "corpus.jsonl"):
            if "_id" not in record:
                raise CitewiseError(f"{self.root / 'corpus.jsonl'}:{line_no}: record has no _id")
            yield text_item(
                str(record["_id"]), record.get("title") or "", record.get("text") or "",
                {"beir_id": str(record["_id"])},
            )  # fmt: skip


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
    return BeirDataset(root, {q: queries[q] for q in qrels if q in queries}, qrels)


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line)
            except json.JSONDecodeError as exc:
                raise CitewiseError(f"{path}:{line_no}: bad JSON ({exc.msg})") from exc


def document_run(hits: list[Any], key: str = "source") -> dict[str, float]:
    """Best chunk score per document, as a trec run for one query."""
    run: dict[str, float] = {}
    for hit in hits:
        doc = getattr(hit, key)
        run[doc] = max(run.get(doc, float("-inf")), float(hit.score))
    return run


def evaluate_run(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
) -> dict[str, Any]:
    try:
        import pytrec_eval
    except ImportError as exc:
        raise CitewiseError(
            "pytrec_eval is not installed; install it with `pip install 'citewise[bench]'`"
        ) from exc
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
