"""The MCP server, driven by the official MCP client of the same SDK: over stdio (the real
``citewise mcp`` console script) and over Streamable HTTP (``/mcp`` on a live server)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from citewise import Workspace
from citewise.keys import create_key, revoke_key
from citewise.server import create_app
from conftest import CITEWISE, LiveServer

T = TypeVar("T")
TOOLS = {"search", "fetch", "ask", "list_collections"}
SECRET = "The launch codename is OSPREY-7731; the rocket lifts off from pad 39B."
SECRET_QUERY = "launch codename rocket pad"


def _environment(**extra: str) -> dict[str, str]:
    # The tests' environment (HF_HUB_OFFLINE, no CITEWISE_* of the shell's), for the child.
    return {**os.environ, **extra}


def over_stdio(workspace: Path, use: Callable[[Client], Awaitable[T]], *args: str, **env: str) -> T:
    """``use(client)`` with a client of ``citewise -w WORKSPACE mcp ARGS`` (a real process)."""
    server = StdioServerParameters(
        command=CITEWISE, args=["-w", str(workspace), "mcp", *args], env=_environment(**env)
    )

    async def main() -> T:
        async with Client(server, read_timeout_seconds=600) as client:
            return await use(client)

    return anyio.run(main)


def over_http(url: str, key: str, use: Callable[[Client], Awaitable[T]], mode: str = "auto") -> T:
    async def main() -> T:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(600)) as http:
            transport = streamable_http_client(url + "/mcp", http_client=http)
            async with Client(transport, read_timeout_seconds=600, mode=mode) as client:
                return await use(client)

    return anyio.run(main)


def data(result: CallToolResult) -> dict[str, Any]:
    """A tool's result: its structured content, which its text content repeats as JSON."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "Traceback" not in text
    return text


def add_secret_collection(workspace: Workspace, root: Path) -> None:
    (root / "secret").mkdir()
    (root / "secret" / "launch.md").write_text(f"# Launch plan\n\n{SECRET}\n")
    report = workspace.ingest([root / "secret"], collection="secret")
    assert report.added == 1, report


# -- stdio: the console script, as Claude Desktop, Cursor and VS Code start it -------------


def test_stdio_lists_the_tools_and_searches_with_citations(ingested) -> None:
    workspace, corpus = ingested

    async def use(client: Client) -> tuple[set[str], CallToolResult]:
        tools = await client.list_tools()
        return {t.name for t in tools.tools}, await client.call_tool(
            "search", {"query": "How do I rotate the API keys?"}
        )

    names, result = over_stdio(workspace.path, use)
    assert names == TOOLS
    results = data(result)["results"]
    # The text content is the JSON a ChatGPT connector reads: {"results": [...]}.
    assert json.loads(result.content[0].text) == {"results": results}
    first = results[0]
    assert {"id", "title", "url", "text"} <= set(first)
    assert first["title"] == "Deployment guide"
    assert "keyctl rotate --all" in first["text"]
    assert first["id"] == f"default/{first['document_id']}#{first['chunk_id']}"
    assert first["url"] == "citewise://" + first["id"]  # a file has no public URL
    assert first["source"] == "guide.md"  # relative to the folder ingested
    assert first["heading_path"] == ["Deployment guide", "Rotating API keys"]
    assert (
        first["location"]
        == f"Deployment guide > Rotating API keys, chars {first['start']}-{first['end']}"
    )
    document = (corpus / "guide.md").read_text(encoding="utf-8")
    assert document[first["start"] : first["end"]] == first["text"]
    # Never a path of the server's file system.
    text = result.content[0].text
    assert str(corpus) not in text and str(workspace.path) not in text


def test_stdio_fetch_returns_the_whole_document(ingested) -> None:
    workspace, corpus = ingested

    async def use(client: Client) -> list[CallToolResult]:
        found = data(await client.call_tool("search", {"query": "emergency assembly point"}))
        first = found["results"][0]
        return [
            await client.call_tool("fetch", {"id": first["id"]}),
            await client.call_tool("fetch", {"id": "default/999999"}),
            await client.call_tool("fetch", {"id": "../../etc/passwd"}),
            await client.call_tool("fetch", {"id": "nowhere/1"}),
        ]

    fetched, missing, malformed, unknown = over_stdio(workspace.path, use)
    document = data(fetched)
    assert set(document) == {"id", "title", "text", "url", "metadata"}
    assert document["title"] == "Safety procedures"
    # The whole document: both pages of the PDF, not only the passage found.
    assert "Fire drills happen on the first Monday" in document["text"]
    assert "north parking lot" in document["text"]
    assert document["url"].startswith("citewise://default/")
    metadata = document["metadata"]
    assert metadata["source"] == "safety.pdf"
    assert metadata["passage"]["page"] == 2
    assert not any(key.startswith("principal") for key in metadata)
    assert str(corpus) not in json.dumps(document)
    assert "No document 999999 in 'default'" in error(missing)
    assert "fetch takes an id that search returned" in error(malformed)
    assert "No collection named 'nowhere'" in error(unknown)


