"""Hybrid retrieval: BM25 over FTS5 plus dense vectors, fused into one ranking.

Collection and metadata filters go into both queries themselves, so a passage
outside them is never a candidate. A hybrid query that names an identifier (an error
code, a version, a ticket id) or quotes a phrase puts the passages that contain it
verbatim first (``exact_first``).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from .documents import Hit
from .embedders import Embedder
from .errors import EmbedderMismatch, WorkspaceError
from .filters import Filter
from .index.sparse import SparseIndexes
from .keywords import query_terms
from .storage import Collection, Storage, VectorSearch

Mode = Literal["hybrid", "bm25", "dense"]
RRF_K = 60


@dataclass(frozen=True)
class Ranked:
    chunk_id: int
    score: float
    bm25_rank: int | None = None
    dense_rank: int | None = None
    cosine: float | None = None


@dataclass(frozen=True)
class RetrievalSettings:
    """How a collection's keyword and vector rankings become one; the workspace's
    settings by default, a collection's own after ``citewise tune``."""

    fusion: str = "adaptive"
    dense_weight: float = 0.5
    bm25_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)  # title, headings, body
    # A passage scores as itself plus its document's next best (n - 1) passages: for
    # collections whose relevant documents match in several places.
    document_passages: int = 1
    min_relevance: float = 0.3  # least cosine for a passage to reach the prompt
    embedder: str = ""  # the collection's own embedder (a fine-tuned one); "": the workspace's
    # Hybrid queries with an identifier or a "quoted phrase" rank the passages containing
    # it verbatim first (``exact_first``); False is the fusion alone, as before.
    exact_match: bool = True

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "fusion": self.fusion,
            "dense_weight": self.dense_weight,
            "bm25_weights": list(self.bm25_weights),
            "document_passages": self.document_passages,
            "min_relevance": self.min_relevance,
        }
        if not self.exact_match:  # saved only when off: settings saved before read as on
            body["exact_match"] = False
        return body | ({"embedder": self.embedder} if self.embedder else {})

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> RetrievalSettings:
        weights = body.get("bm25_weights", (1.0, 1.0, 1.0))
        settings = cls(
            fusion=str(body.get("fusion", "adaptive")),
            dense_weight=float(body.get("dense_weight", 0.5)),
            bm25_weights=(float(weights[0]), float(weights[1]), float(weights[2])),
            document_passages=int(body.get("document_passages", 1)),
            min_relevance=float(body.get("min_relevance", 0.3)),
            embedder=str(body.get("embedder", "")),
            exact_match=bool(body.get("exact_match", True)),
        )
        if settings.fusion not in FUSIONS or settings.document_passages < 1:
            raise WorkspaceError(f"bad retrieval settings {body!r}")
        return settings


@dataclass
class Candidates:
    """What each ranking found for one query, best first, before fusion."""

    bm25: list[tuple[int, float]]
    dense: list[tuple[int, float]]
    # The query, for ranking exact matches first; "" skips that (a single mode).
    query: str = ""
    # The passages' texts, once the exact-match pass has read them.
    texts: dict[int, str] | None = field(default=None, repr=False, compare=False)


