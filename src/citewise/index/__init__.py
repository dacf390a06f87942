"""Vector indexes over a collection's chunk embeddings, derived from the database.

``exact`` (a NumPy matrix) answers small collections exactly; ``hnsw`` (usearch)
takes over above ``ann_threshold`` chunks. Both are rebuilt from SQLite whenever
the collection's generation has moved, so they can be deleted at any time.
"""

from __future__ import annotations

from .base import VectorIndex
from .exact import ExactIndex
from .hnsw import HnswIndex
from .manager import VectorIndexes

__all__ = ["ExactIndex", "HnswIndex", "VectorIndex", "VectorIndexes"]
