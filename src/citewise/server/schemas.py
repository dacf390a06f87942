"""Request bodies. A chat completion takes OpenAI's fields, each honoured or refused with
a 400 naming it (``chat_params.py``); other bodies accept and ignore unknown fields (which
must hold valid Unicode, like every other field)."""

from __future__ import annotations

import re
from typing import Any, Literal

import jsonschema
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..providers.base import OutputSchema
from .chat_params import refused_field


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


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[ContentPart] | None = None
    # An assistant turn that called tools (or a function): refused, as tools are.
    tool_calls: list[Any] | None = None
    function_call: dict[str, Any] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(
                (part.text if part.type == "text" else part.refusal) or "" for part in self.content
            )
        return self.content or ""

    def unsupported(self) -> str | None:
        """What this message carries that citewise cannot take (an image, a tool call)."""
        if self.role == "tool":
            return "a tool result (citewise calls no tools)"
        if self.tool_calls or self.function_call:
            return "tool calls (citewise calls no tools)"
        for part in self.content if isinstance(self.content, list) else ():
            if part.type not in ("text", "refusal"):
                return f"a content part of type {part.type!r} (citewise reads text only)"
        return None


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
    # citewise extensions
    collections: list[str] | None = None
    where: dict[str, str | int | float | bool] | None = None
    _output: OutputSchema | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _no_refused_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            problem = refused_field(data)
            if problem is not None:
                raise PydanticCustomError(
                    problem.code,
                    "{problem}",
                    {"problem": problem.message, "field": problem.field, "status": 400},
                )
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
        return self

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def output_schema(self) -> OutputSchema | None:
        """The JSON the answer must be (``response_format``); None for text."""
        return self._output


def invalid_value(field: str, problem: str) -> PydanticCustomError:
    """A 400 ``invalid_value`` naming ``field`` (OpenAI's error for a value it refuses)."""
    return PydanticCustomError(
        "invalid_value",
        "{problem}",
        {"problem": f"Invalid '{field}': {problem}", "field": field, "status": 400},
    )


def output_schema(response_format: dict[str, Any]) -> OutputSchema | None:
    """``response_format`` as the model contract's OutputSchema: ``json_object`` any
    object, ``json_schema`` its schema (checked to be a valid JSON Schema); ``text`` None."""
    field = "response_format"
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
    where: dict[str, str | int | float | bool] | None = None


class FeedbackRequest(_Body):
    rating: Literal[-1, 1]
    question: str = Field(max_length=20000)
    answer: str = Field(max_length=100000)
    citations: list[dict[str, Any]] = Field(default_factory=list, max_length=100)
    model: str | None = None
    comment: str | None = Field(default=None, max_length=5000)
