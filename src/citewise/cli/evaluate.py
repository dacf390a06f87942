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
from ..eval_runs import KINDS, main_metric
from ..evaluation import MEASURES, MODES, QueryExplanation, evaluate_retrieval, explain_query
from .common import Context, console, errors, esc, model_options, to_json
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
@click.option(
    "--no-save", is_flag=True, help="Do not store the run in the workspace (citewise eval runs)."
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
    no_save: bool,
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
            workspace,
            dataset,
            collection,
            split,
            modes or MODES,
            progress=on_progress,
            save=not no_save,
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
    _stored(report.run_id)


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
@click.option(
    "--no-save", is_flag=True, help="Do not store the run in the workspace (citewise eval runs)."
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
    no_save: bool,
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
            save=not no_save,
        )
    table = Table(
        "measure", "value", title=f"{len(report.cases)} questions · model {esc(report.model)}"
    )
    for name, value in report.means.items():
        table.add_row(name.replace("_", " "), f"{value:.3f}")
    console.print(table)
    _save(report, output or workspace.path / "eval" / f"answers-{_stamp()}.json")
    _stored(report.run_id)


@evaluate.command("runs")
@click.option("--kind", type=click.Choice(KINDS), help="Only runs of this kind.")
@click.option("--limit", default=20, show_default=True, type=int, help="Newest runs shown.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.pass_obj
def runs(ctx: Context, kind: str | None, limit: int, as_json: bool) -> None:
    """The stored evaluation runs, newest first, with their main metric."""
    stored = [
        run | {"main_metric": main_metric(run["kind"], run["metrics"])}
        for run in ctx.workspace().store.eval_runs(max(limit, 0), kind)
    ]
    if as_json:
        click.echo(to_json(stored))
        return
    if not stored:
        console.print(
            "No evaluation runs yet: run `citewise eval retrieval DATASET`.", markup=False
        )
        return
    table = Table("id", "date", "kind", "dataset", "queries", "main metric")
    for run in stored:
        main = run["main_metric"]
        label = main["name"] + (f" ({main['mode']})" if main["mode"] else "")
        value = "–" if main["value"] is None else f"{main['value']:.3f}"
        table.add_row(
            str(run["id"]),
            esc(run["created"]),
            run["kind"],
            esc(run["dataset"]),
            str(run["queries"]),
            f"{esc(label)} {value}",
        )
    console.print(table)


@evaluate.command("show")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.pass_obj
def show(ctx: Context, run_id: int, as_json: bool) -> None:
    """One stored run: its settings, metrics and per-query results."""
    run = ctx.workspace().store.eval_run(run_id)
    if run is None:
        raise click.ClickException(f"no evaluation run {run_id} (see `citewise eval runs`)")
    if as_json:
        click.echo(to_json(run))
        return
    console.print(
        f"[bold]run {run['id']}[/bold] · {run['kind']} · {esc(run['dataset'])} · "
        f"{run['queries']} queries · {esc(run['created'])}"
    )
    settings = ", ".join(f"{k}={v}" for k, v in run["settings"].items())
    console.print(f"settings: {settings}", markup=False)
    if run["kind"] == "retrieval":
        table = Table("mode", *MEASURES.values())
        for mode, means in run["metrics"].items():
            table.add_row(mode, *(f"{means[label]:.3f}" for label in MEASURES.values()))
        console.print(table)
        queries = Table("id", "query", *run["metrics"])
        for result in run["results"]:
            queries.add_row(
                esc(result["id"]),
                esc(result["query"]),
                *(
                    _value(result["modes"][mode]["metrics"].get("nDCG@10"))
                    for mode in run["metrics"]
                ),
            )
        queries.title = "nDCG@10 per query"
        console.print(queries)
        return
    table = Table("measure", "value")
    for name, value in run["metrics"].items():
        table.add_row(name.replace("_", " "), f"{value:.3f}")
    console.print(table)
    questions = Table("id", "question", "refused", "token F1", "cited")
    for result in run["results"]:
        questions.add_row(
            esc(result["id"]),
            esc(result["question"]),
            "yes" if result["metrics"]["refused"] else "",
            _value(result["metrics"].get("token_f1")),
            esc(", ".join(result["citations"])),
        )
    console.print(questions)


def _value(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _stored(run_id: int | None) -> None:
    if run_id is not None:
        console.print(f"Stored as run {run_id} (citewise eval show {run_id}).", markup=False)


def _save(report: Any, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(asdict(report), indent=1) + "\n", encoding="utf-8")
    console.print(f"Per-question results: {output}", markup=False)


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


COMMANDS: list[Callable[..., Any]] = [evaluate]
