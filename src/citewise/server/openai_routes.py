"""The OpenAI-compatible endpoints: chat completions (with citations), embeddings, models."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Generator, Sequence
from typing import Any

import anyio
import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from ..answering import AnswerOptions, AnswerStream
from ..config import Settings
from ..documents import Answer, Citation, Hit
from ..errors import CitewiseError, ProviderError
from ..keys import ApiKey
from ..providers.base import Capabilities, Message, OutputSchema, Tool, ToolCall
from .auth import AskKey, service_of
from .citations import ClientText, chat_annotation, client_text
from .errors import APIError, attempts_header, error_body, from_citewise, guarded
from .schemas import ChatCompletionRequest, ChatMessage, EmbeddingRequest, ToolChoice
from .service import Service
from .source_paths import SourcePaths

DISCONNECT_POLL_S = 0.5  # how often a non-streamed answer checks that its client is there
# Longest wait for a token being made when its reader left (a long prompt's first token).
RELEASE_WAIT_S = 600
log = logging.getLogger(__name__)

router = APIRouter()


# -- chat --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AnswerCall:
    """What a chat completion or a Responses request asks for: one answer to a
    conversation, with the client's output format, tools and sampling options."""

    model: str  # the assistant
    messages: Sequence[ChatMessage]
    output_schema: OutputSchema | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = ("auto", None)
    # Sampling options the client set, as OpenAI names them (ModelRequest's fields).
    sampling: dict[str, Any] = dataclasses.field(default_factory=dict)
    temperature: float | None = None
    max_tokens: int | None = None
    collections: list[str] | None = None
    where: dict[str, Any] | None = None
    # What the request calls each message (errors name it): messages[n] by default; the
    # Responses API's input[n] and instructions.
    names: Sequence[str] | None = None
    no_cache: bool = False  # the request's no_cache: bypass the response cache

    def asked(self) -> list[str]:
        """The sampling options set, temperature included."""
        return (["temperature"] if self.temperature is not None else []) + list(self.sampling)


async def open_answer(
    request: Request, key: ApiKey, call: AnswerCall
) -> tuple[AnswerStream, Settings]:
    """Start the answer (retrieval, then the model call): whatever the assistant cannot
    honour is refused here, before any text is promised, streamed or not."""
    service = service_of(request)
    assistant = service.assistant(call.model)
    settings = assistant.settings(service.settings)
    conversation = split_conversation(call.messages, settings.system_messages, call.names)
    options = answer_options(call, conversation)
    if call.no_cache or "no-cache" in request.headers.get("cache-control", "").lower():
        options = dataclasses.replace(options, no_cache=True)
    if settings.answer_check == "quote":
        refuse_model_only(assistant.name, options, call.asked())
    if call.max_tokens:
        settings = dataclasses.replace(
            settings, answer_tokens=min(call.max_tokens, settings.context_window // 2)
        )
    if call.temperature is not None:
        settings = dataclasses.replace(settings, temperature=call.temperature)
    answering = settings

    def start() -> AnswerStream:  # in a worker thread: the database is read here
        who = service.caller(key)  # its user's principals, as of now
        collections = service.scope(who, call.collections, assistant)
        if call.asked() or options.tools:
            capabilities = service.workspace.chat_model(answering).capabilities
            refuse_unsupported(call.asked(), capabilities)
            if options.tools and not capabilities.tools:
                raise APIError(
                    400,
                    "Unsupported parameter: 'tools': this assistant's model cannot call tools",
                    code="unsupported_parameter",
                    param="tools",
                )
        return service.workspace.ask_stream(
            conversation.question,
            collections,
            call.where,
            conversation.history,
            answering,
            caller=who,
            assistant=assistant.name,
            options=options,
        )

    return await run_in_threadpool(guarded, start), settings


def refuse_model_only(assistant: str, options: AnswerOptions, asked: list[str]) -> None:
    """An assistant that quotes its sources calls no model: what only a model could
    honour is refused, never dropped."""
    model_only = ["response_format"] if options.output_schema is not None else []
    model_only += ["tools"] if options.tools else []
    model_only += ["messages"] if options.continuation else []  # tool results
    model_only += asked  # temperature, top_p, seed, penalties, stop
    model_only += ["messages"] if options.instructions else []  # a system message
    if model_only:
        raise APIError(
            400,
            f"The assistant '{assistant}' quotes its sources without a model "
            f"(answer_check = quote): it cannot honour '{model_only[0]}'",
            code="unsupported_parameter",
            param=model_only[0],
        )


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request, key: AskKey) -> Any:
    service = service_of(request)
    tools, choice = body.function_tools()
    call = AnswerCall(
        model=body.model,
        messages=body.messages,
        output_schema=body.output_schema(),
        tools=tools,
        tool_choice=choice,
        sampling=requested_sampling(body),
        temperature=body.temperature,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        collections=body.collections,
        where=dict(body.where) if body.where else None,
        no_cache=body.no_cache,
    )
    stream, settings = await open_answer(request, key, call)
    form = TextForm.of(settings, call)
    completion_id = "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        outcome: dict[str, Any] = request.scope.setdefault("state", {})
        chunks = ChunkMaker(completion_id, created, body.model)
        events = _sse(service, key, stream, chunks, include_usage, form, outcome)
        return event_stream(request, stream, events, cache_headers(stream, settings))
    answer = await answer_unless_disconnected(request, stream)
    await run_in_threadpool(account, service, key, answer)
    # In a worker thread: showing a source may read its collection's folder from the store.
    message, citations, results = await run_in_threadpool(
        lambda: (
            message_json(answer, form.text(answer.text, answer.hits, service.shown)),
            [citation_json(c, service.shown) for c in answer.citations],
            [hit_json(h, n, service.shown) for n, h in enumerate(answer.hits, start=1)],
        )
    )
    return JSONResponse(
        headers=answer_headers(answer) | cache_headers(stream, settings),
        content={
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _finish_reason(answer),
                }
            ],
            "usage": chat_usage(answer),
            "system_fingerprint": None,
            "citations": citations,
            "search_results": results,
            "citewise": route_json(answer),
        },
    )


