"""The model contract every chat model call goes through.

A :class:`ModelRequest` (messages with roles, tool calls and tool results, limits, tools)
goes in; a stream of events comes out — text deltas, tool-call deltas — ending with one
:class:`Finished` event carrying the usage the provider reported, the finish reason and
the target that answered. The router (``router.py``) speaks the same contract, so
retries, fallbacks, the usage ledger and budgets attach in one place.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ..config import Settings
from ..errors import ConfigError, MissingAPIKey, ProviderError

if TYPE_CHECKING:
    from .router import Target

# -- the model contract: a typed request in, a stream of events out -------------------


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments
    # The client asked for arguments valid against ``parameters`` (OpenAI's ``strict``):
    # forwarded where the API takes it, and every call is checked (answering.py). None:
    # it did not say.
    strict: bool | None = None


@dataclass(frozen=True)
class OutputSchema:
    """Answer with one JSON value valid against ``schema`` (a JSON Schema): a grammar for
    the local model, the API's own JSON-schema mode for remote ones (``structured.py``
    validates what comes back either way)."""

    name: str  # [a-zA-Z0-9_-]{1,64}, as the APIs require
    schema: dict[str, Any]


Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()  # an assistant turn that called tools
    tool_call_id: str | None = None  # a tool turn: the call it answers


@dataclass(frozen=True)
class ModelRequest:
    messages: tuple[Message, ...]
    max_tokens: int = 256
    temperature: float = 0.0
    tools: tuple[Tool, ...] = ()
    # Whether the model may call ``tools`` (auto), must not (none) or must call one
    # (required); with ``tool_name`` it must call that one.
    tool_choice: Literal["auto", "none", "required"] = "auto"
    tool_name: str | None = None
    output_schema: OutputSchema | None = None
    # Sampling options as OpenAI's API names them; unset (None, ()) leaves the provider's
    # default. A provider honours those its Capabilities.sampling lists and refuses the
    # others (refuse_unsupported): an option is never dropped on the way.
    stop: tuple[str, ...] = ()  # the text ends before the first of these
    seed: int | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # What the call is for, as the ledger records it: answer | rewrite | judge | check |
    # title | classify.
    purpose: str = "answer"
    # Who is charged (an API key's or user's name; budgets apply to it) and for which
    # assistant: the ledger's accounts.
    caller: str = ""
    assistant: str = ""
    # The response cache (router.py, storage/response_cache.py): only a request with
    # ``cache`` set is looked up and stored, under a key over every field here (but
    # ``cache`` and ``cancelled``) and the router's chain. ``cache_scope`` is what the
    # answering layer adds of the retrieval behind the prompt: the caller's principals,
    # each collection searched with its index generation, the filter, the chunks found.
    cache: bool = False
    cache_scope: str = ""
    # Set when the caller leaves (a client that hung up): a request still waiting for its
    # turn at a one-request-at-a-time model leaves the line without running.
    cancelled: threading.Event | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, messages: Sequence[Message], **options: Any) -> ModelRequest:
        return cls(tuple(messages), **options)


@dataclass(frozen=True)
class TokenUsage:
    """Tokens as the provider counted them (``estimated`` only when it gave no count)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the provider's prompt cache
    estimated: bool = False
    # Prompt tokens written to the provider's prompt cache (Anthropic's
    # cache_creation_input_tokens, billed at their own price); part of prompt_tokens.
    cache_write_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
            self.estimated or other.estimated,
            self.cache_write_tokens + other.cache_write_tokens,
        )


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""  # a fragment of the JSON arguments


@dataclass(frozen=True)
class Finished:
    """The last event of every response: what the call really cost and who answered.
    Providers fill usage, finish_reason and model; the router adds the rest."""

    usage: TokenUsage
    finish_reason: str  # stop | length | tool_calls | cancelled
    provider: str
    model: str
    target: str = ""  # "provider:model" of the target that answered
    first_token_s: float | None = None
    total_s: float = 0.0
    queue_s: float = 0.0  # waiting for a turn at a one-request-at-a-time model
    attempts: tuple[Any, ...] = ()  # router.Attempt, one per call tried (failed ones too)
    # A request that asked for the response cache: "hit" (replayed from it, no call made)
    # or "miss"; "" when it did not ask.
    cache: str = ""


@dataclass(frozen=True)
class Admitted:
    """A model that serves one request at a time (the local one) yields this first, when
    the request's turn comes: the time before it is queueing, bounded by the target's
    ``queue_timeout``, not the provider being slow (the first-token clock starts here).
    The router consumes it; its callers never see it."""

    waited_s: float


Event = TextDelta | ToolCallDelta | Finished | Admitted


