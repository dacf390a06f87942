from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ..extraction import Extraction
from ..structured import schema_of
from .common import Context, console, errors, esc, model_options, one_line
from .query import as_option, collections_option, parse_where, reader, where_option


@click.command()
@click.argument("instruction")
@click.option(
    "--schema",
    "schema_text",
    required=True,
    metavar="FILE_OR_JSON",
    help="The JSON Schema of what to extract: a .json file, or the schema as inline JSON.",
)
@collections_option
@where_option
@model_options
@click.option(
    "--retries",
    default=2,
    show_default=True,
    type=click.IntRange(min=0),
    help="Ask again this many times when a reply breaks the schema.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole extraction as JSON.")
@as_option
@click.pass_obj
def extract(
    ctx: Context,
    instruction: str,
    schema_text: str,
    collections: tuple[str, ...],
    where: tuple[str, ...],
    provider: str | None,
    model: str | None,
    base_url: str | None,
    context_window: int | None,
    retries: int,
    as_json: bool,
    caller: str,
) -> None:
    """Extract data shaped by a JSON Schema from your documents, each field citing its
    sources: INSTRUCTION finds the passages, --schema says what to fill in."""
    schema = read_schema(schema_text)
    workspace = ctx.workspace(
        provider=provider, model=model, base_url=base_url, context_window=context_window
    )
    extraction = workspace.extract(
        instruction,
        schema,
        collections or None,
        parse_where(where),
        reader(workspace, caller),
        retries=retries,
    )
    if as_json:
        console.out(extraction.to_json())
        return
    console.out(json.dumps(extraction.data, indent=2, ensure_ascii=False))
    print_field_sources(extraction)
    for warning in extraction.warnings:
        errors.print(f"[yellow]warning:[/yellow] {esc(warning)}")


def read_schema(text: str) -> dict[str, Any]:
    """``--schema``: inline JSON when it starts with ``{``, else a file to read; either
    must hold a valid JSON Schema, else a usage error naming it."""
    inline = text.lstrip().startswith("{")
    label = "the inline schema" if inline else text
    schema = _parsed(text if inline else _schema_file(text), label)
    try:
        schema_of(label, schema)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--schema") from exc
    if not inline:  # the schema's name in the model call and its errors, unless it has one
        schema.setdefault("title", Path(text).stem)
    return schema


def _schema_file(name: str) -> str:
    path = Path(name).expanduser()
    if not path.is_file():
        raise click.BadParameter(f"no such schema file: {name}", param_hint="--schema")
    return path.read_text(encoding="utf-8")


def _parsed(source: str, label: str) -> dict[str, Any]:
    try:
        schema = json.loads(source)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"{label} is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            param_hint="--schema",
        ) from exc
    if not isinstance(schema, dict):
        raise click.BadParameter(f"{label} is not a JSON Schema object", param_hint="--schema")
    return schema


def print_field_sources(extraction: Extraction) -> None:
    if not extraction.citations:
        return
    console.print("\n[bold]Sources[/bold]")
    for name, citations in extraction.citations.items():
        console.print(f"{name}:", markup=False)
        for citation in citations:
            hit = citation.hit
            console.print(
                f"  [{citation.number}] {hit.title} — {hit.url or hit.source} ({hit.location})",
                markup=False,
            )
            console.print(f"      “{one_line(citation.quote, 240)}”", markup=False)


COMMANDS: list[Callable[..., Any]] = [extract]
