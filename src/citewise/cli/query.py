from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from ..access import Caller, user_caller
from ..answering import AnswerOptions
from ..config import setting_from_env
from ..documents import Answer, Hit
from ..errors import InvalidInput
from ..filters import Filter, parse_cli
from ..retrieval import Mode
from ..workspace import Workspace
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
    metavar="FILTER",
    help="Filter on document metadata (repeatable; all must hold): language=python, "
    "source='docs/*', year>=2020 (also !=, >, <=, <), created_at<2024-07-01, "
    "'lang in en,de', 'lang not in fr', or JSON such as '{\"year\": {\"$gte\": 2020}}'. "
    'year=2024 matches the number and the text "2024".',
)


as_option = click.option(
    "--as",
    "caller",
    default=lambda: setting_from_env("user", str),
    help="Read as this user (an e-mail address from `citewise users`): only the documents "
    "they may read. Any other name charges the model calls to it (its budgets apply) and "
    "reads everything. Default: $CITEWISE_USER.",
)


def reader(workspace: Workspace, name: str) -> Caller | str:
    """Who ``--as NAME`` reads as: a user of the workspace, or (a name that is no
    address) the operator charged under that name. An address that is no user is an
    error rather than a read of everything (fail closed)."""
    if not name:
        return ""
    if workspace.store.user(name) is not None:
        return user_caller(workspace.store, name)
    if "@" in name:
        raise click.BadParameter(
            f"no user {name!r} in this workspace: `citewise users add {name}` makes one",
            param_hint="--as",
        )
    return name


def parse_where(pairs: tuple[str, ...]) -> Filter | None:
    """The filter of the ``--where`` options (filters.parse_cli), or a usage error."""
    try:
        return parse_cli(pairs)
    except InvalidInput as exc:
        raise click.BadParameter(str(exc), param_hint="--where") from None


@click.command()
@click.argument("query")
@click.option("-k", "--top", "k", default=5, show_default=True, help="How many passages.")
@click.option(
    "--mode", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid", show_default=True
)
@collections_option
@where_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@as_option
@click.pass_obj
def search(
    ctx: Context,
    query: str,
    k: int,
    mode: Mode,  # one of the choices above
    collections: tuple[str, ...],
    where: tuple[str, ...],
    as_json: bool,
    caller: str,
) -> None:
    """Show the passages that best match QUERY, with their sources."""
    workspace = ctx.workspace()
    who = reader(workspace, caller)
    hits = workspace.search(query, k, collections or None, mode, parse_where(where), who)
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
    "--no-cache",
    is_flag=True,
    help="Answer afresh, not from the response cache (response_cache = exact).",
)
@as_option
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
    no_cache: bool,
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
    who = reader(workspace, caller)
    options = AnswerOptions(no_cache=True) if no_cache else None
    stream = workspace.ask_stream(
        question, collections or None, parse_where(where), caller=who, options=options
    )
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