class EventStream(Iterator[Event], Protocol):
    """A response, as ``generate`` returns it: its events, the last one :class:`Finished`.
    Closing it early stops the generation (and settles a charged call's ledger)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do, declared (never probed at call time)."""

    context_window: int
    streaming: bool = True
    tools: bool = False
    json_schema: bool = False
    # Which counts the API reports: prompt, completion, cached.
    usage_fields: frozenset[str] = frozenset({"prompt", "completion"})
    local: bool = False  # runs in this process: first-token time grows with the prompt
    # The API continues a trailing assistant message (Anthropic's prefill); others restart.
    prefill: bool = False
    # Serves one request at a time and yields Admitted when a request's turn comes.
    queues: bool = False
    # The sampling options of a request it honours: SAMPLING_OPTIONS, and "temperature"
    # (which every request carries; a provider whose API dropped it leaves it out). A
    # client asking for another is refused, naming it.
    sampling: frozenset[str] = frozenset({"temperature"})


# ModelRequest's optional sampling options, as OpenAI's API names them.
SAMPLING_OPTIONS = ("stop", "seed", "top_p", "presence_penalty", "frequency_penalty")


def requested_options(request: ModelRequest) -> list[str]:
    """The sampling options ``request`` sets (a provider default for the others)."""
    return [name for name in SAMPLING_OPTIONS if getattr(request, name) not in (None, ())]


def refuse_unsupported(request: ModelRequest, capabilities: Capabilities, where: str) -> None:
    """Raise for the first option of ``request`` that the provider cannot honour: an
    ``invalid_request`` naming it, so a caller learns it instead of getting an answer made
    without it (the server refuses it before the call; this is the provider's own check)."""
    for name in requested_options(request):
        if name not in capabilities.sampling:
            raise ProviderError(
                f"{where} does not support the {name!r} option", kind="invalid_request", param=name
            )


@runtime_checkable
class ChatModel(Protocol):
    # Read-only: a provider sets them once; the router derives them from its chain.
    @property
    def name(self) -> str: ...  # the provider: local, openai, anthropic (router: router)

    @property
    def model_id(self) -> str: ...

    @property
    def context_window(self) -> int: ...

    @property
    def capabilities(self) -> Capabilities: ...

    def generate(self, request: ModelRequest) -> EventStream:
        """Stream the response; the last event is always :class:`Finished`.
        Closing the iterator early stops the generation."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Tokens the prompt takes, chat template included."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to at most ``max_tokens`` tokens."""
        ...


class ChatModelFactory(Protocol):
    """What a provider plug-in registers (its :class:`ChatModel` class, usually)."""

    @property
    def default_model(self) -> str:
        """The model a target naming only the provider gets."""
        ...

    def from_settings(
        self, settings: Settings, workspace: Path | None = None, target: Target | None = None
    ) -> ChatModel:
        """The model for one router target (``target``: its timeouts)."""
        ...


class BaseChatModel:
    """Conveniences over ``generate``; providers subclass this."""

    name = "base"
    model_id: str
    context_window: int
    capabilities: Capabilities
    # Per-message template tokens when the provider's exact template is unknown.
    message_overhead = 8

    def generate(self, request: ModelRequest) -> EventStream:  # pragma: no cover
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        # Without the provider's tokenizer, overestimate: ~3 characters a token. Used to
        # fit prompts and reserve budgets before a call, never to report usage after it.
        return len(text) // 3 + 1

    def count_messages(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m.content) + self.message_overhead for m in messages) + 3

    def truncate(self, text: str, max_tokens: int) -> str:
        return text[: max_tokens * 3]  # the same ~3 characters a token as count_tokens


TOOL_CALL_TOKENS = 8  # what a tool call takes besides its name and arguments (id, braces)


def tool_definitions(tools: Sequence[Tool]) -> str:
    """The tools as a model is told of them: each one's name, description and parameters
    (as JSON; what request_tokens counts)."""
    return json.dumps(
        [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools]
    )


def request_tokens(
    model: ChatModel, messages: Sequence[Message], tools: Sequence[Tool] = ()
) -> int:
    """Tokens a request's prompt takes: its turns with the chat template
    (``count_messages``, which counts their text), the tool calls they hold (names and
    arguments) and the definitions of the tools it offers. Prompts are fitted and budgets
    reserved with this count, so a long tool call or a large schema is never left out (an
    overestimate where count_messages already renders the calls, as the local model's
    template does)."""
    calls = [call for m in messages for call in m.tool_calls]
    called = sum(model.count_tokens(c.name + c.arguments) + TOOL_CALL_TOKENS for c in calls)
    offered = model.count_tokens(tool_definitions(tools)) if tools else 0
    return model.count_messages(messages) + called + offered


def text_of(events: Iterator[Event]) -> tuple[str, Finished | None]:
    """The whole text of a response and its final event."""
    parts, finished = [], None
    for event in events:
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, Finished):
            finished = event
    return "".join(parts), finished


