"""Request bodies. Unknown fields are accepted and ignored, as OpenAI's API does (but
must hold valid Unicode, like every other field)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError


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


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class StreamOptions(_Body):
    include_usage: bool = False


class ChatCompletionRequest(_Body):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float | None = Field(default=None, ge=0, le=2)
    n: int = Field(default=1, ge=1, le=1)
    # citewise extensions
    collections: list[str] | None = None
    where: dict[str, str | int | float | bool] | None = None


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
