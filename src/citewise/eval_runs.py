"""Stored evaluation runs: every ``citewise eval retrieval`` and ``eval answers`` (CLI or
Python API) keeps a record in the workspace's store — its dataset, settings, summary
metrics and per-query results — which ``citewise eval runs`` lists and the operator
console charts (``/v1/admin/eval/runs``). The SQL is the store's (``EvalRunStore``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .answer_eval import AnswerReport
    from .evaluation import RetrievalReport

KINDS = ("retrieval", "answers")
# The metric each kind is followed by over time (its trend in the console).
MAIN_METRIC = {"retrieval": "nDCG@10", "answers": "token_f1"}
# Without gold answers an answer run has no token F1: the first of these it has.
ANSWER_FALLBACKS = ("token_f1", "citation_recall", "citation_precision", "marker_validity")
RANKED_KEPT = 10  # documents kept per query and mode: what ``--explain`` shows


def main_metric(kind: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """The run's headline figure: ``{"name", "mode", "value"}`` — for retrieval nDCG@10
    of the hybrid mode (else the first mode run), for answers token F1 (else the first of
    :data:`ANSWER_FALLBACKS` it has). ``value`` None when the run has none."""
    if kind == "retrieval":
        modes = list(metrics)
        mode = "hybrid" if "hybrid" in metrics else modes[0] if modes else None
        value = metrics[mode].get(MAIN_METRIC[kind]) if mode else None
        return {"name": MAIN_METRIC[kind], "mode": mode, "value": value}
    for name in ANSWER_FALLBACKS:
        if metrics.get(name) is not None:
            return {"name": name, "mode": None, "value": metrics[name]}
    return {"name": MAIN_METRIC["answers"], "mode": None, "value": None}


def retrieval_settings(
    workspace: Any, report: RetrievalReport, split: str, depth: int
) -> dict[str, Any]:
    settings = workspace.settings
    return {
        "collection": report.collection,
        "modes": list(report.means),
        "depth": depth,
        "split": split,
        "embedder": settings.embedder,
        "fusion": settings.fusion,
        "dense_weight": settings.dense_weight,
    }


def save_retrieval_run(
    workspace: Any,
    report: RetrievalReport,
    ranked: dict[str, dict[str, list[tuple[str, float]]]],
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    split: str,
    depth: int,
) -> int:
    """Store a retrieval run: per query its text, the judged documents, and per mode the
    first :data:`RANKED_KEPT` documents with their scores and the query's metrics."""
    results = []
    for qid, text in queries.items():
        modes = {}
        for mode in report.means:
            values = report.per_query[mode].get(qid, {})
            modes[mode] = {
                "ranked": [[doc, score] for doc, score in ranked[mode].get(qid, [])],
                "metrics": {label: values.get(m) for m, label in _measures().items()},
            }
        results.append({"id": qid, "query": text, "expected": qrels.get(qid, {}), "modes": modes})
    metrics = {mode: dict(means) for mode, means in report.means.items()}
    return int(
        workspace.store.add_eval_run(
            "retrieval",
            report.dataset,
            report.queries,
            retrieval_settings(workspace, report, split, depth)
            | {
                "unknown_documents": report.unknown_documents,
                "unknown_queries": report.unknown_queries,
            },
            metrics,
            results,
        )
    )


def save_answer_run(
    workspace: Any, report: AnswerReport, collections: list[str] | None, judge: Any
) -> int:
    """Store an answer run: per question its answer, cited sources and metrics."""
    settings = workspace.settings
    results = []
    for case in report.cases:
        values = asdict(case)
        results.append(
            {
                "id": values.pop("id"),
                "question": values.pop("question"),
                "answer": values.pop("answer"),
                "citations": values.pop("cited_sources"),
                "metrics": values,
            }
        )
    return int(
        workspace.store.add_eval_run(
            "answers",
            report.dataset,
            len(report.cases),
            {
                "model": report.model,
                "collections": collections or [],
                "mode": settings.mode,
                "top_k": settings.top_k,
                "answer_check": settings.answer_check,
                "fusion": settings.fusion,
                "embedder": settings.embedder,
                "judge": getattr(judge, "model_id", None) if judge is not None else None,
            },
            dict(report.means),
            results,
        )
    )


def _measures() -> dict[str, str]:
    from .evaluation import MEASURES

    return MEASURES