@dataclasses.dataclass(frozen=True)
class Conversation:
    """A chat request's messages as citewise answers them."""

    question: str  # the last user message
    history: list[Message]  # the turns before it (a follow-up is rewritten with them)
    instructions: str  # the client's system and developer messages
    # After the question: the model's calls to the client's tools and their results.
    continuation: tuple[Message, ...] = ()


@dataclasses.dataclass(frozen=True)
class TextForm:
    """How an answer's text reaches the client, on both APIs: with footnotes (the
    assistant's ``sources_in_text``), as JSON (then markers count inside its strings
    only, and no footnotes follow)."""

    footnoted: bool
    json_answer: bool

    @classmethod
    def of(cls, settings: Settings, call: AnswerCall) -> TextForm:
        return cls(settings.sources_in_text == "footnotes", call.output_schema is not None)

    def text(self, body: str, hits: Sequence[Hit], shown: SourcePaths) -> ClientText:
        """The text the client gets for ``body`` and its annotations. Reads the store:
        call it from a worker thread."""
        return client_text(body, hits, shown, self.footnoted, self.json_answer)


def cache_headers(stream: AnswerStream, settings: Settings) -> dict[str, str]:
    """``x-citewise-cache: hit|miss`` for an assistant with a response cache: whether the
    answer's model call was replayed from it (known before the first event is sent)."""
    if settings.response_cache == "off":
        return {}
    return {"x-citewise-cache": "hit" if stream.cache_status == "hit" else "miss"}


def answer_headers(answer: Answer) -> dict[str, str]:
    """Which target answered, the calls tried and the time they queued (both APIs)."""
    headers = {"x-citewise-target": answer.target} if answer.target else {}
    if answer.attempts:
        headers["x-citewise-attempts"] = attempts_header(tuple(answer.attempts))
        headers["x-citewise-queue-ms"] = str(round(queue_seconds(answer) * 1000))
    return headers


@dataclasses.dataclass(frozen=True)
class StreamFailure:
    """An error after a stream's 200 went out, as both APIs report it in the stream."""

    message: str
    type: str  # OpenAI's error type
    code: str | None
    param: str | None
    attempts: list[dict[str, Any]]  # the calls tried (citewise's own field), if any


