"""Any OpenAI-compatible ``/v1/embeddings`` endpoint through the official SDK.

The connection comes from the settings, through the chat providers' own key resolution
(:func:`~citewise.providers.base.resolve_api_key`): a ``[targets."openai:MODEL"]`` table
of ``citewise.toml`` (``base_url``, ``api_key_env``, ``api_key_file``) first; else the
top-level ``base_url``, ``api_key_env`` and ``api_key_file`` when the chat provider is
``openai`` or ``local`` (another provider's key is never sent here); the key falls back
to ``OPENAI_API_KEY``, as the chat provider's does, and is optional when a ``base_url``
names a local server (vLLM, Ollama, llama.cpp's server). Failures carry the chat
providers' error kinds (:func:`~citewise.providers.base.sdk_error`): a refused key is
``auth``, an outage ``server``.

Sensitive data (the ``redact_entities`` kinds) is masked in every text sent, chunks at
ingest and questions at search alike, as ``<EMAIL>``-style markers: a vector cannot give a
value back, so nothing needs restoring, and the keyword side of hybrid search still finds
the exact values in the local index. ``redact = false`` in the model's ``[targets]`` table
(a server on this machine) or ``redact = "off"`` sends texts as they are. A failed
detection refuses the batch (:class:`~citewise.errors.RedactionRefused`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings, read_models
from ..errors import MissingAPIKey, ProviderError
from ..providers.base import http_library, resolve_api_key, sdk_error
from ..redaction import RedactionPolicy, detector, masks
from .base import BaseEmbedder, normalize

# The chat provider whose top-level connection settings the embedder shares: only the
# in-process local model, which calls nothing out. An openai chat provider's base_url is
# often another server (vLLM, Groq, Ollama) that does not serve these embeddings; its
# key must never be sent to api.openai.com, nor OpenAI's key to it.
SHARES_CONNECTION = ("local",)
CONNECTION = ("base_url", "api_key_env", "api_key_file")


class OpenAIEmbedder(BaseEmbedder):
    batch_size = 64

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        redaction: RedactionPolicy | None = None,
    ) -> None:
        import openai

        if not api_key and not base_url:
            raise MissingAPIKey(
                "OpenAI embeddings need a key (api_key_env, api_key_file or OPENAI_API_KEY) "
                "or a base_url for a local server"
            )
        # Local servers accept any key, but the SDK insists on one.
        self._client = openai.OpenAI(
            base_url=base_url or None, api_key=api_key or "not-needed", max_retries=2
        )
        self._openai = openai
        self.model = model
        self.model_id = f"openai:{model}"
        self._detector = None if redaction is None else detector(redaction)
        self.dim = len(self.embed_batch(["dimension probe"])[0])

    @classmethod
    def from_settings(
        cls,
        model: str,
        settings: Settings,
        workspace: Path | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> OpenAIEmbedder:
        """The embedder with the connection the settings give ``openai:<model>``."""
        connection = connection_settings(model, settings, workspace, config)
        # The openai SDK's own variable, read here so a key-less local server counts.
        base_url = connection.base_url or os.environ.get("OPENAI_BASE_URL", "")
        key = resolve_api_key(connection, "OPENAI_API_KEY", workspace, required=not base_url)
        target = read_models(workspace, config)[1].get(f"openai:{model}", {})
        masked = masks(settings.redact, target.get("redact"), local=False)
        return cls(
            model,
            base_url or None,
            key,
            RedactionPolicy.from_settings(settings) if masked else None,
        )

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        httpx = http_library(self._openai)
        sent = list(texts) if self._detector is None else [self._detector.mask(t) for t in texts]
        try:
            response = self._client.embeddings.create(model=self.model, input=sent)
        except (self._openai.OpenAIError, httpx.HTTPError) as exc:
            raise sdk_error(self._openai, exc, f"{self._client.base_url}embeddings") from exc
        rows = sorted(response.data, key=lambda item: item.index)
        # A server without pooling sends a list per token where the SDK's types say floats.
        first: Sequence[object] = rows[0].embedding if rows else ()
        if first and isinstance(first[0], list):
            raise ProviderError(
                f"{self._client.base_url} returned one vector per token, not per text; "
                "turn on pooling in the server (llama.cpp: --pooling mean)"
            )
        return normalize(np.asarray([row.embedding for row in rows], dtype=np.float32))


def connection_settings(
    model: str,
    settings: Settings,
    workspace: Path | None = None,
    config: Mapping[str, Any] | None = None,
) -> Settings:
    """``settings`` with the connection (``base_url``, ``api_key_env``, ``api_key_file``)
    of the ``openai:<model>`` embedder, taken whole from one place — never a key from one
    and a server from another: its ``[targets]`` table when that sets any of them, else
    the top-level settings when the chat provider shares them (:data:`SHARES_CONNECTION`),
    else none (OpenAI's own variables)."""
    options = read_models(workspace, config)[1].get(f"openai:{model}", {})
    if any(name in options for name in CONNECTION):
        source: Mapping[str, Any] = options
    elif settings.provider in SHARES_CONNECTION:
        source = {name: getattr(settings, name) for name in CONNECTION}
    else:
        source = {}

    def option(name: str) -> str:
        return str(source.get(name) or "")

    return dataclasses.replace(
        settings,
        provider="openai",
        model=model,
        base_url=option("base_url"),
        api_key_env=option("api_key_env"),
        api_key_file=option("api_key_file"),
    )
