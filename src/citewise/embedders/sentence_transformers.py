"""Any Hugging Face model through sentence-transformers (``pip install citewise[sentence-transformers]``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ModelError
from .base import BaseEmbedder


class SentenceTransformerEmbedder(BaseEmbedder):
    def __init__(self, model: str) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelError(
                "sentence-transformers is not installed; install it with "
                "`pip install 'citewise[sentence-transformers]'`"
            ) from exc
        self._model = SentenceTransformer(model, device="cpu")
        self.model_id = f"sentence-transformers:{model}"
        self.dim = int(self._model.get_sentence_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(list(texts), normalize_embeddings=True, batch_size=len(texts))
        return np.asarray(vectors, dtype=np.float32)

    def token_offsets(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self._model.tokenizer(
            list(texts), add_special_tokens=False, return_offsets_mapping=True
        )
        return [[end for _, end in offsets] for offsets in encoded["offset_mapping"]]
