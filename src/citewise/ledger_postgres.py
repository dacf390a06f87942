"""The ledger's PostgreSQL backend: usage rows, budgets and holds in a shared database, so
several ``citewise serve`` replicas charge the same budgets (``pip install
'citewise[postgres]'``).

A budget check and its hold are one transaction that first takes a transaction-scoped
advisory lock per budgeted subject (``pg_advisory_xact_lock``): concurrent reservations for
the same key or assistant — from any replica — queue on it, while others run in parallel.
It passes the same conformance suite as the SQLite backend (``tests/test_ledger_store.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import astuple, fields
from typing import Any

from .ledger import BudgetRule, Hold, LedgerRow
from .ledger_store import filters, used_queries

_COLUMNS = [f.name for f in fields(LedgerRow)]
_GROUPS = {"key": "key", "model": "target", "day": "substr(at, 1, 10)",
           "assistant": "assistant", "purpose": "purpose"}  # fmt: skip
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS citewise_usage_ledger (
        id BIGSERIAL PRIMARY KEY, call_id TEXT NOT NULL, attempt INTEGER NOT NULL,
        at TEXT NOT NULL, key TEXT NOT NULL, assistant TEXT NOT NULL, purpose TEXT NOT NULL,
        alias TEXT NOT NULL, target TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL, estimated BOOLEAN NOT NULL, cost_usd DOUBLE PRECISION,
        latency_s DOUBLE PRECISION NOT NULL, first_token_s DOUBLE PRECISION,
        status TEXT NOT NULL, error TEXT, cache_hit BOOLEAN NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS citewise_usage_by_key ON citewise_usage_ledger(key, at)",
    """CREATE INDEX IF NOT EXISTS citewise_usage_by_assistant
        ON citewise_usage_ledger(assistant, at)""",
    """CREATE TABLE IF NOT EXISTS citewise_budgets (
        kind TEXT NOT NULL, subject TEXT NOT NULL, metric TEXT NOT NULL, period TEXT NOT NULL,
        amount DOUBLE PRECISION NOT NULL, hard BOOLEAN NOT NULL,
        PRIMARY KEY (kind, subject, metric, period))""",
    """CREATE TABLE IF NOT EXISTS citewise_budget_holds (
        id TEXT PRIMARY KEY, key TEXT NOT NULL, assistant TEXT NOT NULL,
        usd DOUBLE PRECISION NOT NULL, tokens BIGINT NOT NULL, expires_at TEXT NOT NULL)""",
)


class PostgresLedgerStore:
    """One connection per thread; the schema is created on first use."""

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the install
            from .errors import ConfigError

            raise ConfigError(
                "a PostgreSQL store needs psycopg; install it with "
                "`pip install 'citewise[postgres]'`"
            ) from exc
        self._psycopg = psycopg
        self.url = url
        self._local = threading.local()
        with self._connection().transaction() as tx:
            for statement in _SCHEMA:
                tx.connection.execute(statement)

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = self._psycopg.connect(self.url, autocommit=True)
            self._local.connection = connection
        return connection

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()

    def reserve(
        self,
        hold: Hold,
        since: dict[str, str],
        decide: Callable[[list[tuple[BudgetRule, float]]], BudgetRule | None],
    ) -> BudgetRule | None:
        db = self._connection()
        with db.transaction():
            # Serialise reservations per subject, across every replica sharing the database.
            for subject in sorted({f"key:{hold.key}", f"assistant:{hold.assistant}"}):
                db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (subject,))
            rules = [
                BudgetRule(kind, subject, metric, period, amount, hard)
                for kind, subject, metric, period, amount, hard in db.execute(
                    "SELECT kind, subject, metric, period, amount, hard FROM citewise_budgets "
                    "WHERE (kind = 'key' AND subject = %s) OR "
                    "(kind = 'assistant' AND subject = %s)",
                    (hold.key, hold.assistant),
                )
            ]
            used = [(rule, self._used(db, rule, since)) for rule in rules]
            refused = decide(used)
            if refused is None:
                db.execute(
                    "INSERT INTO citewise_budget_holds VALUES (%s, %s, %s, %s, %s, %s)",
                    (hold.id, hold.key, hold.assistant, hold.usd, hold.tokens, hold.expires_at),
                )
            return refused

    def _used(self, db: Any, rule: BudgetRule, since: dict[str, str]) -> float:
        spent_sql, held_sql = used_queries(
            rule, "citewise_usage_ledger", "citewise_budget_holds", "%s"
        )
        spent = db.execute(spent_sql, (rule.subject, since[rule.period])).fetchone()[0]
        held = db.execute(held_sql, (rule.subject, since["now"])).fetchone()[0]
        return float(spent) + float(held)

    def settle(self, hold_ids: Sequence[str], rows: Sequence[LedgerRow]) -> None:
        db = self._connection()
        placeholders = ", ".join("%s" for _ in _COLUMNS)
        with db.transaction(), db.cursor() as cursor:
            if hold_ids:
                cursor.execute("DELETE FROM citewise_budget_holds WHERE id = ANY(%s)",
                               (list(hold_ids),))  # fmt: skip
            if rows:
                cursor.executemany(
                    f"INSERT INTO citewise_usage_ledger ({', '.join(_COLUMNS)}) "
                    f"VALUES ({placeholders})",
                    [astuple(row) for row in rows],
                )

    def rows(self, since: str | None = None, key: str | None = None) -> list[LedgerRow]:
        where, params = filters(since, key, "%s")
        cursor = self._connection().execute(
            f"SELECT {', '.join(_COLUMNS)} FROM citewise_usage_ledger {where} ORDER BY id", params
        )
        return [LedgerRow(*values) for values in cursor]

    def summary(
        self, group_by: str, since: str | None = None, key: str | None = None
    ) -> list[dict[str, Any]]:
        group = _GROUPS[group_by]
        where, params = filters(since, key, "%s")
        cursor = self._connection().execute(
            f"SELECT {group}, COUNT(*), COUNT(*) FILTER (WHERE status = 'ok'), "
            f"COUNT(*) FILTER (WHERE status = 'cancelled'), "
            f"COUNT(*) FILTER (WHERE status NOT IN ('ok', 'cancelled')), SUM(prompt_tokens), "
            f"SUM(completion_tokens), SUM(cached_tokens), SUM(cost_usd), "
            f"COUNT(*) FILTER (WHERE cost_usd IS NULL) FROM citewise_usage_ledger {where} "
            f"GROUP BY 1 ORDER BY 1",
            params,
        )
        names = ["calls", "ok", "cancelled", "failed", "prompt_tokens", "completion_tokens",
                 "cached_tokens", "cost_usd", "unpriced_calls"]  # fmt: skip
        return [
            {group_by: row[0], **{n: _number(v) for n, v in zip(names, row[1:], strict=True)}}
            for row in cursor
        ]

    def set_budget(self, rule: BudgetRule) -> None:
        self._connection().execute(
            "INSERT INTO citewise_budgets VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (kind, subject, metric, period) DO UPDATE "
            "SET amount = EXCLUDED.amount, hard = EXCLUDED.hard",
            (rule.kind, rule.subject, rule.metric, rule.period, rule.amount, rule.hard),
        )

    def remove_budget(self, kind: str, subject: str, metric: str, period: str) -> bool:
        cursor = self._connection().execute(
            "DELETE FROM citewise_budgets "
            "WHERE kind = %s AND subject = %s AND metric = %s AND period = %s",
            (kind, subject, metric, period),
        )
        return cursor.rowcount > 0

    def budgets(self) -> list[BudgetRule]:
        cursor = self._connection().execute(
            "SELECT kind, subject, metric, period, amount, hard FROM citewise_budgets "
            "ORDER BY 1, 2, 3, 4"
        )
        return [BudgetRule(*values) for values in cursor]


def _number(value: Any) -> Any:
    """Sums come back as Decimal for integer columns: plain ints, as SQLite gives them."""
    from decimal import Decimal

    return int(value) if isinstance(value, Decimal) else value
