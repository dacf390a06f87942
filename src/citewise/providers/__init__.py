"""Chat models behind one small interface.

A provider module defines a class with ``name``, ``from_settings(settings, workspace)``
and the :class:`~citewise.providers.base.ChatModel` methods. Built-ins are listed
in ``BUILTIN_PROVIDERS``; third parties register under the ``citewise.providers``
entry-point group.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..plugins import load_plugin
from .base import BaseChatModel, ChatModel, Message

BUILTIN_PROVIDERS = {
    "local": "citewise.providers.local:LlamaCppModel",
    "openai": "citewise.providers.openai:OpenAIChatModel",
    "anthropic": "citewise.providers.anthropic:AnthropicChatModel",
}

__all__ = ["BUILTIN_PROVIDERS", "BaseChatModel", "ChatModel", "Message", "load_chat_model"]


def load_chat_model(settings: Settings, workspace: Path | None = None) -> ChatModel:
    return provider_class(settings.provider).from_settings(settings, workspace)


def provider_class(name: str) -> type:
    return load_plugin("citewise.providers", BUILTIN_PROVIDERS, name, "provider")
