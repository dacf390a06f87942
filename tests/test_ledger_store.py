"""One conformance suite for every ledger backend: SQLite (the workspace database) and
PostgreSQL (a real server from ``pgserver``, PostgreSQL 16, on a Unix socket only).

Each test gets an empty store; the PostgreSQL server is shared by the session and each
test gets a database of its own.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from citewise.errors import BudgetExceeded
from citewise.ledger import BudgetRule, Ledger, LedgerRow, iso
from conftest import new_database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    """A factory: each call opens another connection to the same store (a replica)."""
    if request.param == "sqlite":
        from citewise.ledger_store import SqliteLedgerStore
        from citewise.storage.sqlite import SqliteStore as Store

        stores: list = []

        def open_sqlite():
            stores.append(Store(tmp_path / "citewise.db"))
            return SqliteLedgerStore(stores[-1])

        yield open_sqlite
        for store in stores:
            store.close()
        return
    from citewise.ledger_store_postgres import PostgresLedgerStore

    url = new_database(request.getfixturevalue("postgres"))
    opened: list = []

    def open_postgres():
        opened.append(PostgresLedgerStore(url))
        return opened[-1]

    yield open_postgres
    for store in opened:
        store.close()


def row(
    key: str,
    prompt: int,
    completion: int,
    cost: float | None,
    at: datetime = NOW,
    target: str = "openai:m",
    status: str = "ok",
) -> LedgerRow:
    return LedgerRow(
        call_id=uuid.uuid4().hex,
        attempt=1,
        at=iso(at),
        key=key,
        assistant="support",
        purpose="answer",
        alias="default",
        target=target,
        provider=target.split(":")[0],
        model=target.split(":")[1],
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=0,
        estimated=False,
        cost_usd=cost,
        latency_s=0.5,
        first_token_s=0.1,
        status=status,
    )


def test_rows_and_holds_settle_in_one_step(backend) -> None:
    ledger = Ledger(backend(), clock=lambda: NOW)
    hold = ledger.reserve("alice", "support", tokens=150, usd=0.01)
    ledger.settle([hold], [row("alice", 100, 20, 0.002), row("alice", 0, 0, None, status="error")])
    rows = ledger.rows()
    assert [(r.key, r.prompt_tokens, r.completion_tokens, r.status) for r in rows] == [
        ("alice", 100, 20, "ok"),
        ("alice", 0, 0, "error"),
    ]
    assert rows[0].cost_usd == pytest.approx(0.002) and rows[1].cost_usd is None
    assert rows[0] == ledger.rows(key="alice")[0]  # every field survives the round trip
    # The hold is gone: a budget of exactly what was spent allows nothing more.
    ledger.set_budget(BudgetRule("key", "alice", "tokens", "day", 120))
    with pytest.raises(BudgetExceeded):
        ledger.reserve("alice", "support", tokens=1, usd=0.0)


def test_budgets_are_set_replaced_listed_and_removed(backend) -> None:
    ledger = Ledger(backend(), clock=lambda: NOW)
    ledger.set_budget(BudgetRule("key", "bob", "usd", "day", 5.0))
    ledger.set_budget(BudgetRule("key", "bob", "usd", "day", 7.5, hard=False))  # replaces
    ledger.set_budget(BudgetRule("assistant", "support", "tokens", "month", 1000))
    assert ledger.budgets() == [
        BudgetRule("assistant", "support", "tokens", "month", 1000.0, True),
        BudgetRule("key", "bob", "usd", "day", 7.5, False),
    ]
    assert ledger.remove_budget("key", "bob", "usd", "day")
    assert not ledger.remove_budget("key", "bob", "usd", "day")
    assert len(ledger.budgets()) == 1


def test_spent_and_held_count_within_the_period_only(backend) -> None:
    store = backend()
    ledger = Ledger(store, clock=lambda: NOW)
    ledger.set_budget(BudgetRule("key", "carol", "tokens", "day", 1000))
    yesterday = NOW - timedelta(days=1)
    store.settle([], [row("carol", 900, 100, 0.0, at=yesterday), row("carol", 300, 100, 0.0)])
    ledger.reserve("carol", "support", tokens=500, usd=0.0)  # 400 spent today + 500 held
    with pytest.raises(BudgetExceeded, match="daily budget of key 'carol'") as refused:
        ledger.reserve("carol", "support", tokens=200, usd=0.0)
    assert refused.value.resets_at == "2026-12-02T00:00:00Z"
    later = Ledger(store, clock=lambda: NOW + timedelta(hours=2))  # the hold has expired
    later.reserve("carol", "support", tokens=500, usd=0.0)


def test_assistant_budgets_and_soft_budgets(backend) -> None:
    ledger = Ledger(backend(), clock=lambda: NOW)
    ledger.set_budget(BudgetRule("assistant", "support", "usd", "month", 1.0))
    ledger.set_budget(BudgetRule("key", "dave", "usd", "day", 0.01, hard=False))
    ledger.reserve("dave", "support", tokens=10, usd=0.5)  # over dave's soft budget: allowed
    with pytest.raises(BudgetExceeded, match="monthly budget of assistant 'support'"):
        ledger.reserve("erin", "support", tokens=10, usd=0.6)  # another key, same assistant
    with pytest.raises(BudgetExceeded, match="no price configured"):
        ledger.reserve("erin", "support", tokens=10, usd=None)  # fail closed: cost unknown
    ledger.reserve("erin", "other", tokens=10, usd=None)  # no USD budget applies there


def test_summary_groups_and_totals(backend) -> None:
    store = backend()
    store.settle(
        [],
        [
            row("a", 10, 5, 0.25),
            row("a", 20, 5, None, target="local:s"),
            row("b", 1, 1, 0.5, status="cancelled"),
        ],
    )
    ledger = Ledger(store, clock=lambda: NOW)
    by_key = {r["key"]: r for r in ledger.summary("key")}
    assert by_key["a"] == {
        "key": "a",
        "calls": 2,
        "ok": 2,
        "cancelled": 0,
        "failed": 0,
        "prompt_tokens": 30,
        "completion_tokens": 10,
        "cached_tokens": 0,
        "cost_usd": 0.25,
        "unpriced_calls": 1,
    }
    assert by_key["b"]["cancelled"] == 1
    assert [r["model"] for r in ledger.summary("model")] == ["local:s", "openai:m"]
    assert [r["day"] for r in ledger.summary("day")] == ["2026-12-01"]
    assert ledger.summary("key", key="b")[0]["calls"] == 1


def test_concurrent_reservations_from_two_replicas_cannot_overspend(backend) -> None:
    """Two stores on one database (two server replicas), 40 concurrent reservations at a
    budget that allows 5: exactly 5 holds are granted."""
    replicas = [Ledger(backend(), clock=lambda: NOW) for _ in range(2)]
    replicas[0].set_budget(BudgetRule("key", "burst", "tokens", "day", 500))

    def reserve(n: int) -> bool:
        try:
            replicas[n % 2].reserve("burst", "support", tokens=100, usd=0.0)
            return True
        except BudgetExceeded:
            return False

    with ThreadPoolExecutor(16) as pool:
        granted = list(pool.map(reserve, range(40)))
    assert granted.count(True) == 5


def test_a_workspace_charges_a_shared_postgres_ledger(postgres: str, tmp_path: Path) -> None:
    """ledger_url: two workspaces (two replicas' views) charge one PostgreSQL ledger."""
    from citewise import Workspace
    from citewise.errors import ConfigError
    from citewise.ledger_store_postgres import PostgresLedgerStore

    url = new_database(postgres)
    note = tmp_path / "note.md"
    note.write_text("# Parking\n\nVisitors park on level minus two.\n")
    with Workspace.open(tmp_path / "a", ledger_url=url, answer_check="quote") as a:
        assert isinstance(a.ledger.store, PostgresLedgerStore)
        a.ingest([note])
        a.ledger.set_budget(BudgetRule("key", "gina", "tokens", "day", 10))
        with Workspace.open(tmp_path / "b", ledger_url=url) as b:
            assert b.ledger.budgets() == a.ledger.budgets()  # the same budgets everywhere
            b.ledger.store.settle([], [row("gina", 5, 5, 0.0)])
        with pytest.raises(BudgetExceeded):
            a.ask_stream(
                "Where do visitors park?",
                caller="gina",
                settings=replace(a.settings, answer_check="off"),
            )
    with pytest.raises(ConfigError, match="PGPASSWORD"):
        Workspace.open(tmp_path / "c", ledger_url="postgresql://app:s3cret@db.internal/app")


def test_last_calls_name_each_keys_latest_call(backend) -> None:
    """The operator console's "last used" (server/admin_routes.py)."""
    store = backend()
    later = NOW + timedelta(hours=2)
    store.settle([], [row("a", 1, 1, 0.1), row("b", 1, 1, 0.1), row("a", 1, 1, 0.1, at=later)])
    assert Ledger(store, clock=lambda: NOW).last_calls() == {"a": iso(later), "b": iso(NOW)}
