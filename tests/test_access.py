"""Permission-aware retrieval end to end (issue 26): what each reader gets on every read
path — search in each mode, ask (single-shot and agent mode's tools), extraction, the
document listing and viewer, the HTTP API, the Responses API, MCP and the CLI — from
Slack and Gmail exports and from ``--access``, on both storage backends, and checked
against a pure-Python reference on random access lists and memberships.

No chat model runs: the workspaces answer with ``answer_check = "quote"`` (the best
passage, quoted and cited)."""

from __future__ import annotations

import json
import mailbox
import os
import random
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

import citewise.workspace
from citewise import Workspace
from citewise.access import OWNER, Caller, user_caller
from citewise.documents import Hit, ParsedDocument
from citewise.errors import NotFound, WorkspaceError
from citewise.keys import authenticate, create_key
from citewise.parsers._common import paragraph_blocks
from citewise.server import create_app
from citewise.sources import SourceItem, document_from_parsed, hash_text
from citewise.workspace import init_workspace
from conftest import CITEWISE, LiveServer, new_database
from exports import make_slack_export

T = TypeVar("T")
BACKENDS = ["sqlite", "postgresql"]
MODES = ["hybrid", "bm25", "dense"]
MISSING = 987654  # no document has this id


def new_workspace(
    backend: str, request: pytest.FixtureRequest, directory: Path, **settings: Any
) -> Workspace:
    """A workspace on ``backend`` (PostgreSQL: a database of its own) that answers by
    quoting its sources, with no model call."""
    store = new_database(request.getfixturevalue("postgres")) if backend == "postgresql" else ""
    init_workspace(directory, store=store)
    return Workspace.open(directory, answer_check="quote", **settings)


def document_ids(hits: list[Hit]) -> set[int]:
    return {hit.document_id for hit in hits}


def reads(ws: Workspace, who: Caller, collection: str, document_id: int, query: str) -> dict:
    """Whether ``who`` gets the document on each read path (``query`` finds it)."""
    found = {
        mode: document_id in document_ids(ws.search(query, 50, [collection], mode, caller=who))
        for mode in MODES
    }
    try:
        ws.document(collection, document_id, who)
        got = True
    except NotFound:
        got = False
    listed = document_id in {r.id for r in ws.documents(collection, who, limit=1000)}
    passages = bool(ws.document_passages(document_id, who))
    return found | {"document": got, "listing": listed, "passages": passages}


def everywhere(readable: bool) -> dict:
    return dict.fromkeys([*MODES, "document", "listing", "passages"], readable)


# -- Slack: private channels and DMs read by their members only, on both backends ---------

ALICE, BOB, ZOE = "alice@example.com", "bob@example.com", "zoe@example.com"
SLACK_ALIASES = {ALICE: "slack:U01ALICE", BOB: "slack:U02BOB", ZOE: "slack:U03ZOE"}
CONVERSATIONS = ["thread", "lunch", "random", "design", "dm"]
# What each reader may read (None: the operator, reading everything).
SLACK_READS: dict[str | None, set[str]] = {
    ALICE: set(CONVERSATIONS),
    BOB: {"thread", "lunch", "random", "dm"},
    ZOE: {"thread", "lunch", "random", "design"},
    None: set(CONVERSATIONS),
}
QUERIES = {
    "thread": "rotate the staging database password with vault",
    "lunch": "lunch on the 4th floor",
    "random": "office plants watered on Fridays",
    "design": "logo teal primary colour",
    "dm": "review my expense report",
}
QUESTIONS = {
    "design": "What colour does the new logo use?",
    "dm": "By when must the expense report be reviewed?",
}
# Words only that conversation holds, in its text or its source.
SECRETS = {"design": ("0F766E", "G01DESIGN"), "dm": ("Thursday", "D01AB")}


@dataclass
class Slack:
    ws: Workspace
    ids: dict[str, int]  # conversation -> document id

    def caller(self, email: str | None) -> Caller:
        return OWNER if email is None else user_caller(self.ws.store, email)

    def allowed(self, email: str | None) -> set[int]:
        return {self.ids[name] for name in SLACK_READS[email]}


def slack_ids(ws: Workspace, collection: str) -> dict[str, int]:
    ids = {}
    for record in ws.documents(collection, limit=1000):
        channel, kind = record.metadata["channel"], record.metadata["conversation_kind"]
        if kind == "dm":
            ids["dm"] = record.id
        elif channel == "#general":
            ids["thread" if "rotate" in record.title else "lunch"] = record.id
        else:
            ids[channel.lstrip("#")] = record.id
    assert sorted(ids) == sorted(CONVERSATIONS), ids
    return ids


def add_slack_users(ws: Workspace) -> None:
    for email, alias in SLACK_ALIASES.items():
        ws.store.add_user(email)
        ws.store.add_alias(email, alias)


@pytest.fixture(params=BACKENDS)
def slack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Slack]:
    ws = new_workspace(request.param, request, tmp_path / "ws")
    report = ws.ingest([make_slack_export(tmp_path)], "slack")
    assert (report.added, report.failed) == (5, [])
    add_slack_users(ws)
    yield Slack(ws, slack_ids(ws, "slack"))
    ws.close()


def test_the_export_says_who_may_read_each_conversation(slack: Slack) -> None:
    access = {name: slack.ws.store.document_access(i) for name, i in slack.ids.items()}
    assert {name for name, a in access.items() if not a.restricted} == {"thread", "lunch", "random"}
    assert access["design"].principals == ("slack:U01ALICE", "slack:U03ZOE")
    assert access["dm"].principals == ("slack:U01ALICE", "slack:U02BOB")
    [status] = slack.ws.status().collections
    assert (status.open_documents, status.restricted_documents) == (3, 2)


@pytest.mark.parametrize("email", [ALICE, BOB, ZOE, None])
def test_search_reads_only_what_the_reader_may_in_every_mode(slack: Slack, email: str) -> None:
    who, allowed = slack.caller(email), slack.allowed(email)
    for name, query in QUERIES.items():
        for mode in MODES:
            hits = slack.ws.search(query, 50, ["slack"], mode, caller=who)
            assert document_ids(hits) <= allowed, (email, name, mode)
            if mode != "bm25":  # k=50: every readable passage ranks, and nothing else
                assert document_ids(hits) == allowed, (email, name, mode)
            if name in SLACK_READS[email] and mode != "dense":
                assert hits[0].document_id == slack.ids[name], (email, name, mode)
            if name not in SLACK_READS[email]:
                text = " ".join(h.text + h.source for h in hits)
                assert not any(word in text for word in SECRETS[name]), (email, name, mode)


