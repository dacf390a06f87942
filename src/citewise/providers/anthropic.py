"""Anthropic's Claude models via the official SDK (key: ``ANTHROPIC_API_KEY``)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..config import Settings
from ..errors import ProviderError
from .base import BaseChatModel, Message, resolve_api_key

DEFAULT_MODEL = "claude-sonnet-5-5"  # current per the installed SDK's model list


class AnthropicChatModel(BaseChatModel):
    name = "anthropic"

    def __init__(self, model: str, api_key: str, base_url: str | None, context_window: int) -> None:
        import anthropic

        self._anthropic = anthropic
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url or None, max_retries=1
        )
        self.model_id = model
        self.context_window = context_window
        # Newer SDKs dropped sampling parameters from the Messages API.
        self._takes_temperature = (
            "temperature" in inspect.signature(self._client.messages.stream).parameters
        )

    @classmethod
    def from_settings(cls, settings: Settings, workspace: Path | None = None) -> AnthropicChatModel:
        key = resolve_api_key(settings, "ANTHROPIC_API_KEY", workspace)
        assert key is not None
        return cls(settings.model or DEFAULT_MODEL, key, settings.base_url, settings.context_window)

    def stream(
        self, messages: Sequence[Message], max_tokens: int, temperature: float
    ) -> Iterator[str]:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        turns = [{"role": m.role, "content": m.content} for m in messages if m.role != "system"]
        options = {"temperature": temperature} if self._takes_temperature else {}
        try:
            with self._client.messages.stream(
                model=self.model_id, system=system, messages=turns, max_tokens=max_tokens, **options
            ) as stream:
                yield from stream.text_stream
        except self._anthropic.APIConnectionError as exc:
            raise ProviderError(f"cannot reach Anthropic's API ({exc})") from exc
        except self._anthropic.AuthenticationError as exc:
            raise ProviderError(f"Anthropic rejected the API key: {exc}") from exc
        except self._anthropic.APIError as exc:
            raise ProviderError(f"Anthropic answered with an error: {exc}") from exc
