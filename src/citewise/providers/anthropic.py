"""Anthropic's Claude models via the official SDK (key: ``ANTHROPIC_API_KEY``).

Usage is the API's: ``input_tokens`` plus cache reads and writes is the prompt,
``cache_read_input_tokens`` the cached part, ``cache_creation_input_tokens`` the part
written to the prompt cache (each priced apart: router.Price), ``output_tokens`` the
completion.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import ProviderError
from .base import (
    BaseChatModel,
    Capabilities,
    Event,
    Finished,
    Message,
    ModelRequest,
    TextDelta,
    TokenUsage,
    ToolCallDelta,
    http_library,
    refuse_unsupported,
    resolve_api_key,
    sdk_error,
    socket_timeouts,
)

if TYPE_CHECKING:
    from anthropic.types import (
        MessageParam,
        TextBlockParam,
        ToolChoiceParam,
        ToolResultBlockParam,
        ToolUseBlockParam,
    )

    from .router import Target

DEFAULT_MODEL = "claude-sonnet-5-5"  # current per the installed SDK's model list
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "stop",
}


class AnthropicChatModel(BaseChatModel):
    name = "anthropic"
    default_model = DEFAULT_MODEL

    def __init__(
        self,
        model: str,
        api_key: str,
        base_url: str | None,
        context_window: int,
        connect_timeout: float = 10.0,
        read_timeout: float = 600.0,
    ) -> None:
        import anthropic

        httpx = http_library(anthropic)

        self._anthropic = anthropic
        self._client = anthropic.Anthropic(
            api_key=api_key,
            base_url=base_url or None,
            max_retries=0,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        )
        self.model_id = model
        self.context_window = context_window
        parameters = inspect.signature(self._client.messages.create).parameters
        # Newer SDKs dropped sampling parameters from the Messages API.
        self._takes_temperature = "temperature" in parameters
        # Structured outputs (output_config.format); older SDKs get a forced tool instead.
        self._takes_output_config = "output_config" in parameters
        # Stop sequences always; top_p while the SDK takes it. The Messages API has no
        # seed and no presence or frequency penalty: a request for one is refused.
        sampling = {"stop"} | ({"temperature", "top_p"} & set(parameters))
        self.capabilities = Capabilities(
            context_window,
            tools=True,
            json_schema=True,
            prefill=True,
            usage_fields=frozenset({"prompt", "completion", "cached"}),
            sampling=frozenset(sampling),
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, workspace: Path | None = None, target: Target | None = None
    ) -> AnthropicChatModel:
        key = resolve_api_key(settings, "ANTHROPIC_API_KEY", workspace)
        assert key is not None
        return cls(
            settings.model or DEFAULT_MODEL,
            key,
            settings.base_url,
            settings.context_window,
            **socket_timeouts(target),
        )

    def generate(self, request: ModelRequest) -> Generator[Event, None, None]:
        httpx = http_library(self._anthropic)

        where = f"Anthropic's API ({self._client.base_url})"
        refuse_unsupported(request, self.capabilities, where)
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        options: dict[str, Any] = (
            {"temperature": request.temperature} if self._takes_temperature else {}
        )
        if request.stop:
            options["stop_sequences"] = list(request.stop)
        if request.top_p is not None:
            options["top_p"] = request.top_p
        if system:
            options["system"] = system
        if request.tools:
            options["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
            options["tool_choice"] = wire_tool_choice(request)
        schema = request.output_schema
        forced_tool = schema is not None and not self._takes_output_config
        if schema is not None and not forced_tool:
            options["output_config"] = {"format": {"type": "json_schema", "schema": schema.schema}}
        elif schema is not None:
            if request.tools:  # the forced tool would take the place of the client's tools
                raise ProviderError(
                    f"{where}: this anthropic SDK answers a JSON schema through a forced tool, "
                    "so the request cannot bring tools too; upgrade the SDK (output_config) "
                    "or send the request without 'tools' or without the schema",
                    kind="invalid_request",
                    param="tools",
                )
            options["tools"] = [
                {
                    "name": schema.name,
                    "description": "Give the answer.",
                    "input_schema": schema.schema,
                }
            ]
            options["tool_choice"] = {"type": "tool", "name": schema.name}
        prompt = cached = written = completion = 0
        started = False  # the first event arrived
        finish: str | None = None
        blocks: dict[int, int] = {}  # content block index -> tool call index
        try:
            response = self._client.messages.create(
                model=self.model_id,
                messages=wire_messages(request.messages, tools=bool(request.tools)),
                max_tokens=request.max_tokens,
                stream=True,
                **options,
            )
            try:
                for event in response:
                    started = True
                    if event.type == "message_start":
                        usage = event.message.usage
                        cached = usage.cache_read_input_tokens or 0
                        written = usage.cache_creation_input_tokens or 0
                        prompt = usage.input_tokens + cached + written
                        completion = usage.output_tokens or 0
                    elif forced_tool and event.type == "content_block_delta":
                        # The forced tool's arguments are the answer.
                        if event.delta.type == "input_json_delta" and event.delta.partial_json:
                            yield TextDelta(event.delta.partial_json)
                    elif (
                        event.type == "content_block_start"
                        and event.content_block.type == "tool_use"
                        and not forced_tool
                    ):
                        blocks[event.index] = len(blocks)
                        yield ToolCallDelta(
                            blocks[event.index], event.content_block.id, event.content_block.name
                        )
                    elif event.type == "content_block_delta":
                        if event.delta.type == "text_delta" and event.delta.text:
                            yield TextDelta(event.delta.text)
                        elif event.delta.type == "input_json_delta":
                            yield ToolCallDelta(
                                blocks.get(event.index, 0), arguments=event.delta.partial_json
                            )
                    elif event.type == "message_delta":
                        completion = event.usage.output_tokens or completion
                        if event.delta.stop_reason:
                            finish = STOP_REASONS.get(event.delta.stop_reason, "stop")
                            if forced_tool and finish == "tool_calls":
                                finish = "stop"
            finally:
                response.close()
        except (self._anthropic.AnthropicError, httpx.HTTPError) as exc:
            error = sdk_error(self._anthropic, exc, where, streaming=started)
            if prompt:  # message_start counted the prompt: the ledger keeps the real figure
                error.usage = TokenUsage(prompt, completion, cached, cache_write_tokens=written)
            raise error from exc
        if finish is None:
            raise ProviderError(
                f"{where} ended the stream before the model finished", kind="stream"
            )
        counted = TokenUsage(prompt, completion, cached, cache_write_tokens=written)
        yield Finished(counted, finish, self.name, self.model_id)


def wire_tool_choice(request: ModelRequest) -> ToolChoiceParam:
    """``tool_choice`` as the Messages API takes it: OpenAI's "required" is "any"."""
    if request.tool_name is not None:
        return {"type": "tool", "name": request.tool_name}
    if request.tool_choice == "required":
        return {"type": "any"}
    if request.tool_choice == "none":
        return {"type": "none"}
    return {"type": "auto"}


