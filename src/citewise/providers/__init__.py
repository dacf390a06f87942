"""Chat models behind one small interface.

A provider module defines a class with ``name``, ``from_settings(settings, workspace,
target)`` and the :class:`~citewise.providers.base.ChatModel` methods. Built-ins are
listed in ``BUILTIN_PROVIDERS``; third parties register under the ``citewise.providers``
entry-point group.

:func:`load_chat_model` returns a :class:`~citewise.providers.router.Router`: the
``model`` setting names a ``[models.NAME]`` chain, or else one ``provider:model``
target — either way retries, timeouts, the circuit breaker and the ledger apply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings, read_models
from ..plugins import PluginGroup, load_plugin
from ..redaction import RedactionPolicy
from .base import BaseChatModel, ChatModel, ChatModelFactory, Message, ModelRequest
from .router import FREE, Policy, Price, Router, Target

BUILTIN_PROVIDERS = {
    "local": "citewise.providers.local:LlamaCppModel",
    "openai": "citewise.providers.openai:OpenAIChatModel",
    "anthropic": "citewise.providers.anthropic:AnthropicChatModel",
}
PROVIDERS = PluginGroup[ChatModelFactory]("citewise.providers", BUILTIN_PROVIDERS, "provider")
if TYPE_CHECKING:  # mypy holds every built-in to the contract
    from .anthropic import AnthropicChatModel
    from .local import LlamaCppModel
    from .openai import OpenAIChatModel

    _BUILTINS: tuple[ChatModelFactory, ...] = (LlamaCppModel, OpenAIChatModel, AnthropicChatModel)
# A local model's first token waits for the prompt to be read (and for the model, which
# serves one request at a time): its timeouts are generous and grow with the prompt.
LOCAL_TIMEOUTS = {
    "first_token_timeout": 120.0,
    "first_token_per_1k_prompt": 30.0,
    "gap_timeout": 60.0,
    "total_timeout": 1800.0,
}

__all__ = [
    "BUILTIN_PROVIDERS",
    "BaseChatModel",
    "ChatModel",
    "Message",
    "ModelRequest",
    "Router",
    "load_chat_model",
]


def load_chat_model(
    settings: Settings, workspace: Path | None = None, config: Mapping[str, Any] | None = None
) -> Router:
    """``config``: the workspace's ``citewise.toml`` as it was parsed when it opened
    (:attr:`Workspace.config`); read from ``workspace`` when not given."""
    aliases, target_options = read_models(workspace, config)
    alias = aliases.get(settings.model)
    if alias is not None:
        specs = list(alias.chain)
        policy = Policy(
            alias.continue_after_first_token,
            alias.fallback_on_caller_errors,
            breaker_failures=alias.breaker_failures,
            breaker_cooldown=alias.breaker_cooldown,
        )
    else:
        specs, policy = [f"{settings.provider}:{settings.model}"], Policy()
    chain = [make_target(spec, settings, target_options) for spec in specs]

    def load(target: Target) -> ChatModel:
        return provider_class(target.provider).from_settings(
            target_settings(settings, target), workspace, target
        )

    router = Router(
        alias.name if alias else chain[0].spec,
        chain,
        load,
        policy,
        settings.context_window,
        redaction=RedactionPolicy.from_settings(settings),
        redact=settings.redact,
    )
    router.primary  # noqa: B018 - the first target loads now: a missing key or model says so at once
    return router


def make_target(spec: str, settings: Settings, configured: dict[str, dict[str, Any]]) -> Target:
    provider, _, model = spec.partition(":")
    # An unknown provider fails now, naming the choices; no model: the provider's default.
    default = provider_class(provider).default_model
    model = model or default
    spec = f"{provider}:{model}"
    options = dict(configured.get(spec, {}))
    if provider == settings.provider and model == (settings.model or default):
        # The plain provider/model settings: their connection settings apply.
        for name in ("base_url", "api_key_env", "api_key_file"):
            options.setdefault(name, getattr(settings, name))
    defaults = LOCAL_TIMEOUTS if provider == "local" else {}
    names = ("input_price", "output_price", "cached_input_price", "cache_write_input_price")
    prices = {k: options.pop(k, None) for k in names}
    price = Price(*(prices[k] for k in names))
    if provider == "local" and not price.known:
        price = FREE  # runs here: no per-token bill
    return Target(spec, provider, model, price=price, **(defaults | options))


def target_settings(settings: Settings, target: Target) -> Settings:
    """The settings a target's provider is built from."""
    return dataclasses.replace(
        settings,
        provider=target.provider,
        model=target.model,
        base_url=target.base_url,
        api_key_env=target.api_key_env,
        api_key_file=target.api_key_file,
        context_window=target.context_window or settings.context_window,
    )


def provider_class(name: str) -> ChatModelFactory:
    return load_plugin(PROVIDERS, name)