@pytest.mark.parametrize("email", [ALICE, BOB, ZOE, None])
def test_ask_cites_only_what_the_reader_may_read(slack: Slack, email: str) -> None:
    who, allowed = slack.caller(email), slack.allowed(email)
    for name, question in QUESTIONS.items():
        streamed = slack.ws.ask_stream(question, ["slack"], caller=who)
        text = "".join(streamed)
        answer = streamed.answer
        assert answer is not None and answer.text == text
        cited = {c.hit.document_id for c in answer.citations}
        assert cited | document_ids(answer.hits) <= allowed, (email, name)
        if name in SLACK_READS[email]:
            assert answer.citations[0].hit.document_id == slack.ids[name], (email, name)
            assert SECRETS[name][0] in answer.text
        else:
            assert not any(word in answer.text for word in SECRETS[name]), (email, answer.text)
        # The non-streamed call answers the same.
        again = slack.ws.ask(question, ["slack"], caller=who)
        assert {c.hit.document_id for c in again.citations} == cited


@pytest.mark.parametrize("email", [ALICE, BOB, ZOE, None])
def test_documents_are_listed_and_opened_only_when_readable(slack: Slack, email: str) -> None:
    ws, who, allowed = slack.ws, slack.caller(email), slack.allowed(email)
    listed = ws.documents("slack", who)
    assert {r.id for r in listed} == allowed and len(listed) == len(allowed)
    assert [r.id for r in listed] == [r.id for r in ws.documents("slack") if r.id in allowed]
    # Pages count readable documents only: no gap, no repeat, nothing more.
    paged = [r.id for offset in range(0, 6, 2) for r in ws.documents("slack", who, 2, offset)]
    assert paged == [r.id for r in listed]
    assert ws.documents("slack", who, 10, len(allowed)) == []

    with pytest.raises(NotFound) as missing:
        ws.document("slack", MISSING, who)
    for document_id in slack.ids.values():
        if document_id in allowed:
            assert ws.document("slack", document_id, who).id == document_id
            text = ws.document_text("slack", document_id, who)
            assert text == ws.store.document_text(document_id)
            passages = ws.document_passages(document_id, who)
            assert passages and {p.document_id for p in passages} == {document_id}
            continue
        # Unreadable is "not found", exactly as a document that does not exist.
        with pytest.raises(NotFound) as denied:
            ws.document("slack", document_id, who)
        assert denied.value.code == missing.value.code == "document_not_found"
        assert str(denied.value) == str(missing.value).replace(str(MISSING), str(document_id))
        with pytest.raises(NotFound):
            ws.document_text("slack", document_id, who)
        assert ws.document_passages(document_id, who) == []


def test_a_missing_document_has_no_passages_for_any_reader(slack: Slack) -> None:
    """Nothing to read is nothing to read, for a user as for the operator (an agent's fetch
    of a document deleted since its search, a listing racing a delete)."""
    assert slack.ws.document_passages(MISSING) == []
    assert slack.ws.document_passages(MISSING, slack.caller(BOB)) == []


