from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from usearch.index import Index


class HnswIndex:
    """Approximate search with usearch's HNSW graph, saved beside the database."""

    name = "hnsw"

    def __init__(self, index: Index) -> None:
        self.index = index

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray) -> HnswIndex:
        index = Index(
            ndim=vectors.shape[1],
            metric="ip",
            dtype="f16",
            connectivity=16,
            expansion_add=128,
            expansion_search=256,
        )
        if len(ids):
            index.add(ids.astype(np.uint64), vectors, threads=os.cpu_count() or 1)
        return cls(index)

    @classmethod
    def load(cls, path: Path) -> HnswIndex | None:
        """The graph saved at ``path``; None when the file holds none (cut short)."""
        index = Index.restore(str(path))
        return None if index is None else cls(index)

    def save(self, path: Path) -> None:
        self.index.save(str(path))

    def __len__(self) -> int:
        return len(self.index)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        matches = self.index.search(query.astype(np.float32), k)
        return matches.keys.astype(np.int64), (1.0 - matches.distances).astype(np.float32)