def stream_failure(service: Service, exc: Exception, outcome: dict[str, Any]) -> StreamFailure:
    """``exc`` as the stream reports it, counted in the metrics; ``outcome["stream_error"]``
    tells the access log that this 200 ended as an error."""
    error = from_citewise(exc) if isinstance(exc, CitewiseError) else None
    kind = error.type if error else "server_error"
    service.metrics.errors.labels(kind).inc()
    service.metrics.stream_errors.labels(kind).inc()
    code = error.code if error else None
    outcome["stream_error"] = code or kind
    attempts = exc.attempts if isinstance(exc, ProviderError) else ()
    return StreamFailure(
        str(exc), kind, code, error.param if error else None, [attempt_json(a) for a in attempts]
    )


def message_json(answer: Answer, text: ClientText) -> dict[str, Any]:
    """The answer as a chat completion's message: the text the client gets (``text``),
    its markers as ``url_citation`` annotations, and the tools the model called."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text.text if text.text or not answer.tool_calls else None,
        "refusal": None,
        "annotations": [chat_annotation(a) for a in text.annotations],
    }
    if answer.tool_calls:
        message["tool_calls"] = [tool_call_json(call) for call in answer.tool_calls]
    return message


def tool_call_json(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    body = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    return body if index is None else {"index": index, **body}


def split_conversation(
    messages: Sequence[ChatMessage],
    system_messages: str = "instructions",
    names: Sequence[str] | None = None,
) -> Conversation:
    """The question (the last user message), the turns before it, the client's
    instructions (its system and developer messages' text) and the tool calls and results
    after the question.

    The instructions reach the model inside citewise's grounding prompt, after its rules
    (answering.py), so whatever a client (or an injected text) says, the answer still
    comes from the sources, cited. With ``system_messages = "refuse"`` a system message is
    a 400. What citewise cannot read (an image) is a 400, never dropped. ``names``: what
    the request calls each message (``messages[n]`` by default), which errors name.
    """
    names = names or [f"messages[{n}]" for n in range(len(messages))]
    for number, message in enumerate(messages):
        problem = message.unsupported()
        if problem is not None:
            raise APIError(
                400,
                f"{names[number]} holds {problem}",
                code="unsupported_parameter",
                param=_field(names[number]),
            )
    system = [n for n, m in enumerate(messages) if m.role in ("system", "developer")]
    if system and system_messages == "refuse":
        first = messages[system[0]]
        raise APIError(
            400,
            f"{names[system[0]]} is a {first.role} message; this server takes none "
            "(system_messages = refuse): citewise's own rules instruct the model",
            code="unsupported_parameter",
            param=_field(names[system[0]]),
        )
    users = [n for n, m in enumerate(messages) if m.role == "user"]
    asked = users[-1] if users else -1
    continuation = [
        m.as_message() for m in messages[asked + 1 :] if m.role not in ("system", "developer")
    ]
    if asked < 0 or not messages[asked].text().strip() or not _answers_its_calls(continuation):
        raise APIError(
            422,
            "The last message must be a non-empty user message, or the results of the tool "
            "calls that follow it (a tool message answering each call)",
            code="invalid_messages",
            param=_field(names[-1]) if names else "messages",
        )
    history = [
        Message(m.role, m.text())
        for m in messages[:asked]
        if m.role in ("user", "assistant") and m.text().strip()
    ]
    instructions = "\n\n".join(text for n in system if (text := messages[n].text().strip()))
    return Conversation(messages[asked].text().strip(), history, instructions, tuple(continuation))


def _field(name: str) -> str:
    """The request's field a message's name is in: ``input`` for ``input[3]``."""
    return name.split("[", 1)[0]


def _answers_its_calls(turns: Sequence[Message]) -> bool:
    """Turns after the question are assistant turns that called tools, each call answered
    by a tool turn before the next assistant turn, ending with a tool result."""
    if not turns:
        return True
    if turns[-1].role != "tool":
        return False
    pending: set[str] = set()
    for turn in turns:
        if turn.role == "assistant":
            if pending or not turn.tool_calls:
                return False
            pending = {call.id for call in turn.tool_calls}
        elif turn.role == "tool":
            if turn.tool_call_id not in pending:
                return False
            pending.discard(turn.tool_call_id)
        else:
            return False
    return not pending


def answer_options(call: AnswerCall, conversation: Conversation) -> AnswerOptions:
    """What the request asks of the answer's model call beyond the assistant's settings.
    With ``tool_choice: "none"`` the tools still go along, as OpenAI's API sends them: the
    model reads the calls it made earlier in their light, and calls none."""
    choice, name = call.tool_choice
    return AnswerOptions(
        instructions=conversation.instructions,
        tools=call.tools,
        tool_choice=choice,
        tool_name=name,
        continuation=conversation.continuation,
        output_schema=call.output_schema,
        **call.sampling,
    )


def requested_sampling(body: ChatCompletionRequest) -> dict[str, Any]:
    """The sampling options the request sets (temperature aside), as OpenAI names them."""
    asked = {
        name: getattr(body, name)
        for name in ("top_p", "seed", "presence_penalty", "frequency_penalty")
        if getattr(body, name) is not None
    }
    return asked | ({"stop": body.stop_sequences()} if body.stop_sequences() else {})


def refuse_unsupported(asked: list[str], capabilities: Capabilities) -> None:
    """A 400 naming the first option the assistant's model cannot honour (Anthropic's
    Messages API has no seed and no penalties). The first target of a chain that loads
    decides, as for its other capabilities; a fallback target that cannot honour an
    option refuses the call itself (ProviderError naming it: a 400 as well)."""
    for name in asked:
        if name not in capabilities.sampling:
            raise APIError(
                400,
                f"Unsupported parameter: '{name}' is not supported by this assistant's "
                "model provider",
                code="unsupported_parameter",
                param=name,
            )


def event_stream(
    request: Request,
    stream: AnswerStream,
    events: Generator[str, None, None],
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    """Server-sent ``events`` of ``stream``, for as long as the client reads them;
    ``headers`` go along (``x-citewise-cache``)."""
    return StreamingResponse(
        until_disconnected(request, stream, events),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
    )


async def until_disconnected(
    request: Request, stream: AnswerStream, events: Generator[str, None, None]
) -> AsyncIterator[str]:
    """The events while the client reads them. uvicorn drops what is sent to a client
    that has gone, so without this check the model would generate to the end for nobody,
    holding the local model all the while."""
    try:
        async for event in iterate_in_threadpool(events):
            yield event
            if await request.is_disconnected():
                return
    finally:
        stream.cancel()  # a generation running in a worker thread stops at its next token
        # Closing settles the ledger (a database write): in a worker thread, not the loop.
        # Shielded: when the client hangs up, Starlette cancels this task, and an await in
        # a cancelled scope is cancelled at once — the stream was then left to the garbage
        # collector, holding the local model for minutes.
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(_release, events, stream)


def _release(events: Generator[str, None, None], stream: AnswerStream) -> None:
    """Free what a finished or abandoned stream holds. A suspended generation releases the
    model now. One still running in a worker thread (the client left while the next token
    was being made) raises "generator already executing": it is closed as soon as that
    token is out — left suspended, it would hold the local model until garbage collection
    (the abandoned-stream test caught it holding it for minutes). A stream that never
    began still settles its budget hold."""
    deadline = time.monotonic() + RELEASE_WAIT_S
    while True:
        try:
            events.close()
            break
        except ValueError:
            if time.monotonic() > deadline:
                log.warning("an abandoned stream did not stop within %d s", RELEASE_WAIT_S)
                break
            time.sleep(0.02)
    with contextlib.suppress(CitewiseError):  # a ledger write failure is logged where it happens
        stream.close()


async def answer_unless_disconnected(request: Request, stream: AnswerStream) -> Answer:
    """The whole answer, unless the client hangs up (a timeout) while it is generated."""
    task = asyncio.ensure_future(run_in_threadpool(guarded, lambda: _consume(stream)))
    while not task.done():
        await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
        if not task.done() and await request.is_disconnected():
            stream.cancel()
    return task.result()


def _consume(stream: AnswerStream) -> Answer:
    for _ in stream:
        pass
    assert stream.answer is not None
    return stream.answer


@dataclasses.dataclass(frozen=True)
class ChunkMaker:
    """``chat.completion.chunk`` events of one streamed completion."""

    completion_id: str
    created: int
    model: str

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self.event({"choices": [choice], **extra})

    def event(self, fields: dict[str, Any]) -> str:
        body = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            **fields,
        }
        return f"data: {json.dumps(body)}\n\n"


def _sse(
    service: Service,
    key: ApiKey,
    stream: AnswerStream,
    chunks: ChunkMaker,
    include_usage: bool,
    form: TextForm,
    outcome: dict[str, Any],
) -> Generator[str, None, None]:
    """The answer as server-sent events. An error after the 200 went out is an error
    event in the stream, and ``outcome["stream_error"]`` tells the access log and the
    metrics that this 200 ended as an error. The last chunk lists the passages again
    (``search_results``): in agent mode the first one's list is empty, as the model finds
    them only while it works."""
    sources = stream.prompt.hits if stream.prompt else []
    # The passages the model sees, numbered as its [n] markers will be: a client can
    # render markers as links while the text streams.
    yield chunks.chunk(
        {"role": "assistant", "content": ""},
        search_results=[hit_json(h, n, service.shown) for n, h in enumerate(sources, start=1)],
    )
    sent: list[str] = []  # the text as the client has it: annotations index into it
    deltas = iter(stream)
    try:
        for delta in deltas:
            sent.append(delta)
            yield chunks.chunk({"content": delta})
    except Exception as exc:  # headers are sent; report the error in the stream, as OpenAI does
        failure = stream_failure(service, exc, outcome)
        body = error_body(failure.message, failure.type, failure.code)
        if failure.attempts:
            body["citewise"] = {"attempts": failure.attempts}
        yield f"data: {json.dumps(body)}\n\n"
        yield "data: [DONE]\n\n"
        return
    finally:
        deltas.close()  # when the client has gone, this frees the model
    answer = stream.answer
    assert answer is not None
    account(service, key, answer)
    text = form.text("".join(sent), answer.hits, service.shown)
    if text.notes:
        yield chunks.chunk({"content": text.notes})
    for index, call in enumerate(answer.tool_calls):
        yield chunks.chunk({"tool_calls": [tool_call_json(call, index)]})
    marked = [chat_annotation(a) for a in text.annotations]
    yield chunks.chunk(
        {"annotations": marked} if marked else {},
        _finish_reason(answer),
        citewise=route_json(answer),
        citations=[citation_json(c, service.shown) for c in answer.citations],
        search_results=[hit_json(h, n, service.shown) for n, h in enumerate(answer.hits, 1)],
    )
    if include_usage:  # the last chunk: usage, and again which targets answered
        yield chunks.event(
            {"choices": [], "usage": chat_usage(answer), "citewise": route_json(answer)}
        )
    yield "data: [DONE]\n\n"


def queue_seconds(answer: Answer) -> float:
    """Time the answer's model calls waited for their turns (local models queue)."""
    return sum(getattr(attempt, "queue_s", 0.0) for attempt in answer.attempts)


