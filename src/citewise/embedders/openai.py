"""Any OpenAI-compatible ``/v1/embeddings`` endpoint through the official SDK.

The SDK's own environment variables apply: ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``
(for vLLM, Ollama, llama.cpp's server or any other compatible server).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..errors import MissingAPIKey, ProviderError
from .base import BaseEmbedder, normalize


class OpenAIEmbedder(BaseEmbedder):
    batch_size = 64

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None) -> None:
        import openai

        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not api_key:
            if not base_url:
                raise MissingAPIKey(
                    "OpenAI embeddings need a key: set OPENAI_API_KEY (or OPENAI_BASE_URL "
                    "for a local server)"
                )
            api_key = "not-needed"  # local servers accept any key
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=2)
        self._openai = openai
        self.model = model
        self.model_id = f"openai:{model}"
        self.dim = len(self.embed_batch(["dimension probe"])[0])

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        try:
            response = self._client.embeddings.create(model=self.model, input=list(texts))
        except self._openai.APIError as exc:
            raise ProviderError(
                f"embedding request to {self._client.base_url} failed: {exc}"
            ) from exc
        rows = sorted(response.data, key=lambda item: item.index)
        if rows and rows[0].embedding and isinstance(rows[0].embedding[0], list):
            raise ProviderError(
                f"{self._client.base_url} returned one vector per token, not per text; "
                "turn on pooling in the server (llama.cpp: --pooling mean)"
            )
        return normalize(np.asarray([row.embedding for row in rows], dtype=np.float32))
