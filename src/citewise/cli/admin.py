from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import click
from rich.table import Table

from ..config import FROM_ARGUMENT, PRECEDENCE, SETTINGS, env_only_values, env_var
from ..demo import DEMO_COLLECTION, DEMO_QUESTION, demo_items
from ..embedders import CATALOGUE
from ..errors import CitewiseError
from ..names import printable
from ..secrets import redact_url
from .common import Context, console, errors, esc, model_options, to_json
from .ingest import print_report, progress_bar
from .query import print_sources


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def status(ctx: Context, as_json: bool) -> None:
    """Collections, counts, embedder, disk size and unfinished or failed ingests."""
    report = ctx.workspace().status()
    if as_json:
        console.out(to_json(report))
        return
    console.print(
        f"Workspace {report.path} · {report.disk_bytes / 1e6:.1f} MB on disk", markup=False
    )
    table = Table(
        "collection",
        "documents",
        "restricted",
        "chunks",
        "tokens",
        "embedder",
        "vector index",
        "keyword index",
    )
    for c in report.collections:
        table.add_row(
            esc(c.name),
            str(c.documents),
            str(c.restricted_documents),
            str(c.chunks),
            f"{c.tokens:,}",
            esc(f"{c.embedder} ({c.dim}d)"),
            esc(c.vector_index),
            esc(c.keyword_index),
        )
    console.print(table)
    for run in report.runs:
        if run["status"] != "complete":
            counts = run["counts"]
            kept = (
                f", kept {counts['kept_documents']} documents stored before it stopped "
                f"({counts['kept_chunks']} chunks)"
                if "kept_documents" in counts
                else ""
            )
            console.print(
                f"[yellow]ingest into {esc(run['collection'])} started {esc(run['started_at'])} "
                f"did not finish ({esc(run['status'])}{kept}); run it again to pick up where "
                "it stopped[/yellow]"
            )
        for source, reason in run["failures"]:
            console.print(f"[red]failed[/red] {esc(printable(source))}: {esc(printable(reason))}")


@click.command()
@model_options
@click.pass_obj
def doctor(
    ctx: Context,
    provider: str | None,
    model: str | None,
    base_url: str | None,
    context_window: int | None,
) -> None:
    """Check the workspace, the models and the provider; say what to fix."""
    problems = 0

    def check(label: str, action: Callable[[], str]) -> None:
        nonlocal problems
        try:
            detail = action()
            console.print(f"[green]✓[/green] {esc(label)}: {esc(redact_url(detail))}")
        except (CitewiseError, OSError, ImportError) as exc:
            problems += 1
            console.print(f"[red]✗[/red] {esc(label)}: {esc(redact_url(str(exc)))}")

    workspace = ctx.workspace(
        provider=provider, model=model, base_url=base_url, context_window=context_window
    )
    check("workspace", lambda: _workspace_check(workspace))
    check(f"embedder {workspace.settings.embedder}", lambda: _embedder_check(workspace, None))
    for collection in workspace.collections():
        check(
            f"collection {collection.name}",
            partial(_embedder_check, workspace, collection.embedder),
        )
    check("usage ledger", workspace.ledger.ping)
    if workspace.settings.redis_url:
        check("rate limits (Redis)", lambda: _redis_check(workspace.settings))
    check("redaction", lambda: _redaction_check(workspace))
    for target in _chain_targets(workspace):
        check(f"chat model {target.spec}", partial(_target_check, workspace, target))
    if problems:
        raise SystemExit(1)


def _redis_check(settings: Any) -> str:
    from ..server.ratelimit import limiter_for

    limiter = limiter_for(settings.redis_url)
    try:
        limiter.ping()
    except Exception as exc:  # redis-py's errors: named, credentials masked by check()
        raise CitewiseError(f"Redis cannot be reached: {exc}") from exc
    finally:
        limiter.close()
    return f"{settings.redis_url} answers"


def _chain_targets(workspace: Any) -> list[Any]:
    """Every target the configured model may call: an alias's whole chain, or the one
    provider:model the settings name."""
    from ..providers.check import chain_targets

    return chain_targets(workspace)


def _redaction_check(workspace: Any) -> str:
    """What is masked before which targets; the recognizers load and find a test value.
    Names missing for want of a model is a note; a blocked kind that cannot be found
    refuses every request, so it is a problem."""
    from ..redaction import KINDS, RedactionPolicy, detector, masks

    settings = workspace.settings
    policy = RedactionPolicy.from_settings(settings)
    found = detector(policy)
    probe = "write to doctor@example.com"
    if "EMAIL" in policy.kinds and not found.find(probe):
        raise CitewiseError("the e-mail recognizer found nothing in a test sentence")
    for kind in sorted(policy.block & found.missing.keys()):
        raise CitewiseError(
            f"{kind} is in redact_block but cannot be detected ({found.missing[kind]}): "
            "every request to a redacted target is refused"
        )
    masked = [
        t.spec
        for t in _chain_targets(workspace)
        if masks(settings.redact, t.redact, local=t.provider == "local")
    ]
    kinds = [k for k in KINDS if k in policy.kinds and k not in found.missing]
    where = ", ".join(masked) if masked else "no target (redact is off or every target is local)"
    reasons: dict[str, list[str]] = {}
    for kind, why in found.missing.items():
        reasons.setdefault(why, []).append(kind)
    notes = "".join(f"; {', '.join(kinds)} not masked: {why}" for why, kinds in reasons.items())
    blocked = f"; refuses {', '.join(sorted(policy.block))}" if policy.block else ""
    return f"masks {', '.join(kinds)} before {where}{blocked}{notes}"