def account(service: Service, key: ApiKey, answer: Answer) -> None:
    if answer.attempts:
        service.metrics.model_queue.observe(queue_seconds(answer))
    # Token counters by model and key come from the ledger (Service); this is the rate limit.
    total = answer.usage.prompt_tokens + answer.usage.completion_tokens
    service.limiter.spend_tokens(key.name, key.tpm, total)


def chat_usage(answer: Answer) -> dict[str, Any]:
    prompt, completion = answer.usage.prompt_tokens, answer.usage.completion_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": answer.usage.cached_tokens},
    }


def _finish_reason(answer: Answer) -> str:
    # OpenAI's vocabulary: a generation we stopped (a loop, the reader left) ended as "stop".
    return answer.finish_reason if answer.finish_reason in ("length", "tool_calls") else "stop"


def route_json(answer: Answer) -> dict[str, Any]:
    """Which target answered and every call tried on the way (fallbacks included), and
    in agent mode each step: the tool, its arguments, the passages found, the tokens."""
    route: dict[str, Any] = {
        "target": answer.target,
        "attempts": [attempt_json(a) for a in answer.attempts],
    }
    if answer.steps:
        route["steps"] = [dataclasses.asdict(step) for step in answer.steps]
    return route


def attempt_json(attempt: Any) -> dict[str, Any]:
    return {
        "target": attempt.target,
        "status": attempt.status,
        "error": attempt.error,
        "prompt_tokens": attempt.usage.prompt_tokens,
        "completion_tokens": attempt.usage.completion_tokens,
        "estimated": attempt.usage.estimated,
        "latency_s": round(attempt.latency_s, 4),
        "queue_s": round(getattr(attempt, "queue_s", 0.0), 4),
    }


