"""Micro-batching: concurrent callers share one embedder call.

A server receives many small embedding requests at once (queries, short inputs).
One model call over all of them costs far less than one call each. A single
worker thread embeds whatever has queued while its previous call ran, so a lone
request waits for nothing and a busy server batches by itself (``max_wait`` adds
a deliberate wait for company, off by default).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from .base import BaseEmbedder, Embedder, embed_texts


@dataclass
class _Request:
    texts: Sequence[str]
    future: Future[np.ndarray] = field(default_factory=Future)


class BatchingEmbedder(BaseEmbedder):
    """Wraps an embedder; ``embed_batch`` from many threads is served in shared batches."""

    def __init__(self, inner: Embedder, max_wait: float = 0.0, max_texts: int = 256) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.max_tokens = inner.max_tokens
        self.batch_size = inner.batch_size
        self.max_wait = max_wait
        self.max_texts = max_texts
        self.batches = 0  # model calls made, for metrics and benchmarks
        self.requests = 0
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="citewise-embedder", daemon=True)
        self._worker.start()

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        request = _Request(list(texts))
        self._queue.put(request)
        return request.future.result()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_batch(texts)

    def token_offsets(self, texts: Sequence[str]) -> list[list[int]]:
        return self.inner.token_offsets(texts)

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=5)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, count = [first], len(first.texts)
            while count < self.max_texts:
                try:
                    # Take what queued while the last batch ran; wait only if asked to.
                    more = (
                        self._queue.get(timeout=self.max_wait)
                        if self.max_wait
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(more)
                count += len(more.texts)
            self._embed(batch)

    def _embed(self, batch: list[_Request]) -> None:
        texts = [t for request in batch for t in request.texts]
        try:
            vectors = embed_texts(self.inner, texts)
        except BaseException as exc:  # every waiting caller gets the error, not a hang
            for request in batch:
                request.future.set_exception(exc)
            return
        self.batches += 1
        self.requests += len(batch)
        start = 0
        for request in batch:
            request.future.set_result(vectors[start : start + len(request.texts)])
            start += len(request.texts)
