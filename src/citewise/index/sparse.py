"""A derived BM25 index (bm25s) for collections too big for FTS5 to score quickly.

FTS5 scores every chunk that matches any query word before it can keep the best,
so a query with common words costs time in proportion to the collection (618 ms
p95 at a million chunks). bm25s precomputes each term's BM25 contribution per
chunk into a sparse matrix: a query sums a few columns and takes the top k.

Like the vector indexes it is derived: built from SQLite after an ingest, saved
under ``index/`` with the collection's generation, memory-mapped when loaded, and
ignored (FTS5 answers instead) whenever it is not for the current generation — so
a search is never wrong and never waits for a rebuild.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, overload

import bm25s
import numpy as np
import Stemmer

from ..keywords import MAX_QUERY_TERMS
from ..storage import Collection, Storage

log = logging.getLogger(__name__)
# FTS5's k1 and b, and its Porter stemmer: results stay close on either side of the threshold.
K1, B = 1.2, 0.75
_STEMMER = Stemmer.Stemmer("porter")


# Recheck the disk for an index at most this often (another process may be building it).
MISSING_RECHECK_SECONDS = 5.0


@overload
def tokenize(texts: list[str], return_ids: Literal[False] = False) -> list[list[str]]: ...
@overload
def tokenize(texts: list[str], return_ids: Literal[True]) -> Any: ...  # a bm25s.Tokenized


def tokenize(texts: list[str], return_ids: bool = False) -> Any:
    """Queries and chunks are tokenized alike: Porter stems, English stop words dropped."""
    return bm25s.tokenize(
        texts, stopwords="en", stemmer=_STEMMER, return_ids=return_ids, show_progress=False
    )


# A filter leaving fewer than this share of the rows is scored on those rows alone: a
# permission filter that reads 0.5% of a million chunks costs what its 5,000 rows cost.
SUBSET_SHARE = 0.1


@dataclass
class SparseIndex:
    ids: np.ndarray  # chunk id of each indexed row, ascending (built in chunk id order)
    retriever: bm25s.BM25
    _is_ordered: bool | None = field(default=None, init=False, repr=False)

    @classmethod
    def build(cls, rows: Iterable[tuple[int, str]]) -> SparseIndex:
        ids, texts = [], []
        for chunk_id, text in rows:
            ids.append(chunk_id)
            texts.append(text)
        retriever = bm25s.BM25(k1=K1, b=B)
        retriever.index(tokenize(texts, return_ids=True), show_progress=False)
        return cls(np.asarray(ids, dtype=np.int64), retriever)

    def search(
        self, query: str, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) best first; ``allowed`` limits the candidates to those chunks."""
        vocabulary = self.retriever.vocab_dict
        # Repeated words stay: each occurrence adds its score, as in FTS5's path.
        tokens = [t for t in tokenize([query])[0] if t in vocabulary][:MAX_QUERY_TERMS]
        if not tokens or len(self.ids) == 0:
            return []
        mask = None
        if allowed is not None:
            if len(allowed) < SUBSET_SHARE * len(self.ids) and self._ordered():
                return self._search_rows(self._rows(allowed), tokens, k)
            mask = np.isin(self.ids, allowed).astype(np.float32)
        k = min(k, len(self.ids))
        rows, scores = self.retriever.retrieve(
            [tokens], k=k, show_progress=False, n_threads=1, weight_mask=mask
        )
        return [
            (int(self.ids[r]), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if s > 0
        ]

    def _ordered(self) -> bool:
        """Whether rows are in ascending chunk id order and each term's rows ascending, as
        bm25s builds them from rows in chunk id order: what :meth:`_search_rows` needs."""
        if self._is_ordered is None:
            self._is_ordered = bool(np.all(self.ids[1:] > self.ids[:-1])) and (
                self.retriever.nonoccurrence_array is None  # "lucene": absent terms add nothing
            )
        return self._is_ordered

    def _rows(self, allowed: np.ndarray) -> np.ndarray:
        """The rows of the allowed chunk ids that are in the index, ascending."""
        wanted = np.unique(np.asarray(allowed, dtype=np.int64))
        at = np.minimum(np.searchsorted(self.ids, wanted), len(self.ids) - 1)
        rows: np.ndarray = at[self.ids[at] == wanted]
        return rows

    def _search_rows(self, rows: np.ndarray, tokens: list[str], k: int) -> list[tuple[int, float]]:
        """BM25 over ``rows`` only: each query term's precomputed scores looked up for those
        rows in its posting list (a binary search from the shorter side), summed."""
        data, indices, indptr = (
            self.retriever.scores[key] for key in ("data", "indices", "indptr")
        )
        scores = np.zeros(len(rows), dtype=np.float32)
        for term in self.retriever.get_tokens_ids(tokens):
            start, end = int(indptr[term]), int(indptr[term + 1])
            posting = np.asarray(indices[start:end])
            if not len(posting) or not len(rows):
                continue
            if len(rows) <= len(posting):  # find each row in the posting list
                at = np.searchsorted(posting, rows)
                found = at < len(posting)
                found[found] = posting[at[found]] == rows[found]
                scores[found] += np.asarray(data[start:end])[at[found]]
            else:  # find each posting in the rows
                at = np.searchsorted(rows, posting)
                found = at < len(rows)
                found[found] = rows[at[found]] == posting[found]
                scores[at[found]] += np.asarray(data[start:end])[found]
        best = np.argsort(-scores, kind="stable")[: min(k, len(rows))]
        return [(int(self.ids[rows[i]]), float(scores[i])) for i in best if scores[i] > 0]

    def save(self, directory: Path) -> None:
        self.retriever.save(str(directory), show_progress=False)
        np.save(directory / "chunk_ids.npy", self.ids)

    @classmethod
    def load(cls, directory: Path) -> SparseIndex:
        retriever = bm25s.BM25.load(str(directory), mmap=True, show_progress=False)
        return cls(np.load(directory / "chunk_ids.npy", mmap_mode="r"), retriever)


class SparseIndexes:
    """Per-collection sparse indexes above ``threshold`` chunks; FTS5 serves the rest."""

    def __init__(self, store: Storage, directory: Path, threshold: int) -> None:
        self.store = store
        self.directory = directory
        self.threshold = threshold
        # collection id → (generation, index or None when there is none, when that was seen)
        self._cache: dict[int, tuple[int, SparseIndex | None, float]] = {}
        self._lock = threading.Lock()

    def current(self, collection: Collection) -> SparseIndex | None:
        """The collection's index if it exists for its current generation, else None."""
        generation = self._generation(collection)
        with self._lock:
            cached = self._cache.get(collection.id)
            if (
                cached
                and cached[0] == generation
                and (
                    cached[1] is not None or time.monotonic() - cached[2] < MISSING_RECHECK_SECONDS
                )
            ):
                return cached[1]  # searches of small collections do not touch the disk
            path = self._path(collection)
            stamp = self._stamp(collection, generation)
            if (
                not (path / "stamp.json").exists()
                or json.loads((path / "stamp.json").read_text()) != stamp
            ):
                self._cache[collection.id] = (generation, None, time.monotonic())
                return None
            index = SparseIndex.load(path)
            self._cache[collection.id] = (generation, index, time.monotonic())
            return index

    def refresh(self, collection: Collection) -> bool:
        """Build the index when the collection is big enough and its index is stale.
        Returns whether an index now serves the collection."""
        chunks = self.store.counts(collection.id)[1]
        path = self._path(collection)
        if chunks <= self.threshold:
            shutil.rmtree(path, ignore_errors=True)
            with self._lock:
                self._cache.pop(collection.id, None)
            return False
        if self.current(collection) is not None:
            return True
        generation = self._generation(collection)
        log.info("building the BM25 index of %s (%d chunks)", collection.name, chunks)
        index = SparseIndex.build(self.store.search_texts(collection.id))
        staging = path.with_name(path.name + ".building")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        index.save(staging)
        (staging / "stamp.json").write_text(json.dumps(self._stamp(collection, generation)))
        shutil.rmtree(path, ignore_errors=True)
        staging.rename(path)  # readers see the old index or the new one, never half of one
        with self._lock:
            self._cache[collection.id] = (generation, index, time.monotonic())
        return True

    def _generation(self, collection: Collection) -> int:
        """The collection's generation now (every write moves it)."""
        current = self.store.collection(collection.name)
        assert current is not None, f"collection {collection.name} is gone"
        return current.generation

    def _path(self, collection: Collection) -> Path:
        return self.directory / f"collection-{collection.id}.bm25s"

    def _stamp(self, collection: Collection, generation: int) -> dict[str, Any]:
        return {
            "generation": generation,
            "citewise": version("citewise"),
            "bm25s": version("bm25s"),
        }