class Retriever:
    def __init__(
        self,
        store: Storage,
        indexes: VectorSearch,
        embedder_for: Callable[[Collection], Embedder],
        settings: RetrievalSettings | None = None,
        candidates: int = 100,
        sparse: SparseIndexes | None = None,
        settings_for: Callable[[Collection], RetrievalSettings | None] | None = None,
        allowed_cache: AllowedCache | None = None,
    ) -> None:
        self.sparse = sparse
        self.allowed_cache = allowed_cache
        self.store = store
        self.indexes = indexes
        self.embedder_for = embedder_for
        self.settings = settings or RetrievalSettings()
        self.candidates = candidates
        self.settings_for = settings_for

    def settings_of(self, collections: Sequence[Collection]) -> RetrievalSettings:
        """The collections' own (tuned) settings when they all have the same ones;
        otherwise the workspace's."""
        if self.settings_for is None or not collections:
            return self.settings
        found = {self.settings_for(c) for c in collections}
        own = found.pop() if len(found) == 1 else None
        return own or self.settings

    def search(
        self,
        query: str,
        collections: Sequence[Collection],
        k: int = 10,
        mode: Mode = "hybrid",
        where: Filter | None = None,
        settings: RetrievalSettings | None = None,
    ) -> list[Hit]:
        if not collections or not query.strip():
            return []
        settings = settings or self.settings_of(collections)
        found = self.find(query, collections, max(self.candidates, k), mode, where, settings)
        ranked = self.rank(found, settings)[:k]
        cosines = dict(found.dense)
        missing = [r.chunk_id for r in ranked if r.chunk_id not in cosines]
        if missing:  # relevance is judged by cosine, so every hit gets one
            cosines.update(self.cosines(query, collections, missing))
        return self._hits(ranked, cosines)

    def find(
        self,
        query: str,
        collections: Sequence[Collection],
        depth: int,
        mode: Mode = "hybrid",
        where: Filter | None = None,
        settings: RetrievalSettings | None = None,
    ) -> Candidates:
        """Each ranking's best ``depth`` passages for the query (the modes' own lists)."""
        weights = (settings or self.settings).bm25_weights
        allowed = _AllowedChunks(self.store, where, self.allowed_cache)
        bm25 = self._bm25(query, collections, depth, allowed, weights) if mode != "dense" else []
        dense = self._dense(query, collections, depth, allowed) if mode != "bm25" else []
        # Only hybrid search puts exact matches first: bm25 and dense stay the single
        # rankings they are named for (and the baselines hybrid is measured against).
        return Candidates(bm25, dense, query if mode == "hybrid" else "")

    def rank(self, found: Candidates, settings: RetrievalSettings) -> list[Ranked]:
        """One ranking from the candidates, by the settings' fusion and aggregation, then
        the passages that contain the query's identifiers and quoted phrases first."""
        ranked = fuse(found.bm25, found.dense, settings.fusion, settings.dense_weight)
        if settings.document_passages > 1:
            documents = self.store.chunk_documents([r.chunk_id for r in ranked])
            ranked = with_document_support(ranked, documents, settings.document_passages)
        terms = exact_terms(found.query) if settings.exact_match else []
        if terms and ranked:
            if found.texts is None:  # read once: ``citewise tune`` ranks them many times
                found.texts = self.passage_texts(ranked)
            ranked = exact_first(ranked, found.texts, terms)
        return ranked

    def passage_texts(self, ranked: list[Ranked]) -> dict[int, str]:
        """Each candidate's title, headings and text: where an identifier may appear (a
        note titled by its error code). Read through the store, so every backend and
        both keyword paths (FTS5, bm25s) get the same exact-match pass."""
        stored = self.store.hits([r.chunk_id for r in ranked])
        return {
            chunk_id: "\n".join([hit.title, *hit.heading_path, hit.text])
            for chunk_id, hit in stored.items()
        }

    def _bm25(
        self,
        query: str,
        collections: Sequence[Collection],
        depth: int,
        allowed: _AllowedChunks,
        weights: tuple[float, float, float],
    ) -> list[tuple[int, float]]:
        """Big collections with a current bm25s index use it; the store's keyword search
        scores the rest (the title, headings and body weighted by ``weights``)."""
        results: list[tuple[int, float]] = []
        rest = list(collections)
        if self.sparse is not None:
            rest = []
            for collection in collections:
                index = self.sparse.current(collection)
                if index is None:
                    rest.append(collection)
                    continue
                results.extend(index.search(query, depth, allowed.of(collection)))
        if rest:
            ids = [c.id for c in rest]
            results.extend(self.store.keyword_search(query, ids, depth, allowed.where, weights))
        results.sort(key=lambda pair: -pair[1])
        return results[:depth]

    def _dense(
        self, query: str, collections: Sequence[Collection], depth: int, allowed: _AllowedChunks
    ) -> list[tuple[int, float]]:
        results: list[tuple[int, float]] = []
        for collection, vector in self._query_vectors(query, collections):
            ids, scores = self.indexes.search(collection, vector, depth, allowed.of(collection))
            results.extend(zip(ids.tolist(), scores.tolist(), strict=True))
        results.sort(key=lambda pair: -pair[1])
        return results[:depth]

    def _query_vectors(
        self, query: str, collections: Sequence[Collection]
    ) -> list[tuple[Collection, np.ndarray]]:
        vectors: dict[str, np.ndarray] = {}
        pairs = []
        for collection in collections:
            embedder = self.embedder_for(collection)
            check_embedder(collection, embedder)
            if embedder.model_id not in vectors:
                vectors[embedder.model_id] = embedder.embed_batch([query])[0]
            pairs.append((collection, vectors[embedder.model_id]))
        return pairs

    def cosines(
        self, query: str, collections: Sequence[Collection], chunk_ids: list[int]
    ) -> dict[int, float]:
        """Cosine similarity of given chunks to the query (BM25 mode still reports relevance)."""
        out: dict[int, float] = {}
        allowed = np.array(sorted(chunk_ids), dtype=np.int64)
        for collection, vector in self._query_vectors(query, collections):
            ids, scores = self.indexes.search(collection, vector, len(allowed), allowed)
            out.update(zip(ids.tolist(), scores.tolist(), strict=True))
        return out

    def _hits(self, ranked: list[Ranked], cosines: dict[int, float]) -> list[Hit]:
        stored = self.store.hits([r.chunk_id for r in ranked])
        return [
            replace(
                stored[r.chunk_id],
                score=r.score,
                bm25_rank=r.bm25_rank,
                dense_rank=r.dense_rank,
                cosine=cosines.get(r.chunk_id),
            )
            for r in ranked
            if r.chunk_id in stored  # a chunk deleted between the index read and now is skipped
        ]


