"""``citewise transcript``: clean a transcript, split it into chapters, label its passages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..parsers.transcript import clock
from ..transcripts import (
    FIRST_SENTENCE,
    METHODS,
    MIN_CHAPTER_SECONDS,
    ChapterProgress,
    CleanPassage,
    Transcript,
    chapters,
    classify,
    clean,
    load_transcript,
)
from .common import Context, console, errors, esc, model_options, one_line, to_json

collection_option = click.option(
    "--collection",
    "-c",
    default="default",
    show_default=True,
    help="Collection the recording or transcript was ingested into (else SOURCE is read "
    "as a file: a recording is transcribed first).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group("transcript")
def transcript_group() -> None:
    """Work on a recording's or transcript's passages: clean, chapters, classify.

    SOURCE is an ingested document (its path, URL or id) or a file. Every result keeps
    the original times, so it cites the second of the recording it came from.
    """


@transcript_group.command("clean")
@click.argument("source")
@collection_option
@click.option(
    "--format",
    "form",
    type=click.Choice(["text", "vtt", "srt", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@click.pass_obj
def clean_command(
    ctx: Context, source: str, collection: str, form: str, output: Path | None
) -> None:
    """Remove filler words ("um", "uh", ", you know,"), cut-off words and repeated words.

    The JSON lists each cut (kind, words, character offsets) beside the cleaned text and
    the passage's original start and end."""
    transcript = load_transcript(ctx.workspace(), source, collection)
    cleaned = clean(transcript)
    text = _clean_output(transcript, cleaned, form)
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    cuts = sum(len(c.cuts) for c in cleaned)
    errors.print(f"Wrote {output}: {len(cleaned)} passages, {cuts} cuts.", markup=False)


def _clean_output(transcript: Transcript, cleaned: Sequence[CleanPassage], form: str) -> str:
    kept = [c for c in cleaned if c.text]
    if form == "json":
        return (
            to_json(
                {
                    "source": transcript.source,
                    "title": transcript.title,
                    "passages": [_clean_json(c) for c in cleaned],
                }
            )
            + "\n"
        )
    if form == "srt":
        import srt

        composed: str = srt.compose(  # srt is untyped
            [
                srt.Subtitle(
                    n,
                    timedelta(seconds=c.passage.start),
                    timedelta(seconds=c.passage.end),
                    _said(c),
                )
                for n, c in enumerate(kept, start=1)
            ]
        )
        return composed
    if form == "vtt":
        lines = ["WEBVTT", ""]
        for c in kept:
            lines += [f"{clock(c.passage.start)}.000 --> {clock(c.passage.end)}.000", _said(c), ""]
        return "\n".join(lines)
    return "".join(f"[{clock(c.passage.start)}-{clock(c.passage.end)}] {_said(c)}\n" for c in kept)


def _said(c: CleanPassage) -> str:
    return f"{c.passage.speaker}: {c.text}" if c.passage.speaker else c.text


def _clean_json(c: CleanPassage) -> dict[str, Any]:
    p = c.passage
    return {
        "number": p.number,
        "start_seconds": p.start,
        "end_seconds": p.end,
        "speaker": p.speaker,
        "text": c.text,
        "original": p.text,
        "cuts": [{"kind": k.kind, "text": k.text, "start": k.start, "end": k.end} for k in c.cuts],
    }


