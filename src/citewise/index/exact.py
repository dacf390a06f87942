from __future__ import annotations

import numpy as np


class ExactIndex:
    """Brute force: one matrix product. Exact, and fast enough for small collections."""

    name = "exact"

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.ids = ids
        self.vectors = vectors

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return top_k(self.ids, self.vectors @ query, k)

    def search_subset(
        self, query: np.ndarray, k: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact search restricted to the chunk ids in ``allowed``."""
        rows = np.searchsorted(self.ids, allowed)
        rows = rows[
            (rows < len(self.ids)) & (self.ids[np.minimum(rows, len(self.ids) - 1)] == allowed)
        ]
        return top_k(self.ids[rows], self.vectors[rows] @ query, k)


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if len(scores) == 0:
        return ids[:0], scores[:0]
    k = min(k, len(scores))
    best = np.argpartition(-scores, k - 1)[:k]
    best = best[np.argsort(-scores[best])]
    return ids[best], scores[best]