def _workspace_check(workspace: Any) -> str:
    problems = workspace.store.integrity_problems()
    if problems:
        raise CitewiseError("; ".join(problems))
    return f"{workspace.path} is consistent; store: {workspace.store.describe()}"


def _embedder_check(workspace: Any, spec: str | None) -> str:
    embedder = workspace.embedder(spec)
    vector = embedder.embed_batch(["citewise doctor"])[0]
    compute = ""
    if hasattr(embedder, "int8"):  # the ONNX backend: say which model file runs
        compute = f", {'int8' if embedder.int8 else 'float32'}: {embedder.files[0]}"
    return f"{embedder.model_id} loads and embeds ({len(vector)} dimensions{compute})"


def _target_check(workspace: Any, target: Any) -> str:
    """One target of the chain, loaded and asked directly (no fallback hides it failing):
    the check the console's "Test this target" runs too (providers/check.py)."""
    from ..providers.check import target_check

    return target_check(
        workspace, target, note=lambda found: console.print(f"[green]✓[/green] {esc(found)}")
    )


@click.command()
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL",
    help="The PostgreSQL database to copy into (postgresql://user@host/db).",
)
@click.option(
    "--keep-config", is_flag=True, help="Copy only; the workspace keeps using its current store."
)
@click.pass_obj
def migrate(ctx: Context, target: str, keep_config: bool) -> None:
    """Copy the workspace's documents, vectors, keys, feedback and ledger to another store.

    Nothing is parsed or embedded again. Run it again after an interruption: documents
    already copied are skipped. Then the workspace uses the new store (unless --keep-config)."""
    from rich.progress import MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..storage import redacted

    workspace = ctx.workspace()
    columns = (TextColumn("[bold]Copying documents"), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task("copying", total=None)
        report = workspace.migrate(
            target, switch=not keep_config, progress=lambda source: bar.advance(task)
        )
    console.print(
        f"Copied {report.documents} documents ({report.chunks} chunks, vectors as stored) in "
        f"{report.collections} collections; {report.unchanged} were there already; "
        f"{report.keys} API keys, {report.feedback} feedback entries, {report.ledger_rows} "
        f"ledger rows, {report.budgets} budgets."
    )
    if not keep_config:
        console.print(f"The workspace now uses {redacted(target)}.", markup=False)


@click.command()
def models() -> None:
    """List the built-in embedding models and chat providers."""
    from ..providers import BUILTIN_PROVIDERS
    from ..providers.local import LOCAL_MODELS

    table = Table(
        "embedding model", "dimensions", "max tokens", "size", "license", "hub repository"
    )
    for m in CATALOGUE.values():
        table.add_row(
            m.name, str(m.dim), str(m.max_tokens), f"{m.size_mb:.0f} MB", m.license, m.hf_repo
        )
    console.print(table)
    console.print("Also: sentence-transformers:<model> and openai:<model> embedders.")
    console.print(
        f"Chat providers: {', '.join(BUILTIN_PROVIDERS)}; local models: {', '.join(LOCAL_MODELS)} or a .gguf path."
    )


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@click.pass_obj
def show_config(ctx: Context, as_json: bool) -> None:
    """Show every setting, its value, where that came from and its environment variable."""
    workspace = ctx.workspace()
    from_env = env_only_values()
    rows: list[dict[str, Any]] = []
    for setting in SETTINGS:
        if not setting.env_only:
            value = getattr(workspace.settings, setting.name)
            source = workspace.sources.get(setting.name, FROM_ARGUMENT)
        elif setting.name == "workspace":  # the one in use: the flag's, else the variable's
            value = str(workspace.path)
            source = FROM_ARGUMENT if ctx.workspace_dir else from_env[setting.name][1]
        else:
            value, source = from_env[setting.name]
        rows.append(
            {
                "setting": setting.name,
                "value": redact_url(value) if isinstance(value, str) else value,
                "source": source,
                "environment_variable": env_var(setting.name),
                "env_only": setting.env_only,
                "help": setting.help,
            }
        )
    if as_json:
        console.out(to_json(rows))
        return
    table = Table("setting", "value", "from", "environment variable", "meaning")
    for row in rows:
        table.add_row(
            row["setting"],
            esc(row["value"]),
            row["source"],
            row["environment_variable"] + (" (only)" if row["env_only"] else ""),
            esc(row["help"]),
        )
    console.print(table)
    console.print(
        f"{PRECEDENCE} Variables marked (only) are read from the environment alone: they "
        "belong to the process, not to one workspace.",
        markup=False,
    )


@click.command()
@model_options
@click.option("--question", default=DEMO_QUESTION, show_default=True)
@click.pass_obj
def demo(
    ctx: Context,
    provider: str | None,
    model: str | None,
    base_url: str | None,
    context_window: int | None,
    question: str,
) -> None:
    """Index Python's own language reference (offline) and answer a question from it."""
    workspace = ctx.workspace(
        provider=provider, model=model, base_url=base_url, context_window=context_window
    )
    errors.print(
        f"Indexing the Python language reference into {workspace.path} ({DEMO_COLLECTION})…",
        markup=False,
    )
    with progress_bar() as on_progress:
        report = workspace.add_items(demo_items(), DEMO_COLLECTION, on_progress)
    print_report(report)
    console.print(f"\n[bold]Q: {esc(question)}[/bold]\n")
    stream = workspace.ask_stream(question, [DEMO_COLLECTION])
    for delta in stream:
        console.out(delta, end="", highlight=False)
    console.out("")
    assert stream.answer is not None
    print_sources(stream.answer)


COMMANDS: list[Callable[..., Any]] = [status, doctor, migrate, models, show_config, demo]
