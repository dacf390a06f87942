"""Request bodies. A chat completion takes OpenAI's fields, each honoured or refused with
a 400 naming it (``chat_params.py``); other bodies accept and ignore unknown fields (which
must hold valid Unicode, like every other field)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..errors import InvalidInput
from ..filters import parse_where
from ..providers.base import Message, OutputSchema, Tool, ToolCall
from .chat_params import (
    RESPONSES_ACCEPTED,
    RESPONSES_HONOURED,
    RESPONSES_REFUSED,
    refused_field,
)


def _where(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A ``where`` filter in filters.py's JSON form, or a 400 naming the key or operator."""
    try:
        parse_where(value)
    except InvalidInput as exc:  # a 400 invalid_value; the error's location names the field
        problem = {"problem": f"Invalid 'where': {exc}", "status": 400}
        raise PydanticCustomError("invalid_value", "{problem}", problem) from None
    return value


# citewise's metadata filter ({"year": {"$gte": 2020}}), checked as the body arrives.
Where = Annotated[dict[str, Any] | None, AfterValidator(_where)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="after")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        """Every string of every body must be valid Unicode: JSON can carry a lone
        surrogate ("\\ud83d"), which the tokenizers, SQLite and the log cannot."""
        _check_encodable(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _encodable_extras(cls, data: Any) -> Any:
        """Fields a body may carry and citewise ignores (``user``, ``metadata``, …) are
        not stored, but still must be text the server can log: an unpaired surrogate in
        one is refused like anywhere else, naming the field (``ctx.field``: errors.py)."""
        if isinstance(data, dict):
            for name, value in data.items():
                if name in cls.model_fields:
                    continue  # checked by _encodable, after its own validation
                try:
                    _check_encodable(name)
                    _check_encodable(value)
                except ValueError as exc:
                    shown = name if _encodable(name) else None
                    raise PydanticCustomError(
                        "unencodable_text", "{problem}", {"problem": str(exc), "field": shown}
                    ) from None
        return data


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_encodable(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"text holds an unpaired surrogate (\\u{ord(value[exc.start]):04x}) "
                f"at character {exc.start}; send valid Unicode"
            ) from None
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_encodable(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_encodable(key)
            _check_encodable(item)
    elif isinstance(value, BaseModel):
        pass  # validated by its own model


class ContentPart(_Body):
    type: str
    text: str | None = None
    refusal: str | None = None  # an assistant turn's refusal part


class FunctionCall(_Body):
    name: str
    arguments: str


class ChatToolCall(_Body):
    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[ContentPart] | None = None
    # An assistant turn that called the client's tools, and a tool turn: one call's result.
    tool_calls: list[ChatToolCall] | None = None
    tool_call_id: str | None = None
    # The deprecated single function call: refused, as "functions" are.
    function_call: dict[str, Any] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(
                (part.text if part.type == "text" else part.refusal) or "" for part in self.content
            )
        return self.content or ""

    def unsupported(self) -> str | None:
        """What this message carries that citewise cannot take (an image, a function call
        in the deprecated shape)."""
        if self.function_call:
            return "a function_call (the deprecated shape; send tool_calls)"
        if self.role == "tool" and not self.tool_call_id:
            return "a tool result without the tool_call_id it answers"
        if self.tool_calls and self.role != "assistant":
            return "tool_calls outside an assistant message"
        for part in self.content if isinstance(self.content, list) else ():
            if part.type not in ("text", "refusal"):
                return f"a content part of type {part.type!r} (citewise reads text only)"
        return None

    def as_message(self) -> Message:
        """The turn as the model contract carries it (system and developer: system)."""
        if self.role == "tool":
            return Message("tool", self.text(), tool_call_id=self.tool_call_id)
        calls = tuple(
            ToolCall(c.id, c.function.name, c.function.arguments) for c in self.tool_calls or ()
        )
        role = "system" if self.role == "developer" else self.role
        return Message(role, self.text(), tool_calls=calls)


class StreamOptions(_Body):
    include_usage: bool = False


# OpenAI's limits on the numbers a chat completion takes (max_tokens: citewise's).
RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
    "max_tokens": (1, 32768),
    "max_completion_tokens": (1, 32768),
    "seed": (-(2**63), 2**63 - 1),
}
MAX_STOP = 4  # stop sequences, as OpenAI's API allows
SCHEMA_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


class ChatCompletionRequest(_Body):
    """OpenAI's request, every field honoured or refused (``chat_params.py``). A refused or
    unknown field, or a value outside OpenAI's limits, is a 400 naming it (``errors.py``
    turns the errors raised here into OpenAI's shape)."""

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    # citewise extensions
    collections: list[str] | None = None
    where: Where = None
    no_cache: bool = False  # answer afresh, not from the assistant's response cache
    _output: OutputSchema | None = PrivateAttr(default=None)
    _tools: tuple[Tool, ...] = PrivateAttr(default=())
    _choice: ToolChoice = PrivateAttr(default=("auto", None))

    @model_validator(mode="before")
    @classmethod
    def _no_refused_fields(cls, data: Any) -> Any:
        refuse_problem(data)
        return data

    @model_validator(mode="after")
    def _values_in_range(self) -> ChatCompletionRequest:
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                raise invalid_value(name, f"{value} is out of range: it must lie in {low}..{high}")
        if self.n is not None and self.n != 1:
            raise invalid_value(
                "n", f"citewise makes one choice per request: it must be 1, not {self.n}"
            )
        stops = self.stop_sequences()
        if len(stops) > MAX_STOP or not all(stops):
            raise invalid_value("stop", f"give at most {MAX_STOP} non-empty stop sequences")
        if self.response_format is not None:
            self._output = output_schema(self.response_format)
        self._tools = tool_list(self.tools, chat_tool)
        self._choice = tool_choice(self.tool_choice, self._tools, chat_shape=True)
        return self

    def function_tools(self) -> tuple[tuple[Tool, ...], ToolChoice]:
        """The client's tools and its choice: (auto|none|required, a tool it must call)."""
        return self._tools, self._choice

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def output_schema(self) -> OutputSchema | None:
        """The JSON the answer must be (``response_format``); None for text."""
        return self._output


# How the model may use the tools: auto | none | required, and the one tool it must call.
ToolChoice = tuple[Literal["auto", "none", "required"], str | None]
MAX_TOOLS = 128  # as OpenAI's API allows


def tool_list(
    specs: list[dict[str, Any]] | None, parse: Callable[[dict[str, Any], int], Tool]
) -> tuple[Tool, ...]:
    """A request's ``tools``, each read by ``parse``: at most MAX_TOOLS, each name once."""
    specs = specs or []
    if len(specs) > MAX_TOOLS:
        raise invalid_value("tools", f"give at most {MAX_TOOLS} tools, not {len(specs)}")
    tools = tuple(parse(spec, number) for number, spec in enumerate(specs))
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            raise invalid_value("tools", f"two tools are named {tool.name!r}: name each once")
        seen.add(tool.name)
    return tools


def chat_tool(spec: dict[str, Any], number: int) -> Tool:
    """One of Chat Completions' ``tools``: ``{"type": "function", "function": {...}}``."""
    where = f"tools[{number}]"
    if spec.get("type") != "function" or not isinstance(spec.get("function"), dict):
        raise invalid_value(
            "tools",
            f"{where} must be {{'type': 'function', 'function': {{...}}}}: citewise "
            "calls only the client's functions",
        )
    unknown = set(spec) - {"type", "function"}
    if unknown:
        raise invalid_value(
            "tools", f"{where} holds unexpected field(s) {', '.join(sorted(unknown))}"
        )
    return function_tool(spec["function"], where)


def response_tool(spec: dict[str, Any], number: int) -> Tool:
    """One of the Responses API's ``tools``: ``{"type": "function", "name": …, …}``."""
    if spec.get("type") != "function":
        raise invalid_value(
            "tools",
            f"tools[{number}] is a {spec.get('type')!r} tool; citewise calls only the "
            "client's functions",
        )
    return function_tool(spec, f"tools[{number}]")


def function_tool(spec: dict[str, Any], where: str) -> Tool:
    """A function the model may call: its name, description and parameters (a JSON
    Schema of an object, the arguments; checked to be valid). ``strict``: the provider is
    asked for arguments valid against the schema where it can be (a grammar for the local
    model), and every call is checked against it (answering.py)."""
    unknown = set(spec) - {"name", "description", "parameters", "strict", "type"}
    if unknown:
        raise invalid_value(
            "tools", f"{where} holds unexpected field(s) {', '.join(sorted(unknown))}"
        )
    name, description = spec.get("name"), spec.get("description")
    if not isinstance(name, str) or not SCHEMA_NAME.fullmatch(name):
        raise invalid_value("tools", f"{where}.name must be 1 to 64 of a-z, A-Z, 0-9, _ and -")
    if description is not None and not isinstance(description, str):
        raise invalid_value("tools", f"{where}.description must be text")
    strict = spec.get("strict")
    if strict not in (None, True, False):
        raise invalid_value("tools", f"{where}.strict must be true or false")
    parameters = spec.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(parameters, dict) or parameters.get("type") != "object":
        raise invalid_value(
            "tools",
            f"{where}.parameters must be a JSON Schema of type 'object': the arguments are "
            "an object",
        )
    try:
        jsonschema.validators.validator_for(parameters).check_schema(parameters)
    except (TypeError, jsonschema.SchemaError) as exc:
        problem = exc.message if isinstance(exc, jsonschema.SchemaError) else str(exc)
        raise invalid_value(
            "tools", f"{where}.parameters is no valid JSON Schema: {problem}"
        ) from None
    if strict and _uses_patterns(parameters):
        # A strict tool's arguments are validated with Python's backtracking regex engine
        # on text the client can steer (as response_format's: refused, not ignored).
        raise invalid_value(
            "tools", f"{where}.parameters: pattern and patternProperties are not supported"
        )
    return Tool(name, description or "", parameters, strict)


def tool_choice(choice: Any, tools: tuple[Tool, ...], chat_shape: bool) -> ToolChoice:
    """``tool_choice`` as (mode, name). Chat Completions names a function as
    ``{"type": "function", "function": {"name": …}}``, the Responses API as
    ``{"type": "function", "name": …}``; the other API's shape is refused with a hint."""
    if choice is None:
        return ("auto", None)
    if choice in ("auto", "none", "required"):
        if choice == "required" and not tools:
            raise invalid_value("tool_choice", "'required' needs tools to call")
        return (choice, None)
    if isinstance(choice, dict) and choice.get("type") == "function":
        named = choice.get("function") if chat_shape else choice
        name = named.get("name") if isinstance(named, dict) else None
        if isinstance(name, str) and name in {t.name for t in tools}:
            return ("required", name)
        raise invalid_value(
            "tool_choice",
            f"names no function among the tools: {name!r}{_choice_shape_hint(choice, chat_shape)}",
        )
    raise invalid_value(
        "tool_choice", "must be none, auto, required or a function: {'type': 'function', …}"
    )


def _choice_shape_hint(choice: dict[str, Any], chat_shape: bool) -> str:
    """A hint for a function named in the other API's shape of tool_choice."""
    other = choice.get("name") if chat_shape else (choice.get("function") or {}).get("name")
    if not isinstance(other, str):
        return ""
    if chat_shape:
        return f"; use {{'type': 'function', 'function': {{'name': {other!r}}}}}"
    return f"; use {{'type': 'function', 'name': {other!r}}}"


def invalid_value(field: str, problem: str) -> PydanticCustomError:
    """A 400 ``invalid_value`` naming ``field`` (OpenAI's error for a value it refuses)."""
    return PydanticCustomError(
        "invalid_value",
        "{problem}",
        {"problem": f"Invalid '{field}': {problem}", "field": field, "status": 400},
    )


def output_schema(
    response_format: dict[str, Any], field: str = "response_format"
) -> OutputSchema | None:
    """``response_format`` as the model contract's OutputSchema: ``json_object`` any
    object, ``json_schema`` its schema (checked to be a valid JSON Schema); ``text`` None.
    ``field``: the request's name for it (errors name it)."""
    kind = response_format.get("type")
    extra = set(response_format) - {"type", "json_schema"}
    if extra or (kind != "json_schema" and "json_schema" in response_format):
        shown = ", ".join(sorted(extra)) or "json_schema"
        raise invalid_value(field, f"unexpected field(s) {shown} for type {kind!r}")
    if kind == "text":
        return None
    if kind == "json_object":
        return OutputSchema("json_object", {"type": "object"})
    if kind != "json_schema":
        raise invalid_value(field, f"type must be text, json_object or json_schema, not {kind!r}")
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        raise invalid_value(field, "json_schema must be an object with a name and a schema")
    unknown = set(spec) - {"name", "schema", "strict", "description"}
    if unknown:
        raise invalid_value(
            field, f"unexpected field(s) in json_schema: {', '.join(sorted(unknown))}"
        )
    name, schema = spec.get("name"), spec.get("schema", {})
    if not isinstance(name, str) or not SCHEMA_NAME.fullmatch(name):
        raise invalid_value(field, "json_schema.name must be 1 to 64 of a-z, A-Z, 0-9, _ and -")
    if not isinstance(schema, dict):
        raise invalid_value(field, "json_schema.schema must be a JSON Schema object")
    if spec.get("strict") not in (None, True, False):
        raise invalid_value(field, "json_schema.strict must be true or false")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except TypeError as exc:  # a "$schema" that is no string
        raise invalid_value(field, f"json_schema.schema is no valid JSON Schema: {exc}") from None
    except jsonschema.SchemaError as exc:
        raise invalid_value(
            field, f"json_schema.schema is no valid JSON Schema: {exc.message}"
        ) from None
    if _uses_patterns(schema):
        # Validated with Python's backtracking regex engine on text the client can steer:
        # a pattern like ^(a+)+$ would pin a worker thread. Refused, not ignored.
        raise invalid_value(
            field, "json_schema.schema: pattern and patternProperties are not supported"
        )
    return OutputSchema(name, schema)


def _uses_patterns(schema: Any) -> bool:
    if isinstance(schema, dict):
        if "pattern" in schema and isinstance(schema["pattern"], str):
            return True
        if isinstance(schema.get("patternProperties"), dict):
            return True
        return any(_uses_patterns(value) for value in schema.values())
    if isinstance(schema, list):
        return any(_uses_patterns(value) for value in schema)
    return False


def refuse_problem(data: Any, **tables: Any) -> None:
    """A 400 for the first refused or unknown field of a request body (chat_params.py)."""
    if isinstance(data, dict):
        problem = refused_field(data, **tables)
        if problem is not None:
            raise PydanticCustomError(
                problem.code,
                "{problem}",
                {"problem": problem.message, "field": problem.field, "status": 400},
            )


class ResponsesRequest(_Body):
    """OpenAI's Responses API request (``/v1/responses``), every field honoured or refused
    (``chat_params.py``). The conversation is ``input``: text, or items — messages,
    the model's function calls and their outputs — as the Agents SDK sends them."""

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] = Field(min_length=1)
    instructions: str | None = None
    stream: bool = False
    max_output_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    truncation: Literal["auto", "disabled"] | None = None
    # citewise extensions
    collections: list[str] | None = None
    where: Where = None
    no_cache: bool = False  # answer afresh, not from the assistant's response cache
    _output: OutputSchema | None = PrivateAttr(default=None)
    _tools: tuple[Tool, ...] = PrivateAttr(default=())
    _choice: ToolChoice = PrivateAttr(default=("auto", None))
    _messages: list[ChatMessage] = PrivateAttr(default_factory=list)
    _names: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _no_refused_fields(cls, data: Any) -> Any:
        refuse_problem(
            data,
            honoured=RESPONSES_HONOURED,
            accepted=RESPONSES_ACCEPTED,
            refused_fields=RESPONSES_REFUSED,
        )
        return data

    @model_validator(mode="after")
    def _understood(self) -> ResponsesRequest:
        text = self.text or {}
        if set(text) - {"format", "verbosity"} or text.get("verbosity") not in (None, "medium"):
            raise invalid_value("text", "only text.format can be set (verbosity: medium)")
        fmt = text.get("format")
        if fmt is not None:
            if not isinstance(fmt, dict):
                raise invalid_value("text", "text.format must be an object")
            self._output = output_schema(_as_response_format(fmt), "text.format")
        self._tools = tool_list(self.tools, response_tool)
        self._choice = tool_choice(self.tool_choice, self._tools, chat_shape=False)
        self._messages, self._names = input_messages(self.input, self.instructions)
        return self

    def output_schema(self) -> OutputSchema | None:
        return self._output

    def function_tools(self) -> tuple[tuple[Tool, ...], ToolChoice]:
        return self._tools, self._choice

    def messages(self) -> list[ChatMessage]:
        """The conversation as chat messages: the instructions first, as a system message."""
        return self._messages

    def message_names(self) -> list[str]:
        """What the request calls each of messages(): ``instructions``, ``input[n]`` (the
        item a message starts at), ``input`` for text."""
        return self._names