@pytest.mark.parametrize("email", [BOB, ZOE])
def test_agent_mode_and_extraction_read_as_the_caller(
    slack: Slack, email: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, who, allowed = slack.ws, slack.caller(email), slack.allowed(email)
    assert set(slack.ids.values()) - allowed  # something is not this reader's
    libraries = []
    real_agent_stream = citewise.workspace.agent_stream

    def agent_stream(question: str, library: Any, *args: Any, **kwargs: Any) -> Any:
        libraries.append(library)
        return real_agent_stream(question, library, *args, **kwargs)

    monkeypatch.setattr(citewise.workspace, "agent_stream", agent_stream)
    agent = replace(ws.settings, mode="agent")
    for name, question in QUESTIONS.items():
        stream = ws.ask_stream(question, ["slack"], settings=agent, caller=who)
        "".join(stream)
        assert stream.answer is not None
        cited = {c.hit.document_id for c in stream.answer.citations}
        assert cited | document_ids(stream.answer.hits) <= allowed, (email, name)
        assert (slack.ids[name] in cited) == (slack.ids[name] in allowed), (email, name)
    # The agent's tools: its searches and fetches read as the caller.
    library = libraries[-1]
    for query in QUERIES.values():
        assert document_ids(library.search(query, 50)) == allowed
    for document_id in slack.ids.values():
        passages = library.document_passages(document_id)
        assert bool(passages) == (document_id in allowed)

    # Extraction sees only the passages the caller may read.
    seen: list[list[Hit]] = []
    monkeypatch.setattr(citewise.workspace, "extract", lambda _i, _s, hits, *a: seen.append(hits))
    for question in QUESTIONS.values():
        ws.extract(question, {"type": "object"}, ["slack"], caller=who)
    assert seen and all(document_ids(hits) <= allowed for hits in seen)
    assert all(hits for hits in seen)


def test_a_membership_change_counts_on_the_next_query(slack: Slack, tmp_path: Path) -> None:
    ws = slack.ws

    def bob() -> Caller:  # each query looks the user up again, as a request does
        return user_caller(ws.store, BOB)

    dm = slack.ids["dm"]
    assert reads(ws, bob(), "slack", dm, QUERIES["dm"]) == everywhere(True)
    assert ws.store.remove_alias("slack:U02BOB")
    assert reads(ws, bob(), "slack", dm, QUERIES["dm"]) == everywhere(False)
    assert ws.store.add_alias(BOB, "slack:U02BOB")
    assert reads(ws, bob(), "slack", dm, QUERIES["dm"]) == everywhere(True)

    # A document restricted to a group by the ingest (`--access group:design-team`).
    plan = tmp_path / "rebrand.md"
    plan.write_text("# Rebrand plan\n\nThe rebrand ships under the codename HERONWATER in May.\n")
    report = ws.ingest([plan], "slack", access=["group:design-team"])
    assert (report.added, report.failed) == (1, [])
    [document_id] = set(ws.store.sources(ws.collection("slack").id).values()) - set(
        slack.ids.values()
    )
    query = "rebrand codename HERONWATER"

    def who_reads() -> dict[str, bool]:
        """Whether each user reads the plan; every read path must agree."""
        seen = {}
        for email in SLACK_ALIASES:
            paths = reads(ws, user_caller(ws.store, email), "slack", document_id, query)
            assert len(set(paths.values())) == 1, (email, paths)
            seen[email] = paths["document"]
        return seen

    everyone_else = dict.fromkeys(SLACK_ALIASES, False)
    assert who_reads() == everyone_else
    assert reads(ws, OWNER, "slack", document_id, query) == everywhere(True)
    ws.store.add_group("design-team")
    assert who_reads() == everyone_else  # a group with no members reads nothing
    ws.store.add_member("design-team", ZOE)
    assert who_reads() == everyone_else | {ZOE: True}
    ws.store.add_member("design-team", BOB)
    assert who_reads() == everyone_else | {ZOE: True, BOB: True}
    assert ws.store.remove_member("design-team", ZOE)
    assert who_reads() == everyone_else | {BOB: True}
    assert ws.status().collections[0].restricted_documents == 3

    # The same unchanged file, ingested open: written again, now read by everyone.
    opened = ws.ingest([plan], "slack", access="open")
    assert (opened.added, opened.updated, opened.unchanged) == (0, 1, 0)
    assert ws.store.sources(ws.collection("slack").id)[str(plan)] == document_id
    assert who_reads() == dict.fromkeys(SLACK_ALIASES, True)
    assert ws.status().collections[0].restricted_documents == 2

    # Restricted again, then its group removed: its members lose it at once.
    assert ws.ingest([plan], "slack", access=["group:design-team"]).updated == 1
    assert who_reads() == everyone_else | {BOB: True}
    assert ws.store.remove_group("design-team")
    assert who_reads() == everyone_else
    # A removed user reads nothing restricted: no caller is made for it any more.
    assert ws.store.remove_user(ZOE)
    with pytest.raises(NotFound, match="No user"):
        user_caller(ws.store, ZOE)


def test_members_are_named_by_their_email_address_where_the_export_has_it(
    workspace: Workspace, tmp_path: Path
) -> None:
    export = make_slack_export(tmp_path, as_zip=False)
    users = json.loads((export / "users.json").read_text(encoding="utf-8"))
    for user in users:
        if user["id"] == "U02BOB":
            user["profile"]["email"] = "Bob.Martin@Example.com"
    (export / "users.json").write_text(json.dumps(users), encoding="utf-8")
    assert workspace.ingest([export], "slack").added == 5
    ids = slack_ids(workspace, "slack")
    assert workspace.store.document_access(ids["dm"]).principals == (
        "bob.martin@example.com",
        "slack:U01ALICE",
        "slack:U02BOB",
    )
    workspace.store.add_user("bob.martin@example.com")  # no alias: the address is enough
    bob = user_caller(workspace.store, "bob.martin@example.com")
    assert reads(workspace, bob, "slack", ids["dm"], QUERIES["dm"]) == everywhere(True)
    assert reads(workspace, bob, "slack", ids["design"], QUERIES["design"]) == everywhere(False)


# -- the server: a key reads as its user, on every route and over MCP -------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("access-server")
    init_workspace(root / "ws")
    (root / "ws" / "citewise.toml").write_text('answer_check = "quote"\n', encoding="utf-8")
    ws = Workspace.open(root / "ws")
    assert ws.ingest([make_slack_export(root)], "slack").added == 5
    add_slack_users(ws)
    ws.store.add_user("carol@example.com")
    keys = {
        BOB: create_key(ws.store, "bob-key", ["*"], ["ask"], user=BOB)[0],
        ZOE: create_key(ws.store, "zoe-key", ["slack"], ["ask"], user=ZOE)[0],
        "service": create_key(ws.store, "service", ["*"], ["ask"])[0],
        "admin": create_key(ws.store, "admin", ["*"], ["admin"])[0],
        "carol": create_key(ws.store, "carol-key", ["*"], ["ask"], user="carol@example.com")[0],
    }
    with LiveServer(create_app(ws, auth=True)) as live:
        live.keys = keys
        live.ws = ws
        live.ids = slack_ids(ws, "slack")
        yield live
    ws.close()


SERVER_READS = {BOB: SLACK_READS[BOB], ZOE: SLACK_READS[ZOE], "service": SLACK_READS[None]}


def call(live: Any, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {live.keys[who]}"}
    return httpx.request(method, live.url + path, headers=headers, timeout=120, **kwargs)


def unreadable_words(who: str) -> list[str]:
    """Words of the conversations ``who`` may not read (their text, their sources)."""
    return [w for name, words in SECRETS.items() if name not in SERVER_READS[who] for w in words]


@pytest.mark.slow  # a live server
@pytest.mark.parametrize("who", [BOB, ZOE, "service"])
def test_server_search_reads_as_the_keys_user(server: Any, who: str) -> None:
    allowed = {server.ids[name] for name in SERVER_READS[who]}
    for name, query in QUERIES.items():
        for mode in MODES:
            body = {"query": query, "k": 50, "mode": mode, "collections": ["slack"]}
            response = call(server, who, "POST", "/v1/search", json=body)
            assert response.status_code == 200, response.text
            found = {hit["document_id"] for hit in response.json()["data"]}
            assert found <= allowed, (who, name, mode)
            if mode != "bm25":
                assert found == allowed, (who, name, mode)
            assert not any(w in response.text for w in unreadable_words(who)), (who, name, mode)
    # No collection named: every collection the key reads, still as its user.
    everything = call(server, who, "POST", "/v1/search", json={"query": "logo", "k": 50})
    assert {hit["document_id"] for hit in everything.json()["data"]} == allowed
    # A filter naming an unreadable conversation's channel finds nothing, as for no channel.
    channels = {"design": "#design", "dm": "DM Alice Chen, Bob Martin"}
    for name, channel in channels.items():
        body = {"query": "logo expense", "k": 50, "where": {"channel": channel}}
        found = call(server, who, "POST", "/v1/search", json=body).json()["data"]
        assert {hit["document_id"] for hit in found} == {server.ids[name]} & allowed, who


@pytest.mark.slow  # a live server
@pytest.mark.parametrize("who", [BOB, ZOE, "service"])
def test_server_answers_cite_only_what_the_keys_user_may_read(server: Any, who: str) -> None:
    allowed = {server.ids[name] for name in SERVER_READS[who]}
    for name, question in QUESTIONS.items():
        readable = name in SERVER_READS[who]
        messages = [{"role": "user", "content": question}]
        chat = call(
            server,
            who,
            "POST",
            "/v1/chat/completions",
            json={"model": "citewise", "messages": messages},
        )
        assert chat.status_code == 200, chat.text
        body = chat.json()
        cited = {c["document_id"] for c in body["citations"]}
        assert cited | {h["document_id"] for h in body["search_results"]} <= allowed
        assert (server.ids[name] in cited) == readable, (who, name)
        streamed = call(
            server,
            who,
            "POST",
            "/v1/chat/completions",
            json={"model": "citewise", "messages": messages, "stream": True},
        )
        assert streamed.status_code == 200 and "data: [DONE]" in streamed.text
        response = call(
            server, who, "POST", "/v1/responses", json={"model": "citewise", "input": question}
        )
        assert response.status_code == 200, response.text
        shown = response.json()
        assert {c["document_id"] for c in shown["citations"]} == cited
        assert {h["document_id"] for h in shown["search_results"]} <= allowed
        text = shown["output"][0]["content"][0]["text"]
        assert (SECRETS[name][0] in text) == readable, (who, name, text)
        for raw in (chat.text, streamed.text, response.text):
            assert not any(w in raw for w in unreadable_words(who)), (who, name)


@pytest.mark.slow  # a live server
@pytest.mark.parametrize("who", [BOB, ZOE, "service"])
def test_server_documents_are_listed_and_opened_only_when_readable(server: Any, who: str) -> None:
    allowed = {server.ids[name] for name in SERVER_READS[who]}
    listed = call(server, who, "GET", "/v1/collections/slack/documents")
    assert listed.status_code == 200
    assert {d["id"] for d in listed.json()["data"]} == allowed
    assert len(listed.json()["data"]) == len(allowed)
    assert all("access" not in d for d in listed.json()["data"])  # for an admin key only
    assert not any(w in listed.text for w in unreadable_words(who))
    paged = [
        d["id"]
        for offset in (0, 2, 4)
        for d in call(
            server, who, "GET", f"/v1/collections/slack/documents?limit=2&offset={offset}"
        ).json()["data"]
    ]
    assert paged == [d["id"] for d in listed.json()["data"]]

    missing = call(server, who, "GET", f"/v1/collections/slack/documents/{MISSING}")
    assert missing.status_code == 404
    for name, document_id in server.ids.items():
        for query in ("", "?around=10&window=200"):
            opened = call(
                server, who, "GET", f"/v1/collections/slack/documents/{document_id}{query}"
            )
            if document_id in allowed:
                assert opened.status_code == 200 and opened.json()["id"] == document_id
                assert "access" not in opened.json()
                continue
            # Not found, exactly as a document that does not exist: status, body, headers.
            assert opened.status_code == 404, (who, name)
            error, expected = opened.json()["error"], missing.json()["error"]
            assert error["message"] == expected["message"].replace(str(MISSING), str(document_id))
            assert {k: v for k, v in error.items() if k != "message"} == {
                k: v for k, v in expected.items() if k != "message"
            }
            assert opened.headers["content-type"] == missing.headers["content-type"]
            assert not any(w in opened.text for w in unreadable_words(who))


@pytest.mark.slow  # a live server
def test_an_admin_key_sees_who_may_read_each_document(server: Any) -> None:
    listed = call(server, "admin", "GET", "/v1/collections/slack/documents").json()["data"]
    access = {d["id"]: d["access"] for d in listed}
    assert access == {
        server.ids["thread"]: "open",
        server.ids["lunch"]: "open",
        server.ids["random"]: "open",
        server.ids["design"]: ["slack:U01ALICE", "slack:U03ZOE"],
        server.ids["dm"]: ["slack:U01ALICE", "slack:U02BOB"],
    }
    design = call(server, "admin", "GET", f"/v1/collections/slack/documents/{server.ids['design']}")
    assert design.json()["access"] == ["slack:U01ALICE", "slack:U03ZOE"]
    assert "0F766E" in design.json()["text"]


@pytest.mark.slow  # a live server
@pytest.mark.parametrize("who", [BOB, ZOE, "service"])
def test_server_collection_counts_are_the_readers_own(server: Any, who: str) -> None:
    """A count of documents the reader may not read would tell it they exist."""
    listed = call(server, who, "GET", "/v1/collections").json()["data"]
    [slack] = [c for c in listed if c["name"] == "slack"]
    records = {r.id: r for r in server.ws.documents("slack")}
    readable = [records[server.ids[name]] for name in SERVER_READS[who]]
    assert (slack["documents"], slack["chunks"]) == (len(readable), sum(r.chunks for r in readable))


def over_mcp(live: Any, who: str, use: Callable[[Client], Awaitable[T]]) -> T:
    """``use(client)`` with an MCP client of the live server's /mcp, with ``who``'s key."""

    async def main() -> T:
        headers = {"Authorization": f"Bearer {live.keys[who]}"}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(600)) as http:
            transport = streamable_http_client(live.url + "/mcp", http_client=http)
            async with Client(transport, read_timeout_seconds=600) as client:
                return await use(client)

    return anyio.run(main)


def tool_text(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


@pytest.mark.slow  # a live server
@pytest.mark.parametrize("who", [BOB, ZOE, "service"])
def test_mcp_tools_read_as_the_keys_user(server: Any, who: str) -> None:
    allowed = {server.ids[name] for name in SERVER_READS[who]}
    order = [*(server.ids[name] for name in CONVERSATIONS), MISSING]

    async def use(client: Client) -> tuple[list[CallToolResult], ...]:
        found = [await client.call_tool("search", {"query": q}) for q in QUERIES.values()]
        fetched = [await client.call_tool("fetch", {"id": f"slack/{i}"}) for i in order]
        asked = [await client.call_tool("ask", {"question": q}) for q in QUESTIONS.values()]
        return found, fetched, asked

    found, fetched, asked = over_mcp(server, who, use)
    for result in found:
        assert not result.is_error
        results = result.structured_content["results"]
        assert results and {r["document_id"] for r in results} <= allowed
    for document_id, result in zip(order, fetched, strict=True):
        if document_id in allowed:
            assert not result.is_error and result.structured_content["text"]
            continue
        # Unreadable: the error a missing document gets.
        assert result.is_error
        assert tool_text(result) == tool_text(fetched[-1]).replace(str(MISSING), str(document_id))
    for name, result in zip(QUESTIONS, asked, strict=True):
        assert not result.is_error
        cited = {
            int(c["id"].split("/")[1].split("#")[0]) for c in result.structured_content["citations"]
        }
        assert cited <= allowed and (server.ids[name] in cited) == (name in SERVER_READS[who])
    for result in [*found, *fetched, *asked]:
        assert not any(w in tool_text(result) for w in unreadable_words(who)), who


@pytest.mark.slow  # a live server
def test_a_keys_user_is_read_again_on_every_request(server: Any) -> None:
    """Membership is looked up per request: an alias taken away counts at once, and a
    removed user's key is refused."""
    dm = server.ids["dm"]
    body = {"query": QUERIES["dm"], "k": 50, "collections": ["slack"]}

    def bob_reads_the_dm() -> bool:
        hits = call(server, BOB, "POST", "/v1/search", json=body).json()["data"]
        opened = call(server, BOB, "GET", f"/v1/collections/slack/documents/{dm}")
        assert (opened.status_code == 200) == (dm in {h["document_id"] for h in hits})
        return opened.status_code == 200

    assert bob_reads_the_dm()
    assert server.ws.store.remove_alias("slack:U02BOB")
    try:
        assert not bob_reads_the_dm()
    finally:
        server.ws.store.add_alias(BOB, "slack:U02BOB")
    assert bob_reads_the_dm()

    assert call(server, "carol", "POST", "/v1/search", json=body).status_code == 200
    assert server.ws.store.remove_user("carol@example.com")
    for method, path, kwargs in [
        ("POST", "/v1/search", {"json": body}),
        ("GET", "/v1/collections/slack/documents", {}),
        (
            "POST",
            "/v1/chat/completions",
            {"json": {"model": "citewise", "messages": [{"role": "user", "content": "hi"}]}},
        ),
    ]:
        refused = call(server, "carol", method, path, **kwargs)
        assert refused.status_code == 401, (path, refused.text)
    assert authenticate(server.ws.store, server.keys["carol"]) is None


@pytest.mark.slow  # a live server
@pytest.mark.parametrize("who", [BOB, ZOE, "service"])
def test_mcp_collection_counts_are_the_readers_own(server: Any, who: str) -> None:
    async def use(client: Client) -> CallToolResult:
        return await client.call_tool("list_collections", {})

    listed = over_mcp(server, who, use).structured_content["collections"]
    [slack] = [c for c in listed if c["name"] == "slack"]
    records = {r.id: r for r in server.ws.documents("slack")}
    readable = [records[server.ids[name]] for name in SERVER_READS[who]]
    assert (slack["documents"], slack["chunks"]) == (len(readable), sum(r.chunks for r in readable))


# -- the CLI: users, groups, --as, access explain, keys of a user, status -----------------


def run_cli(ws: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CITEWISE, "-w", str(ws), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )


def ok(ws: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(ws, *args, **env)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def searched(ws: Path, query: str, *args: str, **env: str) -> set[str]:
    """The sources ``citewise search --json`` shows."""
    out = ok(ws, "search", query, "-k", "50", "--json", *args, **env).stdout
    return {hit["source"] for hit in json.loads(out)}


DESIGN_SOURCE = "archives/G01DESIGN/"
DM_SOURCE = "archives/D01AB/"


@pytest.fixture(scope="module")
def cli_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, int]]]:
    root = tmp_path_factory.mktemp("access-cli")
    ws = root / "ws"
    ok(ws, "ingest", str(make_slack_export(root)), "-c", "slack")
    for email, alias in SLACK_ALIASES.items():
        added = ok(ws, "users", "add", email, "--alias", alias, "--name", email.split("@")[0])
        assert f"Added user {email} (aliases {alias})" in added.stdout
    with Workspace.open(ws) as opened:
        ids = slack_ids(opened, "slack")
    yield ws, ids


