"""STAND-INS for the SaaS model APIs (OpenAI's Chat Completions, Anthropic's Messages),
which cannot run here. They speak the documented streaming wire formats on loopback, so
the official SDKs and citewise's providers, router and ledger run unchanged against them,
and they fail on purpose, one scripted behaviour per request:

    ok              a streamed answer with the usage the API reports
    500             an HTTP 500 before the first token
    429:N           an HTTP 429 with Retry-After: N
    reset:K         K text chunks, then the connection is reset (RST)
    error_body:K    K chunks, then an error object inside the 200 stream
    no_done:K       K chunks, then the stream stops (no finish reason, no [DONE])
    slow:S          the first token only after S seconds (headers at once)
    400_context     an HTTP 400 "context length exceeded"
    401             an HTTP 401: the API key is refused
    tool_call       (OpenAI) a streamed tool call instead of text
    tool_use        (Anthropic) a streamed tool_use block instead of text: a call of the
                    tool tool_choice names, else of the first tool
    call:NAME:ARGS  (OpenAI) a streamed call of tool NAME with ARGS (as written, JSON or not);
                    a request that offers no tools gets the text reply instead, as from a
                    real API
    text_call:NAME:ARGS  (OpenAI) the text reply, then that call in the same response (a
                    model that says something and calls a tool)

The OpenAI stand-in also serves POST /v1/embeddings, a STAND-IN as well: each text gets a
deterministic unit vector hashed from its words (no model; same text, same vector), in the
documented response shape, with the failures above that come before an answer (500, 429,
400_context, 401).

Each served request is recorded with the usage the stand-in reported, so tests can hold
the ledger to it, token for token; embedding requests and refused keys also record the
request's headers (the Authorization the SDK sent).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Served:
    behaviour: str
    body: dict[str, Any]
    at: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Script:
    reply: str = "Keys are rotated every night by the ops team. [1]"
    behaviours: deque[str] = field(default_factory=deque)
    default: str = "ok"
    served: list[Served] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay_per_chunk: float = 0.0
    # (prompt, completion) the OpenAI stand-in reports instead of what it counted
    usage: tuple[int, int] | None = None
    # Prompt tokens the Anthropic stand-in reports as written to its prompt cache
    # (cache_creation_input_tokens; part of the prompt it records)
    cache_write: int = 0
    # Stream the reply in pieces of this many characters instead of word by word (0).
    chunk_chars: int = 0

    def next_behaviour(self) -> str:
        with self.lock:
            return self.behaviours.popleft() if self.behaviours else self.default

    def record(self, served: Served) -> Served:
        with self.lock:
            self.served.append(served)
        return served


def prompt_tokens_of(body: dict[str, Any]) -> int:
    """What the stand-in bills for a prompt: a deterministic count of its words."""
    texts = [m.get("content") or "" for m in body.get("messages", [])]
    texts.append(body.get("system") or "")
    words = sum(len(str(t).split()) for t in texts)
    return words + 7 * len(body.get("messages", []))


class _Handler(BaseHTTPRequestHandler):
    script: Script
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _body(self) -> dict[str, Any]:
        return json.loads(self.rfile.read(int(self.headers["content-length"])))

    def _headers(self) -> dict[str, str]:
        """The request's headers, names in lower case."""
        return {name.lower(): value for name, value in self.headers.items()}

    def _json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def _reset(self) -> None:
        """Abort the connection with a TCP RST, as a crashed proxy would."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _words(self, body: dict[str, Any] | None = None) -> list[str]:
        """The reply in streamed pieces. ``{placeholders}`` in it becomes the redaction
        placeholders (``<EMAIL_1>``) the request holds, in order: a model that repeats them."""
        reply = self.script.reply
        if "{placeholders}" in reply:
            found = re.findall(r"<[A-Z_]+_\d+>", json.dumps(body or {}))
            reply = reply.replace("{placeholders}", " ".join(dict.fromkeys(found)))
        if self.script.chunk_chars:
            n = self.script.chunk_chars
            return [reply[i : i + n] for i in range(0, len(reply), n)]
        words = reply.split(" ")
        return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]

    def _wait(self, seconds: float) -> bool:
        """Sleep unless the stand-in is shutting down; False when it is."""
        return not self.script.stop.wait(seconds)

    def _early_failure(self, behaviour: str, body: dict[str, Any]) -> bool:
        """The failures that happen before a stream starts; True if one was sent."""
        if behaviour == "500":
            self.script.record(Served(behaviour, body, time.monotonic()))
            self._json(500, self._error("server_error", "stand-in: internal error"))
            return True
        if behaviour.startswith("429:"):
            self.script.record(Served(behaviour, body, time.monotonic()))
            self._json(
                429,
                self._error("rate_limit_error", "stand-in: slow down"),
                {"retry-after": behaviour.split(":")[1]},
            )
            return True
        if behaviour == "401":
            self.script.record(Served(behaviour, body, time.monotonic(), headers=self._headers()))
            self._json(401, self._error("authentication_error", "stand-in: invalid API key"))
            return True
        if behaviour == "400_context":
            self.script.record(Served(behaviour, body, time.monotonic()))
            message = "This model's maximum context length is 128 tokens (context_length_exceeded)"
            self._json(400, self._error("invalid_request_error", message))
            return True
        return False

    def _error(self, kind: str, message: str) -> dict[str, Any]:
        raise NotImplementedError


class OpenAIStandIn(_Handler):
    """STAND-IN for OpenAI's POST /v1/chat/completions (streaming)."""

    def _error(self, kind: str, message: str) -> dict[str, Any]:
        code = "context_length_exceeded" if "context" in message else None
        if kind == "authentication_error":  # OpenAI's shape for a refused key
            kind, code = "invalid_request_error", "invalid_api_key"
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def do_POST(self) -> None:
        body = self._body()
        behaviour = self.script.next_behaviour()
        if self._early_failure(behaviour, body):
            return
        if self.path.endswith("/embeddings"):
            self._embeddings(body, behaviour)
            return
        served = self.script.record(
            Served(behaviour, body, time.monotonic(), prompt_tokens_of(body))
        )
        self._start_stream()
        if behaviour.startswith("slow:") and not self._wait(float(behaviour.split(":")[1])):
            return
        limit = (
            int(behaviour.split(":")[1])
            if behaviour.split(":")[0] in ("reset", "error_body", "no_done")
            else None
        )
        if behaviour == "tool_call":
            self._send_tool_call(body, served)
            return
        if behaviour.startswith("call:") and body.get("tools"):
            name, _, arguments = behaviour.removeprefix("call:").partition(":")
            self._send_tool_call(body, served, name, arguments)
            return
        if behaviour.startswith("text_call:"):
            name, _, arguments = behaviour.removeprefix("text_call:").partition(":")
            for word in self._words(body):
                delta = {"content": word}
                self._event(
                    {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}, body
                )
            self._send_tool_call(body, served, name, arguments)
            return
        words = self._words(body)[: body.get("max_tokens") or None]
        for n, word in enumerate(words):
            if limit is not None and n == limit:
                return self._fail_mid_stream(behaviour)
            self._event(
                {"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}, body
            )
            served.completion_tokens += 1
            if self.script.delay_per_chunk and not self._wait(self.script.delay_per_chunk):
                return None
        finish = (
            "length"
            if body.get("max_tokens") and len(self._words(body)) > body["max_tokens"]
            else "stop"
        )
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}, body)
        self._finish(body, served)
        return None

    def _embeddings(self, body: dict[str, Any], behaviour: str) -> None:
        """STAND-IN for POST /v1/embeddings: hashed vectors, not a model's."""
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        tokens = sum(len(str(t).split()) for t in texts)
        self.script.record(
            Served(behaviour, body, time.monotonic(), tokens, headers=self._headers())
        )
        data = [
            {"object": "embedding", "index": i, "embedding": stand_in_vector(str(t))}
            for i, t in enumerate(texts)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        self._json(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})

    def _send_tool_call(
        self, body: dict[str, Any], served: Served, name: str = "", arguments: str = ""
    ) -> None:
        arguments = arguments or json.dumps({"city": "Paris"})
        first = {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": name or body["tools"][0]["function"]["name"], "arguments": ""},
        }
        self._event(
            {"choices": [{"index": 0, "delta": {"tool_calls": [first]}, "finish_reason": None}]},
            body,
        )
        for part in (arguments[:6], arguments[6:]):
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}
            self._event({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}, body)
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}, body)
        served.completion_tokens = 11
        self._finish(body, served)

    def _finish(self, body: dict[str, Any], served: Served) -> None:
        if self.script.usage is not None:
            served.prompt_tokens, served.completion_tokens = self.script.usage
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "prompt_tokens": served.prompt_tokens,
                "completion_tokens": served.completion_tokens,
                "total_tokens": served.prompt_tokens + served.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": served.cached_tokens},
            }
            self._event({"choices": [], "usage": usage}, body)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _fail_mid_stream(self, behaviour: str) -> None:
        if behaviour.startswith("reset"):
            self._reset()
        elif behaviour.startswith("error_body"):
            error = {
                "error": {"message": "stand-in: overloaded mid-stream", "type": "server_error"}
            }
            self.wfile.write(f"data: {json.dumps(error)}\n\n".encode())
        # no_done: the stream just stops (the handler closes the connection)

    def _event(self, payload: dict[str, Any], body: dict[str, Any]) -> None:
        chunk = {
            "id": "chatcmpl-standin",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body["model"],
            **payload,
        }
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.flush()


