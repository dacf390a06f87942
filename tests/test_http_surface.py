"""One HTTP surface: what browsers, the official SDKs and curl get from every route — CORS
for openai-node, the web app's security headers on every path that serves it, errors that
name a field (never a byte offset), refused unknown or invalid query arguments, sources
without server paths, and the small items around them (HEAD /, reusable key names, upload
job states, ASCII collection names, the target of an answer the checks stopped)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import openai
import pytest

from citewise import Workspace
from citewise.errors import InvalidInput
from citewise.keys import authenticate, create_key, list_keys, revoke_key
from citewise.names import check_collection_name
from citewise.server import create_app
from citewise.server.jobs import JobQueue
from citewise.server.media import _active_key
from citewise.workspace import init_workspace
from conftest import LiveServer, new_database
from standins import stand_in

pytestmark = pytest.mark.slow  # real servers

ORIGIN = "https://app.example.com"
# What openai-node (src/client.ts buildHeaders, internal/detect-platform.ts) sends with a
# call, so what a browser's preflight asks for: its platform headers, the retry count and
# timeout, the helpers' markers, organization and project, and OpenAI-Beta.
OPENAI_NODE_HEADERS = [
    "authorization",
    "content-type",
    "accept",
    "x-stainless-os",
    "x-stainless-lang",
    "x-stainless-package-version",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-arch",
    "x-stainless-retry-count",
    "x-stainless-timeout",
    "x-stainless-helper-method",
    "x-stainless-poll-helper",
    "x-stainless-custom-poll-interval",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "idempotency-key",
]


@pytest.fixture(scope="module")
def surface(ingested_template: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("surface")
    shutil.copytree(ingested_template / "ws", root / "ws")
    # No model generation: answers quote their best passage (citations in milliseconds).
    (root / "ws" / "citewise.toml").write_text(
        f'answer_check = "quote"\ncors_origins = "{ORIGIN}"\n'
    )
    workspace = Workspace.open(root / "ws")
    keys = {
        "admin": create_key(workspace.store, "admin", ["*"], ["admin"])[0],
        "reader": create_key(workspace.store, "reader", ["default"], ["ask"])[0],
    }
    with LiveServer(create_app(workspace)) as live:
        live.keys = keys
        live.workspace = workspace
        live.corpus = ingested_template / "corpus"
        yield live
    workspace.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error_of(response: httpx.Response) -> dict:
    error = response.json()["error"]
    assert {"message", "type", "param", "code"} <= set(error), response.text
    return error


# -- CORS -------------------------------------------------------------------------------


def test_openai_node_preflight_from_a_listed_origin_is_allowed(surface: LiveServer) -> None:
    asked = ",".join(OPENAI_NODE_HEADERS)
    preflight = httpx.options(
        surface.url + "/v1/chat/completions",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked,
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = {h.strip() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert set(OPENAI_NODE_HEADERS) <= {h.lower() for h in allowed}
    assert "access-control-allow-credentials" not in preflight.headers  # keys, never cookies
    # The call itself: the page may read what the SDK reads (request id, retry advice).
    call = httpx.get(
        surface.url + "/v1/models", headers={"Origin": ORIGIN, **bearer(surface.keys["reader"])}
    )
    assert call.status_code == 200 and call.headers["access-control-allow-origin"] == ORIGIN
    exposed = call.headers["access-control-expose-headers"].lower()
    for name in ("x-request-id", "x-should-retry", "retry-after", "x-ratelimit-remaining-requests"):
        assert name in exposed
    # Another origin is refused, whatever it asks for.
    other = httpx.options(
        surface.url + "/v1/chat/completions",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked,
        },
    )
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers


def test_without_cors_origins_every_preflight_gets_400(tmp_path: Path, workspace) -> None:
    from fastapi.testclient import TestClient

    app = create_app(workspace, auth=False)
    try:
        client = TestClient(app)
        for origin in (ORIGIN, "https://evil.example"):
            preflight = client.options(
                "/v1/chat/completions",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type",
                },
            )
            assert preflight.status_code == 400, preflight.text  # as README says; not 405
            assert "access-control-allow-origin" not in preflight.headers
    finally:
        app.state.service.close()


# -- the web app ------------------------------------------------------------------------


def test_every_path_serving_the_web_app_carries_its_security_headers(surface: LiveServer) -> None:
    responses = {
        "GET /": httpx.get(surface.url + "/"),
        "HEAD /": httpx.head(surface.url + "/"),
        "GET /static/index.html": httpx.get(surface.url + "/static/index.html"),
        "GET /static/app.js": httpx.get(surface.url + "/static/app.js"),
        "HEAD /static/index.html": httpx.head(surface.url + "/static/index.html"),
    }
    for what, response in responses.items():
        assert response.status_code == 200, what
        csp = response.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, what
        assert response.headers.get("x-frame-options") == "DENY", what
        assert response.headers["x-content-type-options"] == "nosniff", what
    assert responses["HEAD /"].content == b""
    assert responses["HEAD /"].headers["content-type"].startswith("text/html")
    # The API is not the web app: no page policy on JSON.
    assert "x-frame-options" not in httpx.get(surface.url + "/healthz").headers


def test_health_checks_answer_head_as_load_balancers_send_it(surface: LiveServer) -> None:
    for path in ("/healthz", "/readyz"):
        response = httpx.head(surface.url + path)
        assert response.status_code == 200, path
        assert response.content == b""


# -- error shapes -----------------------------------------------------------------------


def test_malformed_json_names_no_field(surface: LiveServer) -> None:
    response = httpx.post(
        surface.url + "/v1/search",
        content=b'{"query": "parking", "k": }',
        headers={"Content-Type": "application/json", **bearer(surface.keys["reader"])},
    )
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["param"] is None and error["code"] == "invalid_json"
    assert "not valid JSON" in error["message"]


def test_invalid_query_values_name_the_argument(surface: LiveServer) -> None:
    reader = bearer(surface.keys["reader"])
    cases = {
        "/v1/usage?group_by=nonsense": "group_by",
        "/v1/usage?since=garbage": "since",
        "/v1/usage?calls=maybe": "calls",
        "/v1/collections/default/documents?limit=abc": "limit",
    }
    for path, param in cases.items():
        response = httpx.get(surface.url + path, headers=reader)
        assert response.status_code == 422, (path, response.text)
        error = error_of(response)
        assert (error["param"], error["code"], error["type"]) == (
            param,
            "invalid_request",
            "invalid_request_error",
        ), path
    # A time it can read is taken, with or without a zone.
    for since in ("2000-01-01", "2000-01-01T08:00:00Z", "2000-01-01T08:00:00+02:00"):
        ok = httpx.get(surface.url + "/v1/usage", params={"since": since}, headers=reader)
        assert ok.status_code == 200, (since, ok.text)
    future = httpx.get(
        surface.url + "/v1/usage", params={"since": "2999-01-01", "calls": "true"}, headers=reader
    )
    assert future.status_code == 200 and future.json()["data"] == []


def test_unknown_query_arguments_are_refused_by_name(surface: LiveServer) -> None:
    reader = bearer(surface.keys["reader"])
    cases = {
        "/v1/models?foo=1": "foo",
        "/v1/usage?group-by=model": "group-by",
        "/v1/collections/default/documents?limit=5&ofset=10": "ofset",
    }
    for path, param in cases.items():
        response = httpx.get(surface.url + path, headers=reader)
        assert response.status_code == 400, (path, response.text)
        error = error_of(response)
        assert (error["param"], error["code"]) == (param, "unknown_parameter"), path
    post = httpx.post(surface.url + "/v1/search?debug=1", headers=reader, json={"query": "parking"})
    assert post.status_code == 400 and error_of(post)["param"] == "debug"
    # What a route takes still works, and routes outside the API are not concerned.
    assert (
        httpx.get(
            surface.url + "/v1/collections/default/documents?limit=1&offset=0", headers=reader
        ).status_code
        == 200
    )
    assert httpx.get(surface.url + "/healthz?probe=1").status_code == 200


def test_a_lone_surrogate_in_an_ignored_field_is_named(surface: LiveServer) -> None:
    reader = {"Content-Type": "application/json", **bearer(surface.keys["reader"])}
    bodies = {
        '{"model": "citewise", "messages": [{"role": "user", "content": "parking?"}], '
        '"user": "a \\ud83d b"}': "user",
        '{"model": "citewise", "messages": [{"role": "user", "content": "parking?", '
        '"name": "\\udc00"}]}': "messages.0.name",
        '{"query": "parking", "metadata": {"note": ["\\ud83d"]}}': "metadata",
    }
    for body, param in bodies.items():
        path = "/v1/search" if '"query"' in body else "/v1/chat/completions"
        response = httpx.post(surface.url + path, content=body, headers=reader, timeout=60)
        assert response.status_code == 422, (body, response.text)
        error = error_of(response)
        assert error["param"] == param and "surrogate" in error["message"], (body, error)
    # Ignored fields of valid text are still ignored, as OpenAI's API does.
    fine = httpx.post(
        surface.url + "/v1/search",
        headers=reader,
        json={"query": "parking", "user": "someone", "metadata": {"a": "b"}},
    )
    assert fine.status_code == 200, fine.text


# -- sources ----------------------------------------------------------------------------


def test_sources_never_show_server_paths(surface: LiveServer) -> None:
    reader = bearer(surface.keys["reader"])
    corpus = str(surface.corpus.resolve())
    server_paths = (corpus, str(surface.workspace.path.resolve()))
    found = httpx.post(
        surface.url + "/v1/search",
        headers=reader,
        json={"query": "thermostat target temperature", "k": 10},
    ).json()["data"]
    shown = {hit["source"] for hit in found}
    assert "src/thermostat.py" in shown, shown  # relative to the folder that was ingested
    for hit in found:
        assert not hit["source"].startswith("/"), hit["source"]
        assert hit["metadata"].get("path") == hit["source"], hit["metadata"]
    listed = httpx.get(surface.url + "/v1/collections/default/documents", headers=reader)
    documents = listed.json()["data"]
    assert {"guide.md", "safety.pdf", "travel.docx", "src/thermostat.py"} <= {
        d["source"] for d in documents
    }
    one = httpx.get(
        surface.url + f"/v1/collections/default/documents/{documents[0]['id']}", headers=reader
    )
    answer = httpx.post(
        surface.url + "/v1/chat/completions",
        headers=reader,
        timeout=60,
        json={
            "model": "citewise",
            "messages": [{"role": "user", "content": "Where do visitors park?"}],
        },
    )
    assert answer.status_code == 200 and answer.json()["citations"], answer.text
    with httpx.stream(
        "POST",
        surface.url + "/v1/chat/completions",
        headers=reader,
        timeout=60,
        json={
            "model": "citewise",
            "stream": True,
            "messages": [{"role": "user", "content": "Where do visitors park?"}],
        },
    ) as stream:
        streamed = "".join(stream.iter_text())
    assert '"search_results"' in streamed and '"citations"' in streamed
    for text in (json.dumps(found), listed.text, one.text, answer.text, streamed):
        for path in server_paths:
            assert path not in text, path
    citation = answer.json()["citations"][0]
    assert citation["source"] == "handbook.html" and citation["metadata"]["path"] == "handbook.html"


# -- keys, jobs, names ------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store_workspace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    store = (
        new_database(request.getfixturevalue("postgres")) if request.param == "postgresql" else ""
    )
    ws = Workspace.open(init_workspace(tmp_path / "ws", store=store))
    yield ws
    ws.close()


def test_a_revoked_keys_name_can_be_reused(store_workspace: Workspace) -> None:
    store = store_workspace.store
    old, old_record = create_key(store, "alice", ["docs"], ["ask"])
    with pytest.raises(Exception, match="exists"):
        create_key(store, "alice", ["docs"], ["ask"])  # an active key keeps its name
    revoke_key(store, "alice")
    new, _ = create_key(store, "alice", ["*"], ["ask", "ingest"])
    assert authenticate(store, new).name == "alice"
    assert authenticate(store, old) is None  # the revoked key stays revoked
    assert [k.name for k in list_keys(store)] == ["alice"]
    everything = {k.name: k for k in list_keys(store, include_revoked=True)}
    (kept,) = [k for name, k in everything.items() if name != "alice"]
    assert kept.name.startswith("alice (revoked #") and kept.revoked_at is not None
    assert kept.prefix == old_record.prefix
    revoke_key(store, "alice")  # and again: each revoked one keeps its own row
    create_key(store, "alice", ["docs"], ["ask"])
    assert len(list_keys(store, include_revoked=True)) == 3
    # A media link made by the revoked key does not play for the new key of its name.
    service = SimpleNamespace(auth=True, workspace=store_workspace)
    assert _active_key(service, "alice", old_record.prefix) is None
    current = next(k for k in list_keys(store) if k.name == "alice")
    assert _active_key(service, "alice", current.prefix) == current


def test_upload_job_files_read_added_once_committed(ingested, tmp_path: Path) -> None:
    ws, _ = ingested
    uploads = ws.path / "uploads" / "default"
    uploads.mkdir(parents=True)
    files = []
    for n in range(3):
        path = uploads / f"note{n}.md"
        path.write_text(f"# Note {n}\n\nThe kiln number {n} fires at {1000 + n} degrees.\n")
        files.append((path.name, path))
    saved: list[tuple[str, dict[str, str]]] = []
    save_job, refresh = ws.store.save_job, ws.refresh_indexes

    def recording_save(job_id, worker, status, state, lease):  # type: ignore[no-untyped-def]
        saved.append(("save", {f["name"]: f["status"] for f in state["files"]}))
        return save_job(job_id, worker, status, state, lease)

    def recording_refresh(*args, **kwargs):  # type: ignore[no-untyped-def]
        saved.append(("refresh", {}))  # every document is committed by now
        return refresh(*args, **kwargs)

    ws.store.save_job, ws.refresh_indexes = recording_save, recording_refresh
    queue = JobQueue(ws)
    try:
        job = queue.wait(queue.submit("default", files).id)
    finally:
        queue.close()
    assert job.status == "done" and {f.status for f in job.files} == {"added"}
    before_refresh = [
        states for kind, states in saved[: saved.index(("refresh", {}))] if kind == "save"
    ]
    # Saved before the job ended: the files read "added" as soon as they were committed.
    assert before_refresh and set(before_refresh[-1].values()) == {"added"}, saved


def test_collection_names_are_ascii(surface: LiveServer) -> None:
    for name in ("Ａ", "ｄocs", "café", "docs\u200b", "٣"):
        with pytest.raises(InvalidInput):
            check_collection_name(name)
    assert check_collection_name("Docs_2.v-1") == "Docs_2.v-1"
    admin = bearer(surface.keys["admin"])
    response = httpx.post(
        surface.url + "/v1/collections/%EF%BC%A1/documents",
        headers=admin,
        files=[("files", ("a.md", b"# A\n\nText.\n"))],
    )
    assert response.status_code == 422 and error_of(response)["param"] == "collection"


# -- an answer the checks stopped ---------------------------------------------------------


def test_an_answer_the_checks_stopped_names_its_target_and_attempts(
    ingested, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_KEY", "sk-standin")
    ws, _ = ingested
    with stand_in("openai") as (url, script):
        # The model loops: the checks stop it at the repeat and cancel the generation.
        script.reply = "Keys are rotated with keyctl rotate. [1] " * 6
        lines = [
            "",
            "[models.chain]",
            'chain = ["openai:model-a"]',
            '[targets."openai:model-a"]',
            f'base_url = "{url}"',
            'api_key_env = "STANDIN_KEY"',
        ]
        with (ws.path / "citewise.toml").open("a", encoding="utf-8") as config:
            config.write("\n".join(lines) + "\n")
        chained = Workspace.open(ws.path, model="chain")
        try:
            with LiveServer(create_app(chained, auth=False)) as live:
                client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
                raw = client.chat.completions.with_raw_response.create(
                    model="citewise",
                    messages=[{"role": "user", "content": "How do I rotate the API keys?"}],
                )
        finally:
            chained.close()
    body = json.loads(raw.text)
    assert body["choices"][0]["message"]["content"].count("keyctl rotate") == 1  # stopped
    route = body["citewise"]
    assert route["target"] == "openai:model-a", route
    assert [(a["target"], a["status"]) for a in route["attempts"]] == [
        ("openai:model-a", "cancelled")
    ]
    assert raw.headers["x-citewise-target"] == "openai:model-a"
    assert raw.headers["x-citewise-attempts"] == "openai:model-a=cancelled"


def test_without_auth_the_api_answers_only_requests_addressed_to_this_machine(
    workspace,
) -> None:
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 calls the
    keyless server from the victim's browser, same-origin. Its Host header gives it away."""
    from fastapi.testclient import TestClient

    app = create_app(workspace, auth=False)
    try:
        client = TestClient(app, base_url="http://127.0.0.1:8080")
        body = {"query": "rotate the keys", "k": 1}
        assert client.post("/v1/search", json=body).status_code == 200
        for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example"):
            refused = client.post("/v1/search", json=body, headers={"Host": host})
            assert refused.status_code == 421, host
            assert refused.json()["error"]["code"] == "invalid_host"
        for host in ("localhost:8080", "[::1]:8080"):
            assert client.post("/v1/search", json=body, headers={"Host": host}).status_code == 200
        # The web page and health checks need no key and stay reachable.
        assert client.get("/healthz", headers={"Host": "evil.example"}).status_code == 200
    finally:
        app.state.service.close()