@transcript_group.command("chapters")
@click.argument("source")
@collection_option
@click.option(
    "--count",
    "-n",
    type=click.IntRange(min=1),
    help="Exactly this many chapters (default: one per topic change found); refused, "
    "with the reason, when they cannot be made.",
)
@click.option(
    "--min-seconds",
    type=click.IntRange(min=0),
    help=f"Shortest chapter [default: {MIN_CHAPTER_SECONDS}, shortened as far as --count needs].",
)
@model_options
@json_option
@click.pass_obj
def chapters_command(
    ctx: Context,
    source: str,
    collection: str,
    count: int | None,
    min_seconds: int | None,
    provider: str | None,
    model: str | None,
    base_url: str | None,
    context_window: int | None,
    as_json: bool,
) -> None:
    """Split SOURCE where its topic changes and title each chapter with the chat model.

    A title the model left unfinished is replaced by the chapter's first sentence, and
    a note says which."""
    workspace = ctx.workspace(
        provider=provider, model=model, base_url=base_url, context_window=context_window
    )
    transcript = load_transcript(workspace, source, collection)
    with chapter_progress() as on_progress:
        found = chapters(
            transcript,
            workspace.embedder(),
            workspace.chat_model(),
            count,
            min_seconds,
            on_progress,
        )
    if as_json:
        click.echo(
            to_json(
                {
                    "source": transcript.source,
                    "min_seconds": found.min_seconds,
                    "notes": list(found.notes),
                    "chapters": [
                        {
                            "number": c.number,
                            "title": c.title,
                            "titled_by": c.titled_by,
                            "start_seconds": c.start,
                            "end_seconds": c.end,
                            "passages": list(c.passages),
                        }
                        for c in found.chapters
                    ],
                }
            )
        )
        _print_notes(found.notes)
        return
    n = len(found.chapters)
    console.print(f"[bold]{esc(transcript.title)}[/bold]: {n} chapter{'' if n == 1 else 's'}")
    for c in found.chapters:
        mark = " *" if c.titled_by == FIRST_SENTENCE else ""  # the note names them
        console.print(f"{clock(c.start)}-{clock(c.end)}  {c.title}{mark}", markup=False)
    _print_notes(found.notes)


def _print_notes(notes: Sequence[str]) -> None:
    for note in notes:
        errors.print(f"note: {note}", markup=False)


@contextmanager
def chapter_progress() -> Iterator[ChapterProgress]:
    """A progress bar on standard error (shown on a terminal): embedding the passages,
    then titling the chapters, one model call each."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task("Loading the models", total=None)

        def on_progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        yield on_progress


@transcript_group.command("classify")
@click.argument("source")
@collection_option
@click.option(
    "--labels",
    "-l",
    required=True,
    multiple=True,
    help="The labels, comma-separated or repeated: --labels pricing,bug,other.",
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="auto",
    show_default=True,
    help="model: the chat model, constrained to the labels; embeddings: the label "
    "nearest each passage; auto: embeddings for a local model, else model.",
)
@model_options
@json_option
@click.pass_obj
def classify_command(
    ctx: Context,
    source: str,
    collection: str,
    labels: tuple[str, ...],
    method: str,
    provider: str | None,
    model: str | None,
    base_url: str | None,
    context_window: int | None,
    as_json: bool,
) -> None:
    """Label each passage of SOURCE with one of the given labels."""
    workspace = ctx.workspace(
        provider=provider, model=model, base_url=base_url, context_window=context_window
    )
    transcript = load_transcript(workspace, source, collection)
    names = [name for group in labels for name in group.split(",")]
    labelled, used = classify(
        transcript, names, workspace.embedder(), workspace.chat_model(), method
    )
    if as_json:
        click.echo(
            to_json(
                {
                    "source": transcript.source,
                    "method": used,
                    "passages": [
                        {
                            "number": x.passage.number,
                            "start_seconds": x.passage.start,
                            "end_seconds": x.passage.end,
                            "label": x.label,
                            "score": x.score,
                        }
                        for x in labelled
                    ],
                }
            )
        )
        return
    console.print(
        f"[bold]{esc(transcript.title)}[/bold]: {len(labelled)} passages (by {esc(used)})"
    )
    for x in labelled:
        p = x.passage
        console.print(
            f"{clock(p.start)}-{clock(p.end)}  {x.label:<18} {one_line(p.text, 90)}", markup=False
        )


COMMANDS = [transcript_group]
