"""The ledger's storage backends: usage rows, budgets and holds.

``LedgerSql`` holds the queries both SQL backends share; a backend says how it connects,
opens a transaction and serialises reservations:

- ``SqliteLedgerStore`` (the default), in the workspace database: ``BEGIN IMMEDIATE``
  takes SQLite's write lock before the budget is read, so a check and its hold are one
  step for every thread and process sharing the file.
- ``PostgresLedgerStore`` (``ledger_store_postgres.py``), shared by server replicas.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import astuple, fields
from typing import Any

from .ledger import BudgetRule, Hold, LedgerRow
from .storage.sql import Connection
from .storage.sqlite import SqliteStore

_COLUMNS = [f.name for f in fields(LedgerRow)]
_GROUPS = {
    "key": "key",
    "model": "target",
    "day": "substr(at, 1, 10)",
    "assistant": "assistant",
    "purpose": "purpose",
}


def migrate_ledger(db: sqlite3.Connection) -> None:
    # Written out, not derived from LedgerRow: a migration must not change once shipped.
    for statement in (
        """CREATE TABLE usage_ledger (
            id INTEGER PRIMARY KEY, call_id TEXT NOT NULL, attempt INTEGER NOT NULL,
            at TEXT NOT NULL, key TEXT NOT NULL, assistant TEXT NOT NULL,
            purpose TEXT NOT NULL, alias TEXT NOT NULL, target TEXT NOT NULL,
            provider TEXT NOT NULL, model TEXT NOT NULL, prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL,
            estimated INTEGER NOT NULL, cost_usd REAL, latency_s REAL NOT NULL,
            first_token_s REAL, status TEXT NOT NULL, error TEXT,
            cache_hit INTEGER NOT NULL)""",
        "CREATE INDEX usage_by_key ON usage_ledger(key, at)",
        "CREATE INDEX usage_by_assistant ON usage_ledger(assistant, at)",
        "CREATE INDEX usage_by_time ON usage_ledger(at)",
        """CREATE TABLE budgets (
            kind TEXT NOT NULL, subject TEXT NOT NULL, metric TEXT NOT NULL,
            period TEXT NOT NULL, amount REAL NOT NULL, hard INTEGER NOT NULL,
            PRIMARY KEY (kind, subject, metric, period))""",
        """CREATE TABLE budget_holds (
            id TEXT PRIMARY KEY, key TEXT NOT NULL, assistant TEXT NOT NULL,
            usd REAL NOT NULL, tokens INTEGER NOT NULL, expires_at TEXT NOT NULL)""",
    ):
        db.execute(statement)


def migrate_ledger_privacy(db: sqlite3.Connection) -> None:
    """Redaction counts, cache savings and prompt-cache writes (issue 29)."""
    for statement in LEDGER_PRIVACY_COLUMNS:
        db.execute(f"ALTER TABLE usage_ledger ADD COLUMN {statement}")


# Shared by both backends (PostgreSQL adds them with IF NOT EXISTS).
LEDGER_PRIVACY_COLUMNS = (
    "redacted TEXT NOT NULL DEFAULT ''",
    "saved_usd REAL",
    "cache_write_tokens INTEGER NOT NULL DEFAULT 0",
)


class LedgerSql:
    """The ledger's queries over a DB-API connection; subclasses connect."""

    mark = "?"  # the driver's placeholder
    ledger_table, budgets_table, holds_table = "usage_ledger", "budgets", "budget_holds"

    def _db(self) -> Connection:  # pragma: no cover - each backend connects its own way
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Connection]:  # pragma: no cover
        raise NotImplementedError

    def _serialise(self, db: Any, hold: Hold) -> None:
        """Make concurrent reservations for the hold's subjects wait for this one."""

    def _executemany(self, db: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        db.executemany(sql, rows)

    def _sql(self, text: str) -> str:
        return text.replace("?", self.mark)

    def ping(self) -> str:
        """Raises when the ledger's database cannot be reached (readyz, doctor)."""
        self._db().execute(f"SELECT COUNT(*) FROM {self.budgets_table}").fetchone()
        return "ok"

    def reserve(
        self,
        hold: Hold,
        since: dict[str, str],
        decide: Callable[[list[tuple[BudgetRule, float]]], BudgetRule | None],
    ) -> BudgetRule | None:
        with self._transaction() as db:
            self._serialise(db, hold)
            rules = [
                BudgetRule(kind, subject, metric, period, amount, bool(hard))
                for kind, subject, metric, period, amount, hard in db.execute(
                    self._sql(
                        f"SELECT kind, subject, metric, period, amount, hard "
                        f"FROM {self.budgets_table} WHERE (kind = 'key' AND subject = ?) "
                        f"OR (kind = 'assistant' AND subject = ?)"
                    ),
                    (hold.key, hold.assistant),
                )
            ]
            used = [(rule, self._used(db, rule, since)) for rule in rules]
            refused = decide(used)
            if refused is None:
                db.execute(
                    self._sql(f"INSERT INTO {self.holds_table} VALUES (?, ?, ?, ?, ?, ?)"),
                    (hold.id, hold.key, hold.assistant, hold.usd, hold.tokens, hold.expires_at),
                )
            return refused

    def _used(self, db: Any, rule: BudgetRule, since: dict[str, str]) -> float:
        """What a budget's subject spent since its period began, plus what it holds now."""
        column = "key" if rule.kind == "key" else "assistant"
        spent = "cost_usd" if rule.metric == "usd" else "prompt_tokens + completion_tokens"
        held = "usd" if rule.metric == "usd" else "tokens"
        spent_sum = db.execute(
            self._sql(
                f"SELECT COALESCE(SUM({spent}), 0) FROM {self.ledger_table} "
                f"WHERE {column} = ? AND at >= ?"
            ),
            (rule.subject, since[rule.period]),
        ).fetchone()[0]
        held_sum = db.execute(
            self._sql(
                f"SELECT COALESCE(SUM({held}), 0) FROM {self.holds_table} "
                f"WHERE {column} = ? AND expires_at > ?"
            ),
            (rule.subject, since["now"]),
        ).fetchone()[0]
        return float(spent_sum) + float(held_sum)

    def settle(self, hold_ids: Sequence[str], rows: Sequence[LedgerRow]) -> None:
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self._transaction() as db:
            if hold_ids:
                self._executemany(
                    db,
                    self._sql(f"DELETE FROM {self.holds_table} WHERE id = ?"),
                    [(h,) for h in hold_ids],
                )
            if rows:
                self._executemany(
                    db,
                    self._sql(
                        f"INSERT INTO {self.ledger_table} ({', '.join(_COLUMNS)}) "
                        f"VALUES ({placeholders})"
                    ),
                    [astuple(row) for row in rows],
                )

    def rows(self, since: str | None = None, key: str | None = None) -> list[LedgerRow]:
        where, params = self._filters(since, key)
        cursor = self._db().execute(
            f"SELECT {', '.join(_COLUMNS)} FROM {self.ledger_table} {where} ORDER BY id", params
        )
        return [_row(values) for values in cursor]

    def summary(
        self, group_by: str, since: str | None = None, key: str | None = None
    ) -> list[dict[str, Any]]:
        where, params = self._filters(since, key)
        cursor = self._db().execute(
            f"SELECT {_GROUPS[group_by]}, COUNT(*), COUNT(*) FILTER (WHERE status = 'ok'), "
            f"COUNT(*) FILTER (WHERE status = 'cancelled'), "
            f"COUNT(*) FILTER (WHERE status NOT IN ('ok', 'cancelled')), SUM(prompt_tokens), "
            f"SUM(completion_tokens), SUM(cached_tokens), SUM(cost_usd), "
            f"COUNT(*) FILTER (WHERE cost_usd IS NULL) FROM {self.ledger_table} {where} "
            f"GROUP BY 1 ORDER BY 1",
            params,
        )
        names = [
            "calls",
            "ok",
            "cancelled",
            "failed",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cost_usd",
            "unpriced_calls",
        ]
        return [
            {group_by: row[0], **{n: _number(v) for n, v in zip(names, row[1:], strict=True)}}
            for row in cursor
        ]

    def last_calls(self) -> dict[str, str]:
        """Each key's latest call (the operator console's "last used")."""
        cursor = self._db().execute(
            f"SELECT key, MAX(at) FROM {self.ledger_table} GROUP BY key ORDER BY 1"
        )
        return {str(key): str(at) for key, at in cursor}

    def set_budget(self, rule: BudgetRule) -> None:
        with self._transaction() as db:
            db.execute(
                self._sql(
                    f"INSERT INTO {self.budgets_table} VALUES (?, ?, ?, ?, ?, ?) "
                    f"ON CONFLICT (kind, subject, metric, period) DO UPDATE "
                    f"SET amount = excluded.amount, hard = excluded.hard"
                ),
                (rule.kind, rule.subject, rule.metric, rule.period, rule.amount, rule.hard),
            )

    def remove_budget(self, kind: str, subject: str, metric: str, period: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                self._sql(
                    f"DELETE FROM {self.budgets_table} "
                    f"WHERE kind = ? AND subject = ? AND metric = ? AND period = ?"
                ),
                (kind, subject, metric, period),
            )
            return cursor.rowcount > 0

    def budgets(self) -> list[BudgetRule]:
        cursor = self._db().execute(
            f"SELECT kind, subject, metric, period, amount, hard FROM {self.budgets_table} "
            f"ORDER BY 1, 2, 3, 4"
        )
        return [BudgetRule(k, s, m, p, a, bool(h)) for k, s, m, p, a, h in cursor]

    def _filters(self, since: str | None, key: str | None) -> tuple[str, list[Any]]:
        """The WHERE clause of a ledger query by time and key."""
        clauses, params = [], []
        if since:
            clauses.append(f"at >= {self.mark}")
            params.append(since)
        if key is not None:
            clauses.append(f"key = {self.mark}")
            params.append(key)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


class SqliteLedgerStore(LedgerSql):
    """In the workspace database (migration ``_m003_ledger``)."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def _db(self) -> sqlite3.Connection:
        return self._store.db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._store.transaction() as db:  # BEGIN IMMEDIATE: serialises reservations
            yield db


def _row(values: tuple[Any, ...]) -> LedgerRow:
    row = dict(zip(_COLUMNS, values, strict=True))
    row["estimated"], row["cache_hit"] = bool(row["estimated"]), bool(row["cache_hit"])
    return LedgerRow(**row)


def _number(value: Any) -> Any:
    """PostgreSQL sums integer columns to Decimal: plain ints, as SQLite gives them."""
    from decimal import Decimal

    return int(value) if isinstance(value, Decimal) else value