def check_embedder(collection: Collection, embedder: Embedder) -> None:
    if collection.embedder != embedder.model_id or collection.dim != embedder.dim:
        raise EmbedderMismatch(
            f"collection {collection.name!r} was embedded with {collection.embedder} "
            f"({collection.dim} dimensions), not {embedder.model_id} ({embedder.dim}); "
            f"re-embed it with `citewise reindex --collection {collection.name} "
            f"--embedder {embedder.model_id}` or search with its own embedder"
        )


FUSIONS = ("adaptive", "convex", "rrf")
# Adaptive fusion judges a ranking by how far its score falls from first to this rank.
CONFIDENCE_RANK = 10


def fuse(
    bm25: list[tuple[int, float]], dense: list[tuple[int, float]], method: str, dense_weight: float
) -> list[Ranked]:
    """One ranking from two; either list may be empty (single-mode search).

    ``convex``: min-max normalised scores, weighted ``dense_weight`` : 1 - ``dense_weight``.
    ``adaptive``: the same, with the weights moved per query toward the ranking that is
    surer of itself (see ``dense_share``). ``rrf``: reciprocal rank fusion, k = 60.
    """
    bm25_rank = {cid: rank for rank, (cid, _) in enumerate(bm25, start=1)}
    dense_rank = {cid: rank for rank, (cid, _) in enumerate(dense, start=1)}
    cosine = dict(dense)
    ids = list(dict.fromkeys([c for c, _ in bm25] + [c for c, _ in dense]))
    if method == "rrf":
        score = {c: _rrf(bm25_rank.get(c)) + _rrf(dense_rank.get(c)) for c in ids}
    elif method in ("convex", "adaptive"):
        b, d = _minmax(bm25), _minmax(dense)
        if not (bm25 and dense):
            w = 1.0 if dense else 0.0
        elif method == "adaptive":
            w = dense_share(bm25, dense, dense_weight)
        else:
            w = dense_weight
        score = {c: (1 - w) * b.get(c, 0.0) + w * d.get(c, 0.0) for c in ids}
    else:
        raise WorkspaceError(f"unknown fusion method {method!r}; use one of {', '.join(FUSIONS)}")
    ordered = sorted(ids, key=lambda c: -score[c])
    return [
        Ranked(c, score[c], bm25_rank.get(c), dense_rank.get(c), cosine.get(c)) for c in ordered
    ]