def test_stdio_lists_collections(ingested, tmp_path: Path) -> None:
    workspace, _ = ingested
    add_secret_collection(workspace, tmp_path)

    async def use(client: Client) -> CallToolResult:
        return await client.call_tool("list_collections", {})

    listed = {c["name"]: c for c in data(over_stdio(workspace.path, use))["collections"]}
    assert set(listed) == {"default", "secret"}
    assert listed["default"]["documents"] == 7
    assert listed["secret"] == {
        "name": "secret",
        "documents": 1,
        "chunks": 1,
        "embedder": "all-MiniLM-L6-v2",
    }


def test_stdio_with_a_key_reads_only_that_keys_collections(ingested, tmp_path: Path) -> None:
    workspace, _ = ingested
    add_secret_collection(workspace, tmp_path)
    secret_id = f"secret/{workspace.store.list_documents(workspace.collection('secret').id)[0].id}"
    key, _ = create_key(workspace.store, "reader", ["default"], ["ask"])

    async def use(client: Client) -> list[CallToolResult]:
        return [
            await client.call_tool("search", {"query": SECRET_QUERY}),
            await client.call_tool("fetch", {"id": secret_id}),
            await client.call_tool("list_collections", {}),
        ]

    found, fetched, listed = over_stdio(
        workspace.path, use, "--key-env", "MCP_TEST_KEY", MCP_TEST_KEY=key
    )
    results = data(found)["results"]
    assert results and all(r["collection"] == "default" for r in results)
    assert "OSPREY" not in found.content[0].text
    assert "may not read the collection 'secret'" in error(fetched)
    assert [c["name"] for c in data(listed)["collections"]] == ["default"]
    # Without the key: the workspace's owner reads everything.
    owner = over_stdio(workspace.path, lambda c: c.call_tool("fetch", {"id": secret_id}))
    assert SECRET in data(owner)["text"]