def test_cli_lists_users_with_their_aliases(cli_ws: tuple[Path, dict[str, int]]) -> None:
    ws, _ = cli_ws
    users = json.loads(ok(ws, "users", "list", "--json").stdout)
    assert {u["email"]: u["aliases"] for u in users} == {
        email: [alias] for email, alias in SLACK_ALIASES.items()
    }
    assert "slack:U02BOB" in ok(ws, "users", "list").stdout
    taken = run_cli(ws, "users", "add", "carol@example.com", "--alias", "slack:U02BOB")
    assert taken.returncode != 0 and "belongs to bob@example.com" in taken.stderr
    # All or nothing: the user is not half added, and adding it again works.
    assert "carol@example.com" not in ok(ws, "users", "list").stdout
    ok(ws, "users", "add", "carol@example.com", "--alias", "slack:U04CAROL")
    assert ok(ws, "users", "remove", "carol@example.com").returncode == 0


def test_cli_search_and_ask_read_as_a_user(cli_ws: tuple[Path, dict[str, int]]) -> None:
    ws, _ = cli_ws
    query = "logo teal colour and the expense report"
    everything = searched(ws, query)
    assert any(DESIGN_SOURCE in s for s in everything) and any(DM_SOURCE in s for s in everything)
    bob = searched(ws, query, "--as", BOB)
    assert bob and not any(DESIGN_SOURCE in s for s in bob) and any(DM_SOURCE in s for s in bob)
    zoe = searched(ws, query, "--as", ZOE, "--mode", "bm25")
    assert any(DESIGN_SOURCE in s for s in zoe) and not any(DM_SOURCE in s for s in zoe)
    # $CITEWISE_USER is the default --as.
    assert searched(ws, query, CITEWISE_USER=BOB) == bob
    # A name that is no address reads everything, charged to that name.
    assert searched(ws, query, "--as", "nightly-report") == everything

    asked = ok(ws, "ask", QUESTIONS["design"], "--as", BOB, "--json", CITEWISE_ANSWER_CHECK="quote")
    answer = json.loads(asked.stdout)
    assert "0F766E" not in asked.stdout and DESIGN_SOURCE not in asked.stdout
    assert all(DESIGN_SOURCE not in h["source"] for h in answer["hits"])
    asked = ok(ws, "ask", QUESTIONS["design"], "--as", ZOE, "--json", CITEWISE_ANSWER_CHECK="quote")
    assert DESIGN_SOURCE in json.loads(asked.stdout)["citations"][0]["hit"]["source"]


