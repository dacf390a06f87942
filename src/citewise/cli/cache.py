"""``citewise cache``: the response cache of assistants with ``response_cache = "exact"``."""

from __future__ import annotations

import click

from .common import Context, console, errors, to_json


@click.group()
def cache() -> None:
    """The response cache: answers served again for the same question, caller and passages."""


@cache.command("clear")
@click.pass_obj
def clear(ctx: Context) -> None:
    """Drop every cached response (this replica's, on PostgreSQL)."""
    dropped = ctx.workspace().response_cache.clear()
    errors.print(f"Cleared {dropped} cached response{'s' if dropped != 1 else ''}.", markup=False)


@cache.command("stats")
@click.option("--since", help="Count hits at or after this ISO date or time (UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def stats(ctx: Context, since: str | None, as_json: bool) -> None:
    """Entries in the cache, and the hits the usage ledger recorded with what they saved."""
    workspace = ctx.workspace()
    held = workspace.response_cache.stats()
    hits = [row for row in workspace.ledger.rows(since) if row.cache_hit]
    summary = {
        "entries": held.entries,
        "expired": held.expired,
        "bytes": held.bytes,
        "hits": len(hits),
        "saved_usd": round(sum(row.saved_usd or 0.0 for row in hits), 6),
        "ttl_seconds": workspace.settings.response_cache_ttl,
        "max_entries": workspace.settings.response_cache_entries,
    }
    if as_json:
        console.out(to_json(summary))
        return
    for name, value in summary.items():
        console.print(f"{name.replace('_', ' ')}: {value}", markup=False)


COMMANDS = [cache]