def complete(
    model: ChatModel,
    messages: Sequence[Message],
    max_tokens: int = 256,
    temperature: float = 0.0,
    **request: Any,
) -> str:
    """The text of one whole call through ``model``'s contract; ``request`` sets the
    other :class:`ModelRequest` fields (purpose, caller, assistant)."""
    return text_of(
        model.generate(
            ModelRequest.of(messages, max_tokens=max_tokens, temperature=temperature, **request)
        )
    )[0]


def http_library(sdk: Any) -> Any:
    """The HTTP client library an SDK is built on: ``httpx``, or ``httpx2`` in newer
    releases, whose timeouts and exceptions are not interchangeable."""
    import importlib

    base = importlib.import_module(f"{sdk.__name__}._base_client")
    return getattr(base, "httpx2", None) or base.httpx


def sdk_error(sdk: Any, exc: Exception, where: str, streaming: bool = False) -> ProviderError:
    """One of the openai or anthropic SDK's exceptions (or its HTTP library's, raised
    mid-stream) as a ProviderError whose ``kind`` tells the router whether a retry or
    another target helps. ``streaming``: events had arrived, so a lost connection is a
    broken stream."""
    error = _sdk_error(sdk, exc, where)
    if streaming and error.kind == "connection":
        return ProviderError(f"{where} broke off the response: {exc}", kind="stream")
    return error


def _sdk_error(sdk: Any, exc: Exception, where: str) -> ProviderError:
    httpx = http_library(sdk)
    if isinstance(exc, sdk.APITimeoutError | httpx.TimeoutException):
        return ProviderError(f"{where} timed out ({exc})", kind="timeout")
    if isinstance(exc, sdk.APIConnectionError):
        return ProviderError(
            f"cannot reach {where}; is the server running? ({exc})", kind="connection"
        )
    if isinstance(exc, httpx.HTTPError):  # the connection broke while the stream was read
        return ProviderError(f"{where} broke off the response: {exc!r}", kind="stream")
    if isinstance(exc, sdk.APIStatusError):
        status = exc.status_code
        text = str(getattr(exc, "message", "") or exc)
        if status < 400:  # an error event inside a 200 stream (Anthropic's SDK)
            return ProviderError(f"{where} sent an error in the stream: {text}", kind="stream")
        if status in (401, 403):
            return ProviderError(f"{where} rejected the API key: {text}", "auth", status)
        if status == 429:
            return ProviderError(
                f"{where} is rate limiting: {text}",
                "rate_limit",
                status,
                retry_after_seconds(exc.response.headers),
            )
        if status >= 500:
            return ProviderError(
                f"{where} failed ({status}): {text}",
                "server",
                status,
                retry_after_seconds(exc.response.headers),
            )
        kind = (
            "context_length"
            if "context" in text.lower() and "length" in text.lower()
            else ("invalid_request")
        )
        return ProviderError(f"{where} refused the request ({status}): {text}", kind, status)
    if isinstance(exc, sdk.APIError):  # an error event inside a 200 stream
        return ProviderError(f"{where} sent an error in the stream: {exc}", kind="stream")
    return ProviderError(f"{where} failed: {exc!r}", kind="server")


def socket_timeouts(target: Any) -> dict[str, float]:
    """An SDK client's connect and read timeouts for a router target: the router's own
    deadlines (first token, gap) fire first; these only catch a dead socket."""
    if target is None:
        return {}
    return {
        "connect_timeout": target.connect_timeout,
        "read_timeout": max(target.first_token_timeout, target.gap_timeout) + 5,
    }


def retry_after_seconds(headers: Any) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``, in seconds."""
    from email.utils import parsedate_to_datetime

    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import time

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def resolve_api_key(
    settings: Settings, default_env: str, workspace: Path | None, required: bool = True
) -> str | None:
    """The key of a provider (or the openai embedder): from the variable ``api_key_env``
    names, else from ``api_key_file`` (outside the workspace), else from the provider's
    usual variable ``default_env``. A key reference the settings make beats that fallback."""
    env_name = settings.api_key_env or default_env
    if settings.api_key_env or not settings.api_key_file:
        key = os.environ.get(env_name)
        if key:
            return key.strip()
    if settings.api_key_file:
        path = Path(settings.api_key_file).expanduser().resolve()
        if workspace is not None and path.is_relative_to(workspace.resolve()):
            raise ConfigError(
                f"api_key_file {path} lies inside the workspace; keep keys outside it"
            )
        if not path.is_file():
            raise MissingAPIKey(f"api_key_file {path} does not exist")
        return path.read_text(encoding="utf-8").strip()
    if required:
        raise MissingAPIKey(
            f"No key found for the {settings.provider} provider - set the {env_name} "
            f"environment variable or point api_key_file at a file holding the key"
        )
    return None