def test_cli_refuses_to_read_as_an_unknown_user(cli_ws: tuple[Path, dict[str, int]]) -> None:
    ws, ids = cli_ws
    for command in (["search", "logo"], ["ask", "logo?"], ["extract", "logo", "--schema", "{}"]):
        refused = run_cli(ws, *command, "--as", "nobody@example.com")
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert "no user 'nobody@example.com'" in refused.stderr, command
        assert "0F766E" not in refused.stdout
    explained = run_cli(
        ws, "access", "explain", str(ids["design"]), "--user", "nobody@example.com", "-c", "slack"
    )
    assert explained.returncode != 0 and "No user 'nobody@example.com'" in explained.stderr


def test_cli_explains_who_may_read_a_document(cli_ws: tuple[Path, dict[str, int]]) -> None:
    ws, ids = cli_ws

    def explain(document: str, email: str) -> str:
        out = ok(ws, "access", "explain", document, "--user", email, "-c", "slack").stdout
        return " ".join(out.split())  # the console wraps long lines

    design = explain(str(ids["design"]), BOB)
    assert design.startswith(f"{BOB} cannot read '#design: Logo v3")
    assert "restricted to slack:U01ALICE, slack:U03ZOE" in design
    assert f"acts only as {BOB}, slack:U02BOB" in design
    zoe = explain(str(ids["design"]), ZOE)
    assert zoe.startswith(f"{ZOE} can read '#design") and "acts as slack:U03ZOE" in zoe
    thread = explain(str(ids["thread"]), ZOE)
    assert thread.startswith(f"{ZOE} can read") and "open to everyone who reads 'slack'" in thread
    with Workspace.open(ws) as opened:
        source = opened.document("slack", ids["dm"]).source
    assert explain(source, ZOE).startswith(f"{ZOE} cannot read 'DM Alice Chen, Bob Martin")
    assert explain(source, ALICE).startswith(f"{ALICE} can read 'DM")