def _as_response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    """The Responses API's ``text.format`` in Chat Completions' ``response_format`` shape
    (the schema's fields sit next to its type, not under ``json_schema``)."""
    if fmt.get("type") != "json_schema":
        return fmt
    return {
        "type": "json_schema",
        "json_schema": {k: v for k, v in fmt.items() if k != "type"},
    }


# Input content part types as chat message parts (an image or a file stays itself: refused).
_PART_TYPES = {"input_text": "text", "output_text": "text", "text": "text", "refusal": "refusal"}


def input_messages(
    given: str | list[dict[str, Any]], instructions: str | None
) -> tuple[list[ChatMessage], list[str]]:
    """Responses API input items as chat messages, with what the request calls each one
    (errors name it: ``instructions``, ``input[n]``). A message item is a message (its
    ``output_text`` parts as text: an earlier answer); ``function_call`` items join the
    assistant turn right before them — the text of a turn that also called tools, or
    their consecutive calls — or make one; a ``function_call_output`` is a tool turn."""
    messages = [ChatMessage(role="system", content=instructions)] if instructions else []
    names = ["instructions"] if instructions else []
    if isinstance(given, str):
        return [*messages, ChatMessage(role="user", content=given)], [*names, "input"]
    for number, item in enumerate(given):
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message_item(item, number))
            names.append(f"input[{number}]")
        elif kind == "function_call":
            call = ChatToolCall(
                id=_text_field(item, "call_id", number),
                function=FunctionCall(
                    name=_text_field(item, "name", number),
                    arguments=_text_field(item, "arguments", number),
                ),
            )
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":
                last.tool_calls = [*(last.tool_calls or []), call]
            else:
                messages.append(ChatMessage(role="assistant", tool_calls=[call]))
                names.append(f"input[{number}]")
        elif kind == "function_call_output":
            output = item.get("output")
            if not isinstance(output, str):
                output = _parts_text(output, number)
            messages.append(
                ChatMessage(
                    role="tool", tool_call_id=_text_field(item, "call_id", number), content=output
                )
            )
            names.append(f"input[{number}]")
        else:
            raise invalid_value(
                "input",
                f"input[{number}] is a {kind!r} item; citewise takes messages, "
                "function calls and their outputs",
            )
    return messages, names


