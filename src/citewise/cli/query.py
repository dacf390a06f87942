from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from ..config import setting_from_env
from ..documents import Answer, Hit
from ..retrieval import Mode
from .common import Context, console, errors, esc, model_options, one_line, to_json

collections_option = click.option(
    "--collection",
    "-c",
    "collections",
    multiple=True,
    help="Limit to these collections (repeatable).",
)
where_option = click.option(
    "--where",
    multiple=True,
    metavar="KEY=VALUE",
    help="Filter on document metadata, e.g. language=python or source='docs/*' (repeatable).",
)


def parse_where(pairs: tuple[str, ...]) -> dict[str, Any] | None:
    where: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--where")
        where[key.strip()] = value
    return where or None


@click.command()
@click.argument("query")
@click.option("-k", "--top", "k", default=5, show_default=True, help="How many passages.")
@click.option(
    "--mode", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid", show_default=True
)
@collections_option
@where_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def search(
    ctx: Context,
    query: str,
    k: int,
    mode: Mode,  # one of the choices above
    collections: tuple[str, ...],
    where: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show the passages that best match QUERY, with their sources."""
    hits = ctx.workspace().search(query, k, collections or None, mode, parse_where(where))
    if as_json:
        console.print_json(json.dumps([json.loads(to_json(h)) for h in hits]))
        return
    if not hits:
        console.print("No matching passages.")
    for rank, hit in enumerate(hits, start=1):
        print_hit(rank, hit)


def print_hit(rank: int, hit: Hit) -> None:
    console.print(
        f"[bold]{rank}. {esc(hit.title)}[/bold] [dim]({esc(hit.url or hit.source)} · "
        f"{esc(hit.location)} · score {hit.score:.3f})[/dim]"
    )
    console.print(f"   {one_line(hit.text, 300)}", markup=False)


@click.command()
@click.argument("question")
@collections_option
@where_option
@model_options
@click.option(
    "--agent",
    is_flag=True,
    help="Let the model search, read and search again before answering (mode = agent), for "
    "questions whose facts sit in several documents.",
)
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Show the token budget and retrieval details (in agent mode, each step).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the whole answer as JSON (no streaming)."
)
@click.option(
    "--as",
    "caller",
    default=lambda: setting_from_env("user", str),
    help="Charge the model calls to this user or key name (its budgets apply).",
)
@click.pass_obj
def ask(
    ctx: Context,
    question: str,
    collections: tuple[str, ...],
    where: tuple[str, ...],
    provider: str | None,
    model: str | None,
    base_url: str | None,
    context_window: int | None,
    agent: bool,
    verbose: bool,
    as_json: bool,
    caller: str,
) -> None:
    """Answer QUESTION from your documents, citing sources as [1], [2]."""
    workspace = ctx.workspace(
        provider=provider,
        model=model,
        base_url=base_url,
        context_window=context_window,
        mode="agent" if agent else None,
    )
    stream = workspace.ask_stream(question, collections or None, parse_where(where), caller=caller)
    for delta in stream:
        if not as_json:
            console.out(delta, end="", highlight=False)
    answer = stream.answer
    assert answer is not None
    if as_json:
        console.out(to_json(answer))
        return
    console.out("")
    print_sources(answer)
    for warning in answer.warnings:
        errors.print(f"[yellow]warning:[/yellow] {esc(warning)}")
    if verbose:
        print_steps(answer)
        print_budget(answer)


def print_sources(answer: Answer) -> None:
    if not answer.citations:
        return
    console.print("\n[bold]Sources[/bold]")
    for citation in answer.citations:
        hit = citation.hit
        console.print(
            f"[{citation.number}] {hit.title} — {hit.url or hit.source} ({hit.location})",
            markup=False,
        )
        console.print(f"    “{one_line(citation.quote, 240)}”", markup=False)


def print_steps(answer: Answer) -> None:
    """Agent mode's steps: each tool call, what it asked, what it found, what it cost."""
    if answer.steps:
        console.print("\n[bold]Steps[/bold]")
    for n, step in enumerate(answer.steps, start=1):
        asked = step.arguments.get("query", step.arguments.get("number"))
        call = f"{step.tool} {json.dumps(asked)}" if asked is not None else step.tool
        found = f"passages {step.passages}" if step.passages else "no passages"
        outcome = f"error: {step.error}" if step.error else found
        console.print(
            f"{n}. {call} → {outcome} · {step.prompt_tokens} prompt + "
            f"{step.completion_tokens} completion tokens",
            markup=False,
        )


def print_budget(answer: Answer) -> None:
    budget = answer.budget
    console.print(f"\n[dim]model {esc(answer.model)}[/dim]")
    if budget is None and not answer.steps:
        console.print("[dim]no passage was relevant enough; the model was not called[/dim]")
        return
    if budget is not None:
        console.print(
            f"[dim]context window {budget.context_window}: system+template "
            f"{budget.system_tokens}, question {budget.question_tokens}, passages "
            f"{sum(budget.passage_tokens)} {budget.passage_tokens}, answer reserve "
            f"{budget.answer_reserve} (total {budget.total}); {budget.dropped_passages} "
            "passages dropped to fit[/dim]"
        )
    estimated = " (estimated: the call was stopped early)" if answer.usage.estimated else ""
    console.print(
        f"[dim]usage: {answer.usage.prompt_tokens} prompt + {answer.usage.completion_tokens} "
        f"completion tokens{estimated}; answered by {esc(answer.target or 'no model')}, "
        f"finish reason {esc(answer.finish_reason)}[/dim]"
    )
    for attempt in answer.attempts:
        if attempt.status != "ok":
            console.print(
                f"[dim]  tried {esc(attempt.target)}: {esc(attempt.status)} ({esc(attempt.error)})[/dim]"
            )
    for n, hit in enumerate(answer.hits, start=1):
        console.print(
            f"[dim]  [{n}] score {hit.score:.3f} cosine {hit.cosine or 0:.3f} "
            f"bm25 #{hit.bm25_rank} dense #{hit.dense_rank} {esc(hit.title)}[/dim]"
        )


COMMANDS: list[Callable[..., Any]] = [search, ask]