def confidence(ranking: list[tuple[int, float]]) -> float:
    """How sure a ranking is of its top: 1 minus its min-max normalised score at rank
    ``CONFIDENCE_RANK`` (a score-drop query performance predictor). A flat ranking —
    the query's words everywhere, or no passage close to the query — scores near 0;
    one that separates a few passages from the rest near 1. Short lists are neutral."""
    if len(ranking) <= CONFIDENCE_RANK:
        return 0.5
    top, low = ranking[0][1], min(s for _, s in ranking)
    if top <= low:
        return 0.0
    return (top - ranking[CONFIDENCE_RANK - 1][1]) / (top - low)


def dense_share(
    bm25: list[tuple[int, float]], dense: list[tuple[int, float]], dense_weight: float
) -> float:
    """The vector ranking's weight for this query: the collection's ``dense_weight``
    scaled by each ranking's confidence, so a weak side (a keyword list of common words,
    vectors that miss a rare identifier) pulls the fused ranking down less. Measured
    (benchmarks/retrieval_quality.py): +0.011 nDCG@10 over fixed weights on CISI,
    +0.001 on SciFact."""
    dense_part = dense_weight * confidence(dense)
    keyword_part = (1 - dense_weight) * confidence(bm25)
    if dense_part + keyword_part == 0:
        return dense_weight
    return dense_part / (dense_part + keyword_part)


def with_document_support(
    ranked: list[Ranked], documents: dict[int, int], passages: int, weight: float = 1.0
) -> list[Ranked]:
    """Each passage's score plus ``weight`` times its document's next best ``passages - 1``
    scores, so a document that matches in several passages rises; passages keep their own
    order within a document."""
    by_document: dict[int, list[float]] = {}
    for r in ranked:
        by_document.setdefault(documents.get(r.chunk_id, -r.chunk_id), []).append(r.score)
    boosted = []
    for r in ranked:
        scores = by_document[documents.get(r.chunk_id, -r.chunk_id)]
        others = list(scores)
        others.remove(r.score)
        boosted.append(replace(r, score=r.score + weight * sum(others[: passages - 1])))
    return sorted(boosted, key=lambda r: -r.score)


# -- exact identifiers and quoted phrases ------------------------------------------------
#
# Keyword and vector search both blur an identifier: FTS5 and bm25s split ``v2.3.1`` into
# the words ``v2``, ``3``, ``1`` (found in ``v2.3.0`` too), and an embedding of ``E1042`` is
# all but the embedding of ``E1024``. A query that names one wants the passages that
# contain it, so those go first; the fused order holds among them and among the rest.

