"""The ledger's SQLite backend: usage rows, budgets and holds in the workspace database.

``BEGIN IMMEDIATE`` takes SQLite's write lock before the budget is read, so a check and
its hold are one step for every thread and process sharing the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import astuple, fields
from typing import Any

from .ledger import BudgetRule, Hold, LedgerRow
from .store import Store

_COLUMNS = [f.name for f in fields(LedgerRow)]
_GROUPS = {"key": "key", "model": "target", "day": "substr(at, 1, 10)",
           "assistant": "assistant", "purpose": "purpose"}  # fmt: skip


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


class SqliteLedgerStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    def reserve(
        self,
        hold: Hold,
        since: dict[str, str],
        decide: Callable[[list[tuple[BudgetRule, float]]], BudgetRule | None],
    ) -> BudgetRule | None:
        with self._store.transaction() as db:
            rules = [
                BudgetRule(kind, subject, metric, period, amount, bool(hard))
                for kind, subject, metric, period, amount, hard in db.execute(
                    "SELECT kind, subject, metric, period, amount, hard FROM budgets "
                    "WHERE (kind = 'key' AND subject = ?) OR (kind = 'assistant' AND subject = ?)",
                    (hold.key, hold.assistant),
                )
            ]
            used = [(rule, self._used(db, rule, since)) for rule in rules]
            refused = decide(used)
            if refused is None:
                db.execute(
                    "INSERT INTO budget_holds VALUES (?, ?, ?, ?, ?, ?)",
                    (hold.id, hold.key, hold.assistant, hold.usd, hold.tokens, hold.expires_at),
                )
            return refused

    def _used(self, db: sqlite3.Connection, rule: BudgetRule, since: dict[str, str]) -> float:
        spent_sql, held_sql = used_queries(rule, "usage_ledger", "budget_holds", "?")
        spent = db.execute(spent_sql, (rule.subject, since[rule.period])).fetchone()[0]
        held = db.execute(held_sql, (rule.subject, since["now"])).fetchone()[0]
        return float(spent) + float(held)

    def settle(self, hold_ids: Sequence[str], rows: Sequence[LedgerRow]) -> None:
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self._store.transaction() as db:
            db.executemany("DELETE FROM budget_holds WHERE id = ?", [(h,) for h in hold_ids])
            db.executemany(
                f"INSERT INTO usage_ledger ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                [astuple(row) for row in rows],
            )

    def rows(self, since: str | None = None, key: str | None = None) -> list[LedgerRow]:
        where, params = filters(since, key)
        cursor = self._store.db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM usage_ledger {where} ORDER BY id", params
        )
        return [_row(values) for values in cursor]

    def summary(
        self, group_by: str, since: str | None = None, key: str | None = None
    ) -> list[dict[str, Any]]:
        group = _GROUPS[group_by]
        where, params = filters(since, key)
        cursor = self._store.db.execute(
            f"SELECT {group}, COUNT(*), SUM(status = 'ok'), SUM(status = 'cancelled'), "
            f"SUM(status NOT IN ('ok', 'cancelled')), SUM(prompt_tokens), "
            f"SUM(completion_tokens), SUM(cached_tokens), SUM(cost_usd), "
            f"SUM(cost_usd IS NULL) FROM usage_ledger {where} GROUP BY 1 ORDER BY 1",
            params,
        )
        names = ["calls", "ok", "cancelled", "failed", "prompt_tokens", "completion_tokens",
                 "cached_tokens", "cost_usd", "unpriced_calls"]  # fmt: skip
        return [{group_by: row[0], **dict(zip(names, row[1:], strict=True))} for row in cursor]

    def set_budget(self, rule: BudgetRule) -> None:
        with self._store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO budgets VALUES (?, ?, ?, ?, ?, ?)",
                (rule.kind, rule.subject, rule.metric, rule.period, rule.amount, int(rule.hard)),
            )

    def remove_budget(self, kind: str, subject: str, metric: str, period: str) -> bool:
        with self._store.transaction() as db:
            cursor = db.execute(
                "DELETE FROM budgets WHERE kind = ? AND subject = ? AND metric = ? AND period = ?",
                (kind, subject, metric, period),
            )
            return cursor.rowcount > 0

    def budgets(self) -> list[BudgetRule]:
        cursor = self._store.db.execute(
            "SELECT kind, subject, metric, period, amount, hard FROM budgets ORDER BY 1, 2, 3, 4"
        )
        return [BudgetRule(k, s, m, p, a, bool(h)) for k, s, m, p, a, h in cursor]


def used_queries(rule: BudgetRule, ledger: str, holds: str, mark: str) -> tuple[str, str]:
    """What a budget's subject spent since its period began, and what it holds now (the
    parameters: subject and a time; ``mark`` is the driver's placeholder)."""
    column = "key" if rule.kind == "key" else "assistant"
    spent = "cost_usd" if rule.metric == "usd" else "prompt_tokens + completion_tokens"
    held = "usd" if rule.metric == "usd" else "tokens"
    return (
        f"SELECT COALESCE(SUM({spent}), 0) FROM {ledger} WHERE {column} = {mark} AND at >= {mark}",
        f"SELECT COALESCE(SUM({held}), 0) FROM {holds} "
        f"WHERE {column} = {mark} AND expires_at > {mark}",
    )


def filters(since: str | None, key: str | None, mark: str = "?") -> tuple[str, list[Any]]:
    """The WHERE clause of a ledger query by time and key."""
    clauses, params = [], []
    if since:
        clauses.append(f"at >= {mark}")
        params.append(since)
    if key is not None:
        clauses.append(f"key = {mark}")
        params.append(key)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _row(values: tuple) -> LedgerRow:
    row = dict(zip(_COLUMNS, values, strict=True))
    row["estimated"], row["cache_hit"] = bool(row["estimated"]), bool(row["cache_hit"])
    return LedgerRow(**row)