def _message_item(item: dict[str, Any], number: int) -> ChatMessage:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise invalid_value(
            "input", f"input[{number}].role must be user, assistant, system or developer"
        )
    content = item.get("content")
    if isinstance(content, str):
        return ChatMessage(role=role, content=content)
    where = f"input[{number}].content"
    return ChatMessage(
        role=role,
        content=[_part(p, f"{where}[{n}]") for n, p in enumerate(_listed(content, where))],
    )


def _part(part: Any, where: str) -> ContentPart:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise invalid_value("input", f"{where} is a part without a type")
    kind: str = _PART_TYPES.get(part["type"]) or part["type"]
    if kind == "text":
        return ContentPart(type="text", text=_part_text(part, "text", where))
    if kind == "refusal":
        return ContentPart(type="refusal", refusal=_part_text(part, "refusal", where))
    return ContentPart(type=kind)  # an image or a file: refused with the message


def _part_text(part: dict[str, Any], name: str, where: str) -> str:
    """A part's text: absent or null is empty; anything else but text is refused."""
    value = part.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid_value("input", f"{where}.{name} must be text")
    return value


def _parts_text(output: Any, number: int) -> str:
    where = f"input[{number}].output"
    parts = [_part(p, f"{where}[{n}]") for n, p in enumerate(_listed(output, where))]
    if any(p.type != "text" for p in parts):
        raise invalid_value("input", f"{where} must be text")
    return "".join(p.text or "" for p in parts)


