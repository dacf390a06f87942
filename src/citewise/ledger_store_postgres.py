"""The ledger's PostgreSQL backend: usage rows, budgets and holds in a shared database, so
several ``citewise serve`` replicas charge the same budgets (``pip install
'citewise[postgres]'``). The queries are ``LedgerSql``'s, shared with the SQLite backend.

A budget check and its hold are one transaction that first takes a transaction-scoped
advisory lock per budgeted subject (``pg_advisory_xact_lock``): concurrent reservations for
the same key or assistant — from any replica — queue on it, while others run in parallel.
It passes the same conformance suite as the SQLite backend (``tests/test_ledger_store.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from .ledger import Hold
from .ledger_store import LEDGER_PRIVACY_COLUMNS, LedgerSql

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
# Columns added since (issue 29). ALTER TABLE locks the table exclusively even when the
# column exists, so each runs only when its column is missing, under an advisory lock that
# makes replicas (and threads) set the schema up one at a time.
_ADDED_COLUMNS = tuple(c.replace("REAL", "DOUBLE PRECISION") for c in LEDGER_PRIVACY_COLUMNS)


# A connection idle longer than this is pinged before use (one round trip).
IDLE_CHECK_S = 1.0


class PostgresLedgerStore(LedgerSql):
    """One connection per thread; the schema is created on first use."""

    mark = "%s"
    ledger_table = "citewise_usage_ledger"
    budgets_table = "citewise_budgets"
    holds_table = "citewise_budget_holds"

    def __init__(self, url: str) -> None:
        from .storage.postgres import psycopg_module

        self._psycopg = psycopg_module()
        self.url = url
        self._local = threading.local()
        with self._transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended('citewise_ledger', 0))")
            for statement in _SCHEMA:
                db.execute(statement)
            present = {
                row[0]
                for row in db.execute(
                    "SELECT column_name FROM information_schema.columns WHERE "
                    "table_name = 'citewise_usage_ledger' AND table_schema = current_schema()"
                )
            }
            for column in _ADDED_COLUMNS:
                if column.split()[0] not in present:
                    db.execute(f"ALTER TABLE citewise_usage_ledger ADD COLUMN {column}")

    def _db(self) -> Any:
        """This thread's connection, checked first when it sat idle: a connection that a
        database restart or a proxy closed meanwhile is replaced before a statement fails
        on it, so the first call after an outage succeeds."""
        connection = getattr(self._local, "connection", None)
        idle = time.monotonic() - getattr(self._local, "used", 0.0)
        if connection is not None and not connection.closed and idle > IDLE_CHECK_S:
            try:
                connection.execute("SELECT 1")
            except self._psycopg.Error:
                with suppress(Exception):
                    connection.close()
        if connection is None or connection.closed:
            from .storage.postgres import KEEPALIVES

            connection = self._psycopg.connect(
                self.url, autocommit=True, connect_timeout=5, **KEEPALIVES
            )
            self._local.connection = connection
        self._local.used = time.monotonic()
        return connection

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        db = self._db()
        with db.transaction():
            yield db

    def _serialise(self, db: Any, hold: Hold) -> None:
        # Reservations for one subject queue here, across every replica sharing the database.
        for subject in sorted({f"key:{hold.key}", f"assistant:{hold.assistant}"}):
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (subject,))

    def _executemany(self, db: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with db.cursor() as cursor:
            cursor.executemany(sql, rows)

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
