from __future__ import annotations

from typing import Protocol

import numpy as np


class VectorIndex(Protocol):
    """Nearest neighbours by cosine similarity over unit vectors."""

    name: str

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, cosine similarities), best first."""
        ...

    def __len__(self) -> int: ...