def _listed(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid_value("input", f"{where} must be text or a list of parts")
    return value


def _text_field(item: dict[str, Any], name: str, number: int) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise invalid_value("input", f"input[{number}].{name} must be text")
    return value


class EmbeddingRequest(_Body):
    model: str = Field(min_length=1)
    # Text, or token ids as OpenAI's API accepts them (LangChain's OpenAIEmbeddings sends
    # cl100k_base ids by default): they are decoded back to text (token_input.py).
    input: str | list[str] | list[int] | list[list[int]] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)

    def texts(self) -> list[str]:
        given = self.input  # validated: one of the four shapes, never empty
        if isinstance(given, str):
            return [given]
        texts = [item for item in given if isinstance(item, str)]
        if len(texts) == len(given):
            return texts
        from .token_input import decode_token_ids

        ids = [item for item in given if isinstance(item, int)]
        if len(ids) == len(given):
            return decode_token_ids([ids])
        return decode_token_ids([item for item in given if isinstance(item, list)])


class SearchRequest(_Body):
    query: str = Field(min_length=1, max_length=8000)
    collections: list[str] | None = None
    k: int = Field(default=10, ge=1, le=100)
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    where: Where = None


class FeedbackRequest(_Body):
    rating: Literal[-1, 1]
    question: str = Field(max_length=20000)
    answer: str = Field(max_length=100000)
    citations: list[dict[str, Any]] = Field(default_factory=list, max_length=100)
    model: str | None = None
    comment: str | None = Field(default=None, max_length=5000)
