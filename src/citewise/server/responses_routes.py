"""OpenAI's Responses API (``POST /v1/responses``), what the Agents SDK and newer clients
use by default: the same answers as chat completions — grounded, cited, with the client's
tools and JSON formats — in the Responses shapes, streamed as its typed events.

Citations are ``url_citation`` annotations on the ``output_text`` part (LangChain's
``ChatOpenAI(use_responses_api=True)`` keeps them on the message's content blocks, streamed
or not), besides citewise's own ``citations`` and ``search_results`` fields. Nothing is
stored: a request carries its whole conversation (``previous_response_id`` and
``store: true`` are refused).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..answering import AnswerStream
from ..documents import Answer
from ..keys import ApiKey
from ..providers.base import ToolCall
from .auth import AskKey, service_of
from .citations import ClientText, response_annotation
from .openai_routes import (
    AnswerCall,
    TextForm,
    account,
    answer_headers,
    answer_unless_disconnected,
    cache_headers,
    citation_json,
    event_stream,
    hit_json,
    open_answer,
    route_json,
    stream_failure,
)
from .schemas import ResponsesRequest
from .service import Service

router = APIRouter()


@router.post("/v1/responses")
async def create_response(body: ResponsesRequest, request: Request, key: AskKey) -> Any:
    tools, choice = body.function_tools()
    call = AnswerCall(
        model=body.model,
        messages=body.messages(),
        output_schema=body.output_schema(),
        tools=tools,
        tool_choice=choice,
        sampling={"top_p": body.top_p} if body.top_p is not None else {},
        temperature=body.temperature,
        max_tokens=body.max_output_tokens,
        collections=body.collections,
        where=dict(body.where) if body.where else None,
        names=body.message_names(),
        no_cache=body.no_cache,
    )
    stream, settings = await open_answer(request, key, call)
    service = service_of(request)
    shell = Shell(body, "resp_" + uuid.uuid4().hex, time.time())
    form = TextForm.of(settings, call)
    if body.stream:
        outcome: dict[str, Any] = request.scope.setdefault("state", {})
        events = _events(service, key, stream, shell, form, outcome)
        return event_stream(request, stream, events, cache_headers(stream, settings))
    answer = await answer_unless_disconnected(request, stream)
    await run_in_threadpool(account, service, key, answer)
    # In a worker thread: showing a source may read its collection's folder from the store.
    content = await run_in_threadpool(
        lambda: shell.finished(answer, form.text(answer.text, answer.hits, service.shown), service)
    )
    return JSONResponse(content, headers=answer_headers(answer) | cache_headers(stream, settings))


@dataclass
class Shell:
    """One response object as it goes from in progress to completed: the request's
    settings echoed as OpenAI's API echoes them, and ids for its output items."""

    body: ResponsesRequest
    id: str
    created_at: float
    message_id: str = field(default_factory=lambda: "msg_" + uuid.uuid4().hex)

    def json(self, status: str, output: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        body = self.body
        tools, (choice, name) = body.function_tools()
        fmt = (body.text or {}).get("format") or {"type": "text"}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "metadata": body.metadata or {},
            "model": body.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "store": False,
            "temperature": body.temperature,
            "top_p": body.top_p,
            "text": {"format": fmt},
            "tool_choice": {"type": "function", "name": name} if name else choice,
            "tools": [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                    "strict": t.strict,  # as the client sent it
                }
                for t in tools
            ],
            "truncation": body.truncation or "disabled",
            "usage": None,
            "user": None,
            **fields,
        }

    def finished(self, answer: Answer, text: ClientText, service: Service) -> dict[str, Any]:
        """The finished response: ``completed``, or ``incomplete`` when max_output_tokens
        cut the answer (its message item too). Reads the store: call it from a worker
        thread."""
        output = []
        status = response_status(answer)
        if text.text or not answer.tool_calls:
            notes = [response_annotation(a) for a in text.annotations]
            output.append(self.message(text.text, notes, status))
        output += [function_call_item(call, "completed") for call in answer.tool_calls]
        cut = status == "incomplete"
        return self.json(
            status,
            output,
            completed_at=time.time(),
            incomplete_details={"reason": "max_output_tokens"} if cut else None,
            usage=response_usage(answer),
            citations=[citation_json(c, service.shown) for c in answer.citations],
            search_results=[
                hit_json(h, n, service.shown) for n, h in enumerate(answer.hits, start=1)
            ],
            citewise=route_json(answer),
        )

    def message(self, text: str, annotations: list[dict[str, Any]], status: str) -> dict[str, Any]:
        content = [] if status == "in_progress" else [output_text(text, annotations)]
        return {
            "type": "message",
            "id": self.message_id,
            "status": status,
            "role": "assistant",
            "content": content,
        }


def output_text(text: str, annotations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}