def test_cli_keys_of_a_user_read_as_that_user(cli_ws: tuple[Path, dict[str, int]]) -> None:
    ws, _ = cli_ws
    created = ok(ws, "keys", "create", "--name", "bob-laptop", "--user", BOB)
    assert "of user bob@example.com" in created.stderr
    key = created.stdout.strip()
    service = ok(ws, "keys", "create", "--name", "reporting").stdout.strip()
    listed = {k["name"]: k["user"] for k in json.loads(ok(ws, "keys", "list", "--json").stdout)}
    assert listed["bob-laptop"] == BOB and listed["reporting"] is None
    with Workspace.open(ws) as opened:
        assert authenticate(opened.store, key).user == BOB
        assert authenticate(opened.store, service).user is None
    unknown = run_cli(ws, "keys", "create", "--name", "ghost", "--user", "ghost@example.com")
    assert unknown.returncode != 0 and "no user ghost@example.com" in unknown.stderr

    ok(ws, "users", "add", "carol@example.com")
    carol = ok(ws, "keys", "create", "--name", "carol-key", "--user", "carol@example.com")
    removed = ok(ws, "users", "remove", "carol@example.com")
    assert "its keys are revoked" in removed.stdout
    with Workspace.open(ws) as opened:
        assert authenticate(opened.store, carol.stdout.strip()) is None
        assert authenticate(opened.store, key).user == BOB  # another user's key stays
    again = run_cli(ws, "users", "remove", "carol@example.com")
    assert again.returncode != 0 and "No user 'carol@example.com'" in again.stderr