def hit_json(
    hit: Hit, number: int | None = None, shown: SourcePaths | None = None
) -> dict[str, Any]:
    """A passage as the API shows it. Callers never see server paths: an upload is shown
    relative to the workspace (``uploads/docs/report.pdf``), another file relative to its
    ingest root (source_paths.py). Reads the store: call it from a worker thread."""
    source = shown.shown(hit.source, hit.collection) if shown else hit.source
    body = {
        "title": hit.title,
        "source": source,
        "url": hit.url,
        "collection": hit.collection,
        "document_id": hit.document_id,
        "chunk_id": hit.chunk_id,
        "page": hit.page,
        "heading_path": list(hit.heading_path),
        "location": hit.location,
        "start": hit.start,
        "end": hit.end,
        "score": round(hit.score, 6),
        "start_seconds": hit.seconds[0] if hit.seconds else None,
        "end_seconds": hit.seconds[1] if hit.seconds else None,
        "cosine": None if hit.cosine is None else round(hit.cosine, 6),
        "text": hit.text,
        "metadata": public_metadata(hit.metadata, shown, hit.source, hit.collection),
    }
    return {"number": number, **body} if number is not None else body


def public_metadata(
    metadata: dict[str, Any], shown: SourcePaths | None, source: str, collection: str
) -> dict[str, Any]:
    """Metadata for callers: no principals (they are for permission checks), no server paths."""
    if shown is not None:
        return shown.metadata(metadata, source, collection)
    return {k: v for k, v in metadata.items() if not k.startswith("principal")}


