"""Fixes from a review of the console's data endpoints: ids too large for the store are a
422 (not a 500), a job retried once is the retry's to run again, an upload that failed is
not queued again at every start, the replica heartbeat starts once and writes nothing
after it stops, and the store's migrations can run twice (two processes opening it).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from citewise import Workspace
from citewise.server import create_app
from citewise.server.replicas import ReplicaBeat
from citewise.storage.sqlite import DATABASE_FILE, MIGRATIONS, SqliteStore
from conftest import LiveServer

HUGE = "99999999999999999999"  # more than a 64-bit integer: SQLite cannot bind it
CORRUPT_PDF = b"%PDF-1.4\nthis is not really a pdf\n%%EOF"


@pytest.mark.slow
def test_ids_too_large_for_the_store_are_a_422(ingested) -> None:
    ws, _ = ingested
    with LiveServer(create_app(ws, auth=False)) as live, httpx.Client(base_url=live.url) as client:
        for method, path in [
            ("GET", f"/v1/collections/default/documents/{HUGE}"),
            ("DELETE", f"/v1/collections/default/documents/{HUGE}"),
            ("POST", f"/v1/collections/default/documents/{HUGE}/media"),
            ("GET", f"/v1/admin/collections/default/documents/{HUGE}"),
            ("POST", f"/v1/admin/collections/default/documents/{HUGE}/reingest"),
            ("GET", f"/v1/admin/eval/runs/{HUGE}"),
        ]:
            response = client.request(method, path)
            assert response.status_code == 422, (method, path, response.text)
            assert response.json()["error"]["code"] == "invalid_request", response.text
        # The largest id the store keeps is still an ordinary "not found".
        top = client.get(f"/v1/collections/default/documents/{2**63 - 1}")
        assert top.status_code == 404, top.text
        assert client.get(f"/v1/admin/eval/runs/{2**63 - 1}").status_code == 404


@pytest.mark.slow
def test_a_retried_job_points_to_its_retry_and_failed_uploads_wait_for_a_retry(ingested) -> None:
    ws, _ = ingested
    app = create_app(ws, auth=False)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        queue = live.service.jobs
        sent = client.post(
            "/v1/collections/default/documents", files=[("files", ("broken.pdf", CORRUPT_PDF))]
        )
        assert sent.status_code == 202, sent.text
        first = queue.wait(sent.json()["id"])
        assert first.files[0].status == "failed"
        retry = client.post(f"/v1/admin/jobs/{first.id}/retry")
        assert retry.status_code == 202, retry.text
        second = queue.wait(retry.json()["id"])
        assert second.retry_of == first.id and second.files[0].status == "failed"
        # The first job's failed file is the retry's now: not retryable twice over.
        again = client.post(f"/v1/admin/jobs/{first.id}/retry")
        assert again.status_code == 409, again.text
        assert second.id in again.json()["error"]["message"]
        listed = {j["id"]: j for j in client.get("/v1/admin/jobs").json()["data"]}
        assert listed[first.id]["retryable"] is False
        assert listed[first.id]["retry_files"] == []
        assert listed[first.id]["retried_by"] == second.id
        assert second.id in listed[first.id]["retry_note"]
        assert listed[second.id]["retryable"] is True  # the retry failed too: it can run
    # A restart does not queue the failed upload again: its jobs ran it and may retry it.
    restarted = create_app(ws, auth=False).state.service
    try:
        assert restarted.resumed == []
    finally:
        restarted.close()
    # Written again since (a new copy put there), it is queued at the next start.
    upload = ws.path / "uploads" / "default" / "broken.pdf"
    upload.write_bytes(b"# Not a PDF after all\n")
    later = time.time() + 5
    import os

    os.utime(upload, (later, later))
    again_started = create_app(ws, auth=False).state.service
    try:
        (job,) = again_started.resumed
        assert [f.name for f in job.files] == ["broken.pdf"]
    finally:
        again_started.close()


class _Store:
    """Records heartbeats; fails on demand."""

    def __init__(self) -> None:
        self.beats: list[str] = []
        self.failing = False

    def schema_version(self) -> list[str]:
        if self.failing:
            raise sqlite3.OperationalError("database is locked")
        return ["_m010_eval_runs"]

    def beat_replica(self, replica: str, *rest: str) -> None:
        self.beats.append(replica)

    def replicas(self, seen_since: float) -> list[dict]:
        return []


def test_the_heartbeat_starts_once_survives_a_failing_store_and_stops_writing() -> None:
    store = _Store()
    beat = ReplicaBeat(store, "r1", interval=0.01)  # type: ignore[arg-type]
    beat.start()
    beat.start()  # a second lifespan of the same app: no "threads can only be started once"
    deadline = time.monotonic() + 5
    while len(store.beats) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(store.beats) >= 3
    store.failing = True
    time.sleep(0.05)  # beats fail now: the thread goes on
    assert beat._thread.is_alive()
    store.failing = False
    beat.close()
    assert not beat._thread.is_alive()
    written = len(store.beats)
    beat.beat()  # a request noting the address after shutdown
    beat.note_address("127.0.0.1:8000")
    beat.start()  # and a start after close starts nothing
    time.sleep(0.05)
    assert len(store.beats) == written
    assert not beat._thread.is_alive()


def test_migrations_run_once_when_processes_open_a_new_store_together(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILE
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_store() -> None:
        try:
            start.wait()
            SqliteStore(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = SqliteStore(path)
    try:
        names = store.schema_version()
        assert len(names) == len(set(names)) and names[-1] == MIGRATIONS[-1].__name__
    finally:
        store.close()


def test_the_eval_runs_migration_can_run_again(tmp_path: Path) -> None:
    Workspace.open(tmp_path / "ws").close()
    database = tmp_path / "ws" / DATABASE_FILE
    with sqlite3.connect(database) as db:  # as if another process had not recorded it yet
        db.execute("DELETE FROM _migrations WHERE name = '_m010_eval_runs'")
    with Workspace.open(tmp_path / "ws") as ws:
        assert "_m010_eval_runs" in ws.store.schema_version()
        assert ws.store.eval_runs() == []