def test_stdio_refuses_a_revoked_or_missing_key(ingested) -> None:
    workspace, _ = ingested
    key, _ = create_key(workspace.store, "gone", ["*"], ["ask"])
    revoke_key(workspace.store, "gone")
    for env in ({"MCP_TEST_KEY": key}, {}):
        done = subprocess.run(
            [CITEWISE, "-w", str(workspace.path), "mcp", "--key-env", "MCP_TEST_KEY"],
            env=_environment(**env) if env else _without("MCP_TEST_KEY"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0
        assert "Traceback" not in done.stderr
        assert "MCP_TEST_KEY" in done.stderr
        assert key not in done.stderr + done.stdout


def _without(name: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != name}


def test_without_the_sdk_the_command_names_the_extra(tmp_path: Path) -> None:
    # A package named mcp that is not the SDK stands first on the path: its modules are missing.
    (tmp_path / "shadow" / "mcp").mkdir(parents=True)
    (tmp_path / "shadow" / "mcp" / "__init__.py").write_text("")
    done = subprocess.run(
        [CITEWISE, "-w", str(tmp_path / "ws"), "mcp"],
        env=_environment(PYTHONPATH=str(tmp_path / "shadow")),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "pip install 'citewise[mcp]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow  # the local chat model answers
def test_stdio_ask_answers_with_numbered_citations(ingested) -> None:
    workspace, corpus = ingested

    async def use(client: Client) -> list[CallToolResult]:
        return [
            await client.call_tool("ask", {"question": "How do I rotate the API keys?"}),
            await client.call_tool("ask", {"question": "Any?", "collections": ["nowhere"]}),
        ]

    answered, unknown = over_stdio(workspace.path, use)
    answer = data(answered)
    assert "keyctl rotate" in answer["answer"]
    assert not answer["refused"]
    citations = answer["citations"]
    assert citations, answer
    first = citations[0]
    assert f"[{first['number']}]" in answer["answer"]
    assert first["title"] == "Deployment guide"
    assert first["source"] == "guide.md"
    assert "keyctl rotate --all" in first["quote"]
    document = (corpus / "guide.md").read_text(encoding="utf-8")
    assert first["quote"] in document[first["start"] : first["end"]]
    # What the model reads: the answer, then its numbered sources with their quotes.
    text = answered.content[0].text
    assert text.startswith(answer["answer"])
    assert f"[{first['number']}] Deployment guide (Deployment guide > Rotating API keys" in text
    assert "No collection named 'nowhere'" in error(unknown)


# -- Streamable HTTP: /mcp on a live server with API keys ----------------------------------


@pytest.fixture(scope="module")
def keyed(ingested_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("mcp-http")
    shutil.copytree(ingested_template / "ws", root / "ws")
    (root / "ws" / "citewise.toml").write_text('cors_origins = "https://app.example.com"\n')
    workspace = Workspace.open(root / "ws")
    add_secret_collection(workspace, root)
    keys = {
        "all": create_key(workspace.store, "all", ["*"], ["ask"])[0],
        "reader": create_key(workspace.store, "reader", ["default"], ["ask"])[0],
        "ingester": create_key(workspace.store, "ingester", ["*"], ["ingest"])[0],
        "limited": create_key(workspace.store, "limited", ["default"], ["ask"], rpm=1)[0],
    }
    secret = workspace.store.list_documents(workspace.collection("secret").id)[0]
    with LiveServer(create_app(workspace, auth=True)) as live:
        live.keys = keys
        live.secret_id = f"secret/{secret.id}"
        live.workspace = workspace
        yield live
    workspace.close()


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.mark.slow  # a live server
def test_http_a_key_never_sees_another_collection(keyed: Any) -> None:
    async def use(client: Client) -> list[CallToolResult]:
        return [
            await client.call_tool("search", {"query": SECRET_QUERY}),
            await client.call_tool("fetch", {"id": keyed.secret_id}),
            await client.call_tool("list_collections", {}),
            await client.call_tool("ask", {"question": "codename?", "collections": ["secret"]}),
        ]

    found, fetched, listed, asked = over_http(keyed.url, keyed.keys["reader"], use)
    results = data(found)["results"]
    assert results and all(r["collection"] == "default" for r in results)
    assert "OSPREY" not in found.content[0].text
    assert "may not read the collection 'secret'" in error(fetched)
    assert "OSPREY" not in " ".join(getattr(b, "text", "") for b in fetched.content)
    assert [c["name"] for c in data(listed)["collections"]] == ["default"]
    assert "may not read the collection 'secret'" in error(asked)


@pytest.mark.slow  # a live server
# auto: the 2026-07-28 protocol, one request per call; legacy: the initialize handshake first.
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_http_a_key_for_every_collection_finds_and_fetches(keyed: Any, mode: str) -> None:
    async def use(client: Client) -> tuple[set[str], CallToolResult, CallToolResult]:
        tools = {t.name for t in (await client.list_tools()).tools}
        found = await client.call_tool("search", {"query": SECRET_QUERY})
        return tools, found, await client.call_tool("fetch", {"id": keyed.secret_id})

    tools, found, fetched = over_http(keyed.url, keyed.keys["all"], use, mode)
    assert tools == TOOLS
    first = data(found)["results"][0]
    assert (first["collection"], first["title"]) == ("secret", "Launch plan")
    document = data(fetched)
    assert document["title"] == "Launch plan" and SECRET in document["text"]
    assert document["metadata"]["source"] == "launch.md"


@pytest.mark.slow  # a live server
def test_http_a_key_without_the_ask_scope_is_refused(keyed: Any) -> None:
    async def use(client: Client) -> CallToolResult:
        return await client.call_tool("search", {"query": "backups"})

    refused = over_http(keyed.url, keyed.keys["ingester"], use)
    assert "lacks the 'ask' scope" in error(refused)


@pytest.mark.slow  # a live server
def test_http_tool_calls_take_the_keys_request_rate_limit(keyed: Any) -> None:
    async def use(client: Client) -> list[CallToolResult]:
        return [await client.call_tool("search", {"query": "backups"}) for _ in range(2)]

    first, second = over_http(keyed.url, keyed.keys["limited"], use)
    assert data(first)["results"]
    assert "Rate limit reached for requests per minute (limit 1)" in error(second)


@pytest.mark.slow  # a live server
def test_http_without_a_key_is_401(keyed: Any) -> None:
    for headers in ({}, {"Authorization": "Bearer cw-not-a-real-key"}):
        response = httpx.post(
            keyed.url + "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers}, timeout=30
        )
        assert response.status_code == 401, response.text
        assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.slow  # a live server
def test_http_refuses_a_foreign_origin(keyed: Any) -> None:
    auth = {"Authorization": f"Bearer {keyed.keys['all']}", **MCP_HEADERS}

    def post(origin: str) -> httpx.Response:
        return httpx.post(
            keyed.url + "/mcp", json=INITIALIZE, headers={**auth, "Origin": origin}, timeout=30
        )

    for foreign in ("https://evil.example", "null", "http://127.0.0.1.evil.example"):
        refused = post(foreign)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "origin_forbidden"
    # The server's own origin, a loopback page and a listed app are answered.
    for allowed in (keyed.url, "http://localhost:5173", "https://app.example.com"):
        answered = post(allowed)
        assert answered.status_code == 200, (allowed, answered.text)
        assert answered.json()["result"]["serverInfo"]["name"] == "citewise"


def test_http_without_auth_answers_loopback_hosts_only(workspace: Workspace) -> None:
    from fastapi.testclient import TestClient

    app = create_app(workspace, auth=False)
    try:
        # No lifespan: the checks come before the MCP session manager is needed.
        rebound = TestClient(app, base_url="http://rebound.evil.example:8080")
        refused = rebound.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert refused.status_code == 421
        assert refused.json()["error"]["code"] == "invalid_host"
        local = TestClient(app, base_url="http://127.0.0.1:8080")
        foreign = local.post(
            "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Origin": "http://evil.example"}
        )
        assert foreign.status_code == 403
        assert foreign.json()["error"]["code"] == "origin_forbidden"
    finally:
        app.state.service.close()


def test_http_without_the_sdk_answers_501_naming_the_extra(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    monkeypatch.setitem(sys.modules, "mcp.server.mcpserver", None)  # import fails
    app = create_app(workspace, auth=False)  # the missing SDK fails nothing else
    try:
        client = TestClient(app, base_url="http://127.0.0.1:8080")
        response = client.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert response.status_code == 501
        assert "pip install 'citewise[mcp]'" in response.json()["error"]["message"]
        assert client.get("/healthz").status_code == 200
    finally:
        app.state.service.close()


# -- ask, cancelled by the client ----------------------------------------------------------

WORDS = 200  # the stand-in's reply: a word every 50 ms, ten seconds in all


@pytest.fixture
def slow_standin(ingested_template: Path, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    """(a workspace whose model is a STAND-IN for an OpenAI-compatible API that answers a
    word every 50 ms, the stand-in's script)."""
    from standins import Script, stand_in

    shutil.copytree(ingested_template / "ws", tmp_path / "ws")
    script = Script(reply=" ".join(f"word{n}" for n in range(WORDS)), delay_per_chunk=0.05)
    with stand_in("openai", script) as (url, _):
        (tmp_path / "ws" / "citewise.toml").write_text(
            f'provider = "openai"\nmodel = "standin-model"\nbase_url = "{url}"\n'
            'api_key_env = "STANDIN_KEY"\nanswer_check = "off"\n'
        )
        yield tmp_path / "ws", script


async def until(condition: Callable[[], bool], seconds: float = 60) -> None:
    with anyio.fail_after(seconds):
        while not condition():
            await anyio.sleep(0.02)


@pytest.mark.slow  # the console script
def test_stdio_a_cancelled_ask_stops_the_model_at_its_next_token(slow_standin: Any) -> None:
    """The client gives up on ``ask`` while the answer streams (notifications/cancelled):
    the generation stops at the next token — the stand-in's connection closes early and
    the ledger records the call as cancelled — instead of running to its end."""
    path, script = slow_standin

    async def use(client: Client) -> None:
        async with anyio.create_task_group() as calls:
            calls.start_soon(client.call_tool, "ask", {"question": "How do I rotate the API keys?"})
            await until(lambda: bool(script.served) and script.served[0].completion_tokens >= 3)
            calls.cancel_scope.cancel()  # the client gives up on the call
        sent = -1  # then waits until the stand-in stops sending
        while sent != script.served[0].completion_tokens:
            sent = script.served[0].completion_tokens
            await anyio.sleep(0.5)

    over_stdio(path, use, STANDIN_KEY="sk-standin")
    assert script.served[0].completion_tokens < WORDS / 2
    with Workspace.open(path) as workspace:
        assert [row.status for row in workspace.ledger.rows()] == ["cancelled"]


@pytest.mark.slow  # the stand-in answers slowly
def test_a_cancelled_ask_is_charged_the_tokens_it_used(
    slow_standin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MCP's ask runs the answer in a worker thread, abandoned when the call is cancelled:
    the thread stops at the next token and still charges what was used (the key's token
    rate limit over HTTP)."""
    import threading

    from citewise.documents import Answer
    from citewise.mcp_server import _whole_answer

    path, script = slow_standin
    monkeypatch.setenv("STANDIN_KEY", "sk-standin")
    charged: list[Answer] = []
    with Workspace.open(path) as workspace:
        stream = workspace.ask_stream("How do I rotate the API keys?")
        worker = threading.Thread(target=_whole_answer, args=(stream, charged.append))
        worker.start()
        anyio.run(until, lambda: bool(script.served) and script.served[0].completion_tokens >= 3)
        stream.cancel()
        worker.join(30)
    (answer,) = charged
    assert answer.usage.prompt_tokens > 0 and 0 < answer.usage.completion_tokens < WORDS / 2
    assert answer.usage.estimated  # the API's count never came: what was sent and received
