from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..config import Settings
from ..errors import ConfigError, MissingAPIKey


@dataclass(frozen=True)
class Message:
    role: str  # system | user | assistant
    content: str


@runtime_checkable
class ChatModel(Protocol):
    model_id: str
    context_window: int

    def stream(
        self, messages: Sequence[Message], max_tokens: int, temperature: float
    ) -> Iterator[str]:
        """Yield the answer's text as it is generated."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Tokens the prompt takes, chat template included."""
        ...


class BaseChatModel:
    """Conveniences over ``stream``; providers subclass this."""

    model_id: str
    context_window: int
    # Per-message template tokens when the provider's exact template is unknown.
    message_overhead = 8

    def stream(
        self, messages: Sequence[Message], max_tokens: int, temperature: float
    ) -> Iterator[str]:  # pragma: no cover
        raise NotImplementedError

    def complete(
        self, messages: Sequence[Message], max_tokens: int = 256, temperature: float = 0.0
    ) -> str:
        return "".join(self.stream(messages, max_tokens, temperature))

    def count_tokens(self, text: str) -> int:
        # Without the provider's tokenizer, overestimate: ~3 characters a token.
        return len(text) // 3 + 1

    def count_messages(self, messages: Sequence[Message]) -> int:
        return sum(self.count_tokens(m.content) + self.message_overhead for m in messages) + 3


def resolve_api_key(
    settings: Settings, default_env: str, workspace: Path | None, required: bool = True
) -> str | None:
    """The provider's key from its environment variable or a key file outside the workspace."""
    env_name = settings.api_key_env or default_env
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