def test_cli_groups_and_ingest_access(cli_ws: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    ws, _ = cli_ws

    def restricted() -> int:
        status = json.loads(ok(ws, "status", "--json").stdout)
        [slack] = [c for c in status["collections"] if c["name"] == "slack"]
        return slack["restricted_documents"]

    assert restricted() == 2
    table = ok(ws, "status").stdout
    assert "restricted" in table and any(
        [cell.strip() for cell in line.split("│")[1:4]] == ["slack", "5", "2"]
        for line in table.splitlines()
        if "│" in line
    ), table

    added = ok(ws, "groups", "add", "design-team", "--member", ZOE)
    assert "Added group design-team (1 members)" in added.stdout
    plan = tmp_path / "rebrand.md"
    plan.write_text("# Rebrand plan\n\nThe rebrand ships under the codename HERONWATER in May.\n")
    ok(ws, "ingest", str(plan), "-c", "slack", "--access", "group:design-team")
    assert restricted() == 3

    def reads(email: str) -> bool:
        return any("rebrand.md" in s for s in searched(ws, "HERONWATER rebrand", "--as", email))

    assert (reads(ZOE), reads(BOB)) == (True, False)
    ok(ws, "groups", "join", "design-team", BOB)
    assert {
        g["name"]: g["members"] for g in json.loads(ok(ws, "groups", "list", "--json").stdout)
    } == {"design-team": [BOB, ZOE]}
    assert reads(BOB)
    assert (
        "zoe@example.com left design-team" in ok(ws, "groups", "leave", "design-team", ZOE).stdout
    )
    assert (reads(ZOE), reads(BOB)) == (False, True)
    explained = " ".join(
        ok(ws, "access", "explain", str(plan), "--user", BOB, "-c", "slack").stdout.split()
    )
    assert (
        "restricted to group:design-team" in explained and "acts as group:design-team" in explained
    )
    left = run_cli(ws, "groups", "leave", "design-team", ZOE)
    assert left.returncode != 0 and "not a member" in left.stderr

    both = run_cli(ws, "ingest", str(plan), "-c", "slack", "--access", "open", "--access", ZOE)
    assert both.returncode == 2 and "'open' cannot be combined" in both.stderr
    reopened = ok(ws, "ingest", str(plan), "-c", "slack", "--access", "open")
    assert "updated 1" in reopened.stdout
    assert restricted() == 2
    assert (reads(ZOE), reads(ALICE)) == (True, True)  # neither is a member
    ok(ws, "groups", "remove", "design-team")
    assert json.loads(ok(ws, "groups", "list", "--json").stdout) == []


# -- Gmail: each mailbox is its owner's --------------------------------------------------


def write_mailbox(path: Path, delivered_to: str, mails: list[tuple[str, str]], thread: int) -> Path:
    """An mbox of one-message threads (subject, body) delivered to ``delivered_to``."""
    box = mailbox.mbox(path)
    for n, (subject, body) in enumerate(mails):
        message = EmailMessage()
        message["From"] = "Office <office@example.org>"
        message["To"] = delivered_to
        message["Delivered-To"] = delivered_to
        message["Subject"] = subject
        message["Date"] = f"Mon, 0{n + 1} Jun 2026 09:00:00 +0000"
        message["Message-ID"] = f"<{path.stem}-{n}@example.org>"
        message["X-GM-THRID"] = str(1789000000000000000 + thread * 100 + n)
        message["X-Gmail-Labels"] = "Inbox"
        message.set_content(body)
        box.add(message)
    box.flush()
    box.close()
    return path


MAILS = {
    ALICE: [
        ("Salary review", "Your salary review is on Tuesday in the Mont Blanc room."),
        ("Flight booking", "Your flight to Lisbon departs at 07:40 from gate B12."),
    ],
    BOB: [("Dentist appointment", "Your dentist appointment with Dr Keller is Friday at 14:30.")],
    ZOE: [("Parcel delivery", "Your parcel with the espresso grinder arrives on Wednesday.")],
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_mailbox_is_read_by_its_owner_only(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    ws = new_workspace(backend, request, tmp_path / "ws")
    try:
        boxes = {
            ALICE: write_mailbox(tmp_path / "alice.mbox", ALICE, MAILS[ALICE], 1),
            BOB: write_mailbox(tmp_path / "bob.mbox", BOB, MAILS[BOB], 2),
            # Delivered to an old address: the `owner` option names whose mailbox it is.
            ZOE: write_mailbox(tmp_path / "zoe.mbox", "zoe@old.example", MAILS[ZOE], 3),
        }
        report = ws.ingest([boxes[ALICE], boxes[BOB]], "mail")
        assert (report.added, report.failed) == (3, [])
        assert ws.ingest([boxes[ZOE]], "mail", owner=ZOE).added == 1
        for email in MAILS:
            ws.store.add_user(email)
        subjects = {r.title: r.id for r in ws.documents("mail")}
        assert len(subjects) == 4  # one mailbox's ingest deletes nothing of another's
        [status] = ws.status().collections
        assert (status.open_documents, status.restricted_documents) == (0, 4)

        for owner, mails in MAILS.items():
            for subject, body in mails:
                document_id = subjects[subject]
                assert ws.store.document_access(document_id).principals == (owner,)
                for email in [*MAILS, None]:
                    who = OWNER if email is None else user_caller(ws.store, email)
                    mine = email in (owner, None)
                    assert reads(ws, who, "mail", document_id, body) == everywhere(mine), (
                        email,
                        subject,
                    )
        for email in MAILS:
            who = user_caller(ws.store, email)
            own = {subjects[subject] for subject, _ in MAILS[email]}
            assert {r.id for r in ws.documents("mail", who)} == own
            for question in ("When is the dentist appointment?", "When does my flight leave?"):
                answer = ws.ask(question, ["mail"], caller=who)
                cited = {c.hit.document_id for c in answer.citations}
                assert cited | document_ids(answer.hits) <= own, (email, question)
            dentist = ws.ask("When is the dentist appointment?", ["mail"], caller=who)
            assert ("14:30" in dentist.text) == (email == BOB), (email, dentist.text)
        # The same mailbox again: unchanged, still its owner's.
        again = ws.ingest([boxes[ALICE]], "mail")
        assert (again.unchanged, again.updated) == (2, 0)
        assert ws.store.document_access(subjects["Salary review"]).principals == (ALICE,)
    finally:
        ws.close()


def test_a_mailbox_without_an_owner_is_read_by_nobody(workspace: Workspace, tmp_path: Path) -> None:
    path = write_mailbox(
        tmp_path / "All mail Including Spam and Trash.mbox", ALICE, MAILS[ALICE], 4
    )
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(f"Delivered-To: {ALICE}\n", ""), encoding="utf-8")
    assert "Delivered-To" not in path.read_text(encoding="utf-8")
    workspace.ingest([path], "mail")
    workspace.store.add_user(ALICE)
    alice = user_caller(workspace.store, ALICE)
    for record in workspace.documents("mail"):
        assert workspace.store.document_access(record.id).restricted
    assert workspace.documents("mail", alice) == []


# -- property: random access lists and memberships against a pure-Python reference ------

PEOPLE = [f"user{n}@prop.example" for n in range(4)]
TEAMS = ["red", "blue"]
ALIAS = "slack:UPROP"  # an alias access lists name, held by a user or by nobody
PRINCIPALS = [*PEOPLE, *(f"group:{t}" for t in TEAMS), ALIAS]
SHARED = "budget"  # a word every document holds
DOCUMENTS = 30


def marker(n: int) -> str:
    """A made-up word only document ``n`` holds (its final k keeps stemmers off it)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return f"quill{letters[n // 26]}{letters[n % 26]}k"


def access_lists(rng: random.Random) -> list[tuple[str, ...] | None]:
    """Open (None), nobody (()), each principal alone, then random ones."""
    lists: list[tuple[str, ...] | None] = [None, (), *((p,) for p in PRINCIPALS)]
    while len(lists) < DOCUMENTS:
        roll = rng.random()
        if roll < 0.25:
            lists.append(None)
        elif roll < 0.35:
            lists.append(())
        else:
            lists.append(tuple(rng.sample(PRINCIPALS, rng.randint(1, 3))))
    return lists


def restricted_item(n: int, access: tuple[str, ...] | None) -> SourceItem:
    source, title = f"prop://doc/{n}", f"Project {marker(n)}"
    text = f"The {marker(n)} project {SHARED} is {n + 10} thousand euros."
    parsed = ParsedDocument(text, paragraph_blocks(text), title, access=access)
    content_hash = hash_text(title + text)
    return SourceItem(
        source, content_hash, lambda: document_from_parsed(source, parsed, content_hash, {})
    )


@dataclass
class Corpus:
    ws: Workspace
    ids: list[int]  # document n's id
    access: list[tuple[str, ...] | None]


@pytest.fixture(
    scope="module",
    params=["sqlite", "postgresql", "sqlite-indexed", "postgresql-indexed"],
)
def corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Corpus]:
    """The documents, ingested once per backend; "indexed": the derived HNSW and bm25s
    indexes answer instead of exact vectors and the store's keyword search."""
    backend, _, indexed = request.param.partition("-")
    thresholds = {"ann_threshold": 1, "sparse_threshold": 1} if indexed else {}
    ws = new_workspace(backend, request, tmp_path_factory.mktemp("prop") / "ws", **thresholds)
    access = access_lists(random.Random(26))
    report = ws.add_items([restricted_item(n, a) for n, a in enumerate(access)], "prop")
    assert (report.added, report.failed) == (DOCUMENTS, [])
    if indexed:
        [status] = ws.status().collections
        assert (status.vector_index, status.keyword_index) == ("hnsw", "bm25s")
    for email in PEOPLE:
        ws.store.add_user(email)
    for team in TEAMS:
        ws.store.add_group(team)
    sources = ws.store.sources(ws.collection("prop").id)
    yield Corpus(ws, [sources[f"prop://doc/{n}"] for n in range(DOCUMENTS)], access)
    ws.close()


@dataclass(frozen=True)
class Directory:
    members: frozenset[tuple[str, str]]  # (team, e-mail)
    alias_holder: str | None
    reader: str | None  # an e-mail address; None: the operator
    targets: tuple[int, ...]  # documents whose marker word is searched for

    def identities(self) -> set[str]:
        assert self.reader is not None
        return (
            {self.reader}
            | {f"group:{team}" for team, email in self.members if email == self.reader}
            | ({ALIAS} if self.alias_holder == self.reader else set())
        )

    def readable(self, access: list[tuple[str, ...] | None]) -> set[int]:
        """The reference: which documents the reader may read."""
        if self.reader is None:
            return set(range(len(access)))
        mine = self.identities()
        return {n for n, a in enumerate(access) if a is None or mine & set(a)}


directories = st.builds(
    Directory,
    members=st.frozensets(st.tuples(st.sampled_from(TEAMS), st.sampled_from(PEOPLE))),
    alias_holder=st.none() | st.sampled_from(PEOPLE),
    reader=st.sampled_from([*PEOPLE, None]),
    targets=st.lists(st.integers(0, DOCUMENTS - 1), min_size=2, max_size=2, unique=True).map(tuple),
)


def apply(store: Any, directory: Directory) -> None:
    """Make the store's memberships and alias those of ``directory``."""
    for group in store.groups():
        for email in group.members:
            store.remove_member(group.name, email)
    for team, email in directory.members:
        store.add_member(team, email)
    store.remove_alias(ALIAS)
    if directory.alias_holder is not None:
        store.add_alias(directory.alias_holder, ALIAS)


@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(directory=directories)
def test_every_path_matches_the_reference(corpus: Corpus, directory: Directory) -> None:
    ws = corpus.ws
    apply(ws.store, directory)
    if directory.reader is None:
        who = OWNER
    else:
        assert ws.store.identities(directory.reader) == directory.identities()
        who = user_caller(ws.store, directory.reader)
    readable = directory.readable(corpus.access)
    allowed = {corpus.ids[n] for n in readable}

    for mode in MODES:
        # Every document holds the shared word: exactly the readable ones come back.
        hits = ws.search(SHARED, 50, ["prop"], mode, caller=who)
        assert document_ids(hits) == allowed and len(hits) == len(allowed), mode
        for n in directory.targets:
            hits = ws.search(marker(n), 50, ["prop"], mode, caller=who)
            assert document_ids(hits) <= allowed, (mode, n)
            if mode == "bm25":
                assert document_ids(hits) == {corpus.ids[n]} & allowed, (mode, n)
            elif n in readable:  # no false denial: the marker finds its document
                assert hits[0].document_id == corpus.ids[n] or mode == "dense", (mode, n)
                assert corpus.ids[n] in document_ids(hits), (mode, n)

    for n in directory.targets:
        answer = ws.ask(f"What is the {marker(n)} project {SHARED}?", ["prop"], caller=who)
        cited = {c.hit.document_id for c in answer.citations}
        assert cited | document_ids(answer.hits) <= allowed, n
        if n in readable:
            assert answer.citations[0].hit.document_id == corpus.ids[n], answer.text
            assert f"{n + 10} thousand" in answer.text
        else:
            assert marker(n) not in answer.text

    # The listing holds the readable documents, each once: its length is their count.
    listed = [r.id for r in ws.documents("prop", who, limit=100)]
    assert sorted(listed) == sorted(allowed)
    paged = [r.id for o in range(0, DOCUMENTS, 7) for r in ws.documents("prop", who, 7, o)]
    assert paged == listed
    assert ws.readable_counts("prop", who) == (len(allowed), len(allowed))
    for n, document_id in enumerate(corpus.ids):
        try:
            text = ws.document_text("prop", document_id, who)
        except NotFound:
            text = None
        assert (text is not None) == (n in readable), n
        assert bool(ws.document_passages(document_id, who)) == (n in readable), n


def test_a_users_key_only_reads(workspace: Workspace) -> None:
    """What a key uploads is written for everyone who reads the collection, and an export
    replaces what it covers: a user's key may not write, whatever scope it asks for."""
    workspace.store.add_user("dana@example.com")
    for scopes in (["ask", "ingest"], ["admin"]):
        with pytest.raises(WorkspaceError, match="ask scope only"):
            create_key(workspace.store, "dana-key", ["*"], scopes, user="dana@example.com")
    assert create_key(workspace.store, "dana-key", ["*"], ["ask"], user="dana@example.com")[1].user
