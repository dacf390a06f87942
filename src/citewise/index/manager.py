"""Vector indexes derived from the SQLite store's vectors, kept up to date incrementally.

A collection's index is built once from every stored vector; after that, each search
first applies the store's change log (``vector_changes``: chunks added and removed, in
order) — fetching only the added chunks' vectors — instead of reloading them all. A
collection whose embedder changed, or whose log was pruned past the index, is rebuilt.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from ..storage import Collection
from ..storage.sqlite import SqliteStore
from .exact import ExactIndex
from .hnsw import HnswIndex


@dataclass
class _Cached:
    seq: int  # the last change applied
    embedder: str
    exact: ExactIndex
    hnsw: HnswIndex | None


class VectorIndexes:
    """Per-collection vector indexes, built lazily and updated from the change log."""

    def __init__(self, store: SqliteStore, directory: Path, ann_threshold: int) -> None:
        self.store = store
        self.directory = directory
        self.ann_threshold = ann_threshold
        self._cache: dict[int, _Cached] = {}
        self._lock = threading.Lock()
        self.builds = 0  # whole rebuilds (the rest are incremental updates), for tests
        self.updates = 0

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

    def refresh(self, collection: Collection) -> None:
        """After an ingest: save the HNSW graph as it now is (a restart loads it and applies
        only later changes) and forget old changes (an index that far behind rebuilds)."""
        with self._lock:
            cached = self._cache.get(collection.id)
            if cached is not None and cached.hnsw is not None:
                self._save_hnsw(collection, cached.seq, len(cached.exact), cached.hnsw)
        self.store.prune_vector_changes(collection.id)

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def _get(self, collection: Collection) -> _Cached:
        with self._lock:
            current = self.store.collection(collection.name)
            assert current is not None, f"collection {collection.name} is gone"
            cached = self._cache.get(current.id)
            if cached is not None and cached.embedder == current.embedder:
                changes = self.store.vector_changes(current.id, cached.seq)
                if changes is not None:
                    if changes[1]:
                        cached = self._cache[current.id] = self._apply(current, cached, *changes)
                    return cached
            cached = self._build(current)
            self._cache[current.id] = cached
            return cached

    def _build(self, collection: Collection) -> _Cached:
        self.builds += 1
        # The log position first: a change made while the vectors load is applied again
        # on the next search, and applying a change twice leaves the same index.
        seq = self.store.vector_change_seq(collection.id)
        ids, vectors = self.store.vectors(collection.id, collection.dim)
        hnsw = None
        if len(ids) > self.ann_threshold:
            hnsw = self._load_or_build_hnsw(collection, seq, ids, vectors)
        return _Cached(seq, collection.embedder, ExactIndex(ids, vectors), hnsw)

    def _apply(
        self, collection: Collection, cached: _Cached, seq: int, changes: list[tuple[int, bool]]
    ) -> _Cached:
        """The cached index with the changes applied: removed chunks dropped, added (or
        re-embedded) chunks' current vectors fetched and put in."""
        self.updates += 1
        final = dict(changes)  # the last change to each chunk wins
        fetched = self.store.chunk_vectors([c for c, added in final.items() if added])
        touched = np.fromiter(final, dtype=np.int64, count=len(final))
        keep = ~np.isin(cached.exact.ids, touched)
        new_ids = np.fromiter(fetched, dtype=np.int64, count=len(fetched))
        ids = np.concatenate([cached.exact.ids[keep], new_ids])
        vectors = np.vstack(
            [
                cached.exact.vectors[keep],
                np.asarray(list(fetched.values()), dtype=np.float32).reshape(-1, collection.dim),
            ]
        )
        order = np.argsort(ids, kind="stable")  # exact search of a subset needs sorted ids
        exact = ExactIndex(ids[order], vectors[order])
        hnsw = cached.hnsw
        if hnsw is not None:
            stale = touched[np.isin(touched, cached.exact.ids)]
            if len(stale):
                hnsw.index.remove(stale.astype(np.uint64))
            if len(new_ids):
                hnsw.index.add(new_ids.astype(np.uint64), vectors[len(ids) - len(new_ids) :])
        elif len(ids) > self.ann_threshold:
            hnsw = self._load_or_build_hnsw(collection, seq, exact.ids, exact.vectors)
        return _Cached(seq, cached.embedder, exact, hnsw)

    def _paths(self, collection: Collection) -> tuple[Path, Path]:
        path = self.directory / f"collection-{collection.id}.usearch"
        return path, path.with_suffix(".json")

    def _stamp(self, collection: Collection, seq: int, count: int) -> dict[str, Any]:
        return {
            "seq": seq,
            "count": count,
            "dim": collection.dim,
            "embedder": collection.embedder,
            "citewise": version("citewise"),
        }

    def _load_or_build_hnsw(
        self, collection: Collection, seq: int, ids: np.ndarray, vectors: np.ndarray
    ) -> HnswIndex:
        """The saved graph brought up to ``seq`` from the change log, when it was made for
        this embedder and the log still reaches back to it; otherwise a new graph."""
        path, sidecar = self._paths(collection)
        if path.exists() and sidecar.exists():
            saved = json.loads(sidecar.read_text())
            current = self._stamp(collection, saved.get("seq", -1), saved.get("count", -1))
            changes = (
                self.store.vector_changes(collection.id, saved.get("seq", -1))
                if saved == current
                else None
            )
            if (
                changes is not None
                and changes[0] <= seq
                and (index := HnswIndex.load(path)) is not None  # else unreadable: built anew
            ):
                final = dict(changes[1])
                touched = np.fromiter(final, dtype=np.int64, count=len(final))
                present = np.isin(touched, ids)
                for key in touched:  # whatever the graph held for a changed chunk goes
                    if index.index.contains(int(key)):
                        index.index.remove(int(key))
                added = touched[present & np.fromiter(final.values(), dtype=bool, count=len(final))]
                if len(added):
                    rows = np.searchsorted(ids, added)
                    index.index.add(added.astype(np.uint64), vectors[rows])
                return index
        index = HnswIndex.build(ids, vectors)
        self._save_hnsw(collection, seq, len(ids), index)
        return index

    def _save_hnsw(self, collection: Collection, seq: int, count: int, index: HnswIndex) -> None:
        path, sidecar = self._paths(collection)
        self.directory.mkdir(parents=True, exist_ok=True)
        index.save(path)
        sidecar.write_text(json.dumps(self._stamp(collection, seq, count)))
