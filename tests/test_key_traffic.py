"""Requests and 429s per key (the console's Keys view, ``GET /v1/admin/keys``): counted in
memory by each server process, flushed to the store's hourly buckets, so the counts survive
a restart, the replicas sharing a PostgreSQL store add up, and a store that fails a flush
loses nothing and fails no request. Real servers (uvicorn on loopback) whose model is the
OpenAI STAND-IN, so nothing loads a local chat model."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from citewise import Workspace
from citewise.config import set_config_value
from citewise.keys import HOUR, create_key, hour_of, stored_traffic
from citewise.server import create_app
from citewise.workspace import init_workspace
from conftest import CITEWISE, LiveServer, new_database

pytestmark = pytest.mark.slow  # real servers

SECRET = "hunter2-not-for-logs"
COUNTS = ("requests", "rate_limited", "requests_24h", "rate_limited_24h")


@pytest.fixture(autouse=True)
def _standin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_KEY", "sk-standin")


def make_workspace(directory: Path, base_url: str, store: str = "") -> Path:
    init_workspace(directory, store=store)
    config = directory / "citewise.toml"
    for name, value in [
        ("provider", "openai"),
        ("model", "standin-model"),
        ("base_url", base_url),
        ("api_key_env", "STANDIN_KEY"),
    ]:
        set_config_value(config, name, value)
    return directory


def make_keys(workspace: Workspace) -> dict[str, str]:
    """An admin key, one without limits and one allowed 2 requests a minute."""
    return {
        "admin": create_key(workspace.store, "admin", ["*"], ["admin"])[0],
        "busy": create_key(workspace.store, "busy", ["*"], ["ask"])[0],
        "slow": create_key(workspace.store, "slow", ["*"], ["ask"], rpm=2)[0],
    }


def call(live: LiveServer, secret: str, times: int) -> list[int]:
    headers = {"Authorization": f"Bearer {secret}"}
    return [
        httpx.get(live.url + "/v1/collections", headers=headers, timeout=30).status_code
        for _ in range(times)
    ]


def listed(live: LiveServer, admin: str) -> dict[str, dict]:
    answer = httpx.get(
        live.url + "/v1/admin/keys", headers={"Authorization": f"Bearer {admin}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return {k["name"]: k for k in answer.json()["data"]}


def counts(entry: dict) -> tuple[int, ...]:
    return tuple(entry[name] for name in COUNTS)


def stored(workspace: Workspace, name: str) -> tuple[int, ...]:
    row = stored_traffic(workspace.store).get(name)
    return (0, 0, 0, 0) if row is None else tuple(row[c] for c in COUNTS)


def traffic_of(codes: list[int]) -> tuple[int, int, int, int]:
    """What a key's counts should be after these answers, all within the hour."""
    return len(codes), codes.count(429), len(codes), codes.count(429)


@pytest.fixture
def sqlite_ws(tmp_path: Path, standin_url: tuple[str, object]) -> Iterator[Workspace]:
    workspace = Workspace.open(make_workspace(tmp_path / "ws", standin_url[0]))
    yield workspace
    workspace.close()


def test_counts_are_stored_by_the_flush_thread_and_survive_a_restart(
    sqlite_ws: Workspace,
) -> None:
    keys = make_keys(sqlite_ws)
    with LiveServer(create_app(sqlite_ws)) as live:
        busy = call(live, keys["busy"], 5)
        slow = call(live, keys["slow"], 4)
        assert busy == [200] * 5
        assert slow[:2] == [200, 200] and 429 in slow[2:]
        # Shown at once (this process's counts not stored yet are added)...
        shown = listed(live, keys["admin"])
        assert counts(shown["busy"]) == traffic_of(busy)
        assert counts(shown["slow"]) == traffic_of(slow)
        assert shown["busy"]["last_request"] and shown["busy"]["last_used"]
        assert "counted_since" not in shown["busy"]
        # ...and stored by the flush thread within a few seconds.
        deadline = time.monotonic() + 20
        while stored(sqlite_ws, "slow") != traffic_of(slow) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert stored(sqlite_ws, "busy") == traffic_of(busy)
        assert stored(sqlite_ws, "slow") == traffic_of(slow)
        assert not any(name in ("busy", "slow") for name, _ in live.service.traffic.pending())
        shown = listed(live, keys["admin"])  # stored now, and not counted twice
        assert counts(shown["busy"]) == traffic_of(busy)
        assert counts(shown["slow"]) == traffic_of(slow)
        # Requests after the last flush: stored by the flush at shutdown.
        busy += call(live, keys["busy"], 3)
    assert stored(sqlite_ws, "busy") == traffic_of(busy)

    sqlite_ws.close()  # the process ends; a new one opens the workspace
    cli = subprocess.run(
        [CITEWISE, "-w", str(sqlite_ws.path), "keys", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    by_name = {k["name"]: k for k in json.loads(cli.stdout)}
    assert counts(by_name["busy"]) == traffic_of(busy)
    assert counts(by_name["slow"]) == traffic_of(slow)
    with Workspace.open(sqlite_ws.path) as workspace:
        # An hour from two days ago counts in the total, not in the last 24 h.
        workspace.store.add_key_traffic([("busy", hour_of(time.time()) - 48 * HOUR, 7, 2, 1.0)])
        with LiveServer(create_app(workspace)) as again:
            shown = listed(again, keys["admin"])
            assert counts(shown["busy"]) == (len(busy) + 7, 2, len(busy), 0)
            assert counts(shown["slow"]) == traffic_of(slow)
            slow_again = call(again, keys["slow"], 1)  # a new process: a new minute's budget
            assert counts(listed(again, keys["admin"])["slow"]) == traffic_of(slow + slow_again)


def test_a_failing_store_fails_no_request_and_loses_no_count(
    sqlite_ws: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    keys = make_keys(sqlite_ws)
    with LiveServer(create_app(sqlite_ws)) as live:
        traffic = live.service.traffic
        traffic.flush()  # the readiness probes' requests are out of the way
        calls: list[int] = []

        def down(rows: object) -> None:
            calls.append(1)
            raise sqlite3.OperationalError(
                f"could not reach postgresql://citewise:{SECRET}@db.internal/citewise"
            )

        with (
            caplog.at_level(logging.WARNING, logger="citewise.server"),
            pytest.MonkeyPatch.context() as patch,
        ):
            patch.setattr(sqlite_ws.store, "add_key_traffic", down)
            busy = call(live, keys["busy"], 4)
            slow = call(live, keys["slow"], 3)
            assert busy == [200] * 4 and slow == [200, 200, 429]
            assert traffic.flush() is False and calls
            busy += call(live, keys["busy"], 2)  # requests while the store fails: answered
            assert busy == [200] * 6
            assert traffic.flush() is False
            assert stored(sqlite_ws, "busy") == (0, 0, 0, 0)
            shown = listed(live, keys["admin"])  # the kept counts are shown meanwhile
            assert counts(shown["busy"]) == traffic_of(busy)
            assert counts(shown["slow"]) == traffic_of(slow)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert any("could not store requests per key" in r.getMessage() for r in warnings)
        assert SECRET not in caplog.text
        # The store is back (the patch is undone): the kept counts are written once.
        assert traffic.flush() is True
        assert stored(sqlite_ws, "busy") == traffic_of(busy)
        assert stored(sqlite_ws, "slow") == traffic_of(slow)
        shown = listed(live, keys["admin"])
        assert counts(shown["busy"]) == traffic_of(busy)  # not counted twice


def test_replicas_sharing_a_postgresql_store_add_up(
    postgres: str, tmp_path: Path, standin_url: tuple[str, object]
) -> None:
    url = new_database(postgres)
    first = Workspace.open(make_workspace(tmp_path / "a", standin_url[0], url))
    second = Workspace.open(make_workspace(tmp_path / "b", standin_url[0], url))
    try:
        keys = make_keys(first)  # in the shared store: both servers know them
        with LiveServer(create_app(first)) as a, LiveServer(create_app(second)) as b:
            a.service.traffic.flush()
            b.service.traffic.flush()
            # No shared rate limiter (no Redis): each process allows "slow" 2 a minute.
            busy_a, slow_a = call(a, keys["busy"], 3), call(a, keys["slow"], 3)
            busy_b, slow_b = call(b, keys["busy"], 4), call(b, keys["slow"], 4)
            assert slow_a == [200, 200, 429] and slow_b == [200, 200, 429, 429]
            # Both flush at once: each adds to the same hourly rows.
            flushes = [threading.Thread(target=live.service.traffic.flush) for live in (a, b)]
            for t in flushes:
                t.start()
            for t in flushes:
                t.join()
            assert stored(first, "busy") == traffic_of(busy_a + busy_b)
            assert stored(first, "slow") == traffic_of(slow_a + slow_b)
            for live in (a, b):
                shown = listed(live, keys["admin"])
                assert counts(shown["busy"]) == traffic_of(busy_a + busy_b)
                assert counts(shown["slow"]) == (7, 3, 7, 3)
            # One replica's unflushed requests show on it, and on the other once stored.
            more = call(b, keys["busy"], 2)
            total = traffic_of(busy_a + busy_b + more)
            assert counts(listed(b, keys["admin"])["busy"]) == total
            assert counts(listed(a, keys["admin"])["busy"]) == traffic_of(busy_a + busy_b)
            b.service.traffic.flush()
            assert counts(listed(a, keys["admin"])["busy"]) == total
    finally:
        first.close()
        second.close()