STAND_IN_DIM = 16  # dimensions of the embeddings stand-in's vectors


def stand_in_vector(text: str, dim: int = STAND_IN_DIM) -> list[float]:
    """The embeddings stand-in's vector for ``text``: each word hashed into one of ``dim``
    buckets, normalised - deterministic, and texts sharing words come out close."""
    vector = [0.0] * dim
    for word in text.lower().split():
        digest = hashlib.sha256(word.encode()).digest()
        vector[digest[0] % dim] += 1.0 if digest[1] % 2 else -1.0
    if not any(vector):
        vector[0] = 1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


class AnthropicStandIn(_Handler):
    """STAND-IN for Anthropic's POST /v1/messages (streaming)."""

    def _error(self, kind: str, message: str) -> dict[str, Any]:
        kind = {"server_error": "api_error"}.get(kind, kind)
        return {"type": "error", "error": {"type": kind, "message": message}}

    def do_POST(self) -> None:
        body = self._body()
        behaviour = self.script.next_behaviour()
        if self._early_failure(behaviour, body):
            return
        cached, written = 12, self.script.cache_write
        served = self.script.record(
            Served(
                behaviour,
                body,
                time.monotonic(),
                prompt_tokens_of(body) + cached + written,
                0,
                cached,
            )
        )
        self._start_stream()
        if behaviour.startswith("slow:") and not self._wait(float(behaviour.split(":")[1])):
            return
        limit = (
            int(behaviour.split(":")[1])
            if behaviour.split(":")[0] in ("reset", "error_body", "no_done")
            else None
        )
        usage = {
            "input_tokens": served.prompt_tokens - cached - written,
            "output_tokens": 1,
            "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": written,
        }
        message = {
            "id": "msg_standin",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": body["model"],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        self._event("message_start", {"type": "message_start", "message": message})
        if behaviour == "tool_use":
            self._send_tool_use(body, served)
            return
        self._event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        words = self._words(body)[: body.get("max_tokens") or None]
        for n, word in enumerate(words):
            if limit is not None and n == limit:
                if behaviour.startswith("reset"):
                    self._reset()
                elif behaviour.startswith("error_body"):
                    self._event(
                        "error",
                        {
                            "type": "error",
                            "error": {
                                "type": "overloaded_error",
                                "message": "stand-in: overloaded",
                            },
                        },
                    )
                return
            self._event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": word},
                },
            )
            served.completion_tokens += 1
        self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
        self._event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": served.completion_tokens},
            },
        )
        self._event("message_stop", {"type": "message_stop"})

    def _send_tool_use(self, body: dict[str, Any], served: Served) -> None:
        name = (body.get("tool_choice") or {}).get("name") or body["tools"][0]["name"]
        block = {"type": "tool_use", "id": "toolu_1", "name": name, "input": {}}
        self._event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
        arguments = json.dumps({"city": "Paris"})
        for part in (arguments[:6], arguments[6:]):
            delta = {"type": "input_json_delta", "partial_json": part}
            self._event(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )
        served.completion_tokens = 11
        self._event("content_block_stop", {"type": "content_block_stop", "index": 0})
        self._event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": served.completion_tokens},
            },
        )
        self._event("message_stop", {"type": "message_stop"})

    def _event(self, name: str, data: dict[str, Any]) -> None:
        self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()


@contextmanager
def stand_in(kind: str, script: Script | None = None) -> Iterator[tuple[str, Script]]:
    """A stand-in server on loopback: (base URL for the SDK, its script)."""
    script = script or Script()
    handler = type(
        "Handler", (OpenAIStandIn if kind == "openai" else AnthropicStandIn,), {"script": script}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    try:
        yield (
            (f"http://127.0.0.1:{port}/v1" if kind == "openai" else f"http://127.0.0.1:{port}"),
            script,
        )
    finally:
        script.stop.set()
        server.shutdown()
        server.server_close()