def function_call_item(call: ToolCall, status: str, arguments: str | None = None) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": "fc_" + call.id.removeprefix("call_"),
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments if arguments is None else arguments,
        "status": status,
    }


def response_status(answer: Answer) -> str:
    """``incomplete`` when max_output_tokens cut the answer, else ``completed``."""
    return "incomplete" if answer.finish_reason == "length" else "completed"


def response_usage(answer: Answer) -> dict[str, Any]:
    prompt, completion = answer.usage.prompt_tokens, answer.usage.completion_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": answer.usage.cached_tokens},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


class EventWriter:
    """Server-sent events of the Responses API, numbered as it numbers them."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **fields: Any) -> str:
        body = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(body)}\n\n"


def _events(
    service: Service,
    key: ApiKey,
    stream: AnswerStream,
    shell: Shell,
    form: TextForm,
    outcome: dict[str, Any],
) -> Generator[str, None, None]:
    """The answer as the Responses API streams it: the message item opens with the first
    text, its deltas follow, then its annotations, then the function calls, then
    ``response.completed`` carrying the whole response (``response.incomplete`` when
    max_output_tokens cut it, as OpenAI's API sends it). An error after the 200 went out
    is an ``error`` event and ``response.failed``."""
    event = EventWriter()
    sources = stream.prompt.hits if stream.prompt else []
    started = shell.json("in_progress", [])
    # The passages the model sees, numbered as its [n] markers will be.
    started["search_results"] = [hit_json(h, n, service.shown) for n, h in enumerate(sources, 1)]
    yield event("response.created", response=started)
    yield event("response.in_progress", response=shell.json("in_progress", []))
    place = {"item_id": shell.message_id, "output_index": 0, "content_index": 0}
    sent: list[str] = []
    deltas = iter(stream)
    try:
        for delta in deltas:
            if not sent:
                yield from _open_message(event, shell)
            sent.append(delta)
            yield event("response.output_text.delta", delta=delta, logprobs=[], **place)
    except Exception as exc:  # headers are sent: the error goes in the stream
        yield from _failed(service, shell, event, exc, outcome)
        return
    finally:
        deltas.close()  # when the client has gone, this frees the model
    answer = stream.answer
    assert answer is not None
    account(service, key, answer)
    text = form.text("".join(sent), answer.hits, service.shown)
    status = response_status(answer)
    if text.notes:
        if not sent:
            yield from _open_message(event, shell)
        sent.append(text.notes)
        yield event("response.output_text.delta", delta=text.notes, logprobs=[], **place)
    if sent:
        annotations = [response_annotation(a) for a in text.annotations]
        for index, annotation in enumerate(annotations):
            yield event(
                "response.output_text.annotation.added",
                annotation=annotation,
                annotation_index=index,
                **place,
            )
        part = output_text(text.text, annotations)
        yield event("response.output_text.done", text=text.text, logprobs=[], **place)
        yield event("response.content_part.done", part=part, **place)
        yield event(
            "response.output_item.done",
            output_index=0,
            item=shell.message(text.text, annotations, status),
        )
    first = 1 if sent else 0
    for offset, call in enumerate(answer.tool_calls):
        yield from _function_call_events(event, call, first + offset)
    # Sent text and the final response agree: finished() takes the same text.
    kind = "response.incomplete" if status == "incomplete" else "response.completed"
    yield event(kind, response=shell.finished(answer, text, service))


def _open_message(event: EventWriter, shell: Shell) -> Generator[str, None, None]:
    yield event(
        "response.output_item.added", output_index=0, item=shell.message("", [], "in_progress")
    )
    yield event(
        "response.content_part.added",
        item_id=shell.message_id,
        output_index=0,
        content_index=0,
        part=output_text("", []),
    )


def _function_call_events(
    event: EventWriter, call: ToolCall, index: int
) -> Generator[str, None, None]:
    item_id = function_call_item(call, "in_progress")["id"]
    yield event(
        "response.output_item.added",
        output_index=index,
        item=function_call_item(call, "in_progress", arguments=""),
    )
    yield event(
        "response.function_call_arguments.delta",
        item_id=item_id,
        output_index=index,
        delta=call.arguments,
    )
    yield event(
        "response.function_call_arguments.done",
        item_id=item_id,
        output_index=index,
        arguments=call.arguments,
    )
    yield event(
        "response.output_item.done", output_index=index, item=function_call_item(call, "completed")
    )


def _failed(
    service: Service,
    shell: Shell,
    event: EventWriter,
    exc: Exception,
    outcome: dict[str, Any],
) -> Generator[str, None, None]:
    failure = stream_failure(service, exc, outcome)
    code = failure.code or failure.type
    yield event("error", code=code, message=failure.message, param=failure.param)
    failed = shell.json("failed", [], error={"code": code, "message": failure.message})
    if failure.attempts:
        failed["citewise"] = {"attempts": failure.attempts}
    yield event("response.failed", response=failed)
