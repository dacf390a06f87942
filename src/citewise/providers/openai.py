"""OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server) via the official SDK.

Usage comes from the API (``stream_options.include_usage``); a server that sends no usage
is counted with the prompt we rendered and the text we received, marked ``estimated``.
A stream that stops before its finish reason (no ``[DONE]``, a reset) is an error, never a
silently short answer.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import ProviderError
from .base import (
    SAMPLING_OPTIONS,
    BaseChatModel,
    Capabilities,
    Event,
    Finished,
    Message,
    ModelRequest,
    TextDelta,
    TokenUsage,
    Tool,
    ToolCallDelta,
    http_library,
    refuse_unsupported,
    request_tokens,
    requested_options,
    resolve_api_key,
    sdk_error,
    socket_timeouts,
)

if TYPE_CHECKING:
    from openai.types.chat import (
        ChatCompletionAssistantMessageParam,
        ChatCompletionMessageParam,
        ChatCompletionToolChoiceOptionParam,
        ChatCompletionToolParam,
    )
    from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall
    from openai.types.shared_params import FunctionDefinition

    from .router import Target

DEFAULT_MODEL = "gpt-4o-mini"
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "stop",
}


class OpenAIChatModel(BaseChatModel):
    name = "openai"
    default_model = DEFAULT_MODEL

    def __init__(
        self,
        model: str,
        api_key: str | None,
        base_url: str | None,
        context_window: int,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
    ) -> None:
        import openai

        httpx = http_library(openai)

        self._openai = openai
        # Local servers ignore the key, but the SDK insists on one. Retries are the
        # router's (it honours Retry-After and falls back), so the SDK makes none.
        self._client = openai.OpenAI(
            api_key=api_key or "not-needed",
            base_url=base_url or None,
            max_retries=0,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        )
        self.model_id = model
        self.context_window = context_window
        self.capabilities = Capabilities(
            context_window,
            tools=True,
            json_schema=True,
            usage_fields=frozenset({"prompt", "completion", "cached"}),
            sampling=frozenset({*SAMPLING_OPTIONS, "temperature"}),
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, workspace: Path | None = None, target: Target | None = None
    ) -> OpenAIChatModel:
        key = resolve_api_key(settings, "OPENAI_API_KEY", workspace, required=not settings.base_url)
        return cls(
            settings.model or DEFAULT_MODEL,
            key,
            settings.base_url,
            settings.context_window,
            **socket_timeouts(target),
        )

    def generate(self, request: ModelRequest) -> Generator[Event, None, None]:
        httpx = http_library(self._openai)

        where = str(self._client.base_url)
        refuse_unsupported(request, self.capabilities, where)
        # Passed as they are: the API (or vLLM, Ollama, llama.cpp's server) applies them.
        options: dict[str, Any] = {
            name: list(value) if name == "stop" else value
            for name in requested_options(request)
            for value in [getattr(request, name)]
        }
        if request.tools:
            options["tools"] = [wire_tool(t) for t in request.tools]
            options["tool_choice"] = wire_tool_choice(request)
        if request.output_schema is not None:
            # Structured Outputs; vLLM, Ollama and llama.cpp's server take the same field.
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.output_schema.name,
                    "schema": request.output_schema.schema,
                    "strict": strict_compatible(request.output_schema.schema),
                },
            }
        text: list[str] = []  # what arrived, text and tool-call arguments (usage estimates)
        usage: TokenUsage | None = None
        finish: str | None = None
        calls = _ToolCallStream()
        try:
            response = self._client.chat.completions.create(
                model=self.model_id,
                messages=wire_messages(request.messages),
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                stream=True,
                stream_options={"include_usage": True},
                **options,
            )
            try:
                for chunk in response:
                    if chunk.usage is not None:
                        usage = _usage(chunk.usage)
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    if choice.delta.content:
                        text.append(choice.delta.content)
                        yield TextDelta(choice.delta.content)
                    for call in choice.delta.tool_calls or ():
                        delta = calls.delta(call)
                        text.append(delta.arguments)
                        yield delta
                    if choice.finish_reason:
                        finish = FINISH_REASONS.get(choice.finish_reason, choice.finish_reason)
            finally:
                response.close()  # an early close stops the server's generation too
        except (self._openai.OpenAIError, httpx.HTTPError) as exc:
            raise sdk_error(self._openai, exc, where, streaming=bool(text)) from exc
        if finish is None:
            raise ProviderError(
                f"{where} ended the stream before the model finished", kind="stream"
            )
        if calls.seen and finish == "stop":
            finish = "tool_calls"  # some servers (Ollama, older vLLM) say "stop" after calls
        if usage is None:  # the server reports no usage: count what was sent and received
            usage = TokenUsage(
                request_tokens(self, request.messages, request.tools),
                self.count_tokens("".join(text)),
                estimated=True,
            )
        yield Finished(usage, finish, self.name, self.model_id)


def wire_tool(tool: Tool) -> ChatCompletionToolParam:
    """A tool as Chat Completions takes it. ``strict`` goes along only when the client asked
    for it and OpenAI's strict mode takes the schema (strict_compatible); otherwise the
    API would refuse the request. Either way a strict tool's calls are checked against its
    parameters when they come back (answering.py)."""
    function: FunctionDefinition = {
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
    }
    if tool.strict and strict_compatible(tool.parameters):
        function["strict"] = True
    return {"type": "function", "function": function}


def wire_tool_choice(request: ModelRequest) -> ChatCompletionToolChoiceOptionParam:
    """``tool_choice`` as Chat Completions takes it: a mode, or the function to call."""
    if request.tool_name is not None:
        return {"type": "function", "function": {"name": request.tool_name}}
    return request.tool_choice


class _ToolCallStream:
    """Tool-call deltas as the contract has them: a call's id and its name each once, in
    the first delta that carries it. llama.cpp's server (llama-cpp-python) repeats both in
    every chunk, which a reader that joins the fragments would turn into a name written
    many times; another server may send the id in one chunk and the name in the next."""

    def __init__(self) -> None:
        self.ids: set[int] = set()  # indexes whose id was passed on
        self.names: set[int] = set()  # indexes whose name was passed on

    @property
    def seen(self) -> bool:
        """Whether the model called a tool."""
        return bool(self.ids or self.names)

    def delta(self, call: ChoiceDeltaToolCall) -> ToolCallDelta:
        function = call.function
        call_id = _once(call.id, call.index, self.ids)
        name = _once(function.name if function else None, call.index, self.names)
        arguments = (function.arguments if function else None) or ""
        return ToolCallDelta(call.index, call_id, name, arguments)


def _once(value: str | None, index: int, passed: set[int]) -> str | None:
    """``value`` if it is the first for call ``index`` (recorded in ``passed``), else None."""
    if not value or index in passed:
        return None
    passed.add(index)
    return value


def wire_messages(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    """Messages in the Chat Completions shape, tool calls and results included."""
    wire: list[ChatCompletionMessageParam] = []
    for m in messages:
        if m.role == "system":
            wire.append({"role": "system", "content": m.content})
        elif m.role == "user":
            wire.append({"role": "user", "content": m.content})
        elif m.role == "tool":
            wire.append(
                {"role": "tool", "content": m.content, "tool_call_id": m.tool_call_id or ""}
            )
        else:
            entry: ChatCompletionAssistantMessageParam = {"role": "assistant", "content": m.content}
            if m.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in m.tool_calls
                ]
            wire.append(entry)
    return wire


def strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict mode takes the schema: every object closed
    (``additionalProperties: false``) with all its properties required."""
    if isinstance(schema, list):
        return all(strict_compatible(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if "properties" in schema or schema.get("type") == "object":
        closed = schema.get("additionalProperties") is False
        if not closed or set(schema.get("required", ())) != set(schema.get("properties", {})):
            return False
    return all(strict_compatible(v) for k, v in schema.items() if k not in _LITERALS)


_LITERALS = frozenset({"enum", "const", "default", "examples"})  # values, not schemas


def _usage(usage: Any) -> TokenUsage:
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return TokenUsage(usage.prompt_tokens or 0, usage.completion_tokens or 0, cached)