# A query word: letters, digits and the separators codes are written with (``JIRA-4821``,
# ``3.11.4``, ``ff_checkout_v3``, ``0x80070005``), as typed between spaces.
_QUERY_WORD = re.compile(r"[\w][\w.\-/:#+]*")
# A number with a unit or a suffix (``10mg``, ``2D``, ``1960s``, ``7-day``) measures
# something; it is not a code to find verbatim.
_MEASURE = re.compile(r"\d+(?:[.,]\d+)*(?:[a-z]{1,3}|%|-[a-z]+(?:-[a-z]+)*)", re.IGNORECASE)
_VERSION = re.compile(r"v?\d+(?:\.\d+){2,}", re.IGNORECASE)  # 3.11.4, v2.3.1, 10.0.3.17
_LONG_NUMBER = re.compile(r"\d{5,}")  # an order or ticket number; a year (4 digits) is not
# A longer query is a passage pasted as one (CISI's are abstracts): its quotes are scare
# quotes and its codes a few words among many, not what the searcher must find verbatim.
# On CISI the pass fired on 5 abstracts of 82-130 terms, all with scare quotes ("training",
# "distances"), and cost them 0.058 nDCG@10; questions and claims stay below 32 (SciFact's
# longest claim has 26 terms).
EXACT_MAX_TERMS = 32
# Straight or typographic double quotes around one or more words.
_QUOTED = re.compile(r"\"([^\"]+)\"|\u201c([^\u201d]+)\u201d")


def query_identifiers(query: str) -> list[str]:
    """The words of ``query`` that look like identifiers, in order, each once: a version
    with two or more dots (``3.11.4``), a number of five or more digits (``884213``), or
    a word with both letters and digits (``E1042``, ``JIRA-4821``, ``0x80070005``) that is
    not a measurement (``10mg``, ``2D``). Words without a digit, plain numbers and years
    never count: ordinary prose does not switch the exact-match pass on."""
    found = []
    for match in _QUERY_WORD.finditer(query):
        word = match.group().rstrip(".-/:#")  # a full stop or dash ending the sentence
        if _is_identifier(word):
            found.append(word)
    return list(dict.fromkeys(found))


def _is_identifier(word: str) -> bool:
    if not any(c.isdigit() for c in word) or _MEASURE.fullmatch(word):
        return False
    if _VERSION.fullmatch(word) or _LONG_NUMBER.fullmatch(word):
        return True
    return any(c.isalpha() for c in word)


def quoted_phrases(query: str) -> list[str]:
    """The text between double quotes (straight or typographic), each once."""
    phrases = (" ".join((m.group(1) or m.group(2)).split()) for m in _QUOTED.finditer(query))
    return list(dict.fromkeys(p for p in phrases if any(c.isalnum() for c in p)))


@dataclass(frozen=True)
class ExactTerm:
    """An identifier or a quoted phrase to find verbatim in a passage."""

    text: str  # as the query has it
    needle: str  # lower-case text every match contains: a substring test skips most passages
    pattern: re.Pattern[str]  # what decides: case-insensitive, whole tokens

    def found_in(self, text: str) -> bool:
        return self.needle in text.lower() and self.pattern.search(text) is not None


def exact_terms(query: str, max_terms: int | None = EXACT_MAX_TERMS) -> list[ExactTerm]:
    """The identifiers and quoted phrases of ``query``; none for a query longer than
    ``max_terms`` terms (None: no limit)."""
    if max_terms is not None and len(query_terms(query)) > max_terms:
        return []
    return [_identifier_term(w) for w in query_identifiers(query)] + [
        _phrase_term(p) for p in quoted_phrases(query)
    ]


def _identifier_term(word: str) -> ExactTerm:
    """``word`` as a whole token: ``E1042`` is not in ``E10421``, ``v2.3.1`` is not in
    ``v2.3.10`` or ``2.3.1.4``. A version matches with or without its ``v``."""
    needle = word.lower()
    if _VERSION.fullmatch(word):
        needle = needle.lstrip("v")
        body = "v?" + re.escape(needle)
    else:
        body = re.escape(word)
    pattern = re.compile(rf"(?<!\w)(?<!\d\.){body}(?!\w|\.\d)", re.IGNORECASE)
    return ExactTerm(word, needle, pattern)