def wire_messages(messages: Sequence[Message], tools: bool = True) -> list[MessageParam]:
    """Turns in the Messages API shape: tool calls as tool_use blocks, results as
    tool_result blocks in a user turn; system text goes in ``system`` instead. The API
    refuses tool_use blocks in a request without ``tools``: then (``tools`` False) the
    calls and results are told as text."""
    import json

    if not tools:
        messages = calls_as_text(messages)
    wire: list[MessageParam] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block: ToolResultBlockParam = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id or "",
                "content": m.content,
            }
            wire.append({"role": "user", "content": [block]})
        elif m.tool_calls:
            content: list[TextBlockParam | ToolUseBlockParam] = (
                [{"type": "text", "text": m.content}] if m.content else []
            )
            content += [
                {
                    "type": "tool_use",
                    "id": c.id,
                    "name": c.name,
                    "input": json.loads(c.arguments or "{}"),
                }
                for c in m.tool_calls
            ]
            wire.append({"role": "assistant", "content": content})
        elif m.role == "assistant":
            wire.append({"role": "assistant", "content": m.content})
        else:
            wire.append({"role": "user", "content": m.content})
    return wire


def calls_as_text(messages: Sequence[Message]) -> list[Message]:
    """Tool calls and their results as plain turns: an assistant turn saying which tool it
    called with which arguments, a user turn with each result."""
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    turns: list[Message] = []
    for m in messages:
        if m.role == "tool":
            name = names.get(m.tool_call_id or "", "a tool")
            turns.append(Message("user", f"Result of {name}: {m.content}"))
        elif m.tool_calls:
            called = [f"Called tool {c.name} with {c.arguments or '{}'}" for c in m.tool_calls]
            turns.append(Message("assistant", "\n".join([m.content, *called]).strip()))
        else:
            turns.append(m)
    return turns
