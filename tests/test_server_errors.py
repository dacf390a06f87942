"""Input the server cannot use gets a 422, and a failure inside it a logged, counted 500 —
both on a connection that stays usable (issue 11: a lone surrogate gave a 500, after which
uvicorn dropped the keep-alive connection, and the 500 was in neither log nor metrics)."""

from __future__ import annotations

import json
import logging
import re
import shutil
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from citewise import Workspace
from citewise.server import create_app
from conftest import LiveServer

pytestmark = pytest.mark.slow  # a real server

LONE_SURROGATE = '"a \\ud83d b"'  # JSON may carry it; Unicode text may not


@pytest.fixture
def server(ingested_template: Path, tmp_path: Path):
    shutil.copytree(ingested_template / "ws", tmp_path / "ws")
    workspace = Workspace.open(tmp_path / "ws")
    with LiveServer(create_app(workspace)) as live:
        live.workspace = workspace
        yield live
    workspace.close()


def post_raw(client: httpx.Client, path: str, body: str) -> httpx.Response:
    return client.post(path, content=body, headers={"Content-Type": "application/json"})


def test_a_lone_surrogate_is_a_422_on_every_route_and_the_connection_lives(
    server: LiveServer,
) -> None:
    bodies = {
        "/v1/embeddings": f'{{"model": "all-MiniLM-L6-v2", "input": {LONE_SURROGATE}}}',
        "/v1/chat/completions": (
            f'{{"model": "citewise", "messages": [{{"role": "user", "content": {LONE_SURROGATE}}}]}}'
        ),
        "/v1/search": f'{{"query": {LONE_SURROGATE}}}',
        "/v1/feedback": f'{{"rating": 1, "question": {LONE_SURROGATE}, "answer": "x"}}',
    }
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for path, body in bodies.items():
            response = post_raw(client, path, body)
            assert response.status_code == 422, (path, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error" and error["param"], path
            # The same keep-alive connection answers the next request.
            assert client.get("/healthz").status_code == 200, path
        # Bytes that are not UTF-8 at all: a 400 that says so, with a code.
        invalid = client.post(
            "/v1/search",
            content=b'{"query": "\xff\xfe"}',
            headers={"Content-Type": "application/json"},
        )
        assert invalid.status_code == 400
        assert invalid.json()["error"]["code"] == "invalid_json"
        assert "UTF-8" in invalid.json()["error"]["message"]
        assert client.get("/healthz").status_code == 200


def test_an_internal_failure_is_logged_counted_and_keeps_the_connection(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A damaged store: the keyword index table is gone (a real sqlite3 error, not a fake).
    with sqlite3.connect(server.workspace.path / "citewise.db") as db:
        db.execute("DROP TABLE chunks_fts")
    with (
        caplog.at_level(logging.INFO, logger="citewise.access"),
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        before = _server_errors(client)
        response = client.post("/v1/search", json={"query": "rotate keys", "mode": "bm25"})
        assert response.status_code == 500
        assert response.json()["error"] == {
            "message": "The server hit an internal error.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
        assert "chunks_fts" not in response.text  # no internals leak to the client
        assert client.get("/healthz").status_code == 200
        deadline = time.monotonic() + 5  # the line is written once the response has gone
        while not _access_lines(caplog, 500) and time.monotonic() < deadline:
            time.sleep(0.05)
        after = _server_errors(client)
    [line] = _access_lines(caplog, 500)
    assert line["path"] == "/v1/search" and line["route"] == "/v1/search"
    assert after == before + 1  # counted once, as the 500 it was
    assert "unhandled error on /v1/search" in caplog.text


def _server_errors(client: httpx.Client) -> float:
    metrics = client.get("/metrics").text
    found = re.search(r'^citewise_errors_total\{type="server_error"\} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


def _access_lines(caplog: pytest.LogCaptureFixture, status: int) -> list[dict]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "citewise.access"]
    return [line for line in lines if line["status"] == status]


def test_uploads_a_stopped_server_left_unfinished_are_picked_up(ingested) -> None:
    """kill -9 after an upload was saved but before it was ingested: the next start
    ingests it; a half-written upload is removed; stored uploads are not redone."""
    ws, _ = ingested
    folder = ws.path / "uploads" / "default"
    folder.mkdir(parents=True)
    (folder / "parking.md").write_text("# Parking\n\nVisitors park on level minus two.\n")
    (folder / "cut-off.md.part").write_text("# Half an upl")
    app = create_app(ws, auth=False)
    service = app.state.service
    (job,) = service.resumed
    assert [f.name for f in job.files] == ["parking.md"]
    assert service.jobs.wait(job.id).files[0].status == "added"
    assert not (folder / "cut-off.md.part").exists()
    assert "level minus two" in ws.search("where do visitors park", 1)[0].text
    service.close()
    again = create_app(ws, auth=False).state.service  # everything is stored now
    assert again.resumed == []
    again.close()