def _phrase_term(phrase: str) -> ExactTerm:
    """The phrase verbatim, case-insensitive, any run of whitespace between its words,
    not inside a longer word."""
    words = phrase.split()
    body = r"\s+".join(re.escape(w) for w in words)
    start = r"(?<!\w)" if phrase[0].isalnum() else ""
    end = r"(?!\w)" if phrase[-1].isalnum() else ""
    needle = max(words, key=len).lower()
    return ExactTerm(phrase, needle, re.compile(start + body + end, re.IGNORECASE))


def exact_count(text: str, terms: Sequence[ExactTerm]) -> int:
    """How many of the terms (identifiers, phrases) ``text`` contains."""
    return sum(1 for term in terms if term.found_in(text))


def exact_first(
    ranked: list[Ranked],
    texts: dict[int, str],
    terms: Sequence[ExactTerm],
    weight: float = 1.0,
) -> list[Ranked]:
    """The ranking with each passage's score raised by ``weight`` times the top score for
    each identifier and phrase it contains. At 1.0 a passage with more of them outranks
    one with fewer, whatever the fusion thought, and the fused order holds among passages
    with as many: exact matches first. Scores stay monotone with the order (document runs
    and ``with_document_support`` sort by them). Measured (benchmarks/identifiers.py):
    the right note first for 30 of 30 identifier queries, 25 before; SciFact nDCG@10
    -0.0016 (gene names in its claims), CISI unchanged."""
    unit = weight * (ranked[0].score if ranked and ranked[0].score > 0 else 1.0)
    found = {r.chunk_id: exact_count(texts.get(r.chunk_id, ""), terms) for r in ranked}
    raised = [replace(r, score=r.score + unit * found[r.chunk_id]) for r in ranked]
    return sorted(raised, key=lambda r: (-r.score, -found[r.chunk_id]))


def _rrf(rank: int | None) -> float:
    return 0.0 if rank is None else 1.0 / (RRF_K + rank)


def _minmax(pairs: list[tuple[int, float]]) -> dict[int, float]:
    if not pairs:
        return {}
    scores = [s for _, s in pairs]
    low, high = min(scores), max(scores)
    span = high - low
    return {c: (s - low) / span if span > 0 else 1.0 for c, s in pairs}


class AllowedCache:
    """The chunks a filter let through in recent searches — a user's access filter, most
    often, which each of its queries repeats. An entry is for one collection at one
    generation: any write to the collection (a document, its access list) bumps the
    generation, so a stale entry is never read; a membership change changes the caller's
    principals, and so the filter, and so the key. Bounded by entries and by ids held."""

    def __init__(self, entries: int = 32, max_ids: int = 8_000_000) -> None:
        self.entries, self.max_ids = entries, max_ids
        self._found: OrderedDict[tuple[int, int, Filter], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, collection: Collection, where: Filter) -> np.ndarray | None:
        key = (collection.id, collection.generation, where)
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
            return found

    def put(self, collection: Collection, where: Filter, ids: np.ndarray) -> None:
        with self._lock:
            self._found[(collection.id, collection.generation, where)] = ids
            while len(self._found) > self.entries or (
                len(self._found) > 1 and sum(len(v) for v in self._found.values()) > self.max_ids
            ):
                self._found.popitem(last=False)


class _AllowedChunks:
    """The chunks a filter lets through, looked up once per collection and
    search: the keyword and vector sides share it (at a million chunks the lookup is
    most of a filtered search's time), and a cache keeps it for the next search."""

    def __init__(self, store: Any, where: Filter | None, cache: AllowedCache | None = None) -> None:
        self.store, self.where, self.cache = store, where, cache
        self._ids: dict[int, np.ndarray] = {}

    def of(self, collection: Collection) -> np.ndarray | None:
        if self.where is None:
            return None
        if collection.id not in self._ids:
            cached = self.cache.get(collection, self.where) if self.cache else None
            if cached is None:
                cached = self.store.filtered_chunk_ids(collection.id, self.where)
                if self.cache is not None:
                    self.cache.put(collection, self.where, cached)
            self._ids[collection.id] = cached
        return self._ids[collection.id]