def citation_json(citation: Citation, shown: SourcePaths | None = None) -> dict[str, Any]:
    body = hit_json(citation.hit, citation.number, shown)
    body.pop("text")
    return body | {
        "quote": citation.quote,
        "quote_start": citation.quote_start,
        "quote_end": citation.quote_end,
    }


# -- embeddings and models -----------------------------------------------------------


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request, key: AskKey) -> JSONResponse:
    service = service_of(request)
    embedder = service.workspace.embedder()
    names = {service.settings.embedder, embedder.model_id}
    if body.model not in names:
        raise APIError(
            404,
            f"The embedding model '{body.model}' does not exist; this server "
            f"embeds with '{service.settings.embedder}'",
            code="model_not_found",
            param="model",
        )
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise APIError(
            422,
            f"'{body.model}' makes {embedder.dim}-dimensional vectors only",
            code="invalid_dimensions",
            param="dimensions",
        )
    texts = body.texts()
    if len(texts) > 2048 or any(not t for t in texts):
        raise APIError(422, "input must hold 1 to 2048 non-empty strings", param="input")
    vectors = await run_in_threadpool(embedder.embed_batch, texts)
    tokens = sum(len(offsets) for offsets in embedder.token_offsets(texts))
    service.metrics.tokens.labels("embedding").inc(tokens)
    await run_in_threadpool(service.limiter.spend_tokens, key.name, key.tpm, tokens)
    data = [
        {"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


@router.get("/v1/models")
async def models(request: Request, key: AskKey) -> JSONResponse:
    return JSONResponse({"object": "list", "data": _model_list(service_of(request))})


@router.get("/v1/models/{model_id}")
async def model(model_id: str, request: Request, key: AskKey) -> JSONResponse:
    for entry in _model_list(service_of(request)):
        if entry["id"] == model_id:
            return JSONResponse(entry)
    raise APIError(
        404, f"The model '{model_id}' does not exist", code="model_not_found", param="model"
    )


def _model_list(service: Service) -> list[dict[str, Any]]:
    names = [*sorted(service.assistants), service.settings.embedder]
    return [{"id": name, "object": "model", "created": 0, "owned_by": "citewise"} for name in names]
