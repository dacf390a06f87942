"""``citewise usage`` and ``citewise budgets``: the usage ledger and spending limits."""

from __future__ import annotations

import click
from rich.table import Table

from ..ledger import GROUPS, METRICS, PERIODS, SUBJECT_KINDS, BudgetRule
from .common import Context, console, errors, esc, to_json


@click.command()
@click.option(
    "--by",
    "group_by",
    type=click.Choice(GROUPS),
    default="key",
    show_default=True,
    help="Group the calls by this.",
)
@click.option(
    "--since", help="Only calls at or after this ISO date or time (UTC), e.g. 2026-12-01."
)
@click.option("--key", help="Only the calls charged to this key or user.")
@click.option("--calls", is_flag=True, help="List every call instead of totals.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def usage(
    ctx: Context, group_by: str, since: str | None, key: str | None, calls: bool, as_json: bool
) -> None:
    """Model calls from the usage ledger: tokens, cost and status, by key, model or day."""
    ledger = ctx.workspace().ledger
    if calls:
        rows = ledger.rows(since, key)
        if as_json:
            console.out(to_json([row for row in rows]))
            return
        table = Table(
            "time",
            "key",
            "purpose",
            "target",
            "status",
            "prompt",
            "completion",
            "cost $",
            "seconds",
        )
        for r in rows:
            table.add_row(
                esc(r.at[:19]),
                esc(r.key or "-"),
                esc(r.purpose),
                esc(r.target),
                esc(r.status),
                f"{r.prompt_tokens}{'~' if r.estimated else ''}",
                str(r.completion_tokens),
                _usd(r.cost_usd),
                f"{r.latency_s:.2f}",
            )
        console.print(table)
        return
    summary = ledger.summary(group_by, since, key)
    if as_json:
        console.out(to_json(summary))
        return
    # Cancelled: stopped early on purpose (the answer checks, or the reader left).
    table = Table(
        group_by,
        "calls",
        "cancelled",
        "failed",
        "prompt tokens",
        "completion tokens",
        "cached",
        "cost $",
    )
    for row in summary:
        cost = _usd(row["cost_usd"]) + (" + unpriced" if row["unpriced_calls"] else "")
        table.add_row(
            esc(row[group_by] or "-"),
            str(row["calls"]),
            str(row["cancelled"]),
            str(row["failed"]),
            f"{row['prompt_tokens']:,}",
            f"{row['completion_tokens']:,}",
            f"{row['cached_tokens']:,}",
            cost,
        )
    console.print(table)
    if not summary:
        errors.print("No model calls recorded yet.")


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


@click.group()
def budgets() -> None:
    """Spending limits per key or assistant, per day or month, in USD or tokens."""


@budgets.command("set")
@click.argument("subject")
@click.option("--usd", type=float, help="USD allowed per period.")
@click.option("--tokens", type=int, help="Tokens (prompt + completion) allowed per period.")
@click.option("--per", "period", type=click.Choice(PERIODS), default="day", show_default=True)
@click.option("--soft", is_flag=True, help="Report overruns but let calls through.")
@click.pass_obj
def set_budget(
    ctx: Context, subject: str, usd: float | None, tokens: int | None, period: str, soft: bool
) -> None:
    """Set a budget for SUBJECT: key:NAME or assistant:NAME (a user given with --as is a key)."""
    kind, name = _subject(subject)
    if (usd is None) == (tokens is None):
        raise click.UsageError("give one of --usd or --tokens")
    metric, amount = ("usd", usd) if usd is not None else ("tokens", float(tokens or 0))
    rule = BudgetRule(kind, name, metric, period, amount, hard=not soft)
    ctx.workspace().ledger.set_budget(rule)
    errors.print(f"Set {rule.describe()}{' (soft)' if soft else ''}.", markup=False)


@budgets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_budgets(ctx: Context, as_json: bool) -> None:
    """The budgets in force."""
    rules = ctx.workspace().ledger.budgets()
    if as_json:
        console.out(to_json(rules))
        return
    table = Table("subject", "limit", "per", "kind")
    for r in rules:
        limit = f"${r.amount:g}" if r.metric == "usd" else f"{r.amount:,.0f} tokens"
        table.add_row(
            esc(f"{r.kind}:{r.subject}"), limit, esc(r.period), "hard" if r.hard else "soft"
        )
    console.print(table)


@budgets.command("remove")
@click.argument("subject")
@click.option("--metric", type=click.Choice(METRICS), required=True)
@click.option("--per", "period", type=click.Choice(PERIODS), default="day", show_default=True)
@click.pass_obj
def remove_budget(ctx: Context, subject: str, metric: str, period: str) -> None:
    """Remove one budget of SUBJECT."""
    kind, name = _subject(subject)
    if not ctx.workspace().ledger.remove_budget(kind, name, metric, period):
        raise click.ClickException(f"no {metric} budget per {period} for {subject}")
    errors.print(f"Removed the {metric} budget per {period} of {subject}.", markup=False)


def _subject(subject: str) -> tuple[str, str]:
    kind, _, name = subject.partition(":")
    if kind not in SUBJECT_KINDS or not name:
        raise click.UsageError(f"SUBJECT is key:NAME or assistant:NAME, not {subject!r}")
    return kind, name


COMMANDS = [usage, budgets]
