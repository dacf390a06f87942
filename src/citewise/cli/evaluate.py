from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ..answer_eval import evaluate_answers
from ..config import setting_from_env
from ..evaluation import MEASURES, MODES, QueryExplanation, evaluate_retrieval, explain_query
from .common import Context, console, errors, esc, model_options
from .ingest import progress_bar


@click.group("eval")
def evaluate() -> None:
    """Measure retrieval and answer quality on labelled data."""


@evaluate.command("retrieval")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--collection",
    "-c",
    help="Collection to evaluate (default: beir-<name> for BEIR, else default).",
)
@click.option("--split", default="train", show_default=True, help="BEIR qrels split.")
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(MODES),
    help="Modes to evaluate (default: all).",
)
@click.option(
    "--output", type=click.Path(path_type=Path), help="Where to save per-query results (JSON)."
)
@click.option(
    "--explain",
    "query_id",
    help="Show one query: each mode's top documents and where the relevant ones sit.",
)
@click.pass_obj
def retrieval(
    ctx: Context,
    dataset: Path,
    collection: str | None,
    split: str,
    modes: tuple[str, ...],
    output: Path | None,
    query_id: str | None,
) -> None:
    """nDCG@10, Recall@10/@100 and MRR@10 per retrieval mode on DATASET.

    DATASET is a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or a JSONL file of
    {"query": ..., "relevant": [source, ...]} lines judged against an existing collection.
    """
    workspace = ctx.workspace()
    if query_id is not None:
        _print_explanation(
            explain_query(workspace, dataset, query_id, collection, split, modes or MODES)
        )
        return
    with progress_bar() as on_progress:
        report = evaluate_retrieval(
            workspace, dataset, collection, split, modes or MODES, progress=on_progress
        )
    table = Table(
        "mode",
        *MEASURES.values(),
        title=f"{report.queries} queries · collection {esc(report.collection)}",
    )
    for mode, means in report.means.items():
        table.add_row(mode, *(f"{means[label]:.3f}" for label in MEASURES.values()))
    console.print(table)
    if report.unknown_documents or report.unknown_queries:
        errors.print(
            f"[yellow]warning:[/yellow] {report.unknown_documents} judged documents are not in the collection, "
            f"{report.unknown_queries} judged queries are missing from queries.jsonl; they count as misses"
        )
    _save(report, output or workspace.path / "eval" / f"retrieval-{_stamp()}.json")


def _print_explanation(explained: QueryExplanation) -> None:
    console.print(f"[bold]{esc(explained.query_id)}[/bold]: {esc(explained.query)}")
    relevant = ", ".join(f"{d} ({g})" for d, g in explained.relevant.items())
    console.print(f"relevant: {relevant}", markup=False)
    for mode, result in explained.modes.items():
        table = Table(
            "rank", "document", "score", "relevant", title=f"{mode} · nDCG@10 {result.ndcg10:.3f}"
        )
        for rank, doc in enumerate(result.top, start=1):
            table.add_row(
                str(rank),
                esc(doc.document),
                f"{doc.score:.4f}",
                str(doc.relevance) if doc.relevance else "",
            )
        console.print(table)
        for document, position in result.ranks.items():
            if position is None or position > len(result.top):
                where = f"rank {position}" if position else "not in the first 100"
                console.print(f"  missed: {document} — {where}", markup=False)


@evaluate.command("answers")
@click.argument("questions", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--collection", "-c", "collections", multiple=True, help="Limit to these collections."
)
@click.option(
    "--judge-provider", help="Also rate faithfulness with this provider (local, openai, anthropic)."
)
@click.option("--judge-model", help="The judge's model.")
@click.option(
    "--output", type=click.Path(path_type=Path), help="Where to save per-question results (JSON)."
)
@model_options
@click.option(
    "--as",
    "caller",
    default=lambda: setting_from_env("user", str),
    help="Charge the model calls (answers and judge) to this user or key name.",
)
@click.pass_obj
def answers(
    ctx: Context,
    questions: Path,
    collections: tuple[str, ...],
    judge_provider: str | None,
    judge_model: str | None,
    output: Path | None,
    provider: str | None,
    model: str | None,
    base_url: str | None,
    context_window: int | None,
    caller: str,
) -> None:
    """Answer correctness, citation precision/recall and refusals on QUESTIONS (JSONL).

    Each line: {"question": ..., "answers": [...], "sources": [...]} or, for a question
    the documents cannot answer, {"question": ..., "answerable": false}.
    """
    workspace = ctx.workspace(
        provider=provider, model=model, base_url=base_url, context_window=context_window
    )
    judge = None
    if judge_provider:
        from dataclasses import replace

        judge_settings = replace(
            workspace.settings, provider=judge_provider, model=judge_model or ""
        )
        judge = workspace.chat_model(judge_settings)  # its calls are in the ledger too
    with console.status("Answering…") as status:
        report = evaluate_answers(
            workspace,
            questions,
            list(collections) or None,
            judge,
            lambda done, total: status.update(f"Answering… {done}/{total}"),
            caller,
        )
    table = Table(
        "measure", "value", title=f"{len(report.cases)} questions · model {esc(report.model)}"
    )
    for name, value in report.means.items():
        table.add_row(name.replace("_", " "), f"{value:.3f}")
    console.print(table)
    _save(report, output or workspace.path / "eval" / f"answers-{_stamp()}.json")


def _save(report: Any, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(asdict(report), indent=1) + "\n", encoding="utf-8")
    console.print(f"Per-question results: {output}", markup=False)


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


COMMANDS: list[Callable[..., Any]] = [evaluate]
