from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

from ..storage import Collection, Storage
from .exact import ExactIndex
from .hnsw import HnswIndex


@dataclass
class _Cached:
    generation: int
    exact: ExactIndex
    hnsw: HnswIndex | None


class VectorIndexes:
    """Per-collection vector indexes, built lazily and rebuilt when stale."""

    def __init__(self, store: Storage, directory: Path, ann_threshold: int) -> None:
        self.store = store
        self.directory = directory
        self.ann_threshold = ann_threshold
        self._cache: dict[int, _Cached] = {}
        self._lock = threading.Lock()

    def search(
        self, collection: Collection, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        cached = self._get(collection)
        if allowed is not None:
            return cached.exact.search_subset(query, k, allowed)
        if cached.hnsw is not None:
            return cached.hnsw.search(query, k)
        return cached.exact.search(query, k)

    def backend(self, collection: Collection) -> str:
        return "hnsw" if self._get(collection).hnsw is not None else "exact"

    def _get(self, collection: Collection) -> _Cached:
        with self._lock:
            generation = self.store.collection(collection.name).generation  # type: ignore[union-attr]
            cached = self._cache.get(collection.id)
            if cached is None or cached.generation != generation:
                cached = self._build(collection, generation)
                self._cache[collection.id] = cached
            return cached

    def _build(self, collection: Collection, generation: int) -> _Cached:
        ids, vectors = self.store.vectors(collection.id, collection.dim)
        hnsw = None
        if len(ids) > self.ann_threshold:
            hnsw = self._load_or_build_hnsw(collection, generation, ids, vectors)
        return _Cached(generation, ExactIndex(ids, vectors), hnsw)

    def _load_or_build_hnsw(
        self, collection: Collection, generation: int, ids: np.ndarray, vectors: np.ndarray
    ) -> HnswIndex:
        path = self.directory / f"collection-{collection.id}.usearch"
        sidecar = path.with_suffix(".json")
        stamp = {"generation": generation, "count": len(ids), "dim": collection.dim,
                 "embedder": collection.embedder, "citewise": version("citewise")}  # fmt: skip
        if path.exists() and sidecar.exists() and json.loads(sidecar.read_text()) == stamp:
            return HnswIndex.load(path)
        index = HnswIndex.build(ids, vectors)
        self.directory.mkdir(parents=True, exist_ok=True)
        index.save(path)
        sidecar.write_text(json.dumps(stamp))
        return index

    def refresh(self, collection: Collection) -> None:
        """Nothing to do ahead of time: a stale index is rebuilt on its next search."""

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
