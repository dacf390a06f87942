from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..config import CONFIG_FILE
from ..connectors import BUILTIN_CONNECTORS
from ..ingest import IngestReport
from ..ingest import Progress as IngestProgress
from ..names import printable
from ..sources import NO_SUCH_PATH
from ..storage import redacted
from ..workspace import DEFAULT_COLLECTION, default_workspace_dir, init_workspace
from .common import Context, console, errors, esc

collection_option = click.option(
    "--collection",
    "-c",
    default=DEFAULT_COLLECTION,
    show_default=True,
    help="Collection to add to.",
)


@click.command()
@click.option(
    "--store",
    default="",
    metavar="URL",
    help="Keep the data in this PostgreSQL database (postgresql://user@host/db; the "
    "password from PGPASSWORD or ~/.pgpass) instead of the workspace's SQLite file.",
)
@click.pass_obj
def init(ctx: Context, store: str) -> None:
    """Create a workspace (other commands create one on first use)."""
    directory = ctx.workspace_dir or default_workspace_dir()
    init_workspace(directory, store=store)
    where = f"data in {redacted(store)}" if store else "data in its SQLite file"
    console.print(
        f"Workspace ready at {directory} ({where}; settings: {directory / CONFIG_FILE})",
        markup=False,
    )


source_option = click.option(
    "--source",
    "-s",
    type=click.Choice(sorted(BUILTIN_CONNECTORS)),
    default=None,
    help="Kind of source (default: detected from each path or URL).",
)
crawl_options = (
    click.option(
        "--max-pages", type=click.IntRange(min=1), help="Web: most pages to fetch (default 200)."
    ),
    click.option(
        "--max-depth",
        type=click.IntRange(min=0),
        help="Web: most links from the start page (default 3).",
    ),
    click.option(
        "--owner",
        help="Gmail and .eml mail: the mailbox owner's address, who may read its mail "
        "(default: the address most messages were delivered to).",
    ),
    click.option(
        "--include-spam-trash",
        is_flag=True,
        default=None,
        help="Gmail: also ingest Spam and Trash.",
    ),
    click.option(
        "--whole-workspace",
        is_flag=True,
        default=None,
        help="Notion: the export is the whole workspace; pages of trees missing from it are deleted.",
    ),
)


access_option = click.option(
    "--access",
    "access",
    multiple=True,
    metavar="WHO",
    help="Restrict every document written to these users or groups (an e-mail address, "
    "group:NAME; repeatable), replacing what the source says; 'open' opens them to everyone "
    "who reads the collection. Default: the source's own (Slack private channels and DMs "
    "their members, a mailbox its owner), else open.",
)


def connector_options(function: Any) -> Any:
    for option in reversed(crawl_options):
        function = option(function)
    return access_option(source_option(function))


def access_argument(access: tuple[str, ...]) -> tuple[str, ...] | Literal["open"] | None:
    """``--access`` values as Workspace.ingest takes them."""
    if not access:
        return None
    if "open" in access:
        if len(access) > 1:
            raise click.BadParameter("'open' cannot be combined with names", param_hint="--access")
        return "open"
    return access


@click.command()
@click.argument("paths", nargs=-1, required=True)
@collection_option
@connector_options
@click.pass_obj
def ingest(
    ctx: Context,
    /,
    paths: tuple[str, ...],
    collection: str,
    source: str | None,
    access: tuple[str, ...],
    **options: Any,
) -> None:
    """Add files, folders, exports (Slack, Notion, Gmail .mbox, Drive Takeout) or a website URL.

    Files: Markdown, text, reST, HTML (and saved .mht pages), PDF, DOCX, XLSX, PPTX, code, mail
    (.eml), transcripts (SRT, WebVTT, SBV, whisper). An export or a crawl is a snapshot: what vanished from it is deleted.
    """
    workspace = ctx.workspace()
    given = {k: v for k, v in options.items() if v is not None}
    with progress_bar() as on_progress:
        report = workspace.ingest(
            paths, collection, on_progress, source, access_argument(access), **given
        )
    print_report(report)
    exit_if_nothing_read(report)


@click.command()
@click.argument("paths", nargs=-1, required=True)
@collection_option
@connector_options
@click.pass_obj
def sync(
    ctx: Context,
    /,
    paths: tuple[str, ...],
    collection: str,
    source: str | None,
    access: tuple[str, ...],
    **options: Any,
) -> None:
    """Like ingest, and remove documents whose files are gone."""
    workspace = ctx.workspace()
    given = {k: v for k, v in options.items() if v is not None}
    with progress_bar() as on_progress:
        report = workspace.sync(
            paths, collection, on_progress, source, access_argument(access), **given
        )
    print_report(report)
    exit_if_nothing_read(report)


def exit_if_nothing_read(report: IngestReport) -> None:
    """Exit status 1 when a given path does not exist or every input failed, so scripts
    notice; a run that read something and skipped a bad file still succeeds."""
    missing = any(s.reason == NO_SUCH_PATH for s in report.skipped)
    read = report.added + report.updated + report.unchanged
    if missing or (report.failed and not read):
        raise SystemExit(1)


@click.command()
@click.option("--collection", "-c", default=DEFAULT_COLLECTION, show_default=True)
@click.option("--embedder", help="Embed with this model instead (see `citewise models`).")
@click.pass_obj
def reindex(ctx: Context, collection: str, embedder: str | None) -> None:
    """Re-embed a collection and rebuild its full-text index."""
    with console.status(f"Re-embedding {esc(collection)}…"):
        count = ctx.workspace().reindex(collection, embedder)
    console.print(f"Re-embedded {count} chunks in {collection}.", markup=False)


@contextmanager
def progress_bar() -> Any:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[chunks]} chunks"),
        TextColumn("{task.fields[rate]} tok/s"),
        TextColumn("{task.fields[audio]}"),
        TextColumn("{task.fields[file]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task("Ingesting", total=None, chunks=0, rate="-", audio="", file="")
        state = {"chunks": 0, "audio": 0.0}

        def on_progress(event: IngestProgress) -> None:
            elapsed = bar.tasks[task].elapsed or 0
            rate = f"{event.tokens / elapsed:,.0f}" if elapsed > 0 and event.tokens else "-"
            if event.outcome == "embedding":  # a long file, part embedded: the bar moves
                eta = f", {event.eta_seconds:,.0f}s left" if event.eta_seconds is not None else ""
                bar.update(
                    task,
                    total=event.total,
                    completed=event.done + event.chunks_done / event.chunks_total,
                    rate=rate,
                    file=f"{esc(printable(Path(event.source).name))} "
                    f"{event.chunks_done:,}/{event.chunks_total:,} chunks{eta}",
                )
                return
            state["chunks"] += event.chunks
            state["audio"] += event.audio_seconds
            # Recordings: minutes transcribed, and the real-time factor of the run so far.
            audio = (
                f"{state['audio'] / 60:,.1f} audio min, real-time factor "
                f"{elapsed / state['audio']:.3f}"
                if state["audio"]
                else ""
            )
            bar.update(
                task,
                total=event.total,
                completed=event.done,
                chunks=state["chunks"],
                rate=rate,
                audio=audio,
                file="",
            )

        yield on_progress


def print_report(report: IngestReport) -> None:
    """One count per input (a file added with a problem in part of it is added, and its
    problems are listed as warnings), then every problem on a line of its own: names and
    reasons with control characters escaped, so a name holding a newline stays one line."""
    parts = [f"added {report.added}", f"updated {report.updated}", f"unchanged {report.unchanged}"]
    if report.deleted:
        parts.append(f"deleted {report.deleted}")
    parts.append(f"failed {len(report.failed)}")
    if report.warned:  # of those added or updated
        parts.append(f"{report.warned} stored with warnings")
    if report.skipped:
        parts.append(f"skipped {len(report.skipped)}")
    rate = report.tokens / report.seconds if report.seconds else 0
    audio = ""
    if report.audio_seconds:
        audio = (
            f" · {report.audio_seconds / 60:,.1f} min of recordings transcribed "
            f"(real-time factor {report.seconds / report.audio_seconds:.3f})"
        )
    console.print(
        f"{', '.join(parts)} · {report.chunks} chunks, {report.tokens:,} tokens "
        f"in {report.seconds:.1f}s ({rate:,.0f} tokens/s){audio}"
    )
    for note in report.notes:  # "kept 3 documents outside this export's dates …"
        console.print(note, markup=False)
    for label, items in (
        ("[red]failed[/red]", report.failed),
        ("[yellow]warning[/yellow]", report.warnings),
        ("[yellow]skipped[/yellow]", report.skipped),
    ):
        for item in items:
            errors.print(f"{label} {esc(printable(item.source))}: {esc(printable(item.reason))}")


COMMANDS: list[Callable[..., Any]] = [init, ingest, sync, reindex]
