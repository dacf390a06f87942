from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from ..config import Settings


@runtime_checkable
class Embedder(Protocol):
    """What the pipeline needs from an embedding model. ``embed_batch`` is all the
    embedding a plug-in has to implement: :func:`embed_texts` (any number of texts) and
    :meth:`BaseEmbedder.embed_query` are derived from it."""

    model_id: str
    dim: int
    max_tokens: int
    batch_size: int  # most texts worth sending in one call (1: batching gains nothing)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors, one row per text, float32."""
        ...

    def token_offsets(self, texts: Sequence[str]) -> list[list[int]]:
        """For each text, the end offset of each of its tokens (no special tokens)."""
        ...


class EmbedderFactory(Protocol):
    """What an embedder backend registers (its class, usually): the embedder for a model."""

    def __call__(self, model: str, /) -> Embedder: ...


@runtime_checkable
class SettingsEmbedderFactory(Protocol):
    """A backend that calls out (``openai``): its connection comes from the workspace's
    settings and ``citewise.toml`` (``config``)."""

    def from_settings(
        self,
        model: str,
        settings: Settings,
        workspace: Path | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Embedder: ...


@runtime_checkable
class EmbedsAny(Protocol):
    """An embedder that batches any number of texts itself (every :class:`BaseEmbedder`)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def embed_texts(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Unit vectors for any number of texts, one row per text, float32: the embedder's
    own ``embed`` where it has one (:meth:`BaseEmbedder.embed` batches texts of similar
    length), else ``embed_batch`` on runs of ``batch_size`` texts - so an embedder that
    implements only the :class:`Embedder` protocol ingests like a built-in."""
    if isinstance(embedder, EmbedsAny):
        return embedder.embed(texts)
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    step = max(1, embedder.batch_size)
    for start in range(0, len(texts), step):
        out[start : start + step] = embedder.embed_batch(texts[start : start + step])
    return out


class BaseEmbedder:
    """Conveniences built on ``embed_batch``; backends subclass this."""

    model_id: str
    dim: int
    max_tokens: int = 512
    batch_size: int = 64  # most texts in one call
    # Most (estimated) tokens in one call. Measured with MiniLM (float compute) on 2 cores: 256 was
    # fastest for long chunks and short queries alike, while peak memory grew with the
    # batch (1.7 GB at 32 texts of 256 tokens, 0.3 GB at 256 tokens in all).
    batch_tokens: int = 256

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed any number of texts in batches of similar length (less padding)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for rows in self._batches(order, texts):
            out[rows] = self.embed_batch([texts[i] for i in rows])
        return out

    def _batches(self, order: list[int], texts: Sequence[str]) -> list[list[int]]:
        """Consecutive runs of ``order`` within ``batch_size`` texts and ``batch_tokens`` tokens."""
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            longest = min(len(texts[i]) // 4 + 2, self.max_tokens)  # sorted: the newest is longest
            if current and (
                len(current) >= self.batch_size or (len(current) + 1) * longest > self.batch_tokens
            ):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def embed_query(self, text: str) -> np.ndarray:
        vector: np.ndarray = self.embed_batch([text])[0]
        return vector

    def token_offsets(self, texts: Sequence[str]) -> list[list[int]]:
        # Without a tokenizer, words and punctuation marks approximate tokens.
        return [[m.end() for m in _WORDISH.finditer(text)] for text in texts]


_WORDISH = re.compile(r"\w+|[^\w\s]")


def normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit
