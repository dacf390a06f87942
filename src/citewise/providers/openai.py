"""OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server) via the official SDK."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ..config import Settings
from ..errors import ProviderError
from .base import BaseChatModel, Message, resolve_api_key

DEFAULT_MODEL = "gpt-4o-mini"


class OpenAIChatModel(BaseChatModel):
    name = "openai"

    def __init__(
        self, model: str, api_key: str | None, base_url: str | None, context_window: int
    ) -> None:
        import openai

        self._openai = openai
        # Local servers ignore the key, but the SDK insists on one.
        self._client = openai.OpenAI(
            api_key=api_key or "not-needed", base_url=base_url or None, max_retries=1
        )
        self.model_id = model
        self.context_window = context_window

    @classmethod
    def from_settings(cls, settings: Settings, workspace: Path | None = None) -> OpenAIChatModel:
        key = resolve_api_key(settings, "OPENAI_API_KEY", workspace, required=not settings.base_url)
        return cls(settings.model or DEFAULT_MODEL, key, settings.base_url, settings.context_window)

    def stream(
        self, messages: Sequence[Message], max_tokens: int, temperature: float
    ) -> Iterator[str]:
        try:
            response = self._client.chat.completions.create(
                model=self.model_id,
                messages=[{"role": m.role, "content": m.content} for m in messages],
                max_tokens=max_tokens, temperature=temperature, stream=True,
            )  # fmt: skip
            for chunk in response:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except self._openai.APIConnectionError as exc:
            raise ProviderError(
                f"cannot reach {self._client.base_url}; is the server running? ({exc})"
            ) from exc
        except self._openai.AuthenticationError as exc:
            raise ProviderError(f"{self._client.base_url} rejected the API key: {exc}") from exc
        except self._openai.APIError as exc:
            raise ProviderError(f"{self._client.base_url} answered with an error: {exc}") from exc
